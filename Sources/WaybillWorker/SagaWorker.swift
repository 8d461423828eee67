import AMQPTransport
import Foundation
import Logging
import SagaEngine
import SagaStore
import ServiceLifecycle
import Synchronization
import Tracing
import WaybillDefinition
import WaybillWire

/// A Waybill worker, one of a pool: consumes starts, replies and repairs, drives sagas through the engine, and persists
/// and publishes what they do. Run it in a `ServiceGroup`; SIGTERM/SIGINT drain it.
///
/// The pool shares a data directory (``PoolDirectory``): a fixed number of partitions, each a SQLite file and a
/// queue. A saga lives in the partition its id hashes to. This worker owns the partitions whose lock it holds
/// (``PartitionKeeper`` claims its fair share and gives up the rest), consumes their queues and writes their files;
/// every write checks the partition's fence epoch, so a worker that lost a partition cannot write to it.
///
/// The hot loop handles a batch of deliveries at a time:
/// 1. engine transitions for every delivery (and every due timer), grouped by partition;
/// 2. ONE SQLite transaction per partition touched, with its sagas, journal entries, inbox marks, outbox rows and
///    timers;
/// 3. one publish of the batch's outbox (and forwards) with publisher confirms;
/// 4. deletion of the confirmed outbox rows;
/// 5. acknowledgement of the deliveries, `multiple` per consumer.
///
/// Nothing is acknowledged before its transaction commits, so a crash at any point redelivers work whose effects
/// are not durable yet; redelivered messages are absorbed (a saga that exists ignores its start again, a reply
/// for a settled attempt is ignored). Outbox rows that were not confirmed are published again when the partition
/// is claimed (by this worker or the next owner) and after a reconnect, under the same message ids, so receivers
/// can drop duplicates.
public final class SagaWorker: Service, Sendable {
    public let configuration: WorkerConfiguration
    private let logger: Logger
    private let started = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    private let batchObserver: (@Sendable (WorkerBatchTiming) -> Void)?
    /// The partitions owned now, for tests and the demo.
    private let owned = Mutex<[Int]>([])
    /// What the metrics endpoint serves.
    public let metrics: WorkerMetrics
    private let tracer: any Tracer
    /// The running worker's parts its readiness looks at; `nil` until it runs and after it stopped.
    private let live = Mutex<LiveParts?>(nil)

    private struct LiveParts: Sendable {
        var client: AMQPClient
        var loop: BatchLoop
        var keeper: PartitionKeeper
    }
    /// Routers (shared start queues) whose consumer ended and is not subscribed again yet.
    private let routersDown = Mutex<Set<String>>([])

    /// A worker; `batchObserver` (benchmarks only) is told, after each batch's publish returned, how long each reply
    /// of the batch took from its consumer to that point. Leave it `nil` in production: it costs a lock per reply.
    /// `metrics` records what the worker does; the default records nothing. `tracer` gets a span per finished step
    /// (the trace headers travel whatever it is).
    public init(
        configuration: WorkerConfiguration, logger: Logger, metrics: WorkerMetrics = WorkerMetrics(),
        tracer: any Tracer = InstrumentationSystem.tracer, batchObserver: (@Sendable (WorkerBatchTiming) -> Void)? = nil
    ) {
        self.configuration = configuration
        self.metrics = metrics
        self.tracer = tracer
        var logger = logger
        logger[metadataKey: "worker.id"] = .string(configuration.workerId)
        self.logger = logger
        self.batchObserver = batchObserver
    }

    /// Resumes once the worker has declared its topology, joined the pool and consumes (for tests and the demo).
    public func waitUntilRunning() async {
        var iterator = started.stream.makeAsyncIterator()
        _ = await iterator.next()
    }

    /// The partitions this worker owned after its last rebalance, ascending.
    public var ownedPartitions: [Int] { owned.withLock { $0 } }

    /// Whether this worker takes work now, and if not, why (what `/readyz` answers): it runs (connected, joined the
    /// pool, consuming), the broker connection is up, its start queues are consumed, it is not draining, and its
    /// partitions' stores and the pool's data directory are writable. A worker of a pool with more workers than
    /// partitions may own none and still be ready: it takes over when another worker goes.
    public var readiness: WorkerReadiness {
        let partitions = ownedPartitions
        guard let live = live.withLock({ $0 }) else {
            return WorkerReadiness(
                problems: ["not running: connecting to the broker or joining the pool"], partitions: [])
        }
        var problems: [String] = []
        if !live.client.isConnected { problems.append("the broker connection is down; reconnecting") }
        problems += live.keeper.problems
        for queue in routersDown.withLock({ $0 }).sorted() {
            problems.append("not consuming \(queue); subscribing again")
        }
        // Only partitions owned now: a partition handed off after a failure is its next owner's to report.
        let owned = Set(partitions)
        for (partition, error) in live.loop.failingCommits.withLock({ $0 }).sorted(by: { $0.key < $1.key })
        where owned.contains(partition) {
            problems.append("partition \(partition): the last batch failed: \(error)")
        }
        return WorkerReadiness(problems: problems, partitions: partitions)
    }

    public func run() async throws {
        let registry = try DefinitionRegistry(directory: configuration.workflowsDirectory)
        let pool: PoolDirectory
        do {
            pool =
                if let partitions = configuration.partitions {
                    try PoolDirectory.openOrCreate(
                        configuration.dataDirectory, partitions: partitions, poolName: configuration.poolName)
                } else {
                    try PoolDirectory.create(
                        configuration.dataDirectory, partitions: PoolDirectory.defaultPartitionCount,
                        poolName: configuration.poolName)
                }
        } catch let error as SagaStoreError where error.code == .partitionCountMismatch {
            throw ConfigurationError(.badValue, "partitions: \(error.message)")
        }
        if let recorded = pool.poolName, recorded != configuration.poolName {
            throw ConfigurationError(
                .badValue,
                "pool_name: the pool in \(pool.path) names its queues '\(recorded)', not '\(configuration.poolName)'; "
                    + "set pool_name to '\(recorded)', or give this pool its own data_directory")
        }
        // Held for the worker's lifetime, so `waybill pool repartition` cannot run under it.
        let holding = try pool.hold()
        defer { holding.release() }
        let membership = try pool.join(as: configuration.workerId)
        try? pool.write(
            PoolMemberStatus(
                worker: configuration.workerId, pid: getpid(), host: "", state: .waitingForBroker, startedAt: .now(),
                updatedAt: .now(), partitions: [], inFlightSagas: 0, queuedMessages: 0))
        defer {
            unlink(pool.memberStatusPath(worker: configuration.workerId))
            membership.releaseRemovingFile()
        }
        let amqp = try amqpConfiguration()
        let client = try AMQPClient(configuration: amqp, logger: logger)
        guard try await connectWaitingForBroker(client, configuration: amqp) else {
            await client.close()
            return
        }
        let drained: Bool
        do {
            drained = try await runConnected(client: client, pool: pool, registry: registry)
        } catch {
            await client.close()
            throw error
        }
        if drained {
            await client.close()
        } else {
            // The connection may be stuck in a call the broker never answers; closing it fails whatever the cut-short
            // drain still waits for, but the worker does not wait for that.
            Task { await client.close() }
        }
    }

    /// Connects `client`, waiting for the broker as long as it takes: a broker that is down or still starting never
    /// makes the worker exit. Each failed attempt logs one line and waits the connection's reconnect backoff
    /// (jittered); the worker is not running, and so not ready, meanwhile. A graceful shutdown ends the wait and
    /// returns `false`. A refused login, a TLS failure or a bad address still fail at once: waiting cannot fix them.
    private func connectWaitingForBroker(
        _ client: AMQPClient, configuration amqp: AMQPConfiguration
    ) async throws
        -> Bool
    {
        var delay = amqp.reconnect.initialDelay
        var attempt = 0
        while true {
            attempt += 1
            do {
                try await client.connect()
                if attempt > 1 {
                    logger.notice("connected to the broker", metadata: ["attempt": "\(attempt)", "broker": "\(amqp)"])
                }
                return true
            } catch let error as AMQPError where error.code == .connectionFailed {
                let wait = amqp.reconnect.jittered(delay)
                logger.warning(
                    "waiting for the broker",
                    metadata: [
                        "attempt": "\(attempt)", "broker": "\(amqp)", "error": "\(error)", "retry_in": "\(wait)",
                    ])
                delay = amqp.reconnect.delay(after: delay)
                _ = await cancelWhenGracefulShutdown { try? await Task.sleep(for: wait) }
                if Task.isShuttingDownGracefully || Task.isCancelled {
                    logger.notice("stopped while waiting for the broker", metadata: ["attempts": "\(attempt)"])
                    return false
                }
            }
        }
    }

    private func amqpConfiguration() throws -> AMQPConfiguration {
        var amqp = try AMQPConfiguration(url: configuration.amqpURL)
        if let password = configuration.amqpPassword { amqp.password = password }
        amqp.connectionName = "waybill-\(configuration.workerId)"
        if amqp.tls != nil {
            if let file = configuration.tlsCAFile { amqp.tls?.caCertificatePath = file }
            if let file = configuration.tlsCertificateFile { amqp.tls?.clientCertificatePath = file }
            if let file = configuration.tlsKeyFile { amqp.tls?.clientKeyPath = file }
        }
        return amqp
    }

    /// Runs until stopped; returns whether the drain handed every partition off within the shutdown grace.
    private func runConnected(
        client: AMQPClient, pool: PoolDirectory, registry: DefinitionRegistry
    ) async throws -> Bool {
        let workflows = registry.current.values.map(\.definition).sorted { $0.name < $1.name }
        metrics.prepare(workflows)
        if let limits = registry.limits {
            logger.info("participants' limits: \(limits.limits.map(\.summary).joined(separator: "; "))")
            for limit in limits.unmatched(by: workflows) {
                logger.warning(
                    "the limit for commands '\(limit.commands)' matches no command of the workflows, so it limits nothing; '*' is one word and '#' any number"
                )
            }
        }
        let topology = WorkerTopology(
            configuration: configuration, workflows: workflows, partitionCount: pool.partitionCount,
            queueCount: pool.queueCount)
        // The routers: each workflow's shared start queue, and the queues a repartition left above the partition
        // count; both forward what they get to the right partition.
        let routes =
            workflows.map { (WorkerTopology.startQueue($0.name), WorkerInput.Source.router($0.name)) }
            + (pool.partitionCount..<pool.queueCount).map {
                (configuration.partitionQueue($0), WorkerInput.Source.leftover($0))
            }
        guard let routers = try await subscribe(client: client, topology: topology, routes: routes) else { return true }

        let queue = WorkQueue<WorkerInput>()
        let timing = batchObserver.map { ReplyTiming(observer: $0) }
        var afterPublish: (@Sendable ([WorkerInput], Int) -> Void)?
        if let timing { afterPublish = { timing.published($0, messages: $1) } }
        let deliver: @Sendable (WorkerInput) -> Void = { input in
            if let timing, case .delivery(.partition, let delivery) = input, WorkerBatchTiming.isReply(delivery) {
                timing.arrived(delivery.deliveryTag)
            }
            queue.push(input)
        }
        let loop = BatchLoop(
            configuration: configuration, client: client, pool: pool, partitions: OwnedPartitions(),
            registry: registry, logger: logger, metrics: metrics, tracer: tracer, feedback: { queue.push($0) },
            afterPublish: afterPublish)
        let keeper = PartitionKeeper(
            configuration: configuration, pool: pool, client: client, registry: registry, loop: loop, logger: logger,
            deliver: deliver)
        live.withLock { $0 = LiveParts(client: client, loop: loop, keeper: keeper) }
        defer { live.withLock { $0 = nil } }
        await keeper.rebalance()
        owned.withLock { $0 = loop.partitions.numbers }
        logger.info(
            "worker running",
            metadata: [
                "workflows": .string(workflows.map { "\($0.name)@v\($0.version)" }.joined(separator: ",")),
                "pool": .string(pool.path), "partitions": .string("\(pool.partitionCount)"),
                "owned": .string(loop.partitions.numbers.map(String.init).joined(separator: ",")),
            ])
        started.continuation.yield()

        // The work runs in its own task, so that a drain that outlives the shutdown grace (a broker that stopped
        // confirming) cannot keep the worker from exiting: past the grace, `run()` returns, the client closes, and
        // whatever still waited fails at once; the kernel drops the partition locks when the process exits.
        let (ends, end) = AsyncStream<Bool>.makeStream()
        let work = Task {
            await self.work(
                queue: queue, loop: loop, keeper: keeper, client: client, routers: routers, limits: registry.limits,
                deliver: deliver)
            end.yield(true)
        }
        let grace = configuration.shutdownGrace
        let beginDrain: @Sendable () -> Void = { [logger] in
            logger.info("graceful shutdown: finishing the current batch, then handing the partitions off")
            keeper.beginDrain()
            queue.finish()
            Task {
                try? await Task.sleep(for: grace)
                end.yield(false)
            }
        }
        let drained = await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                var iterator = ends.makeAsyncIterator()
                return await iterator.next() ?? false
            } onGracefulShutdown: {
                beginDrain()
            }
        } onCancel: {
            beginDrain()
        }
        owned.withLock { $0 = [] }
        if drained {
            logger.info("worker stopped: every partition handed off")
        } else {
            work.cancel()
            logger.warning(
                "worker stopped before every partition was handed off; the others take them over once it exits",
                metadata: ["shutdown_grace": "\(grace)"])
        }
        return drained
    }

    /// Declares the topology and subscribes the routers, waiting for the broker for as long as it takes when the
    /// connection drops meanwhile. Returns `nil` when the worker is told to stop while it waits.
    private func subscribe(
        client: AMQPClient, topology: WorkerTopology, routes: [(String, WorkerInput.Source)]
    ) async throws -> [(AMQPConsumer, WorkerInput.Source)]? {
        while true {
            var consumers: [(AMQPConsumer, WorkerInput.Source)] = []
            do {
                try await topology.declare(on: client)
                for (name, source) in routes {
                    consumers.append((try await client.consume(queue: name, prefetch: configuration.prefetch), source))
                }
                return consumers
            } catch let error as AMQPError
                where [.notConnected, .connectionLost, .connectionClosed].contains(error.code)
            {
                for (consumer, _) in consumers { await client.cancel(consumer) }
                logger.warning(
                    "lost the broker while declaring the topology; declaring again", metadata: ["error": "\(error)"])
                _ = await cancelWhenGracefulShutdown { try? await client.waitUntilConnected() }
                if Task.isShuttingDownGracefully || Task.isCancelled { return nil }
            }
        }
    }

    /// The worker's life once it runs: the routers' and tickers' tasks, the hot loop until the queue finishes, then
    /// the drain.
    private func work(
        queue: WorkQueue<WorkerInput>, loop: BatchLoop, keeper: PartitionKeeper, client: AMQPClient,
        routers: [(AMQPConsumer, WorkerInput.Source)], limits: ParticipantLimits?,
        deliver: @escaping @Sendable (WorkerInput) -> Void
    ) async {
        let configuration = configuration
        await withTaskGroup(of: Void.self) { group in
            for (first, source) in routers {
                group.addTask { [logger] in
                    var consumer = first
                    while true {
                        do {
                            for try await delivery in consumer { deliver(.delivery(source, delivery)) }
                        } catch {
                            logger.error("consumer of \(consumer.queue) stopped: \(error)")
                        }
                        // The broker cancelled it, or a resubscription failed: subscribe again until it works.
                        self.routersDown.withLock { _ = $0.insert(consumer.queue) }
                        while !Task.isCancelled {
                            try? await Task.sleep(for: .seconds(1))
                            if Task.isCancelled { return }
                            if let again = try? await client.consume(
                                queue: consumer.queue, prefetch: configuration.prefetch)
                            {
                                consumer = again
                                self.routersDown.withLock { _ = $0.remove(consumer.queue) }
                                break
                            }
                        }
                        if Task.isCancelled { return }
                    }
                }
            }
            for (interval, input) in [
                (configuration.timerPollInterval, WorkerInput.tick),
                (configuration.rebalanceInterval, WorkerInput.rebalance),
            ] {
                group.addTask {
                    while !Task.isCancelled {
                        do {
                            try await Task.sleep(for: interval)
                        } catch {
                            return
                        }
                        queue.push(input)
                    }
                }
            }
            if let retention = configuration.archiveAfter {
                let archiver = Archiver(
                    retention: retention, interval: configuration.archiveInterval, batch: configuration.archiveBatch,
                    dataDirectory: configuration.dataDirectory, partitions: loop.partitions, logger: logger)
                group.addTask { await archiver.run() }
            }
            if let every = configuration.reconcileEvery {
                let reconciliation = ScheduledReconciliation(
                    configuration: configuration, every: every, limits: limits, partitions: loop.partitions,
                    metrics: loop.metrics, logger: logger)
                group.addTask { await reconciliation.run() }
            }
            var rebalances = 0
            while let batch = await queue.nextBatch(max: configuration.batchSize, linger: configuration.batchLinger) {
                var inputs: [WorkerInput] = []
                var rebalance = false
                var lost: [OwnedPartition] = []
                var ended: [(Int, String)] = []
                for input in batch {
                    switch input {
                    case .rebalance: rebalance = true
                    case .lost(let partition): lost.append(partition)
                    case .consumerEnded(let number, let tag): ended.append((number, tag))
                    default: inputs.append(input)
                    }
                }
                if !inputs.isEmpty { await loop.process(inputs) }
                for partition in lost { await keeper.lost(partition) }
                for (number, tag) in ended { await keeper.consumerEnded(number, consumerTag: tag) }
                if rebalance {
                    rebalances += 1
                    if rebalances % 5 == 0 { await keeper.measureLag() }
                    await keeper.rebalance()
                    owned.withLock { $0 = loop.partitions.numbers }
                }
            }
            await loop.drain()
            group.cancelAll()
        }
        // Drain: no new work (the routers stopped with their tasks; the partitions' consumers are cancelled one by
        // one), then every partition is handed off. Deliveries that arrived after the stop were not acknowledged;
        // the broker gives them to the partitions' next owners.
        for (consumer, _) in routers { await client.cancel(consumer) }
        await keeper.releaseAll(reason: "drain")
    }
}

/// How long the replies of one hot-loop batch took, for benchmarks (see ``SagaWorker/init(configuration:logger:batchObserver:)``).
public struct WorkerBatchTiming: Sendable {
    /// Inputs in the batch (deliveries of every kind, ticks).
    public var inputs: Int
    /// For each reply in the batch: from the moment its consumer received it to the moment the batch's publish (the
    /// commands and events the replies caused) was confirmed by the broker.
    public var replyToConfirmed: [Duration]
    /// Messages the batch published (commands, events, forwards, dead letters, answers to repairs), confirmed or not.
    public var published: Int = 0

    /// The figures of one batch.
    public init(inputs: Int, replyToConfirmed: [Duration], published: Int = 0) {
        self.inputs = inputs
        self.replyToConfirmed = replyToConfirmed
        self.published = published
    }

    /// Whether a delivery from a partition queue is a participant's reply, the kind whose duration is measured: not a
    /// forwarded start (which carries an input header) nor a message of a wait step (which comes through an
    /// exchange; replies come by the default exchange).
    public static func isReply(_ delivery: InboundDelivery) -> Bool {
        delivery.properties.headers[WireHeader.input] == nil && delivery.exchange.isEmpty
    }
}

/// Arrival instants of replies, matched with their batch's publish.
private final class ReplyTiming: Sendable {
    private let arrivals = Mutex<[DeliveryTag: ContinuousClock.Instant]>([:])
    private let observer: @Sendable (WorkerBatchTiming) -> Void

    init(observer: @escaping @Sendable (WorkerBatchTiming) -> Void) {
        self.observer = observer
    }

    func arrived(_ tag: DeliveryTag) {
        let now = ContinuousClock.now
        arrivals.withLock { $0[tag] = now }
    }

    func published(_ batch: [WorkerInput], messages: Int) {
        let now = ContinuousClock.now
        var durations: [Duration] = []
        arrivals.withLock { arrivals in
            for input in batch {
                guard case .delivery(.partition, let delivery) = input,
                    let arrived = arrivals.removeValue(forKey: delivery.deliveryTag)
                else { continue }
                durations.append(now - arrived)
            }
        }
        observer(WorkerBatchTiming(inputs: batch.count, replyToConfirmed: durations, published: messages))
    }
}

/// One unit of work for the hot loop.
enum WorkerInput: Sendable {
    /// Which consumer a delivery came from.
    enum Source: Sendable {
        /// The shared start queue of a workflow: read the saga id, forward to its partition.
        case router(String)
        /// The queue of an owned partition: its starts, replies and operator repairs.
        case partition(Int)
        /// A partition queue above the partition count, left by a repartition to fewer partitions: forward each
        /// message to its saga's partition.
        case leftover(Int)
    }

    case delivery(Source, InboundDelivery)
    /// Look for due timers.
    case tick
    /// The broker returned an unroutable command.
    case returned(messageId: String)
    /// Time to rewrite the member status and rebalance partitions.
    case rebalance
    /// A write to this partition was fenced: another worker owns it now. The loop no longer has it.
    case lost(OwnedPartition)
    /// The consumer of a partition's queue ended: the broker cancelled it, it could not subscribe again after a
    /// reconnect, or this worker cancelled it (``PartitionKeeper/consumerEnded(_:consumerTag:)`` acts only on the end
    /// of a partition's current subscription).
    case consumerEnded(Int, consumerTag: String)
}
