import Synchronization

/// `[#########...........] 45/120`: how much of a known amount of work is done, as one short line.
public enum ProgressBar {
    /// The bar of `width` cells with `done` of `total` filled, then `done/total`.
    ///
    /// A `total` of 0 draws an empty bar (there is no share of the work to show), not a full one; `done` beyond a
    /// positive `total` fills the bar without overflowing.
    public static func text(done: Int, total: Int, width: Int) -> String {
        let filled = total > 0 ? min(width, max(0, done) * width / total) : 0
        return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            + "\(done)/\(total)"
    }
}

/// Shows progress to a person: on a terminal one line redrawn in place, anywhere else (a pipe, a CI log) plain lines
/// that read well in a file.
///
/// Call ``finish()`` before writing anything else to the same stream, or that text lands on the end of the
/// redrawn line. The reporter does not throttle: on something that is not a terminal every ``show(_:)`` is a line
/// of its own, so show fewer updates there (see ``isTerminal``).
public final class ProgressReporter: Sendable {
    /// Whether updates are redrawn in place; when `false` each one is a line of its own.
    public let isTerminal: Bool
    private let write: @Sendable (String) -> Void
    private let lineOpen = Mutex(false)

    /// A reporter writing through `write` (standard output or standard error, with no newline added); `isTerminal`
    /// says whether that stream is a terminal (`isatty`).
    public init(isTerminal: Bool, write: @escaping @Sendable (String) -> Void) {
        self.isTerminal = isTerminal
        self.write = write
    }

    /// On a terminal, replaces the line shown last with `line` (which must not contain a newline); elsewhere writes
    /// `line` as a line of its own.
    public func show(_ line: String) {
        guard isTerminal else {
            write(line + "\n")
            return
        }
        lineOpen.withLock { open in
            open = true
            write("\r\u{1B}[2K" + line)
        }
    }

    /// Ends the redrawn line, once, so what is written next starts on a line of its own; does nothing when no line
    /// is open.
    public func finish() {
        lineOpen.withLock { open in
            if open { write("\n") }
            open = false
        }
    }
}
