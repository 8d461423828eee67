import AMQPTransport
import Foundation
import Logging
import SagaStore
import Synchronization
import WaybillDefinition
import WaybillWorker

/// The benchmark's pattern ceiling: the messages a worker exchanges for order-fulfillment sagas, replayed with the
/// raw AMQP client and nothing else: no saga engine, no SQLite, no journal (``ScriptedSagas`` decides what to send).
///
/// It has the worker's shape: the worker's topology (``WorkerTopology``: the shared start queue, one quorum queue per
/// partition with the same arguments, starts forwarded to their saga's partition queue, replies to it), the same
/// consumers and prefetch, batches of up to the worker's batch size, one confirmed publish per batch, then one
/// `multiple` ack per consumer. It consumes one batch at a time, as the worker did before its loop was pipelined.
final class PatternReplay: Sendable {
    /// What the replay did since it was created.
    struct Counts: Sendable, Hashable {
        /// Deliveries consumed: starts from the shared start queue, forwarded starts and replies from partitions.
        var consumed = 0
        /// Messages published: forwarded starts, commands and milestone events.
        var published = 0
    }

    private let client: AMQPClient
    private let configuration: WorkerConfiguration
    private let workflow: WorkflowDefinition
    private let partitionCount: Int
    private let logger: Logger
    private let counters = Mutex(Counts())
    /// Told of each batch once its publish is confirmed, with how long each reply in it took from its arrival: the
    /// same figures a worker's batch observer gives, for the step-overhead floor.
    private let observer: (@Sendable (WorkerBatchTiming) -> Void)?

    /// A replay of `workflow` under `configuration`'s names (exchanges, pool name), batch size and prefetch.
    init(
        client: AMQPClient, configuration: WorkerConfiguration, workflow: WorkflowDefinition,
        partitionCount: Int = PoolDirectory.defaultPartitionCount, logger: Logger,
        observer: (@Sendable (WorkerBatchTiming) -> Void)? = nil
    ) {
        self.client = client
        self.configuration = configuration
        self.workflow = workflow
        self.partitionCount = partitionCount
        self.logger = logger
        self.observer = observer
    }

    /// The counts so far.
    var counts: Counts { counters.withLock { $0 } }

    /// The queues the replay consumes: the start queue and the partition queues.
    var queues: [String] {
        [WorkerTopology.startQueue(workflow.name)] + (0..<partitionCount).map(configuration.partitionQueue)
    }

    /// Declares the worker's topology under the replay's names.
    func declare() async throws {
        try await WorkerTopology(configuration: configuration, workflows: [workflow], partitionCount: partitionCount)
            .declare(on: client)
    }

    /// Deletes the replay's queues and exchanges (best effort).
    func remove() async {
        for queue in queues + [configuration.deadLetterQueue] {
            _ = try? await client.deleteQueue(queue)
        }
        for exchange in [
            workflow.trigger.exchange, configuration.commandsExchange, configuration.eventsExchange,
            configuration.deadLetterExchange,
        ] {
            try? await client.deleteExchange(exchange)
        }
    }

    /// Replays until the task is cancelled.
    func run() async throws {
        var consumers: [(ScriptedSagas.Queue, AMQPConsumer)] = [
            (.starts, try await client.consume(queue: queues[0], prefetch: configuration.prefetch))
        ]
        for partition in 0..<partitionCount {
            consumers.append(
                (
                    .partition(partition),
                    try await client.consume(
                        queue: configuration.partitionQueue(partition), prefetch: configuration.prefetch)
                ))
        }
        let inbox = WorkQueue<Arrival>()
        var script = ScriptedSagas(workflow: workflow, configuration: configuration, partitionCount: partitionCount)
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                for (queue, consumer) in consumers {
                    group.addTask {
                        do {
                            for try await delivery in consumer {
                                inbox.push(Arrival(queue: queue, delivery: delivery, at: ContinuousClock.now))
                            }
                        } catch {
                            inbox.finish()
                        }
                    }
                }
                while let batch = await inbox.nextBatch(max: configuration.batchSize) {
                    await process(batch, script: &script)
                }
                group.cancelAll()
            }
        } onCancel: {
            inbox.finish()
        }
    }

    /// A delivery, where it came from and when.
    private struct Arrival: Sendable {
        var queue: ScriptedSagas.Queue
        var delivery: InboundDelivery
        var at: ContinuousClock.Instant
    }

    private func process(_ batch: [Arrival], script: inout ScriptedSagas) async {
        var outgoing: [OutboundMessage] = []
        outgoing.reserveCapacity(batch.count * 2)
        let abandonedBefore = script.abandoned
        for arrival in batch {
            let delivery = arrival.delivery
            outgoing.append(
                contentsOf: script.receive(from: arrival.queue, properties: delivery.properties, body: delivery.body))
        }
        if script.abandoned > abandonedBefore {
            logger.error(
                "pattern replay: \(script.abandoned - abandonedBefore) sagas got an error reply or no split plan")
        }
        // Timed like a worker's batch: each reply from its arrival to the moment the connection thread reads the
        // batch's last confirm (at once when the batch publishes nothing).
        let arrivals = batch.compactMap { arrival -> ContinuousClock.Instant? in
            guard case .partition = arrival.queue, WorkerBatchTiming.isReply(arrival.delivery) else { return nil }
            return arrival.at
        }
        let timing = observer.map { observer in
            { @Sendable [inputs = batch.count, published = outgoing.count] (_: Result<[PublishOutcome], AMQPError>) in
                let confirmed = ContinuousClock.now
                observer(
                    WorkerBatchTiming(
                        inputs: inputs, replyToConfirmed: arrivals.map { confirmed - $0 }, published: published))
            }
        }
        if outgoing.isEmpty {
            timing?(.success([]))
        } else {
            let receipt = client.send(outgoing)
            if let timing { receipt.onSettled(timing) }
            do {
                _ = try await receipt.outcomes()
            } catch {
                logger.error("pattern replay: publish failed: \(error)")
            }
        }
        var highest: [String: DeliveryTag] = [:]
        for arrival in batch {
            highest[arrival.delivery.consumerTag] = arrival.delivery.deliveryTag
        }
        for tag in highest.values { client.ack(tag, multiple: true) }
        counters.withLock { counts in
            counts.consumed += batch.count
            counts.published += outgoing.count
        }
    }
}
