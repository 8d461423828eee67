import Foundation
import Synchronization
import Testing

/// `waybill worker` as a separate process, configured through its environment variables, so a test can kill it.
///
/// The binary is `<scratch path>/debug/waybill`; the scratch path is `WAYBILL_TEST_SCRATCH_PATH` (relative to the
/// repository unless absolute), `.build` by default, so build with the same `--scratch-path` as the tests.
final class WorkerProcess: Sendable {
    let process: Process
    let log: URL
    private let exit: Mutex<Int32?>
    private let exited: AsyncStream<Int32>

    static func binary() throws -> URL {
        let scratch = ProcessInfo.processInfo.environment["WAYBILL_TEST_SCRATCH_PATH"].flatMap { $0.isEmpty ? nil : $0 }
            ?? ".build"
        let base =
            scratch.hasPrefix("/") ? URL(fileURLWithPath: scratch) : TestBroker.repository.appendingPathComponent(scratch)
        let binary = base.appendingPathComponent("debug/waybill")
        try #require(
            FileManager.default.isExecutableFile(atPath: binary.path),
            "no waybill binary at \(binary.path): build it (swift build --scratch-path \(scratch)) or set WAYBILL_TEST_SCRATCH_PATH"
        )
        return binary
    }

    /// The environment `waybill worker` reads, for worker number `index` of the scenario.
    static func environment(for scenario: Scenario, worker index: Int = 1) throws -> [String: String] {
        let configuration = try scenario.configuration(worker: index)
        let (url, password) = try TestBroker.urlAndPassword()
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("WAYBILL_") }
        environment["WAYBILL_WORKER_ID"] = configuration.workerId
        environment["WAYBILL_AMQP_URL"] = url
        environment["WAYBILL_AMQP_PASSWORD"] = password
        environment["WAYBILL_DATABASE"] = configuration.resolvedDatabasePath
        environment["WAYBILL_WORKFLOWS"] = configuration.workflowsDirectory
        environment["WAYBILL_COMMANDS_EXCHANGE"] = configuration.commandsExchange
        environment["WAYBILL_EVENTS_EXCHANGE"] = configuration.eventsExchange
        environment["WAYBILL_DEAD_LETTER_EXCHANGE"] = configuration.deadLetterExchange
        environment["WAYBILL_DEAD_LETTER_QUEUE"] = configuration.deadLetterQueue
        environment["WAYBILL_TIMER_POLL_MS"] = "20"
        return environment
    }

    /// Starts `waybill worker`; its output is appended to `log`.
    init(environment: [String: String], log: URL) throws {
        process = Process()
        self.log = log
        exit = Mutex(nil)
        let (exited, continuation) = AsyncStream<Int32>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.exited = exited
        process.executableURL = try Self.binary()
        process.arguments = ["worker", "--log-level", "info"]
        process.environment = environment
        if !FileManager.default.fileExists(atPath: log.path) {
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        process.terminationHandler = { [weak self] process in
            self?.exit.withLock { $0 = process.terminationStatus }
            continuation.yield(process.terminationStatus)
            continuation.finish()
            try? handle.close()
        }
        try process.run()
    }

    /// The exit status once the process has ended.
    var exitStatus: Int32? { exit.withLock { $0 } }

    /// Waits for the process to end and returns its status.
    func waitForExit(seconds: Double = 60) async throws -> Int32 {
        if let status = exitStatus { return status }
        let exited = exited
        return try await within(seconds, "waybill worker (pid \(process.processIdentifier)) to exit") {
            for await status in exited { return status }
            return -1
        }
    }

    /// SIGKILL: no graceful anything.
    func kill() async throws {
        guard exitStatus == nil else { return }
        _ = Foundation.kill(process.processIdentifier, SIGKILL)
        _ = try await waitForExit()
    }

    /// SIGTERM, the graceful stop; returns the exit status.
    func terminate() async throws -> Int32 {
        if let status = exitStatus { return status }
        process.terminate()
        return try await waitForExit()
    }

    /// The last lines the worker logged, for failure messages.
    func logTail(lines: Int = 40) -> String {
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}
