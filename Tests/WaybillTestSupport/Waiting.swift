import Synchronization

/// A wait that did not see its condition before the deadline.
public struct TimedOut: Error, CustomStringConvertible {
    /// What was awaited, for the failure message.
    public let what: String
    /// How long it was awaited.
    public let seconds: Double

    /// A timeout waiting `seconds` for `what`.
    public init(what: String, seconds: Double) {
        self.what = what
        self.seconds = seconds
    }

    /// `timed out after 30.0s waiting for ...`.
    public var description: String { "timed out after \(seconds)s waiting for \(what)" }
}

/// Runs `body`, failing with ``TimedOut`` if it has not finished after `seconds`. On a timeout `body` is cancelled
/// but not awaited, so a body that ignores cancellation cannot hang the test.
public func within<T: Sendable>(
    _ seconds: Double, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = Race<T>()
    return try await withCheckedThrowingContinuation { continuation in
        race.continuation.withLock { $0 = continuation }
        let work = Task {
            let result: Result<T, any Error>
            do {
                result = .success(try await body())
            } catch {
                result = .failure(error)
            }
            race.finish(with: result)
        }
        race.work.withLock { $0 = work }
        Task {
            try? await Task.sleep(for: .seconds(seconds))
            race.work.withLock { $0 }?.cancel()
            race.finish(with: .failure(TimedOut(what: what, seconds: seconds)))
        }
    }
}

/// The state of one ``within(_:_:_:)``: whoever finishes first resumes the caller.
private final class Race<T: Sendable>: Sendable {
    let continuation = Mutex<CheckedContinuation<T, any Error>?>(nil)
    let work = Mutex<Task<Void, Never>?>(nil)

    func finish(with result: Result<T, any Error>) {
        continuation.withLock { $0.take() }?.resume(with: result)
    }
}

/// Checks `condition` until it holds, failing with ``TimedOut`` after `seconds`. For state that offers no
/// notification (a SQLite file, a queue's counters); the pause between checks is not a stand-in for the condition.
public func eventually(
    _ what: String, seconds: Double = 30, _ condition: @escaping @Sendable () async throws -> Bool
) async throws {
    try await within(seconds, what) {
        while try await !condition() { try await Task.sleep(for: .milliseconds(20)) }
    }
}
