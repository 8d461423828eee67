import ChildProcess
import Foundation
import SagaEngine
import SagaStore
import Synchronization
import WaybillWorker

/// The chaos run's `waybill worker` processes: started, SIGKILLed, drained with SIGTERM, and watched for exits nobody
/// asked for (a crash). Every kill and drain is recorded with its times, for the takeover figures and the claim checks.
///
/// A worker id names one worker for the whole run: a killed worker is started again under the same id (and the same
/// log file), as a supervisor would restart it.
final class ChaosWorkers: Sendable {
    /// A SIGKILL: the wall-clock instants just before the signal and once the process was reaped.
    struct Kill: Sendable, Hashable {
        var worker: String
        var before: Timestamp
        var after: Timestamp
        /// Never started again (the "killed for good" fault).
        var permanent: Bool
        /// Made while the broker was stopped: its partitions could not run again before the broker was back, so
        /// it is left out of the takeover figures.
        var duringOutage = false
    }

    /// A SIGTERM (a drain): when it was sent, how long the worker took, and how it ended (`nil`: it did not end in
    /// time and was killed).
    struct Drain: Sendable, Hashable {
        var worker: String
        var at: Timestamp
        var took: Duration
        var termination: ChildProcess.Termination?
        /// Whether the drain was the mid-run fault (`false`: the stop at the end of the run).
        var midRun: Bool
    }

    /// A worker process that ended while nobody had asked it to.
    struct Crash: Sendable, Hashable {
        var worker: String
        var at: Timestamp
        var termination: ChildProcess.Termination
        /// The last lines of its log.
        var logTail: String
    }

    private struct Running {
        var child: ChildProcess
        /// Set before a kill or a drain: its exit is expected.
        var stopping = false
    }

    private struct State {
        var running: [String: Running] = [:]
        var kills: [Kill] = []
        var drains: [Drain] = []
        var crashes: [Crash] = []
        var starts = 0
    }

    private let executable: String
    private let environment: [String: String]
    private let logsDirectory: String
    private let logLevel: String
    private let state = Mutex(State())

    /// Workers running `executable` with `configuration` (every worker gets its own `worker_id`), logging to
    /// `<logsDirectory>/<worker>.log` at `logLevel` (`info` logs a line per saga: too much for a benchmark).
    init(
        executable: String, configuration: WorkerConfiguration, maxMessageBytes: Int, logsDirectory: String,
        logLevel: String = "info"
    ) {
        self.executable = executable
        self.logLevel = logLevel
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("WAYBILL_") }
        environment.merge(Self.environment(for: configuration)) { _, new in new }
        environment["WAYBILL_MAX_MESSAGE_BYTES"] = String(maxMessageBytes)
        self.environment = environment
        self.logsDirectory = logsDirectory
    }

    /// The `WAYBILL_*` variables that give `waybill worker` these settings (the broker, the pool, the names); the
    /// worker id is set per process.
    static func environment(for configuration: WorkerConfiguration) -> [String: String] {
        var environment = [
            "WAYBILL_AMQP_URL": configuration.amqpURL,
            "WAYBILL_DATA_DIRECTORY": configuration.dataDirectory,
            "WAYBILL_POOL_NAME": configuration.poolName,
            "WAYBILL_WORKFLOWS": configuration.workflowsDirectory,
            "WAYBILL_COMMANDS_EXCHANGE": configuration.commandsExchange,
            "WAYBILL_EVENTS_EXCHANGE": configuration.eventsExchange,
            "WAYBILL_DEAD_LETTER_EXCHANGE": configuration.deadLetterExchange,
            "WAYBILL_DEAD_LETTER_QUEUE": configuration.deadLetterQueue,
        ]
        if let password = configuration.amqpPassword { environment["WAYBILL_AMQP_PASSWORD"] = password }
        if let partitions = configuration.partitions { environment["WAYBILL_PARTITIONS"] = String(partitions) }
        // Several workers on one host: each takes a free port for its endpoints (its log names it).
        environment["WAYBILL_HTTP_ADDRESS"] = "127.0.0.1:0"
        return environment
    }

    /// The log file of `worker`.
    func logPath(_ worker: String) -> String {
        (logsDirectory as NSString).appendingPathComponent("\(worker).log")
    }

    /// Starts `worker` (again); its output is appended to its log.
    func start(_ worker: String) throws {
        var environment = environment
        environment["WAYBILL_WORKER_ID"] = worker
        let child: ChildProcess
        do {
            child = try ChildProcess(
                executable: executable, arguments: ["worker", "--log-level", logLevel], environment: environment,
                output: logPath(worker))
        } catch {
            throw DemoError(.childProcess, "cannot start \(executable) worker as \(worker)", cause: error)
        }
        state.withLock {
            $0.running[worker] = Running(child: child)
            $0.starts += 1
        }
    }

    /// The workers whose process runs now, sorted.
    var running: [String] {
        state.withLock { state in state.running.filter { $0.value.child.ended == nil }.keys.sorted() }
    }

    /// The process of `worker`, marked as being stopped on purpose (so its exit is not a crash); `nil` when it does not
    /// run.
    private func stopping(_ worker: String) -> ChildProcess? {
        state.withLock { state in
            guard let running = state.running[worker], running.child.ended == nil else { return nil }
            state.running[worker]?.stopping = true
            return running.child
        }
    }

    /// SIGKILL: records the instants around it and waits until the process is reaped. `nil` when `worker` does not
    /// run.
    func kill(_ worker: String, permanent: Bool, duringOutage: Bool = false) async -> Kill? {
        guard let child = stopping(worker) else { return nil }
        let before = Timestamp.now()
        child.send(SIGKILL)
        _ = try? await child.waitForExit()
        let kill = Kill(
            worker: worker, before: before, after: .now(), permanent: permanent, duringOutage: duringOutage)
        state.withLock {
            $0.kills.append(kill)
            $0.running[worker] = nil
        }
        return kill
    }

    /// SIGTERM, the graceful drain: waits up to `timeout` for the exit (then SIGKILL) and records how it ended.
    func drain(_ worker: String, timeout: Duration, midRun: Bool) async -> Drain? {
        guard let child = stopping(worker) else { return nil }
        let at = Timestamp.now()
        let clock = ContinuousClock()
        let began = clock.now
        child.send(SIGTERM)
        var termination = (try? await child.waitForExit(timeout: timeout)) ?? nil
        let took = clock.now - began
        if termination == nil {
            child.send(SIGKILL)
            _ = try? await child.waitForExit()
            termination = nil
        }
        let drain = Drain(worker: worker, at: at, took: took, termination: termination, midRun: midRun)
        state.withLock {
            $0.drains.append(drain)
            $0.running[worker] = nil
        }
        return drain
    }

    /// Looks for workers that ended while nobody stopped them, records each as a crash and returns their ids (the
    /// caller may start them again).
    func collectCrashes() -> [String] {
        let ended = state.withLock { state -> [(String, ChildProcess.Termination)] in
            var ended: [(String, ChildProcess.Termination)] = []
            for (worker, running) in state.running where !running.stopping {
                if let termination = running.child.ended { ended.append((worker, termination)) }
            }
            for (worker, _) in ended { state.running[worker] = nil }
            return ended
        }
        for (worker, termination) in ended {
            let crash = Crash(
                worker: worker, at: .now(), termination: termination, logTail: MemoryProbe.tail(logPath(worker)))
            state.withLock { $0.crashes.append(crash) }
        }
        return ended.map(\.0).sorted()
    }

    /// Polls the member files of the pool in `dataDirectory` every 200 ms until `ready` holds for its live, running
    /// members; throws when a worker exits meanwhile, or after 60 s (`waiting` says what for, `logs` where to look).
    func waitForMembers(
        of dataDirectory: String, waiting: String, logs: String,
        until ready: ([PoolMemberStatus], PoolDirectory) -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            if let pool = try? PoolDirectory.open(dataDirectory),
                ready(pool.members().filter { $0.isLive && $0.state == .running }, pool)
            {
                return
            }
            if let crashed = collectCrashes().first {
                throw DemoError(
                    .childProcess,
                    "worker \(crashed) exited at start; see \(logPath(crashed)):\n" + MemoryProbe.tail(logPath(crashed))
                )
            }
            guard ContinuousClock.now < deadline else {
                throw DemoError(.childProcess, "\(waiting) within 60 s; see \(logs)")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// The process ids of the running workers, by worker.
    var processIds: [String: Int32] {
        state.withLock { state in state.running.filter { $0.value.child.ended == nil }.mapValues(\.child.pid) }
    }

    /// Every kill, drain and crash so far, and how many times a worker was started.
    var history: (kills: [Kill], drains: [Drain], crashes: [Crash], starts: Int) {
        state.withLock { ($0.kills, $0.drains, $0.crashes, $0.starts) }
    }

    /// SIGKILLs every worker still running (a run that failed half-way); records nothing.
    func killAll() async {
        let children = state.withLock { state in
            defer { state.running.removeAll() }
            return state.running.values.map(\.child)
        }
        for child in children where child.ended == nil {
            child.send(SIGKILL)
            _ = try? await child.waitForExit(timeout: .seconds(10))
        }
    }
}
