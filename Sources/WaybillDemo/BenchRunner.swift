import AMQPTransport
import Foundation
import Logging
import Synchronization
import WaybillDefinition
import WaybillSimulator
import WaybillWorker

/// What `waybill bench` measures and how much of it. Every field has a default; ``quick`` shrinks the sizes.
public struct BenchOptions: Sendable {
    /// The broker every phase runs on.
    public var broker: BrokerAddress
    /// Orders per throughput run (end-to-end and pattern ceiling).
    public var orders: Int
    /// Sagas in flight at once during the throughput runs.
    public var inFlight: Int = 1000
    /// Workers of the end-to-end pool (throughput and step overhead), in this process on one data directory
    /// (``DemoOptions/workerRange``). The memory run always has one worker.
    public var workers: Int = 1
    /// Throughput rounds; each runs the end-to-end and the pattern replay once, alternating. The report takes the
    /// median of each.
    public var rounds: Int
    /// How long the step-overhead run offers load at half the end-to-end rate.
    public var overheadDuration: Duration
    /// Sagas the memory run holds in flight.
    public var memorySagas: Int
    /// The `waybill` executable the memory run starts as `waybill worker`; `nil` skips that run.
    public var workerExecutable: String?
    /// The workflow file.
    public var workflowFile: String = "Workflows/order-fulfillment.yaml"
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
}

/// The figures of one benchmark run.
public struct BenchReport: Sendable {
    /// Orders per throughput run.
    public var orders: Int
    /// Sagas in flight during the throughput runs.
    public var inFlight: Int
    /// Workers of the end-to-end pool.
    public var workers: Int = 1
    /// Completed order sagas per second through the worker in each round (steady state: between 10% and 90% of the
    /// completions).
    public var endToEndRounds: [Double]
    /// Completed sagas per second through the raw replay of the same message pattern, in each round.
    public var ceilingRounds: [Double]
    /// Commands the participants received per saga in the throughput rounds: through the worker, through the replay
    /// (both 5 when every order ships from one warehouse and nothing is retried: the patterns match).
    public var commandsPerSaga: (endToEnd: Double, replay: Double) = (0, 0)
    /// The median end-to-end throughput.
    public var endToEnd: Double { BenchRunner.median(endToEndRounds) }
    /// The median pattern ceiling.
    public var ceiling: Double { BenchRunner.median(ceilingRounds) }
    /// ``endToEnd`` / ``ceiling``.
    public var ratio: Double { ceiling > 0 ? endToEnd / ceiling : 0 }
    /// Orders per second offered during the step-overhead run.
    public var overheadRate: Double
    /// Reply consumed -> the batch's publish (its next commands) confirmed.
    public var overhead: LatencySummary?
    /// Sagas the memory run reached.
    public var memorySagas: Int
    /// The worker's peak resident set (VmHWM) in bytes, `nil` when the run was skipped.
    public var peakRSS: Int?
    /// How long the memory run took to get its sagas in flight.
    public var memoryRampUp: Duration?
    /// Why a figure is missing or what to keep in mind.
    public var notes: [String]

    /// The figures as people read them.
    public var text: String {
        func verdict(_ met: Bool) -> String { met ? "met" : "MISSED" }
        var lines: [String] = []
        lines.append(
            "End-to-end: \(Format.grouped(orders)) order sagas per round, at most \(Format.grouped(inFlight)) "
                + "in flight; \(workers == 1 ? "1 worker" : "a pool of \(workers) workers") and simulated participants "
                + "in this process; synchronous=FULL, persistent messages, publisher confirms")
        func rounds(_ values: [Double]) -> String {
            values.count > 1 ? " (median of \(values.map { Format.fixed($0, 1) }.joined(separator: ", ")))" : ""
        }
        lines.append(
            "  throughput        \(Format.fixed(endToEnd, 1)) completed sagas/s\(rounds(endToEndRounds)); steady state: "
                + "10%-90% of each round's completions")
        lines.append(
            "Pattern ceiling: the same messages per saga with the raw AMQP client (no engine, no SQLite): 1 forwarded "
                + "start, 5 commands, 6 events published and 7 deliveries consumed on the worker side, 5 commands "
                + "consumed and 5 replies published by the same participants; same queues, batching and confirms")
        lines.append("  throughput        \(Format.fixed(ceiling, 1)) completed sagas/s\(rounds(ceilingRounds))")
        lines.append("  ratio             \(Format.fixed(ratio, 2)) (target >= 0.70: \(verdict(ratio >= 0.70)))")
        lines.append(
            "  commands per saga \(Format.fixed(commandsPerSaga.endToEnd, 2)) through the worker, "
                + "\(Format.fixed(commandsPerSaga.replay, 2)) through the replay")
        lines.append(
            "Step overhead at \(Format.fixed(overheadRate, 0)) orders/s (half the end-to-end rate): a reply consumed by "
                + "the worker -> the batch carrying its next command confirmed by the broker")
        if let overhead {
            lines.append(
                "  p50 \(Format.milliseconds(overhead.p50)) · p99 \(Format.milliseconds(overhead.p99)) · "
                    + "max \(Format.milliseconds(overhead.max)) over \(Format.grouped(overhead.count)) replies "
                    + "(target p99 <= 5 ms: \(verdict(overhead.p99 <= .milliseconds(5))))")
        } else {
            lines.append("  no replies measured")
        }
        lines.append(
            "Memory: peak RSS (VmHWM) of a `waybill worker` child process holding \(Format.grouped(memorySagas)) sagas "
                + "in flight, participants never replying")
        if let peakRSS {
            let megabytes = Double(peakRSS) / 1_048_576
            let ramp = memoryRampUp.map { ", \($0.readable) to get them in flight" } ?? ""
            lines.append(
                "  \(Format.fixed(megabytes, 1)) MB\(ramp) (target <= 150 MB at 100,000: "
                    + (memorySagas >= 100_000 ? verdict(megabytes <= 150) : "not measured at 100,000 in --quick") + ")")
        } else {
            lines.append("  not measured")
        }
        for note in notes { lines.append("note: \(note)") }
        return lines.joined(separator: "\n")
    }
}

/// Runs the benchmark phases one after the other on the same broker, each under a namespace of its own.
public enum BenchRunner {
    /// Runs every phase and returns the figures; `say` gets a line per phase as it starts and ends.
    public static func run(
        _ options: BenchOptions, logger: Logger, say: @escaping @Sendable (String) -> Void
    ) async throws -> BenchReport {
        guard DemoOptions.workerRange.contains(options.workers) else {
            throw DemoError(
                .invalidOption,
                "--workers must be between \(DemoOptions.workerRange.lowerBound) and "
                    + "\(DemoOptions.workerRange.upperBound), got \(options.workers)")
        }
        var report = BenchReport(
            orders: options.orders, inFlight: options.inFlight, endToEndRounds: [], ceilingRounds: [], overheadRate: 0,
            overhead: nil, memorySagas: options.memorySagas, peakRSS: nil, memoryRampUp: nil, notes: [])
        report.workers = options.workers

        let throughput = try await throughputAndOverhead(options, logger: logger, say: say)
        report.endToEndRounds = throughput.endToEnd
        report.ceilingRounds = throughput.ceiling
        report.commandsPerSaga = throughput.commandsPerSaga
        report.overhead = throughput.overhead
        report.overheadRate = throughput.rate

        if let executable = options.workerExecutable {
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

    /// A simulator that answers at once, never fails, and stocks every SKU in every warehouse: every order ships from
    /// one warehouse, so every saga has the same message pattern.
    static func simulator() throws -> ParticipantSimulator {
        let catalogue = DemoCatalogue(
            warehouses: 4, skus: 30, units: 100_000_000...100_000_000, stockedShare: 1, seed: 7)
        return try ParticipantSimulator(configuration: catalogue.configuration())
    }

    /// `count` orders with ids `<prefix>-<n>`, from `first`.
    static func orders(_ count: Int, prefix: String, first: Int = 1) -> [(sagaId: String, body: [UInt8])] {
        let catalogue = DemoCatalogue(warehouses: 4, skus: 30, seed: 7)
        return (first..<(first + count)).map { index in
            let id = "\(prefix)-\(index)"
            return (id, JSONText.encodeBytes(catalogue.order(id: id, lines: 1...6, quantity: 1...4, seed: 7)))
        }
    }

    /// The throughput rounds (end-to-end, then pattern replay, alternating so that a load change on the machine hits
    /// both alike) and the step-overhead run, on one broker.
    private static func throughputAndOverhead(
        _ options: BenchOptions, logger: Logger, say: @escaping @Sendable (String) -> Void
    ) async throws -> (
        endToEnd: [Double], ceiling: [Double], commandsPerSaga: (Double, Double), overhead: LatencySummary?,
        rate: Double
    ) {
        let simulator = try simulator()
        let samples = Mutex<(recording: Bool, durations: [Duration])>((false, []))
        let setup = StageSetup(
            broker: options.broker, names: try DemoNames(namespace: "bench-e2e"), workflowFile: options.workflowFile,
            directory: options.directory, poolDirectoryName: "bench-e2e-pool", workers: options.workers,
            respond: simulator.handle,
            batchObserver: { timing in
                samples.withLock { samples in
                    if samples.recording { samples.durations.append(contentsOf: timing.replyToConfirmed) }
                }
            },
            removeTopologyWhenDone: true)
        return try await DemoStage.run(setup, logger: logger) { stage in
            try await withPatternReplay(options, logger: logger) { replay, replayMonitor, replaySimulator in
                let feed = OrderFeed(
                    publisher: stage.publisher, monitor: stage.monitor, isRunning: { stage.isRunning }, rate: nil,
                    maxInFlight: options.inFlight, timeout: options.phaseTimeout, progressInterval: .seconds(5))
                var endToEnd: [Double] = []
                var ceiling: [Double] = []
                for round in 1...options.rounds {
                    say(
                        "[\(round)/\(options.rounds)] end-to-end: \(options.orders) orders through "
                            + (options.workers == 1 ? "the worker ..." : "\(options.workers) workers ..."))
                    let before = stage.monitor.tally
                    let outcome = try await feed.run(orders(options.orders, prefix: "e2e\(round)"))
                    let after = stage.monitor.tally
                    guard case .finished = outcome, after.completed - before.completed == options.orders else {
                        throw DemoError(
                            .stoppedEarly,
                            "end-to-end round \(round): \(after.completed - before.completed) of \(options.orders) "
                                + "sagas completed (\(outcome))")
                    }
                    endToEnd.append(stage.monitor.steadyRate(skipping: before.ended))
                    say("      \(Format.fixed(endToEnd[endToEnd.count - 1], 1)) completed sagas/s")

                    say("[\(round)/\(options.rounds)] pattern ceiling: \(options.orders) orders, raw AMQP replay ...")
                    let replayed = replayMonitor.tally.ended
                    let replayOutcome = try await replay.run(orders(options.orders, prefix: "replay\(round)"))
                    guard case .finished = replayOutcome else {
                        throw DemoError(
                            .stoppedEarly, "pattern replay round \(round) did not finish (\(replayOutcome))")
                    }
                    ceiling.append(replayMonitor.steadyRate(skipping: replayed))
                    say("      \(Format.fixed(ceiling[ceiling.count - 1], 1)) completed sagas/s")
                }

                let sagas = Double(options.rounds * options.orders)
                let commands = (
                    Double(simulator.ledger().totals.received) / sagas,
                    Double(replaySimulator.ledger().totals.received) / sagas
                )

                let rate = max(1, median(endToEnd) / 2)
                say(
                    "[overhead] step overhead: \(Format.fixed(rate, 0)) orders/s for "
                        + "\(options.overheadDuration.readable) (half the end-to-end rate) ...")
                samples.withLock { $0.recording = true }
                let count = max(10, Int(rate * options.overheadDuration.inSeconds))
                var paced = feed
                paced.rate = rate
                paced.maxInFlight = Int.max / 2
                _ = try await paced.run(orders(count, prefix: "step"))
                samples.withLock { $0.recording = false }
                let overhead = LatencySummary(samples.withLock { $0.durations })
                if let overhead {
                    say(
                        "      p50 \(Format.milliseconds(overhead.p50)) · p99 \(Format.milliseconds(overhead.p99)) "
                            + "over \(overhead.count) replies")
                }
                return (endToEnd, ceiling, commands, overhead, rate)
            }
        }
    }

    /// The median of `values` (0 for none).
    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// Runs `body` with a ``PatternReplay``, the same simulated participants and a monitor on their own names, and
    /// a feed that publishes to the replay's trigger; removes the replay's queues and exchanges afterwards.
    private static func withPatternReplay<T: Sendable>(
        _ options: BenchOptions, logger: Logger,
        body: @escaping @Sendable (OrderFeed, SagaMonitor, ParticipantSimulator) async throws -> T
    ) async throws -> T {
        let names = try DemoNames(namespace: "bench-replay")
        let source = try String(contentsOfFile: options.workflowFile, encoding: .utf8)
        let workflow = try WorkflowLoader.load(
            yaml: try names.rewrite(workflowText: source, file: options.workflowFile), file: options.workflowFile)
        let replayNames = PatternReplay.Names(
            workflow: workflow.name, triggerExchange: workflow.trigger.exchange,
            triggerKey: workflow.trigger.routingKey,
            commandsExchange: names.commandsExchange, eventsExchange: names.eventsExchange,
            deadLetterExchange: names.deadLetterExchange, workerId: names.workerId(1))

        let clients = try (0..<3).map { index in
            try AMQPClient(
                configuration: try options.broker.amqpConfiguration(name: "waybill-bench-replay-\(index)"),
                logger: logger)
        }
        func closeAll() async {
            for client in clients { await client.close() }
        }
        do {
            for client in clients { try await client.connect() }
        } catch {
            await closeAll()
            throw error
        }
        let (driver, replayClient, participantsClient) = (clients[0], clients[1], clients[2])
        let replay = PatternReplay(client: replayClient, names: replayNames, workflow: workflow, logger: logger)
        func removeTopology() async {
            await replay.remove()
            _ = try? await driver.deleteQueue(names.participantsQueue)
        }
        // Drained, not deleted, at the start: see `DemoStage.clearLeftovers()`.
        for queue in replayNames.queues + [names.participantsQueue] {
            _ = await QueueDrain.drain(queue, on: driver)
        }
        let result: Result<T, any Error>
        do {
            try await replay.declare()
            var participantConfiguration = ParticipantConfiguration()
            participantConfiguration.commandsExchange = names.commandsExchange
            participantConfiguration.queue = names.participantsQueue
            let replaySimulator = try simulator()
            let participants = ParticipantService(
                client: participantsClient, configuration: participantConfiguration, logger: logger,
                respond: replaySimulator.handle)
            try await participants.declare()
            let monitor = SagaMonitor(
                client: driver, eventsExchange: names.eventsExchange, queue: names.monitorQueue,
                milestones: workflow.milestones, logger: logger)
            try await monitor.declare()
            let feed = OrderFeed(
                publisher: OrderPublisher(
                    client: driver, exchange: workflow.trigger.exchange, routingKey: workflow.trigger.routingKey,
                    monitor: monitor),
                monitor: monitor, isRunning: { true }, rate: nil, maxInFlight: options.inFlight,
                timeout: options.phaseTimeout, progressInterval: .seconds(5))
            result = await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await participants.run() }
                group.addTask { try? await replay.run() }
                group.addTask { await monitor.run() }
                defer { group.cancelAll() }
                do {
                    return .success(try await body(feed, monitor, replaySimulator))
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
