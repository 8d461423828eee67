import AMQPTransport
import Foundation
import Logging
import SagaStore
import Synchronization
import WaybillDefinition
import WaybillSimulator
import WaybillWorker

/// What `waybill bench` measures and how much of it. Every field has a default; ``quick`` shrinks the sizes.
public struct BenchOptions: Sendable {
    /// The broker every phase runs on.
    public var broker: BrokerAddress
    /// The orders, and so the messages of every saga (docs/bench.md).
    public var shape: BenchShape = .twoShipment
    /// Orders per throughput round (end-to-end and pattern ceiling).
    public var orders: Int
    /// Sagas in flight at once during the throughput rounds.
    public var inFlight: Int = 1000
    /// Workers of the end-to-end pool (``DemoOptions/workerRange``), on one data directory. The memory run always has
    /// one worker.
    public var workers: Int = 1
    /// Run the throughput rounds' workers as `waybill worker` child processes (``waybillExecutable``), which lets the
    /// bench measure their CPU apart from the participants'; by default they run in this process. The step-overhead
    /// run has its workers in this process either way: it reads their batch timings.
    public var workerProcesses: Bool = false
    /// Throughput rounds; each runs the end-to-end and the pattern replay once, alternating. The report takes the
    /// median of each.
    public var rounds: Int
    /// How long the step-overhead run offers load at half the end-to-end rate.
    public var overheadDuration: Duration
    /// Run only the step-overhead run, at this many orders per second, instead of at half the end-to-end rate after
    /// the throughput rounds.
    public var overheadRate: Double?
    /// Whether to run the memory phase.
    public var measureMemory: Bool = true
    /// Sagas the memory run holds in flight.
    public var memorySagas: Int
    /// The `waybill` executable for the memory run and ``workerProcesses``; `nil`: neither can run.
    public var waybillExecutable: String?
    /// The workflow file.
    public var workflowFile: String = "Workflows/order-fulfillment.yaml"
    /// A participants' limits file the workers enforce (`--limits`); `nil` runs without limits.
    public var limitsFile: String?
    /// Where databases, workflow copies and logs go.
    public var directory: String = ".waybill/bench"
    /// Give up on a phase after this long.
    public var phaseTimeout: Duration

    /// The full benchmark (`quick`: small enough to finish within a couple of minutes).
    public init(broker: BrokerAddress, quick: Bool) {
        self.broker = broker
        orders = quick ? 3000 : 10_000
        rounds = quick ? 2 : 3
        overheadDuration = quick ? .seconds(8) : .seconds(30)
        memorySagas = 100_000
        phaseTimeout = quick ? .seconds(150) : .seconds(900)
    }

    /// Checks that `file` is a limits file the workers can load.
    public static func checkLimits(_ file: String) throws(DemoError) {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw DemoError(.fileProblem, "--limits \(file): cannot read it (\(error.localizedDescription))")
        }
        do {
            _ = try ParticipantLimitsLoader.load(yaml: text, file: file)
        } catch {
            throw DemoError(.fileProblem, "--limits \(file) is not a valid limits file:\n\(error)")
        }
    }

    /// Checks what the options can run; the message names the flag.
    public func validate() throws(DemoError) {
        try DemoOptions.checkWorkers(workers)
        guard orders >= 100 else { throw DemoError(.invalidOption, "--orders must be at least 100, got \(orders)") }
        guard rounds >= 1 else { throw DemoError(.invalidOption, "rounds must be at least 1, got \(rounds)") }
        if let overheadRate, !(overheadRate >= 1) {
            throw DemoError(.invalidOption, "--overhead-rate must be at least 1 order/s, got \(overheadRate)")
        }
        if workerProcesses && waybillExecutable == nil {
            throw DemoError(
                .invalidOption,
                "--worker-processes needs the `waybill` executable beside waybill-demo; build both with "
                    + "`swift build -c release`")
        }
    }
}

/// Runs the benchmark phases one after the other on the same broker, each under a namespace of its own.
public enum BenchRunner {
    /// Runs every phase and returns the figures; `say` gets a line per phase as it starts and ends.
    public static func run(
        _ options: BenchOptions, logger: Logger, say: @escaping @Sendable (String) -> Void
    ) async throws -> BenchReport {
        try options.validate()
        try await checkNoOtherBenchmark(options, logger: logger)
        var report = BenchReport(options: options)
        let port = try? AMQPConfiguration(url: options.broker.url).endpoints[0].port
        let probe = CPUProbe(brokerPort: port)
        report.cores = probe.cores
        report.brokerLabel = probe.brokerLabel
        if probe.broker == nil {
            report.notes.append(
                "no process listening on the broker's port \(port.map(String.init) ?? "?") was found on this machine, "
                    + "so the broker's CPU share is not shown")
        }
        if options.shape == .mixed {
            report.notes.append(
                "--shape mixed: the end-to-end sagas differ from one another, so the ceiling replays two-shipment "
                    + "orders and the ratio compares unlike work")
        }

        if let rate = options.overheadRate {
            report.overheadRate = rate
            report.record(try await overheadOnly(options, rate: rate, probe: probe, logger: logger, say: say))
        } else if let executable = options.waybillExecutable, options.workerProcesses {
            let phases = try await throughputInProcesses(
                options, executable: executable, probe: probe, logger: logger, say: say)
            (report.endToEndPhase, report.ceilingPhase) = phases
            report.overheadRate = overheadRate(phases.endToEnd)
            report.record(
                try await overheadOnly(options, rate: report.overheadRate, probe: probe, logger: logger, say: say))
        } else {
            let result = try await throughputAndOverhead(options, probe: probe, logger: logger, say: say)
            (report.endToEndPhase, report.ceilingPhase) = (result.endToEnd, result.ceiling)
            report.overheadRate = result.rate
            report.record(result.overhead)
        }

        if !options.measureMemory {
            report.notes.append("memory run skipped (--skip-memory)")
        } else if let executable = options.waybillExecutable {
            say("[memory] a `waybill worker` child with \(options.memorySagas) sagas in flight ...")
            let memory = try await MemoryProbe(options: options, executable: executable, logger: logger).run(say: say)
            report.peakRSS = memory.peak
            report.memoryRampUp = memory.rampUp
            report.memorySagas = memory.sagas
            if memory.sagas < options.memorySagas {
                report.notes.append(
                    "the memory run reached only \(memory.sagas) of \(options.memorySagas) sagas within the phase timeout"
                )
            }
        } else {
            report.notes.append(
                "memory run skipped: no `waybill` executable beside waybill-demo; build both with `swift build -c release`"
            )
        }
        return report
    }

    /// Refuses to start while another `waybill bench` runs on the same broker and vhost: the two would consume each
    /// other's commands (the participants' queues have fixed names) and share the machine, so neither's figures would
    /// mean anything.
    private static func checkNoOtherBenchmark(_ options: BenchOptions, logger: Logger) async throws {
        let client = try AMQPClient(
            configuration: try options.broker.amqpConfiguration(name: "waybill-bench-check"), logger: logger)
        do {
            try await client.connect()
        } catch {
            throw DemoError(.brokerUnreachable, "cannot connect to RabbitMQ at \(options.broker)", cause: error)
        }
        var busy: [String] = []
        for namespace in ["bench-e2e", "bench-replay", "bench-memory"] {
            let queue = try DemoNames(namespace: namespace).participantsQueue
            if let info = try? await client.inspectQueue(queue), info.consumerCount > 0 { busy.append(queue) }
        }
        await client.close()
        guard busy.isEmpty else {
            throw DemoError(
                .benchmarkRunning,
                "another benchmark is running on \(options.broker): \(busy.joined(separator: ", ")) already has "
                    + "consumers; wait until it is done (two at once take each other's commands and share the CPUs)")
        }
    }

    /// The median of `values` (0 for none).
    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// The step-overhead run's rate: half the median end-to-end rate.
    private static func overheadRate(_ endToEnd: BenchPhase) -> Double { max(1, endToEnd.rate / 2) }

    /// Orders the shape's simulator is stocked for: the throughput rounds twice over, so that the mixed shape's
    /// partial stock lasts through the step-overhead run too.
    private static func stockedOrders(_ options: BenchOptions) -> Int { options.rounds * options.orders * 2 }

    /// The end-to-end pool's names and set-up.
    private static func stageSetup(
        _ options: BenchOptions, workers: Int, simulator: ParticipantSimulator, observed: ObservedBatches?
    ) throws -> StageSetup {
        var observer: (@Sendable (WorkerBatchTiming) -> Void)?
        if let observed { observer = { observed.observe($0) } }
        // The mixed shape's short SKU backorders some orders: stock arrives for them every second (nothing is
        // discontinued), so their sagas end; the other shapes never backorder.
        return StageSetup(
            broker: options.broker, names: try DemoNames(namespace: "bench-e2e"), workflowFile: options.workflowFile,
            directory: options.directory, poolDirectoryName: "bench-e2e-pool", workers: workers,
            respond: simulator.handle, batchObserver: observer, removeTopologyWhenDone: true,
            arrivals: simulator.receiveStock, arrivalInterval: .seconds(1), limitsFile: options.limitsFile)
    }

    /// In-process workers: the throughput rounds (end-to-end and pattern replay alternating, so that a load change on
    /// the machine hits both alike) and the step-overhead run, on one pool.
    private static func throughputAndOverhead(
        _ options: BenchOptions, probe: CPUProbe, logger: Logger, say: @escaping @Sendable (String) -> Void
    ) async throws -> (endToEnd: BenchPhase, ceiling: BenchPhase, overhead: OverheadRuns, rate: Double) {
        let simulator = try options.shape.simulator(orders: stockedOrders(options))
        let observed = ObservedBatches()
        let setup = try stageSetup(options, workers: options.workers, simulator: simulator, observed: observed)
        return try await DemoStage.run(setup, logger: logger) { stage in
            try await withPatternReplay(options, logger: logger) { replay in
                let feed = OrderFeed(
                    publisher: stage.publisher, monitor: stage.monitor, isRunning: { stage.isRunning }, rate: nil,
                    maxInFlight: options.inFlight, timeout: options.phaseTimeout, progressInterval: .seconds(5))
                let endToEnd = EndToEndRig(
                    feed: feed, monitor: stage.monitor, simulator: simulator, workerCounts: { observed.counts },
                    workerProcesses: { [] },
                    label: options.workers == 1 ? "the worker" : "\(options.workers) in-process workers")
                let phases = try await alternateRounds(
                    options, probe: probe, endToEnd: endToEnd, replay: replay, say: say)
                let rate = overheadRate(phases.endToEnd)
                let overhead = try await measureOverheads(
                    options, feed: feed, observed: observed, replay: replay, rate: rate, probe: probe, say: say)
                return (phases.endToEnd, phases.ceiling, overhead, rate)
            }
        }
    }

    /// Worker processes: the throughput rounds with `options.workers` `waybill worker` children on one pool, the
    /// participants, feeder and monitor in this process.
    private static func throughputInProcesses(
        _ options: BenchOptions, executable: String, probe: CPUProbe, logger: Logger,
        say: @escaping @Sendable (String) -> Void
    ) async throws -> (endToEnd: BenchPhase, ceiling: BenchPhase) {
        let simulator = try options.shape.simulator(orders: stockedOrders(options))
        let setup = try stageSetup(options, workers: 0, simulator: simulator, observed: nil)
        return try await DemoStage.run(setup, logger: logger) { stage in
            var configuration = setup.names.workerConfiguration(number: 1)
            configuration.amqpURL = options.broker.url
            configuration.amqpPassword = options.broker.password
            configuration.dataDirectory = stage.dataDirectory
            configuration.workflowsDirectory = stage.workflowsDirectory
            let logs = (options.directory as NSString).appendingPathComponent("worker-logs")
            do {
                try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
            } catch {
                throw DemoError(.fileProblem, "cannot create the workers' log folder \(logs)", cause: error)
            }
            let processes = ChaosWorkers(
                executable: executable, configuration: configuration,
                maxMessageBytes: configuration.maxMessageBytes, logsDirectory: logs, logLevel: "warning")
            let ids = (1...options.workers).map(setup.names.workerId)
            do {
                say("[pool] starting \(ids.count) `waybill worker` process\(ids.count == 1 ? "" : "es") ...")
                for id in ids { try processes.start(id) }
                try await waitForPool(stage.dataDirectory, processes: processes, ids: ids)
                let phases = try await withPatternReplay(options, logger: logger) { replay in
                    let feed = OrderFeed(
                        publisher: stage.publisher, monitor: stage.monitor,
                        isRunning: { stage.isRunning && processes.running.count == ids.count }, rate: nil,
                        maxInFlight: options.inFlight, timeout: options.phaseTimeout, progressInterval: .seconds(5))
                    let endToEnd = EndToEndRig(
                        feed: feed, monitor: stage.monitor, simulator: simulator, workerCounts: { nil },
                        workerProcesses: {
                            let pids = processes.processIds
                            return ids.compactMap { pids[$0] }
                        },
                        label: "\(ids.count) worker process\(ids.count == 1 ? "" : "es")")
                    return try await alternateRounds(
                        options, probe: probe, endToEnd: endToEnd, replay: replay, say: say)
                }
                for id in ids { _ = await processes.drain(id, timeout: .seconds(30), midRun: false) }
                return phases
            } catch {
                await processes.killAll()
                throw error
            }
        }
    }

    /// The step-overhead runs alone, with in-process workers on a new pool (after the worker processes' rounds) and a
    /// pattern replay.
    private static func overheadOnly(
        _ options: BenchOptions, rate: Double, probe: CPUProbe, logger: Logger,
        say: @escaping @Sendable (String) -> Void
    ) async throws -> OverheadRuns {
        let simulator = try options.shape.simulator(orders: stockedOrders(options))
        let observed = ObservedBatches()
        let setup = try stageSetup(options, workers: options.workers, simulator: simulator, observed: observed)
        return try await DemoStage.run(setup, logger: logger) { stage in
            let feed = OrderFeed(
                publisher: stage.publisher, monitor: stage.monitor, isRunning: { stage.isRunning }, rate: nil,
                maxInFlight: options.inFlight, timeout: options.phaseTimeout, progressInterval: .seconds(5))
            return try await withPatternReplay(options, logger: logger) { replay in
                try await measureOverheads(
                    options, feed: feed, observed: observed, replay: replay, rate: rate, probe: probe, say: say)
            }
        }
    }

    /// Waits until the worker processes `ids` run and hold a fair share of the pool's partitions each (60 s at most).
    private static func waitForPool(_ dataDirectory: String, processes: ChaosWorkers, ids: [String]) async throws {
        try await processes.waitForMembers(
            of: dataDirectory, waiting: "the worker processes did not share the partitions",
            logs: "their logs beside \(processes.logPath(ids[0]))"
        ) { members, pool in
            Set(members.map(\.worker)) == Set(ids)
                && DemoStage.isFairShare(members.map(\.partitions), partitionCount: pool.partitionCount)
        }
    }

    /// The throughput rounds: end to end, then the pattern replay, `options.rounds` times.
    private static func alternateRounds(
        _ options: BenchOptions, probe: CPUProbe, endToEnd: EndToEndRig, replay: ReplayRig,
        say: @escaping @Sendable (String) -> Void
    ) async throws -> (endToEnd: BenchPhase, ceiling: BenchPhase) {
        var endToEndPhase = BenchPhase()
        var ceilingPhase = BenchPhase()
        endToEndPhase.worker = endToEnd.workerCounts() == nil ? nil : MessageCounts()
        ceilingPhase.worker = MessageCounts()
        let counts = replay.replay
        for round in 1...options.rounds {
            say(
                "[\(round)/\(options.rounds)] end-to-end: \(options.orders) \(options.shape.rawValue) orders through "
                    + "\(endToEnd.label) ...")
            let usage = try await measureRound(
                options.shape.orders(options.orders, prefix: "e2e\(round)"), name: "end-to-end round \(round)",
                feed: endToEnd.feed, monitor: endToEnd.monitor, simulator: endToEnd.simulator,
                workerCounts: endToEnd.workerCounts, workerProcesses: endToEnd.workerProcesses, probe: probe,
                completeAll: options.shape != .mixed, phase: &endToEndPhase)
            say(roundLine(endToEndPhase, usage, probe: probe, shape: options.shape))

            say(
                "[\(round)/\(options.rounds)] pattern ceiling: \(options.orders) \(options.shape.replayed.rawValue) "
                    + "orders, raw AMQP replay ...")
            let replayUsage = try await measureRound(
                options.shape.replayed.orders(options.orders, prefix: "replay\(round)"),
                name: "pattern replay round \(round)", feed: replay.feed, monitor: replay.monitor,
                simulator: replay.simulator,
                workerCounts: {
                    let now = counts.counts
                    return MessageCounts(consumed: now.consumed, published: now.published)
                }, workerProcesses: { [] }, probe: probe, completeAll: true, phase: &ceilingPhase)
            say(roundLine(ceilingPhase, replayUsage, probe: probe, shape: options.shape.replayed))
        }
        return (endToEndPhase, ceilingPhase)
    }

    /// Feeds one round's orders, waits for their ends, and adds the round's rate, counts and CPU to `phase`.
    private static func measureRound(
        _ orders: [(sagaId: String, body: [UInt8])], name: String, feed: OrderFeed, monitor: SagaMonitor,
        simulator: ParticipantSimulator, workerCounts: () -> MessageCounts?, workerProcesses: () -> [Int32],
        probe: CPUProbe, completeAll: Bool, phase: inout BenchPhase
    ) async throws -> CPUUsage {
        let tally = monitor.tally
        let ledger = simulator.ledger().totals
        let counts = workerCounts()
        let pids = workerProcesses()
        let before = probe.sample(workers: pids)
        let outcome = try await feed.run(orders)
        let after = probe.sample(workers: pids)
        let countsAfter = workerCounts()
        let ledgerAfter = simulator.ledger().totals
        let tallyAfter = monitor.tally
        let ended = tallyAfter.ended - tally.ended
        let completed = tallyAfter.completed - tally.completed
        guard case .finished = outcome, ended == orders.count, !completeAll || completed == orders.count else {
            throw DemoError(
                .stoppedEarly,
                "\(name): \(ended) of \(orders.count) sagas ended, \(completed) completed (\(outcome)); see the log")
        }
        phase.rates.append(monitor.steadyRate(skipping: tally.ended))
        phase.sagas += orders.count
        phase.completed += completed
        if let counts, let countsAfter {
            phase.worker?.consumed += countsAfter.consumed - counts.consumed
            phase.worker?.published += countsAfter.published - counts.published
        }
        phase.participants.consumed += ledgerAfter.received - ledger.received
        phase.participants.published +=
            (ledgerAfter.received - ledgerAfter.injectedSilences - ledgerAfter.lostReplies)
            - (ledger.received - ledger.injectedSilences - ledger.lostReplies)
        let usage = after.since(before)
        phase.cpu = phase.cpu + usage
        return usage
    }

    /// `      412.3 completed sagas/s · broker 45 % · bench 54 % · idle 20 % · else 1 % of 2 CPUs`.
    private static func roundLine(_ phase: BenchPhase, _ usage: CPUUsage, probe: CPUProbe, shape: BenchShape) -> String
    {
        "      \(Format.fixed(phase.rates.last ?? 0, 1)) \(shape == .mixed ? "ended" : "completed") sagas/s · "
            + usage.sharesText(cores: probe.cores)
    }

    /// The step-overhead run through the workers, then the same through the pattern replay (its floor).
    private static func measureOverheads(
        _ options: BenchOptions, feed: OrderFeed, observed: ObservedBatches, replay: ReplayRig, rate: Double,
        probe: CPUProbe, say: @escaping @Sendable (String) -> Void
    ) async throws -> OverheadRuns {
        say(
            "[overhead] step overhead: \(Format.fixed(rate, 0)) orders/s for \(options.overheadDuration.readable) "
                + (options.overheadRate == nil ? "(half the end-to-end rate) ..." : "(--overhead-rate) ..."))
        let workers = try await measureOverhead(
            options, feed: feed, observed: observed, rate: rate, probe: probe, say: say)
        say("[overhead] its floor: the same orders through the pattern replay (raw AMQP) ...")
        let floor = try await measureOverhead(
            options, feed: replay.feed, observed: replay.observed, rate: rate, probe: probe, say: say)
        return OverheadRuns(workers: workers, floor: floor)
    }

    /// One step-overhead run: orders at `rate` for `options.overheadDuration`, the reply -> confirmed durations
    /// `observed` meanwhile.
    private static func measureOverhead(
        _ options: BenchOptions, feed: OrderFeed, observed: ObservedBatches, rate: Double, probe: CPUProbe,
        say: @escaping @Sendable (String) -> Void
    ) async throws -> StepOverhead {
        observed.startRecording()
        let count = max(10, Int(rate * options.overheadDuration.inSeconds))
        var paced = feed
        paced.rate = rate
        paced.maxInFlight = Int.max / 2
        let before = probe.sample()
        _ = try await paced.run(options.shape.orders(count, prefix: "step"))
        let usage = probe.sample().since(before)
        let overhead = LatencySummary(observed.stopRecording())
        if let overhead {
            say(
                "      p50 \(Format.milliseconds(overhead.p50)) · p99 \(Format.milliseconds(overhead.p99)) "
                    + "over \(overhead.count) replies · \(usage.sharesText(cores: probe.cores))")
        }
        return StepOverhead(latency: overhead, cpu: usage)
    }

    /// Runs `body` with a ``PatternReplay``, its own simulated participants for the replayed shape and a monitor on
    /// their own names, and a feed that publishes to the replay's trigger; removes the replay's queues and exchanges
    /// afterwards.
    private static func withPatternReplay<T: Sendable>(
        _ options: BenchOptions, logger: Logger, body: @escaping @Sendable (ReplayRig) async throws -> T
    ) async throws -> T {
        let names = try DemoNames(namespace: "bench-replay")
        let observed = ObservedBatches()
        let source = try String(contentsOfFile: options.workflowFile, encoding: .utf8)
        let workflow = try WorkflowLoader.load(
            yaml: try names.rewrite(workflowText: source, file: options.workflowFile), file: options.workflowFile)
        let clients = try await options.broker.connectedClients(
            (0..<3).map { "waybill-bench-replay-\($0)" }, logger: logger)
        func closeAll() async {
            for client in clients { await client.close() }
        }
        let (driver, replayClient, participantsClient) = (clients[0], clients[1], clients[2])
        let replay = PatternReplay(
            client: replayClient, configuration: names.workerConfiguration(number: 1), workflow: workflow,
            logger: logger, observer: observed.observe)
        func removeTopology() async {
            await replay.remove()
            _ = try? await driver.deleteQueue(names.participantsQueue)
        }
        // Drained, not deleted, at the start: see `DemoStage.clearLeftovers()`.
        for queue in replay.queues + [names.participantsQueue] {
            _ = await QueueDrain.drain(queue, on: driver)
        }
        let result: Result<T, any Error>
        do {
            try await replay.declare()
            var participantConfiguration = ParticipantConfiguration()
            participantConfiguration.commandsExchange = names.commandsExchange
            participantConfiguration.queue = names.participantsQueue
            let replaySimulator = try options.shape.replayed.simulator(orders: stockedOrders(options))
            let participants = ParticipantService(
                client: participantsClient, configuration: participantConfiguration, logger: logger,
                respond: replaySimulator.handle)
            try await participants.declare()
            let monitor = SagaMonitor(
                client: driver, eventsExchange: names.eventsExchange, queue: names.monitorQueue,
                milestones: workflow.milestones, logger: logger)
            try await monitor.declare()
            let feed = OrderFeed(
                publisher: OrderPublisher(client: driver, trigger: workflow.trigger, monitor: monitor),
                monitor: monitor, isRunning: { true }, rate: nil, maxInFlight: options.inFlight,
                timeout: options.phaseTimeout, progressInterval: .seconds(5))
            let rig = ReplayRig(
                feed: feed, monitor: monitor, simulator: replaySimulator, replay: replay, observed: observed)
            result = await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await participants.run() }
                group.addTask { try? await replay.run() }
                group.addTask { await monitor.run() }
                defer { group.cancelAll() }
                do {
                    return .success(try await body(rig))
                } catch {
                    return .failure(error)
                }
            }
        } catch {
            result = .failure(error)
        }
        await removeTopology()
        await closeAll()
        return try result.get()
    }
}

/// The end-to-end side of the throughput rounds.
private struct EndToEndRig: Sendable {
    var feed: OrderFeed
    var monitor: SagaMonitor
    var simulator: ParticipantSimulator
    /// The workers' consumed and published messages so far; `nil` when the bench cannot see them.
    var workerCounts: @Sendable () -> MessageCounts?
    /// The worker processes to measure the CPU of; none for in-process workers.
    var workerProcesses: @Sendable () -> [Int32]
    /// `the worker`, `3 worker processes`.
    var label: String
}

/// The pattern-ceiling side of the throughput rounds.
private struct ReplayRig: Sendable {
    var feed: OrderFeed
    var monitor: SagaMonitor
    var simulator: ParticipantSimulator
    var replay: PatternReplay
    /// The replay's batches: its reply -> confirmed durations while recording (the step-overhead floor).
    var observed: ObservedBatches
}

/// The step-overhead runs at one rate: through the workers, and through the pattern replay (no engine, no SQLite),
/// the floor of what the same messages take on this broker and machine.
struct OverheadRuns: Sendable {
    var workers: StepOverhead
    var floor: StepOverhead?
}

/// The in-process workers' (or the pattern replay's) batches as the bench sees them: message totals always, reply ->
/// confirmed durations while recording (the step-overhead runs).
final class ObservedBatches: Sendable {
    private struct State {
        var counts = MessageCounts()
        var recording = false
        var durations: [Duration] = []
    }

    private let state = Mutex(State())

    /// Adds one batch (the workers' batch observer).
    func observe(_ timing: WorkerBatchTiming) {
        state.withLock { state in
            state.counts.consumed += timing.inputs
            state.counts.published += timing.published
            if state.recording { state.durations.append(contentsOf: timing.replyToConfirmed) }
        }
    }

    /// Inputs (deliveries and timer ticks) and published messages of every batch so far.
    var counts: MessageCounts { state.withLock { $0.counts } }

    /// Starts keeping the replies' durations.
    func startRecording() {
        state.withLock { $0.recording = true }
    }

    /// Stops keeping durations and returns the ones kept.
    func stopRecording() -> [Duration] {
        state.withLock { state in
            state.recording = false
            defer { state.durations = [] }
            return state.durations
        }
    }
}
