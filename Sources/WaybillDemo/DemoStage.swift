import AMQPTransport
import Foundation
import Logging
import SagaEngine
import SagaStore
import ServiceLifecycle
import Synchronization
import WaybillDefinition
import WaybillSimulator
import WaybillWire
import WaybillWorker

/// Where the broker is. The password may be in the URL or separate (it never appears in output).
public struct BrokerAddress: Sendable, Hashable, CustomStringConvertible {
    /// `amqp://user@host:port/vhost`.
    public var url: String
    /// The password, when it is not in the URL.
    public var password: String?

    /// An address.
    public init(url: String, password: String? = nil) {
        self.url = url
        self.password = password
    }

    /// Client settings for this address, with `name` shown in the broker's connection list.
    public func amqpConfiguration(name: String) throws -> AMQPConfiguration {
        var configuration = try AMQPConfiguration(url: url)
        if let password { configuration.password = password }
        configuration.connectionName = name
        configuration.connectTimeout = .seconds(5)
        return configuration
    }

    /// One connected client per name (the broker lists each connection under its name); when one cannot connect,
    /// the ones already connected are closed and the error is thrown.
    func connectedClients(_ names: [String], logger: Logger) async throws -> [AMQPClient] {
        let clients = try names.map { try AMQPClient(configuration: try amqpConfiguration(name: $0), logger: logger) }
        do {
            for client in clients { try await client.connect() }
        } catch {
            for client in clients { await client.close() }
            throw error
        }
        return clients
    }

    /// The URL without any password.
    public var description: String { AMQPConfiguration.redacted(url) }
}

/// What a stage runs: the broker, the names, the workflow file, where its files go, and how participants answer.
struct StageSetup: Sendable {
    var broker: BrokerAddress
    var names: DemoNames
    /// The workflow file to run (copied, and renamed under a namespace, into `directory/workflows`).
    var workflowFile: String
    /// Folder for the database and the workflow copy; created when missing.
    var directory: String
    /// The pool's data directory inside `directory`; an existing one is replaced.
    var poolDirectoryName: String = Self.defaultPoolDirectoryName
    /// The demo's pool directory name.
    static let defaultPoolDirectoryName = "pool"
    /// How many workers run in this process on the one pool, ``DemoNames/workerId(_:)`` 1 to `workers`; 0 runs
    /// none (the benchmark then starts `waybill worker` processes on the pool itself).
    var workers: Int = 1
    /// How participants answer.
    var respond: ParticipantService.Responder
    /// Applied to every worker's configuration after the names, broker, data directory and workflows are set.
    var tuneWorker: @Sendable (inout WorkerConfiguration) -> Void = { _ in }
    /// Observes every worker's batches (benchmarks).
    var batchObserver: (@Sendable (WorkerBatchTiming) -> Void)?
    /// Participants' prefetch.
    var participantPrefetch: UInt16 = 1000
    /// Stop the services on SIGINT/SIGTERM (the CLI) rather than only when the body ends (tests).
    var handleSignals: Bool = false
    /// Delete every queue and exchange of the names when done (namespaced runs: tests, benchmark phases).
    var removeTopologyWhenDone: Bool = false
    /// What arrives at the warehouses each ``arrivalInterval`` (the events it publishes go to the workflow's waits);
    /// `nil` runs no arrivals.
    var arrivals: (@Sendable () -> [SimulatedEvent])?
    var arrivalInterval: Duration = .seconds(2)
    /// Applied to the workflow's text before the namespace (the demo shortens the backorder deadline).
    var editWorkflow: @Sendable (String) throws -> String = { $0 }
    /// A participants' limits file, copied beside the workflow as `participants.yaml`; `nil` runs without limits.
    var limitsFile: String?
}

/// A pool of workers, simulated participants and a saga monitor running in-process on one broker, for the demo, its
/// test and the benchmark. Create one with ``run(_:logger:body:)``, which starts everything, waits until the workers
/// share the partitions, runs the body, and shuts down gracefully.
final class DemoStage: Sendable {
    let setup: StageSetup
    /// The workflow as the workers run it (renamed under a namespace).
    let workflow: WorkflowDefinition
    /// The pool's data directory.
    let dataDirectory: String
    /// The folder with the workflow copy, for workers the caller starts.
    let workflowsDirectory: String
    /// The pool's workers, worker 1 first.
    let workers: [SagaWorker]
    let monitor: SagaMonitor
    private let driver: AMQPClient
    private let servicesRunning = Atomic<Bool>(true)
    private let logger: Logger

    private init(
        setup: StageSetup, workflow: WorkflowDefinition, dataDirectory: String, workflowsDirectory: String,
        workers: [SagaWorker], driver: AMQPClient, logger: Logger
    ) {
        self.setup = setup
        self.workflow = workflow
        self.dataDirectory = dataDirectory
        self.workflowsDirectory = workflowsDirectory
        self.workers = workers
        self.driver = driver
        self.logger = logger
        monitor = SagaMonitor(
            client: driver, eventsExchange: setup.names.eventsExchange, queue: setup.names.monitorQueue,
            milestones: workflow.milestones, logger: logger)
    }

    /// `false` once a worker or the participants stopped (a signal, a failure).
    var isRunning: Bool { servicesRunning.load(ordering: .acquiring) }

    /// Prepares the files, connects, clears what an earlier run of the same names left on the broker, starts the
    /// workers and the participants, binds the monitor, waits until the workers share the partitions fairly, runs
    /// `body`, and stops everything gracefully.
    static func run<T: Sendable>(
        _ setup: StageSetup, logger: Logger, body: @escaping @Sendable (DemoStage) async throws -> T
    ) async throws -> T {
        let (workflow, workflowsDirectory) = try prepareWorkflow(setup)
        let dataDirectory = (setup.directory as NSString).appendingPathComponent(setup.poolDirectoryName)
        try removePool(dataDirectory)

        let driver = try AMQPClient(
            configuration: try setup.broker.amqpConfiguration(name: "waybill-demo-driver"), logger: logger)
        let participantsClient = try AMQPClient(
            configuration: try setup.broker.amqpConfiguration(name: "waybill-demo-participants"), logger: logger)
        do {
            try await driver.connect()
        } catch {
            throw DemoError(
                .brokerUnreachable, "cannot connect to RabbitMQ at \(setup.broker)",
                cause: error)
        }
        do {
            try await participantsClient.connect()
            let workers = (0..<max(0, setup.workers)).map { index in
                let number = index + 1
                var configuration = setup.names.workerConfiguration(number: number)
                configuration.amqpURL = setup.broker.url
                configuration.amqpPassword = setup.broker.password
                configuration.dataDirectory = dataDirectory
                configuration.workflowsDirectory = workflowsDirectory
                setup.tuneWorker(&configuration)
                var workerLogger = logger
                workerLogger[metadataKey: "component"] = "worker"
                return SagaWorker(
                    configuration: configuration, logger: workerLogger, batchObserver: setup.batchObserver)
            }
            let stage = DemoStage(
                setup: setup, workflow: workflow, dataDirectory: dataDirectory,
                workflowsDirectory: workflowsDirectory, workers: workers, driver: driver, logger: logger)
            try await stage.clearLeftovers()
            let value = try await stage.runServices(participantsClient: participantsClient, body: body)
            if setup.removeTopologyWhenDone { await stage.removeTopology() }
            await participantsClient.close()
            await driver.close()
            return value
        } catch {
            await participantsClient.close()
            await driver.close()
            throw error
        }
    }

    private func runServices<T: Sendable>(
        participantsClient: AMQPClient, body: @escaping @Sendable (DemoStage) async throws -> T
    ) async throws -> T {
        var participantConfiguration = ParticipantConfiguration()
        participantConfiguration.commandsExchange = setup.names.commandsExchange
        participantConfiguration.queue = setup.names.participantsQueue
        participantConfiguration.prefetch = setup.participantPrefetch
        var participantLogger = logger
        participantLogger[metadataKey: "component"] = "participants"
        let participants = ParticipantService(
            client: participantsClient, configuration: participantConfiguration, logger: participantLogger,
            respond: setup.respond)
        let arrivals = setup.arrivals.map { produce in
            StockArrivals(
                client: participantsClient, workflow: workflow, interval: setup.arrivalInterval,
                logger: participantLogger, produce: produce)
        }
        // Declared before the workers run, so no command is returned unroutable while the participants start.
        try await participants.declare()
        try await monitor.declare()

        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: workers.map { worker in
                    .init(
                        service: worker, successTerminationBehavior: .gracefullyShutdownGroup,
                        failureTerminationBehavior: .gracefullyShutdownGroup,
                        serviceName: worker.configuration.workerId)
                } + [
                    .init(
                        service: participants, successTerminationBehavior: .gracefullyShutdownGroup,
                        failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: "participants")
                ]
                    + (arrivals.map {
                        [
                            .init(
                                service: $0, successTerminationBehavior: .gracefullyShutdownGroup,
                                failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: "stock arrivals")
                        ]
                    } ?? []),
                gracefulShutdownSignals: setup.handleSignals ? [.sigint, .sigterm] : [], logger: logger))

        return try await withThrowingTaskGroup(of: T?.self) { tasks in
            tasks.addTask {
                defer { self.servicesRunning.store(false, ordering: .releasing) }
                try await group.run()
                return nil
            }
            tasks.addTask { [monitor, workers] in
                for worker in workers { await worker.waitUntilRunning() }
                if Task.isCancelled || !self.isRunning { return nil }
                if !workers.isEmpty { await self.waitUntilPartitionsShared() }
                if Task.isCancelled || !self.isRunning { return nil }
                do {
                    let value = try await withThrowingTaskGroup(of: Void.self) { watching in
                        watching.addTask { await monitor.run() }
                        defer { watching.cancelAll() }
                        return try await body(self)
                    }
                    await group.triggerGracefulShutdown()
                    return value
                } catch {
                    await group.triggerGracefulShutdown()
                    throw error
                }
            }
            var result: T?
            for try await value in tasks {
                if let value { result = value }
            }
            guard let result else {
                throw DemoError(.stoppedEarly, "a worker or the participants stopped before the run was over")
            }
            return result
        }
    }

    /// The partitions each worker owns now, in worker order.
    var ownedPartitions: [(worker: String, partitions: [Int])] {
        workers.map { ($0.configuration.workerId, $0.ownedPartitions) }
    }

    /// Whether every partition is owned and the workers' counts differ by at most one: the pool's fair share.
    static func isFairShare(_ owned: [[Int]], partitionCount: Int) -> Bool {
        let counts = owned.map(\.count)
        guard let least = counts.min(), let most = counts.max() else { return false }
        return Set(owned.joined()).count == partitionCount && counts.reduce(0, +) == partitionCount
            && most - least <= 1
    }

    /// Waits until the workers hold a fair share each. The first worker to run claims every partition and gives up
    /// the extras on its next rebalance ticks, as the others join; orders published before that would all go
    /// through it. Gives up after `limit` (the run then starts anyway, and the summary shows the shares).
    private func waitUntilPartitionsShared(limit: Duration = .seconds(30)) async {
        let clock = ContinuousClock()
        let deadline = clock.now + limit
        let partitionCount = (try? self.partitionCount) ?? PoolDirectory.defaultPartitionCount
        while !Self.isFairShare(ownedPartitions.map(\.partitions), partitionCount: partitionCount) {
            guard clock.now < deadline, isRunning, !Task.isCancelled else {
                logger.warning(
                    "starting before the workers share the partitions fairly",
                    metadata: ["owned": "\(ownedPartitions.map { "\($0.worker): \($0.partitions.count)" })"])
                return
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Reads a workflow file; the error says to run from the repository root.
    static func readWorkflow(_ file: String) throws -> String {
        do {
            return try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw DemoError(
                .fileProblem,
                "cannot read the workflow \(file) (\(error.localizedDescription)); run from the repository root or "
                    + "pass another workflow file")
        }
    }

    /// Loads workflow text read from `file` (the diagnostics name `copy` when given), or says that `file` is not
    /// valid and why.
    static func loadWorkflow(_ text: String, file: String, copy: String? = nil) throws -> WorkflowDefinition {
        do {
            return try WorkflowLoader.load(yaml: text, file: copy ?? file)
        } catch {
            throw DemoError(.fileProblem, "the workflow \(file) is not valid:\n\(error)")
        }
    }

    /// Copies the workflow into `directory/workflows` (renamed under a namespace) and loads it.
    private static func prepareWorkflow(_ setup: StageSetup) throws -> (WorkflowDefinition, String) {
        let text = try setup.editWorkflow(try readWorkflow(setup.workflowFile))
        let rewritten = try setup.names.rewrite(workflowText: text, file: setup.workflowFile)
        let directory = (setup.directory as NSString).appendingPathComponent("workflows")
        let fileName = (setup.workflowFile as NSString).lastPathComponent
        let copy = (directory as NSString).appendingPathComponent(fileName)
        do {
            let manager = FileManager.default
            if manager.fileExists(atPath: directory) { try manager.removeItem(atPath: directory) }
            try manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try rewritten.write(toFile: copy, atomically: true, encoding: .utf8)
            if let limits = setup.limitsFile {
                try manager.copyItem(
                    atPath: limits, toPath: (directory as NSString).appendingPathComponent(ParticipantLimits.fileName))
            }
        } catch {
            throw DemoError(.fileProblem, "cannot write the workflow copy \(copy)", cause: error)
        }
        return (try loadWorkflow(rewritten, file: setup.workflowFile, copy: copy), directory)
    }

    private static func removePool(_ path: String) throws {
        let manager = FileManager.default
        guard manager.fileExists(atPath: path) else { return }
        do {
            try manager.removeItem(atPath: path)
        } catch {
            throw DemoError(.fileProblem, "cannot remove the previous demo pool \(path)", cause: error)
        }
    }

    /// The queues a run reads from: the workflow's start queue, the pool's partition queues and the participants'
    /// queue.
    private var runQueues: [String] {
        [WorkerTopology.startQueue(workflow.name)]
            + setup.names.partitionQueues(count: PoolDirectory.defaultPartitionCount) + [setup.names.participantsQueue]
    }

    /// Empties the queues an earlier, interrupted run under the same names may have left messages in (starts,
    /// replies, commands), so that they do not run against this run's fresh database and participants.
    ///
    /// The queues are drained, not deleted: deleting an at-least-once quorum queue in the moment it becomes leader
    /// (right after the broker restarted) crashes its dead-letter worker in RabbitMQ 3.10, and enough such crashes
    /// take down the node's dead-letter supervisor, after which no such queue can be declared until a restart.
    private func clearLeftovers() async throws {
        for queue in runQueues {
            let drained = await QueueDrain.drain(queue, on: driver)
            if drained > 0 { logger.info("drained \(drained) messages an earlier run left in \(queue)") }
        }
    }

    /// Deletes every queue and exchange the run declared (best effort; the queues are long past their start).
    private func removeTopology() async {
        for queue in runQueues + [setup.names.deadLetterQueue] {
            _ = try? await driver.deleteQueue(queue)
        }
        let waits = workflow.steps.compactMap { step -> String? in
            guard case .wait(let spec) = step.action else { return nil }
            return spec.message?.exchange
        }
        let exchanges =
            [
                workflow.trigger.exchange, setup.names.commandsExchange, setup.names.eventsExchange,
                setup.names.deadLetterExchange,
            ] + waits
        for exchange in exchanges {
            try? await driver.deleteExchange(exchange)
        }
    }

    // MARK: - Orders

    /// Publishes start messages to the workflow's trigger.
    var publisher: OrderPublisher {
        OrderPublisher(client: driver, trigger: workflow.trigger, monitor: monitor)
    }

    /// The broker client the stage publishes with (benchmarks reuse it).
    var client: AMQPClient { driver }

    /// The pool's partition count (the pool exists once a worker ran).
    var partitionCount: Int {
        get throws { try PoolDirectory.open(dataDirectory).partitionCount }
    }

    /// The sagas in the pool's partition files, read through read-only stores.
    func storedSagas(_ ids: [String]) throws -> [String: SagaInstanceSummary] {
        let pool = try PoolDirectory.open(dataDirectory)
        var result: [String: SagaInstanceSummary] = [:]
        for (partition, partitionIds) in Dictionary(grouping: ids, by: { pool.partition(of: $0) }) {
            guard let store = try pool.openReadOnly(partition: partition) else { continue }
            defer { try? store.close() }
            for (key, stored) in try store.sagas(partitionIds.map { SagaKey(workflow: workflow.name, id: $0) }) {
                let instance = stored.instance
                result[key.id] = SagaInstanceSummary(
                    status: instance.status, failureCode: instance.failure?.error.code,
                    startedAt: instance.startedAt, updatedAt: instance.updatedAt, owner: stored.owner)
            }
        }
        return result
    }
}

/// What the demo reads back about a saga from the pool's partition files.
struct SagaInstanceSummary: Sendable, Hashable {
    var status: SagaStatus
    /// The error code of the step failure that made it compensate or suspend.
    var failureCode: String?
    var startedAt: Timestamp
    var updatedAt: Timestamp
    /// The worker that wrote it last (the saga row's `owner`).
    var owner: String?
}
