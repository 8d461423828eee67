import PlainText
import Synchronization
import Testing

@Suite struct PaddingTests {
    @Test(
        arguments: [
            ("ok", 4, TextAlignment.left, " ", "ok  "),
            ("ok", 4, .right, " ", "  ok"),
            ("7", 3, .right, "0", "007"),
            ("1234", 3, .right, "0", "1234"),
            ("exact", 5, .left, " ", "exact"),
            ("", 2, .left, "-", "--"),
            ("ünï✓", 6, .left, ".", "ünï✓.."),
            ("x", 0, .left, " ", "x"),
            ("x", -3, .right, " ", "x"),
        ] as [(String, Int, TextAlignment, Character, String)])
    func pads(text: String, width: Int, alignment: TextAlignment, fill: Character, expected: String) {
        #expect(text.padded(to: width, alignment, fill: fill) == expected)
    }
}

@Suite struct ShellQuotingTests {
    @Test(
        arguments: [
            ("o-1001", "o-1001"),
            (".waybill/demo/demo.sqlite", ".waybill/demo/demo.sqlite"),
            ("key=value:user@host", "key=value:user@host"),
            ("ünï", "ünï"),
            ("", "''"),
            ("two words", "'two words'"),
            ("it's", #"'it'\''s'"#),
            ("$HOME;rm", "'$HOME;rm'"),
        ])
    func quotes(text: String, expected: String) {
        #expect(text.shellQuoted == expected)
    }
}

@Suite struct ProgressTests {
    @Test(
        arguments: [
            (0, 10, 10, "[..........] 0/10"),
            (5, 10, 10, "[#####.....] 5/10"),
            (9, 10, 10, "[#########.] 9/10"),
            (10, 10, 10, "[##########] 10/10"),
            (432, 1000, 10, "[####......] 432/1000"),
            (12, 10, 4, "[####] 12/10"),
            (0, 0, 4, "[....] 0/0"),
            (3, 0, 4, "[....] 3/0"),
        ] as [(Int, Int, Int, String)])
    func bars(done: Int, total: Int, width: Int, expected: String) {
        #expect(ProgressBar.text(done: done, total: total, width: width) == expected)
    }

    @Test(
        "a terminal redraws one line and ends it once; elsewhere every update is a line",
        arguments: [
            (true, "\r\u{1B}[2K[#.] 1/2\r\u{1B}[2K[##] 2/2\n"),
            (false, "[#.] 1/2\n[##] 2/2\n"),
        ])
    func reports(isTerminal: Bool, expected: String) {
        let written = Written()
        let reporter = ProgressReporter(isTerminal: isTerminal, write: written.append)
        reporter.show("[#.] 1/2")
        reporter.show("[##] 2/2")
        reporter.finish()
        reporter.finish()
        #expect(written.text == expected)
    }

    @Test func finishingWithoutALineWritesNothing() {
        let written = Written()
        ProgressReporter(isTerminal: true, write: written.append).finish()
        #expect(written.text.isEmpty)
    }
}

/// Collects what a reporter writes.
private final class Written: Sendable {
    private let box = Mutex("")

    var text: String { box.withLock { $0 } }

    @Sendable func append(_ text: String) {
        box.withLock { $0 += text }
    }
}
