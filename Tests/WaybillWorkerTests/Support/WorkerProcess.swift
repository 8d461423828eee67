import ChildProcess
import Foundation
import Testing
import WaybillTestSupport

/// `waybill worker` as a separate process, configured through its environment variables, so a test can kill it. The
/// binary is the one ``WaybillBinary`` finds.
final class WorkerProcess: Sendable {
    let child: ChildProcess
    let log: URL

    /// The environment `waybill worker` reads, for worker number `index` of the scenario.
    static func environment(for scenario: Scenario, worker index: Int = 1) throws -> [String: String] {
        let configuration = try scenario.configuration(worker: index)
        let (url, password) = try TestBroker.urlAndPassword()
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("WAYBILL_") }
        environment["WAYBILL_WORKER_ID"] = configuration.workerId
        environment["WAYBILL_AMQP_URL"] = url
        environment["WAYBILL_AMQP_PASSWORD"] = password
        environment["WAYBILL_DATA_DIRECTORY"] = configuration.dataDirectory
        environment["WAYBILL_PARTITIONS"] = String(TestNames.partitions)
        environment["WAYBILL_POOL_NAME"] = configuration.poolName
        environment["WAYBILL_REBALANCE_INTERVAL_MS"] = "200"
        environment["WAYBILL_WORKFLOWS"] = configuration.workflowsDirectory
        environment["WAYBILL_COMMANDS_EXCHANGE"] = configuration.commandsExchange
        environment["WAYBILL_EVENTS_EXCHANGE"] = configuration.eventsExchange
        environment["WAYBILL_DEAD_LETTER_EXCHANGE"] = configuration.deadLetterExchange
        environment["WAYBILL_DEAD_LETTER_QUEUE"] = configuration.deadLetterQueue
        environment["WAYBILL_TIMER_POLL_MS"] = "20"
        environment["WAYBILL_HTTP_ADDRESS"] = "127.0.0.1:0"
        return environment
    }

    /// Starts `waybill worker`; its output is appended to `log`.
    init(environment: [String: String], log: URL) throws {
        self.log = log
        child = try ChildProcess(
            executable: try WaybillBinary.path(), arguments: ["worker", "--log-level", "info"],
            environment: environment,
            output: log.path)
    }

    /// Waits up to 60 s for the process to end.
    private func waitForExit() async throws -> ChildProcess.Termination {
        guard let termination = try await child.waitForExit(timeout: .seconds(60)) else {
            throw TimedOut(what: "worker process \(child.pid) to exit", seconds: 60)
        }
        return termination
    }

    /// How the process ended, or `nil` while it runs.
    var ended: ChildProcess.Termination? { child.ended }

    /// SIGKILL: no graceful anything.
    func kill() async throws {
        child.send(SIGKILL)
        _ = try await waitForExit()
    }

    /// SIGTERM, the graceful stop; returns how the process ended.
    func terminate() async throws -> ChildProcess.Termination {
        child.send(SIGTERM)
        return try await waitForExit()
    }

    /// The last lines the worker logged, for failure messages.
    func logTail(lines: Int = 40) -> String {
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}
