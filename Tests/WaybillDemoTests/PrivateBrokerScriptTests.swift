import Foundation
import Synchronization
import Testing
import WaybillTestSupport

@testable import WaybillDemo

/// `PrivateBroker` runs `scripts/rabbitmq` as a child process; a stand-in script plays its part here, so the shared
/// test broker is not touched.
@Suite(.timeLimit(.minutes(1)))
struct PrivateBrokerScriptTests {
    /// A `PrivateBroker` whose script is `body` (a `/bin/sh` script) in `directory`.
    static func broker(script body: String, in directory: TemporaryDirectory) throws -> PrivateBroker {
        let path = directory.file("rabbitmq")
        try "#!/bin/sh\n\(body)\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(chmod(path, 0o755) == 0)
        return PrivateBroker(script: path, port: 35672)
    }

    /// Lines a script printed, as `PrivateBroker` hands them over.
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }
    }

    /// `scripts/rabbitmq start` leaves the node and epmd running with its output descriptors: `start` returns when
    /// the script ends, not when the daemon does (it outlives the suite's time limit).
    @Test func startReturnsWhenTheScriptEndsThoughItLeavesADaemonBehind() async throws {
        let directory = try TemporaryDirectory()
        let pidFile = directory.file("daemon.pid")
        let broker = try Self.broker(
            script: "echo \"starting $1\"\nsleep 120 &\necho $! > \(pidFile)\necho started", in: directory)
        let lines = Lines()
        try await broker.start { lines.append($0) }
        let daemon = try #require(
            pid_t(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        kill(daemon, SIGKILL)
        #expect(lines.all == ["starting start", "started"])
    }

    @Test func aFailingScriptThrowsWithItsStatusAndOutput() async throws {
        let directory = try TemporaryDirectory()
        let broker = try Self.broker(script: "echo 'node not running' >&2\nexit 2", in: directory)
        let error = await #expect(throws: DemoError.self) { try await broker.stop { _ in } }
        #expect(error?.code == .brokerScriptFailed)
        #expect(error?.message.contains("stop failed (exit 2)") == true, "\(String(describing: error))")
        #expect(error?.message.contains("node not running") == true, "\(String(describing: error))")
    }

    @Test func aMissingVirtualHostIsAddedAndGivenPermissions() async throws {
        let directory = try TemporaryDirectory()
        let calls = directory.file("calls")
        let broker = try Self.broker(
            script: "echo \"$*\" >> \(calls)\n[ \"$3\" = list_vhosts ] && printf '/\\nother\\n'\nexit 0", in: directory)
        try await broker.ensureVirtualHost("waybill-demo") { _ in }
        try await broker.ensureVirtualHost("other") { _ in }
        #expect(
            try String(contentsOfFile: calls, encoding: .utf8) == """
                ctl -q list_vhosts --no-table-headers
                ctl -q add_vhost waybill-demo
                ctl -q set_permissions -p waybill-demo guest .* .* .*
                ctl -q list_vhosts --no-table-headers
                ctl -q set_permissions -p other guest .* .* .*

                """)
    }
}
