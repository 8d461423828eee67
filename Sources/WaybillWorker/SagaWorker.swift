import AMQPTransport
import Foundation
import Logging
import SagaEngine
import SagaStore
import ServiceLifecycle
import Synchronization
import WaybillDefinition

/// A Waybill worker: consumes starts and replies, drives sagas through the engine, and persists and publishes
/// what they do. Run it in a `ServiceGroup`; SIGTERM/SIGINT stop it gracefully.
///
/// The hot loop handles a batch of deliveries at a time:
/// 1. engine transitions for every delivery (and every due timer);
/// 2. ONE SQLite transaction with the sagas, journal entries, inbox marks, outbox rows and timers;
/// 3. one publish of the batch's outbox with publisher confirms;
/// 4. deletion of the confirmed outbox rows;
/// 5. acknowledgement of the deliveries, `multiple` per consumer.
///
/// Nothing is acknowledged before its transaction commits, so a crash at any point redelivers work whose effects
/// are not durable yet; redelivered messages are absorbed (a saga that exists ignores its start again, a reply
/// for a settled attempt is ignored). Outbox rows that were not confirmed are published again at start-up and
/// after a reconnect, under the same message ids, so receivers can drop duplicates.
public final class SagaWorker: Service, Sendable {
    public let configuration: WorkerConfiguration
    private let logger: Logger
    private let started = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    private let batchObserver: (@Sendable (WorkerBatchTiming) -> Void)?

    /// A worker; `batchObserver` (benchmarks only) is told, after each batch's publish returned, how long each reply
    /// of the batch took from its consumer to that point. Leave it `nil` in production: it costs a lock per reply.
    public init(
        configuration: WorkerConfiguration, logger: Logger,
        batchObserver: (@Sendable (WorkerBatchTiming) -> Void)? = nil
    ) {
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "worker.id"] = .string(configuration.workerId)
        self.logger = logger
        self.batchObserver = batchObserver
    }

    /// Resumes once the worker has declared its topology and is consuming (for tests and the demo).
    public func waitUntilRunning() async {
        var iterator = started.stream.makeAsyncIterator()
        _ = await iterator.next()
    }

    public func run() async throws {
        let store = try SagaStore(
            configuration: SagaStore.Configuration(
                path: configuration.resolvedDatabasePath, durability: configuration.durability))
        defer { try? store.close() }
        let registry = try DefinitionRegistry(
            directory: configuration.workflowsDirectory, store: store, now: .now())
        let amqp = try amqpConfiguration()
        let client = try AMQPClient(configuration: amqp, logger: logger)
        guard try await connectWaitingForBroker(client, configuration: amqp) else {
            await client.close()
            return
        }
        do {
            try await runConnected(client: client, store: store, registry: registry)
        } catch {
            await client.close()
            throw error
        }
        await client.close()
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

    private func runConnected(client: AMQPClient, store: SagaStore, registry: DefinitionRegistry) async throws {
        let workflows = registry.current.values.map(\.definition).sorted { $0.name < $1.name }
        try await WorkerTopology(configuration: configuration, workflows: workflows).declare(on: client)
        let queue = WorkQueue<WorkerInput>()
        let timing = batchObserver.map { ReplyTiming(observer: $0) }
        var afterPublish: (@Sendable ([WorkerInput]) -> Void)?
        if let timing { afterPublish = { timing.published($0) } }
        let loop = BatchLoop(
            configuration: configuration, client: client, store: store, registry: registry, logger: logger,
            feedback: { queue.push($0) }, afterPublish: afterPublish)
        try await loop.flushOutbox()

        var consumers: [(WorkerInput.Source, AMQPConsumer)] = []
        for workflow in workflows {
            consumers.append(
                (
                    .router(workflow.name),
                    try await client.consume(
                        queue: WorkerTopology.startQueue(workflow.name), prefetch: configuration.prefetch)
                ))
            consumers.append(
                (
                    .start(workflow.name),
                    try await client.consume(
                        queue: WorkerTopology.partitionQueue(workflow.name, worker: configuration.workerId),
                        prefetch: configuration.prefetch)
                ))
        }
        consumers.append(
            (.reply, try await client.consume(queue: configuration.replyQueue, prefetch: configuration.prefetch)))
        consumers.append((.control, try await client.consume(queue: configuration.controlQueue, prefetch: 16)))
        logger.info(
            "worker running",
            metadata: [
                "workflows": .string(workflows.map { "\($0.name)@v\($0.version)" }.joined(separator: ",")),
                "database": .string(configuration.resolvedDatabasePath),
            ])
        started.continuation.yield()

        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                for (source, consumer) in consumers {
                    group.addTask { [logger] in
                        do {
                            for try await delivery in consumer {
                                if let timing, case .reply = source { timing.arrived(delivery.deliveryTag) }
                                queue.push(.delivery(source, delivery))
                            }
                        } catch {
                            logger.error("consumer of \(consumer.queue) stopped: \(error)")
                        }
                    }
                }
                let poll = configuration.timerPollInterval
                group.addTask {
                    while !Task.isCancelled {
                        do {
                            try await Task.sleep(for: poll)
                        } catch {
                            return
                        }
                        queue.push(.tick)
                    }
                }
                // Cancellation (a service group cancelling its services) ends the loop as a graceful stop does: the
                // queue's waiter does not observe cancellation, so without this `run()` would never return.
                await withTaskCancellationHandler {
                    while let batch = await queue.nextBatch(
                        max: configuration.batchSize, linger: configuration.batchLinger)
                    {
                        await loop.process(batch)
                    }
                } onCancel: {
                    queue.finish()
                }
                group.cancelAll()
            }
        } onGracefulShutdown: { [logger] in
            logger.info("graceful shutdown: finishing the current batch")
            queue.finish()
        }
        // Deliveries that arrived after the stop were not acknowledged; the broker gives them to the next worker.
        try await loop.flushOutbox()
        logger.info("worker stopped")
    }
}

/// How long the replies of one hot-loop batch took, for benchmarks (see ``SagaWorker/init(configuration:logger:batchObserver:)``).
public struct WorkerBatchTiming: Sendable {
    /// Inputs in the batch (deliveries of every kind, ticks).
    public var inputs: Int
    /// For each reply in the batch: from the moment its consumer received it to the moment the batch's publish (the
    /// commands and events the replies caused) was confirmed by the broker.
    public var replyToConfirmed: [Duration]
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

    func published(_ batch: [WorkerInput]) {
        let now = ContinuousClock.now
        var durations: [Duration] = []
        arrivals.withLock { arrivals in
            for input in batch {
                guard case .delivery(.reply, let delivery) = input,
                    let arrived = arrivals.removeValue(forKey: delivery.deliveryTag)
                else { continue }
                durations.append(now - arrived)
            }
        }
        observer(WorkerBatchTiming(inputs: batch.count, replyToConfirmed: durations))
    }
}

/// One unit of work for the hot loop.
enum WorkerInput: Sendable {
    /// Which consumer a delivery came from.
    enum Source: Sendable {
        /// The shared start queue of a workflow: read the saga id, forward to its partition.
        case router(String)
        /// This worker's partition of a workflow's starts: create the saga.
        case start(String)
        /// This worker's reply queue.
        case reply
        /// This worker's control queue: operator repairs from `waybill sagas`.
        case control
    }

    case delivery(Source, InboundDelivery)
    /// Look for due timers.
    case tick
    /// The broker returned an unroutable command.
    case returned(messageId: String)
}
