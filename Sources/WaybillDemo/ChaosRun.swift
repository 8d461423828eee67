import AMQPTransport
import Foundation
import Logging
import PlainText
import SagaEngine
import SagaStore
import SeededRandom
import ServiceLifecycle
import Synchronization
import WaybillDefinition
import WaybillSimulator
import WaybillWire
import WaybillWorker

/// Everything `waybill-demo chaos` can be told. Every field but the broker, its script and the worker executable has
/// a default: the full run of docs/chaos.md.
public struct ChaosOptions: Sendable {
    /// The broker the run uses (a vhost of its own on the private broker).
    public var broker: BrokerAddress
    /// `scripts/rabbitmq`, which stops and starts the broker for the broker restarts; without it no restart is
    /// possible (``brokerRestarts`` must be 0).
    public var brokerScript: PrivateBroker?
    /// The `waybill` executable the workers run as `waybill worker` (the one built beside `waybill-demo`).
    public var workerExecutable: String
    /// Orders to publish (each a saga).
    public var orders = 10_000
    /// Orders published per second. Slow enough that the load lasts as long as the faults.
    public var rate: Double = 50
    /// Seeds the catalogue, the orders, the injected failures, the fault plan and the hostile inputs.
    public var seed: UInt64 = 2025
    /// SIGKILLs of restartable workers (each started again), besides the kill for good.
    public var kills = 20
    /// Broker restarts (`scripts/rabbitmq stop` then `start`).
    public var brokerRestarts = 3
    /// The private cluster the run uses instead of the single node (``broker`` then lists its nodes); `nil` for the
    /// single node.
    public var cluster: PrivateCluster?
    /// Kills of the cluster node leading the most partition queues, each started again (needs ``cluster``).
    public var nodeKills = 0
    /// Hostile inputs sent to the start, reply and control queues during the load.
    public var hostile = 1_000
    /// The share of commands that fail by injection (busy, rejected, lost reply), 0...1.
    public var failureRate = 0.05
    /// The share of orders whose start message is published a second time, 1 to 60 s after the first.
    public var duplicateStarts = 0.1
    /// The share of replies the participants send twice, as after a redelivery.
    public var duplicateReplies = 0.03
    /// The workflow file the workers run (renamed under the `chaos` namespace).
    public var workflowFile = "Workflows/order-fulfillment.yaml"
    /// Where the pool, the workflow copy and the logs go; replaced on every run.
    public var directory = ".waybill/chaos"
    /// How long to wait, after the load and the faults, for every saga to end.
    public var settleTimeout: Duration = .seconds(600)
    /// The workers' `max_message_bytes` (the hostile huge bodies are just above it).
    public var maxMessageBytes = 256 * 1024
    /// How often a progress line is printed.
    public var progressInterval: Duration = .seconds(5)

    /// Options for the full run on `broker`.
    public init(broker: BrokerAddress, brokerScript: PrivateBroker?, workerExecutable: String) {
        self.broker = broker
        self.brokerScript = brokerScript
        self.workerExecutable = workerExecutable
    }

    /// The smoke run: 1,000 orders at 20 per second, 5 kills, 1 broker restart, 200 hostile inputs.
    public mutating func useQuickPreset() {
        orders = 1_000
        rate = 20
        kills = 5
        brokerRestarts = 1
        hostile = 200
    }

    /// Checks ranges; the message names the flag.
    public func validate() throws(DemoError) {
        guard orders >= 100 else { throw DemoError(.invalidOption, "--orders must be at least 100, got \(orders)") }
        guard rate > 0 else { throw DemoError(.invalidOption, "--rate must be above 0 orders/s, got \(rate)") }
        guard kills >= 0, brokerRestarts >= 0, hostile >= 0 else {
            throw DemoError(.invalidOption, "--kills, --broker-restarts and --hostile cannot be negative")
        }
        guard (0...1).contains(failureRate) else {
            throw DemoError(.invalidOption, "--failure-rate must be between 0 and 1, got \(failureRate)")
        }
        guard nodeKills >= 0 else { throw DemoError(.invalidOption, "--node-kills cannot be negative") }
        if nodeKills > 0 && cluster == nil {
            throw DemoError(.invalidOption, "--node-kills needs the cluster (--cluster)")
        }
        if brokerRestarts > 0 && cluster != nil {
            throw DemoError(
                .invalidOption,
                "with --cluster the run kills cluster nodes (--node-kills), not the single broker: pass "
                    + "--broker-restarts 0")
        }
        if brokerRestarts > 0 && brokerScript == nil {
            throw DemoError(
                .invalidOption,
                "broker restarts need scripts/rabbitmq (run from the repository root, or set WAYBILL_RABBITMQ_SCRIPT), "
                    + "or pass --broker-restarts 0")
        }
    }
}

/// A broker restart of the run: when it began and how long the broker was away (stop and start).
struct BrokerRestart: Sendable, Hashable {
    var at: Timestamp
    var took: Duration
}

/// A cluster node the run killed: which one, how many partition queues it led, how long until each of them had a
/// leader on a live node and until the next saga ended (the pool went on), and how long the node was away.
struct NodeKill: Sendable, Hashable {
    var at: Timestamp
    var node: Int
    var ledPartitions: Int
    /// The workers whose connection was to that node.
    var workersConnected: [String]
    /// `nil` when some partition queue still had no live leader after the wait.
    var leadersMovedAfter: Duration?
    /// `nil` when one of ``workersConnected`` had no connection to another node after the wait.
    var workersReconnectedAfter: Duration?
    /// `nil` when no saga ended during the wait.
    var nextSagaEndedAfter: Duration?
    var away: Duration
}

/// Where the run is, shared by the load, the faults, the hostile inputs and the progress line.
final class ChaosProgress: Sendable {
    struct State {
        var published = 0
        var duplicatesPublished = 0
        /// The orders the load may publish before the next fault happened (so faults hit a running load).
        var gate = Int.max
        var faultsDone = 0
        var faultsPlanned = 0
        var killsDone = 0
        var hostileSent = 0
        var loadDone = false
        var restarts: [BrokerRestart] = []
        var nodeKills: [NodeKill] = []
        var note = ""
    }

    let state = Mutex(State())

    var published: Int { state.withLock { $0.published } }
}

/// The chaos run (docs/chaos.md): three `waybill worker` processes of one pool, the simulated participants in this
/// process, a steady load of orders with duplicate starts and duplicate replies, SIGKILLs, broker restarts, a worker
/// added, one killed for good and one drained, and hostile inputs to every queue a worker reads; then, with every
/// worker stopped, the checks of ``ChaosReport``.
public enum ChaosRun {
    /// Runs it; `say` gets the progress lines. Throws when the run cannot be set up or a fault cannot be made (the
    /// broker does not come back); a finished run returns its report, passed or failed.
    public static func run(
        _ options: ChaosOptions, logger: Logger, say: @escaping @Sendable (String) -> Void
    ) async throws -> ChaosReport {
        try options.validate()
        let names = try DemoNames(namespace: "chaos")
        let files = try ChaosFiles(options: options, names: names)
        let workflow = files.workflow
        let catalogue = DemoRunner.catalogue(orders: options.orders, warehouses: 4, seed: options.seed)
        let simulator = try ParticipantSimulator(
            configuration: catalogue.configuration(
                behaviours: DemoRunner.behaviours(failureRate: options.failureRate, latency: true),
                seed: options.seed))
        let orders = try (1...options.orders).map { index in
            let id = "o-" + String(index).padded(to: 6, .right, fill: "0")
            let body = JSONText.encodeBytes(catalogue.order(id: id, lines: 1...6, quantity: 1...4, seed: options.seed))
            return (sagaId: try WireMessages.start(body, definition: workflow).sagaId, body: body)
        }
        let partitionCount = PoolDirectory.defaultPartitionCount
        var configuration = names.workerConfiguration(number: 0)  // each chaos worker sets its own id
        configuration.amqpURL = options.broker.url
        configuration.amqpPassword = options.broker.password
        configuration.dataDirectory = files.poolDirectory
        configuration.partitions = partitionCount
        configuration.workflowsDirectory = files.workflowsDirectory
        let poolName = names.poolName
        let replies = ChaosReplies(
            simulator: simulator, duplicateShare: options.duplicateReplies, seed: options.seed,
            replyQueue: { PoolQueues.partition(PoolDirectory.partition(of: $0, count: partitionCount), pool: poolName) }
        )
        let workers = ChaosWorkers(
            executable: options.workerExecutable, configuration: configuration,
            maxMessageBytes: options.maxMessageBytes, logsDirectory: files.logsDirectory)
        let milestones = ChaosMilestones(
            queue: "\(poolName).chaos.milestones", eventsExchange: names.eventsExchange,
            milestones: workflow.milestones)
        let answers = ChaosAnswers(queue: "\(poolName).chaos.answers")
        let stage = ChaosStage(
            options: options, names: names, files: files, workflow: workflow, orders: orders,
            partitionCount: partitionCount, replies: replies, workers: workers, milestones: milestones,
            answers: answers, logger: logger, say: say)

        let driver = try AMQPClient(
            configuration: options.broker.chaosConfiguration(name: "waybill-chaos"), logger: logger)
        let participantsClient = try AMQPClient(
            configuration: options.broker.chaosConfiguration(name: "waybill-chaos-participants"), logger: logger)
        do {
            try await driver.connect()
            try await participantsClient.connect()
        } catch {
            await driver.close()
            await participantsClient.close()
            throw DemoError(.brokerUnreachable, "cannot connect to RabbitMQ at \(options.broker)", cause: error)
        }
        do {
            let report = try await stage.run(
                driver: driver, participantsClient: participantsClient, simulator: simulator)
            await stage.removeTopology(driver)
            await participantsClient.close()
            await driver.close()
            return report
        } catch {
            await workers.killAll()
            await participantsClient.close()
            await driver.close()
            throw error
        }
    }
}

/// The run's files: a fresh directory with the workflow copy (renamed under the namespace), the pool and the logs.
struct ChaosFiles: Sendable {
    var directory: String
    var workflowsDirectory: String
    var poolDirectory: String
    var logsDirectory: String
    var workflow: WorkflowDefinition

    init(options: ChaosOptions, names: DemoNames) throws {
        directory = options.directory
        workflowsDirectory = (directory as NSString).appendingPathComponent("workflows")
        poolDirectory = (directory as NSString).appendingPathComponent("pool")
        logsDirectory = (directory as NSString).appendingPathComponent("logs")
        let manager = FileManager.default
        let source: String
        do {
            source = try String(contentsOfFile: options.workflowFile, encoding: .utf8)
        } catch {
            throw DemoError(.fileProblem, "cannot read the workflow \(options.workflowFile)", cause: error)
        }
        let text = try names.rewrite(workflowText: source, file: options.workflowFile)
        do {
            workflow = try WorkflowLoader.load(yaml: text, file: options.workflowFile)
        } catch {
            throw DemoError(.fileProblem, "the workflow \(options.workflowFile) is not valid:\n\(error)")
        }
        do {
            for folder in [workflowsDirectory, poolDirectory, logsDirectory] where manager.fileExists(atPath: folder) {
                try manager.removeItem(atPath: folder)
            }
            for folder in [workflowsDirectory, logsDirectory] {
                try manager.createDirectory(atPath: folder, withIntermediateDirectories: true)
            }
            let copy = (workflowsDirectory as NSString).appendingPathComponent(
                (options.workflowFile as NSString).lastPathComponent)
            try text.write(toFile: copy, atomically: true, encoding: .utf8)
        } catch {
            throw DemoError(.fileProblem, "cannot prepare \(directory) for the chaos run", cause: error)
        }
    }
}

extension BrokerAddress {
    /// Client settings for the chaos run's own connections: they come back within 2 s of the broker (the workers
    /// keep their own, longer, backoff).
    func chaosConfiguration(name: String) throws -> AMQPConfiguration {
        var configuration = try amqpConfiguration(name: name)
        configuration.reconnect = AMQPConfiguration.ReconnectPolicy(
            initialDelay: .milliseconds(100), maxDelay: .seconds(2))
        return configuration
    }
}

/// One chaos run in progress: everything the phases share.
final class ChaosStage: Sendable {
    let options: ChaosOptions
    let names: DemoNames
    let files: ChaosFiles
    let workflow: WorkflowDefinition
    let orders: [(sagaId: String, body: [UInt8])]
    let partitionCount: Int
    let replies: ChaosReplies
    let workers: ChaosWorkers
    let milestones: ChaosMilestones
    let answers: ChaosAnswers
    let progress = ChaosProgress()
    let logger: Logger
    let say: @Sendable (String) -> Void
    /// Workers that are not started again when they end (killed for good, drained).
    private let retired = Mutex<Set<String>>([])
    private let hostileSent = Mutex<[HostileInput]>([])

    init(
        options: ChaosOptions, names: DemoNames, files: ChaosFiles, workflow: WorkflowDefinition,
        orders: [(sagaId: String, body: [UInt8])], partitionCount: Int, replies: ChaosReplies, workers: ChaosWorkers,
        milestones: ChaosMilestones, answers: ChaosAnswers, logger: Logger, say: @escaping @Sendable (String) -> Void
    ) {
        self.options = options
        self.names = names
        self.files = files
        self.workflow = workflow
        self.orders = orders
        self.partitionCount = partitionCount
        self.replies = replies
        self.workers = workers
        self.milestones = milestones
        self.answers = answers
        self.logger = logger
        self.say = say
    }

    private var pool: PoolDirectory { PoolDirectory(path: files.poolDirectory, partitionCount: partitionCount) }

    /// The queues the run reads or fills: drained at the start, deleted at the end.
    private var queues: [String] {
        [WorkerTopology.startQueue(workflow.name)] + names.partitionQueues(count: partitionCount)
            + [names.participantsQueue, names.deadLetterQueue, milestones.queueName, answers.queueName]
    }

    // MARK: - The run

    func run(
        driver: AMQPClient, participantsClient: AMQPClient, simulator: ParticipantSimulator
    ) async throws -> ChaosReport {
        let clock = ContinuousClock()
        let began = clock.now
        for queue in queues {
            let drained = await QueueDrain.drain(queue, on: driver)
            if drained > 0 { say("  drained \(drained) messages an earlier run left in \(queue)") }
        }
        // The run's own queues are declared afresh: an interrupted earlier run may have left them with other arguments
        // (they were classic queues before they were quorum ones), which a declaration would refuse.
        for queue in [names.participantsQueue, answers.queueName] { _ = try? await driver.deleteQueue(queue) }
        var participantConfiguration = ParticipantConfiguration()
        participantConfiguration.commandsExchange = names.commandsExchange
        participantConfiguration.queue = names.participantsQueue
        // Quorum queues, like the pool's: on a cluster their messages outlive any one node.
        participantConfiguration.queueArguments = ["x-queue-type": "quorum"]
        var participantLogger = logger
        participantLogger[metadataKey: "component"] = "participants"
        let participants = ParticipantService(
            client: participantsClient, configuration: participantConfiguration, logger: participantLogger,
            respond: replies.respond)
        try await participants.declare()
        try await milestones.declare(on: driver)
        try await answers.declare(on: driver)

        say("Starting \(ChaosPlan.initialWorkers.joined(separator: ", ")) (logs in \(files.logsDirectory)/)")
        for worker in ChaosPlan.initialWorkers { try workers.start(worker) }
        try await waitForPool(workers: Set(ChaosPlan.initialWorkers))

        // Stock arrives as in the demo, so the orders the warehouses backorder are filled and their sagas end.
        let arrivals = StockArrivals(
            client: participantsClient, workflow: workflow, interval: .seconds(1), logger: participantLogger,
            produce: simulator.receiveStock)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [
                    .init(service: participants, successTerminationBehavior: .gracefullyShutdownGroup),
                    .init(service: arrivals, successTerminationBehavior: .gracefullyShutdownGroup),
                ],
                logger: participantLogger))
        let outcome: ChaosOutcome = try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask { [milestones, logger] in await milestones.run(on: driver, logger: logger) }
            tasks.addTask { [answers, logger] in await answers.run(on: driver, logger: logger) }
            tasks.addTask { [replies] in await replies.runEchoes(on: driver) }
            tasks.addTask { await self.watch(since: began) }
            let outcome = try await runPhases(driver: driver)
            await group.triggerGracefulShutdown()
            try await waitUntilEmpty(answers.queueName, on: driver, seconds: 10)
            tasks.cancelAll()
            return outcome
        }
        say("Reading the dead-letter queue and the partition files")
        let deadLetters = await ChaosDeadLetters.read(names.deadLetterQueue, on: driver)
        let history = workers.history
        let evidence = ChaosEvidence(
            options: options, workflow: workflow, sagaIds: orders.map(\.sagaId), pool: pool,
            kills: history.kills, drains: history.drains, crashes: history.crashes, workerStarts: history.starts,
            brokerRestarts: progress.state.withLock { $0.restarts },
            nodeKills: progress.state.withLock { $0.nodeKills }, milestones: milestones.events,
            ledger: simulator.ledger(), lostReplies: replies.lostReplies,
            attemptsDecidedTwice: replies.attemptsDecidedTwice, hostile: hostileSent.withLock { $0 },
            deadLetters: deadLetters, answers: answers.all,
            duplicateStarts: progress.state.withLock { $0.duplicatesPublished },
            duplicateReplies: replies.echoed, outcome: outcome, duration: clock.now - began,
            logsDirectory: files.logsDirectory)
        return try ChaosChecks.run(evidence)
    }

    /// Load, faults and hostile inputs at once; then the wait for every saga to end and the stop of every worker.
    private func runPhases(driver: AMQPClient) async throws -> ChaosOutcome {
        let plan = ChaosPlan.make(
            kills: options.kills, brokerRestarts: options.brokerRestarts, nodeKills: options.nodeKills,
            seed: options.seed)
        let firstGate = gate(plan, done: 0)
        progress.state.withLock {
            $0.gate = firstGate
            $0.faultsPlanned = plan.steps.count
        }
        let hostilePlan = hostileInputs.plan(count: options.hostile)
        say(
            "Load: \(Format.grouped(orders.count)) orders at \(Format.fixed(options.rate, 0))/s with duplicates; "
                + "\(plan.steps.count) faults; \(hostilePlan.count) hostile inputs")
        let clock = ContinuousClock()
        let loadBegan = clock.now
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await self.feed(driver: driver) }
            tasks.addTask { try await self.runFaults(plan, driver: driver) }
            tasks.addTask { try await self.sendHostile(hostilePlan, driver: driver) }
            // Not `waitForAll()`: it waits for every task before it rethrows, and the load waits at the gate of a fault
            // that failed, forever. The first error ends the group, which cancels the rest.
            while try await tasks.next() != nil {}
        }
        let loadTook = clock.now - loadBegan
        say("Load, faults and hostile inputs done after \(loadTook.readable); waiting for every saga to end")
        let planned = Set(orders.map(\.sagaId))
        let deadline = clock.now + options.settleTimeout
        while milestones.endedCount(of: planned) < planned.count && clock.now < deadline {
            try await Task.sleep(for: .milliseconds(500))
        }
        let settled = milestones.endedCount(of: planned) == planned.count
        let settleTook = clock.now - loadBegan - loadTook
        say(
            settled
                ? "Every saga ended (\(settleTook.readable) after the load); stopping the workers with SIGTERM"
                : "\(planned.count - milestones.endedCount(of: planned)) sagas had not ended after "
                    + "\(options.settleTimeout.readable); stopping the workers with SIGTERM")
        for worker in workers.running {
            retired.withLock { _ = $0.insert(worker) }
            if let drain = await workers.drain(worker, timeout: options.drainTimeout, midRun: false) {
                say("  \(worker): \(drain.termination.map { "\($0)" } ?? "did not exit") after \(drain.took.readable)")
            }
        }
        try await waitUntilEmpty(milestones.queueName, on: driver, seconds: 30)
        return ChaosOutcome(settled: settled, loadDuration: loadTook, settleDuration: settleTook)
    }

    /// How many orders the load may publish while the fault `done` has not happened: 3% of the orders past it.
    private func gate(_ plan: ChaosPlan, done: Int) -> Int {
        guard done < plan.steps.count else { return Int.max }
        return Int((plan.steps[done].at + 0.03) * Double(orders.count))
    }

    private var hostileInputs: HostileInputs {
        HostileInputs(
            workflow: workflow, poolName: names.poolName, partitionCount: partitionCount,
            answerQueue: answers.queueName, maxMessageBytes: options.maxMessageBytes, seed: options.seed)
    }

    // MARK: - Load

    /// Publishes the orders at the rate, held at the gate of the next fault, and a share of them again 1 to 60 s
    /// later.
    private func feed(driver: AMQPClient) async throws {
        let publisher = OrderPublisher(client: driver, trigger: workflow.trigger, monitor: nil)
        let clock = ContinuousClock()
        var random = SplitMix64.keyed(seed: options.seed, ["chaos-duplicates"])
        var next = 0
        var credit = 0.0
        var last = clock.now
        var duplicates: [(due: ContinuousClock.Instant, index: Int)] = []
        while next < orders.count || !duplicates.isEmpty {
            let now = clock.now
            credit = min(credit + options.rate * (now - last).inSeconds, max(1, options.rate))
            last = now
            let limit = min(orders.count, progress.state.withLock { $0.gate })
            var batch: [(sagaId: String, body: [UInt8])] = []
            let count = min(Int(credit), limit - next)
            if count > 0 {
                for index in next..<(next + count) {
                    batch.append(orders[index])
                    if random.unit() < options.duplicateStarts {
                        // 1 to 60 s later, but not much past the last order: duplicates arrive while the faults go on.
                        let remaining = Int(Double(orders.count - index) / options.rate * 1000) + 5_000
                        let delay = random.int(in: 1_000...max(2_000, min(60_000, remaining)))
                        duplicates.append((now + .milliseconds(delay), index))
                    }
                }
                credit -= Double(count)
                next += count
            }
            let due = duplicates.filter { $0.due <= now }
            duplicates.removeAll { $0.due <= now }
            batch += due.map { orders[$0.index] }
            if !batch.isEmpty {
                try await publishUntilConfirmed("orders") { try await publisher.publish(batch) }
                let published = next
                progress.state.withLock {
                    $0.published = published
                    $0.duplicatesPublished += due.count
                }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        progress.state.withLock { $0.loadDone = true }
    }

    /// Runs `publish` until it succeeds: through broker restarts, giving up after 10 minutes.
    private func publishUntilConfirmed(_ what: String, _ publish: () async throws -> Void) async throws {
        let deadline = ContinuousClock.now + .seconds(600)
        while true {
            do {
                try await publish()
                return
            } catch {
                guard ContinuousClock.now < deadline else {
                    throw DemoError(.stoppedEarly, "the broker did not take the \(what) for 10 minutes", cause: error)
                }
                logger.notice("publishing \(what) again: \(error)")
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    // MARK: - Faults

    private func runFaults(_ plan: ChaosPlan, driver: AMQPClient) async throws {
        var random = SplitMix64.keyed(seed: options.seed, ["chaos-victims"])
        var restartable = Set(ChaosPlan.initialWorkers)
        for (index, step) in plan.steps.enumerated() {
            let due = Int(step.at * Double(orders.count))
            while progress.published < due { try await Task.sleep(for: .milliseconds(50)) }
            let percent = Format.fixed(100 * Double(progress.published) / Double(orders.count), 0)
            switch step.fault {
            case .kill(let delay):
                let candidates = restartable.intersection(workers.running).sorted()
                guard !candidates.isEmpty else { break }
                let victim = candidates[random.int(in: 0...(candidates.count - 1))]
                // A worker that ended on its own just now is the watcher's to start again.
                guard await workers.kill(victim, permanent: false) != nil else { break }
                progress.state.withLock { $0.killsDone += 1 }
                say("  [\(percent)%] SIGKILL \(victim); starting it again in \(delay.readable)")
                try await Task.sleep(for: delay)
                try workers.start(victim)
            case .brokerRestart:
                guard let script = options.brokerScript else { break }
                say("  [\(percent)%] broker restart: scripts/rabbitmq stop, start")
                let at = Timestamp.now()
                let clock = ContinuousClock()
                let began = clock.now
                let log: @Sendable (String) -> Void = { [logger] in logger.info("scripts/rabbitmq: \($0)") }
                try await script.stop(output: log)
                // A worker killed while the broker is away: the others claim its partitions without a broker, and it
                // starts again while the broker is still down, so it has to wait for it.
                let candidates = restartable.intersection(workers.running).sorted()
                if !candidates.isEmpty {
                    let victim = candidates[random.int(in: 0...(candidates.count - 1))]
                    if await workers.kill(victim, permanent: false, duringOutage: true) != nil {
                        progress.state.withLock { $0.killsDone += 1 }
                        say("      SIGKILL \(victim) while the broker is down; starting it again at once")
                        try workers.start(victim)
                    }
                }
                try await script.start(output: log)
                let took = clock.now - began
                progress.state.withLock { $0.restarts.append(BrokerRestart(at: at, took: took)) }
                say("      the broker is back after \(took.readable)")
                try await driver.waitUntilConnected()
            case .nodeKill(let delay):
                guard let cluster = options.cluster else { break }
                try await killLeadingNode(of: cluster, restartAfter: delay, percent: percent, driver: driver)
            case .addWorker(let worker):
                say("  [\(percent)%] adding \(worker)")
                try workers.start(worker)
                restartable.insert(worker)
            case .killForGood(let worker):
                restartable.remove(worker)
                retired.withLock { _ = $0.insert(worker) }
                if await workers.kill(worker, permanent: true) != nil {
                    say("  [\(percent)%] SIGKILL \(worker) for good")
                }
            case .drain(let worker):
                restartable.remove(worker)
                retired.withLock { _ = $0.insert(worker) }
                say("  [\(percent)%] draining \(worker) (SIGTERM)")
                if let drain = await workers.drain(worker, timeout: options.drainTimeout, midRun: true) {
                    say(
                        "      \(worker): \(drain.termination.map { "\($0)" } ?? "did not exit") after "
                            + drain.took.readable)
                }
            }
            let nextGate = gate(plan, done: index + 1)
            progress.state.withLock {
                $0.faultsDone = index + 1
                $0.gate = nextGate
            }
        }
    }

    /// SIGKILLs the cluster node leading the most partition queues, watches the leaders move and the pool go on, and
    /// starts the node again after `delay` (or once both were seen, if later).
    private func killLeadingNode(
        of cluster: PrivateCluster, restartAfter delay: Duration, percent: String, driver: AMQPClient
    ) async throws {
        let partitionQueues = Set(names.partitionQueues(count: partitionCount))
        let virtualHost = try AMQPConfiguration(url: options.broker.url).virtualHost
        let before = try await cluster.leaders(virtualHost: virtualHost).filter { partitionQueues.contains($0.key) }
        var led: [Int: Int] = [:]
        for node in before.values { led[node, default: 0] += 1 }
        guard let victim = led.max(by: { ($0.value, $1.key) < ($1.value, $0.key) })?.key else {
            throw DemoError(.stoppedEarly, "the cluster reports no leader for the partition queues")
        }
        let planned = Set(orders.map(\.sagaId))
        let endedBefore = milestones.endedCount(of: planned)
        let log: @Sendable (String) -> Void = { [logger] in logger.info("scripts/rabbitmq-cluster: \($0)") }
        // A worker's connection is named `waybill-<worker id>`.
        let workerIds = Set(ChaosPlan.initialWorkers + [ChaosPlan.addedWorker])
        let workersByNode = { @Sendable () async throws -> [(worker: String, node: Int)] in
            try await cluster.connections().compactMap { connection in
                let worker = String(connection.name.dropFirst("waybill-".count))
                return workerIds.contains(worker) ? (worker, connection.node) : nil
            }
        }
        let connected = try await workersByNode().filter { $0.node == victim }.map(\.worker).sorted()
        say(
            "  [\(percent)%] SIGKILL RabbitMQ node \(victim) (leads \(led[victim] ?? 0) of \(partitionQueues.count) "
                + "partition queues; connected: \(connected.isEmpty ? "no worker" : connected.joined(separator: ", "))); "
                + "starting it again in \(delay.readable)")
        let at = Timestamp.now()
        let clock = ContinuousClock()
        let began = clock.now
        try await cluster.kill(node: victim, output: log)
        var leadersMoved: Duration?
        var reconnected: Duration? = connected.isEmpty ? .zero : nil
        var sagaEnded: Duration?
        let watchUntil = began + max(delay, .seconds(60))
        while (leadersMoved == nil || reconnected == nil || sagaEnded == nil) && clock.now < watchUntil {
            if sagaEnded == nil && milestones.endedCount(of: planned) > endedBefore { sagaEnded = clock.now - began }
            if reconnected == nil, let now = try? await workersByNode(),
                Set(connected).isSubset(of: Set(now.filter { $0.node != victim }.map(\.worker)))
            {
                reconnected = clock.now - began
            }
            if leadersMoved == nil, let now = try? await cluster.leaders(virtualHost: virtualHost),
                partitionQueues.allSatisfy({ now[$0].map { $0 != victim } ?? false })
            {
                leadersMoved = clock.now - began
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        func after(_ duration: Duration?) -> String { duration.map { "after \($0.readable)" } ?? "NOT within 60 s" }
        say(
            "      partition queue leaders moved \(after(leadersMoved)) · its workers connected to another node "
                + "\(after(reconnected)) · next saga ended \(after(sagaEnded))")
        try await Task.sleep(until: began + delay, clock: clock)
        try await cluster.start(node: victim, output: log)
        let away = clock.now - began
        say("      node \(victim) is back in the cluster after \(away.readable)")
        progress.state.withLock {
            $0.nodeKills.append(
                NodeKill(
                    at: at, node: victim, ledPartitions: led[victim] ?? 0, workersConnected: connected,
                    leadersMovedAfter: leadersMoved, workersReconnectedAfter: reconnected,
                    nextSagaEndedAfter: sagaEnded, away: away))
        }
        try await driver.waitUntilConnected()
    }

    // MARK: - Hostile inputs

    private func sendHostile(_ plan: [HostileKind], driver: AMQPClient) async throws {
        let maker = hostileInputs
        var earlierControl: (OutboundMessage, HostileInput)?
        let finishedIds = { [milestones] () -> String? in milestones.randomFinishedSaga() }
        for (index, kind) in plan.enumerated() {
            let share: Double = 0.02 + 0.9 * Double(index) / Double(max(1, plan.count))
            let due = Int(share * Double(orders.count))
            while progress.published < due && !progress.state.withLock({ $0.loadDone }) {
                try await Task.sleep(for: .milliseconds(50))
            }
            var made = maker.make(
                kind, index: index, replies: replies, finished: finishedIds, earlier: earlierControl)
            if made == nil {
                // No real reply or finished saga yet: a kind that needs neither.
                made = maker.make(
                    .replyForeignCorrelation, index: index, replies: replies, finished: finishedIds, earlier: nil)
            }
            guard let (message, input) = made else { continue }
            if input.kind == .controlFinishedSaga { earlierControl = (message, input) }
            try await publishUntilConfirmed("hostile inputs") {
                let outcome = try await driver.publish(message)
                guard outcome.isConfirmed else {
                    throw DemoError(.stoppedEarly, "hostile input \(input.id) not confirmed: \(outcome)")
                }
            }
            hostileSent.withLock { $0.append(input) }
            progress.state.withLock { $0.hostileSent += 1 }
        }
    }

    // MARK: - Watching

    /// Every second: restarts workers that crashed (they are recorded); every progress interval: a progress line.
    private func watch(since began: ContinuousClock.Instant) async {
        let clock = ContinuousClock()
        var lastLine = clock.now
        let planned = Set(orders.map(\.sagaId))
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            for worker in workers.collectCrashes() {
                say("  ! \(worker) exited on its own; see \(workers.logPath(worker))")
                if !retired.withLock({ $0.contains(worker) }) { try? workers.start(worker) }
            }
            guard clock.now - lastLine >= options.progressInterval else { continue }
            lastLine = clock.now
            let state = progress.state.withLock { $0 }
            let owners = pool.members().filter(\.isLive).map {
                "\($0.worker.replacingOccurrences(of: "chaos-", with: ""))[\($0.partitions.count)]"
            }
            say(
                "  \((clock.now - began).readable.padded(to: 9, .right))  published \(Format.grouped(state.published))"
                    + "/\(Format.grouped(orders.count)) · ended \(Format.grouped(milestones.endedCount(of: planned)))"
                    + " · hostile \(state.hostileSent) · faults \(state.faultsDone)/\(state.faultsPlanned) (kills "
                    + "\(state.killsDone)) · workers "
                    + owners.joined(separator: " "))
        }
    }

    /// Waits until the workers in `expected` run and own every partition between them (60 s at most).
    private func waitForPool(workers expected: Set<String>) async throws {
        let partitionCount = partitionCount
        try await workers.waitForMembers(
            of: pool.path, waiting: "the workers did not share the \(partitionCount) partitions",
            logs: "the logs in \(files.logsDirectory)"
        ) { members, _ in
            Set(members.map(\.worker)).isSuperset(of: expected)
                && Set(members.flatMap(\.partitions)).count == partitionCount
        }
    }

    /// Waits until `queue` holds no message (at most `seconds`).
    private func waitUntilEmpty(_ queue: String, on client: AMQPClient, seconds: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if let info = try? await client.inspectQueue(queue), info.messageCount == 0 { return }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Deletes the run's queues and exchanges (best effort; the last broker restart is long past).
    func removeTopology(_ client: AMQPClient) async {
        for queue in queues { _ = try? await client.deleteQueue(queue) }
        for exchange in [
            workflow.trigger.exchange, names.commandsExchange, names.eventsExchange, names.deadLetterExchange,
        ] {
            try? await client.deleteExchange(exchange)
        }
    }
}

extension ChaosOptions {
    /// How long a drained worker may take: its shutdown grace (30 s) and some.
    var drainTimeout: Duration { .seconds(45) }
}

/// How the load phase ended.
struct ChaosOutcome: Sendable, Hashable {
    /// Whether every saga published an end milestone before the settle timeout.
    var settled: Bool
    var loadDuration: Duration
    var settleDuration: Duration
}

/// The dead-letter queue's messages, read at the end of the run.
enum ChaosDeadLetters {
    /// One dead-lettered message.
    struct Letter: Sendable, Hashable {
        var messageId: String?
        var correlationId: String?
        /// `x-waybill-error`, when a worker dead-lettered it.
        var reason: String?
        /// Whether the broker dead-lettered it (an `x-death` header: the delivery limit, an expiry).
        var byBroker: Bool
        /// `x-waybill-source` or the routing key.
        var source: String
    }

    /// Consumes every message of `queue` (acknowledging it) and returns them; gives up waiting after a minute.
    static func read(_ queue: String, on client: AMQPClient) async -> [Letter] {
        guard let info = try? await client.inspectQueue(queue), info.messageCount > 0,
            let consumer = try? await client.consume(queue: queue, prefetch: 500)
        else { return [] }
        let wanted = Int(info.messageCount)
        return await withTaskGroup(of: [Letter]?.self) { group in
            group.addTask {
                var letters: [Letter] = []
                do {
                    for try await delivery in consumer {
                        let headers = delivery.properties.headers
                        letters.append(
                            Letter(
                                messageId: delivery.properties.messageID,
                                correlationId: delivery.properties.correlationID,
                                reason: headers[WireHeader.error]?.stringValue, byBroker: headers["x-death"] != nil,
                                source: headers[WireHeader.deadLetterSource]?.stringValue ?? delivery.routingKey))
                        client.ack(delivery.deliveryTag)
                        if letters.count >= wanted { break }
                    }
                } catch {}
                return letters
            }
            // A minute at most: cancelling the consumer ends its sequence with what was read.
            group.addTask {
                try? await Task.sleep(for: .seconds(60))
                await client.cancel(consumer)
                return nil
            }
            var letters: [Letter] = []
            for await result in group {
                if let result {
                    letters = result
                    group.cancelAll()
                }
            }
            return letters
        }
    }
}
