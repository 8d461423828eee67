import Foundation
import Logging
import Synchronization

/// An AMQP 0-9-1 client for RabbitMQ: declarations, confirmed batch publishing, consumers with
/// per-consumer prefetch, and automatic reconnection.
///
/// One dedicated thread owns the connection and is the only caller into rabbitmq-c; the async methods
/// queue work for it and resume when it is done. Call ``connect()`` once, then use the client from any
/// task, and ``close()`` it when done.
///
/// **Reconnects.** When the connection breaks or the broker closes it, the client reconnects with
/// exponential backoff (``AMQPConfiguration/reconnect``), declares again every exchange, queue and binding
/// it declared, and subscribes every live consumer again. While it is disconnected, ``publish(_:)``
/// reports ``PublishOutcome/connectionLost`` for every message, and declarations and new consumers fail
/// with ``AMQPError/Code/notConnected``; ``waitUntilConnected()`` waits for the next connection.
/// Publishes that were not confirmed when the connection dropped are reported
/// ``PublishOutcome/connectionLost``: treat them as not sent. Deliveries keep flowing on the same
/// ``AMQPConsumer`` after a reconnect; messages that were delivered but not acknowledged come again with
/// ``InboundDelivery/redelivered`` set, and settling their old tags is a no-op (see ``DeliveryTag``).
public final class AMQPClient: Sendable {
    /// The settings this client connects with.
    public let configuration: AMQPConfiguration
    private let logger: Logger
    private let mailbox: Mailbox
    private let status = ConnectionStatus()
    private let lifecycle = Mutex(Lifecycle.idle)
    private let consumerIDs = Mutex(0)

    private enum Lifecycle {
        case idle
        case running
        case closed
    }

    /// Creates a client; nothing connects until ``connect()``.
    ///
    /// - Throws: ``AMQPError`` when the process cannot create the wake-up descriptor.
    public init(configuration: AMQPConfiguration, logger: Logger = Logger(label: "waybill.amqp")) throws(AMQPError) {
        self.configuration = configuration
        self.logger = logger
        self.mailbox = try Mailbox()
    }

    deinit {
        // A client dropped without close() still stops its thread (which holds only the mailbox).
        _ = mailbox.submit(.close(nil))
    }

    // MARK: Connection

    /// Starts the connection thread and waits for the first connection.
    ///
    /// The first connection is not retried: a wrong host or password fails here, with
    /// ``AMQPError/Code/connectionFailed`` or ``AMQPError/Code/authenticationFailed``, and `connect()` may
    /// be called again. After it succeeds, reconnects are automatic until ``close()``.
    public func connect() async throws {
        let allowed: AMQPError? = lifecycle.withLock { lifecycle in
            switch lifecycle {
            case .idle:
                lifecycle = .running
                return nil
            case .running: return AMQPError(.invalidArgument, "connect() was already called on this client")
            case .closed: return AMQPError(.clientClosed, "the AMQP client was closed; create a new one")
            }
        }
        if let allowed { throw allowed }
        mailbox.reopen()
        let configuration = configuration
        let mailbox = mailbox
        let status = status
        let logger = logger
        do {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let thread = Thread {
                    // A name given before start does not reach the system (the thread keeps its creator's): named
                    // here, so `top -H`, perf and /proc show the connection thread as such.
                    Thread.current.name = "waybill-amqp"
                    let driver = ConnectionDriver(
                        configuration: configuration, mailbox: mailbox, status: status, logger: logger)
                    driver.run(reportingFirstConnectionTo: continuation)
                }
                thread.start()
            }
        } catch {
            lifecycle.withLock { if $0 == .running { $0 = .idle } }
            throw error
        }
    }

    /// Closes the connection politely and stops the thread. Unconfirmed publishes are reported
    /// ``PublishOutcome/connectionLost``, consumers' sequences end (subscriptions' `onEnd` is called), and later
    /// calls fail with ``AMQPError/Code/clientClosed``. Unacknowledged deliveries go back to their queues.
    public func close() async {
        let wasRunning = lifecycle.withLock { lifecycle in
            defer { lifecycle = .closed }
            return lifecycle == .running
        }
        guard wasRunning else {
            status.enter(.closed)
            return
        }
        await withCheckedContinuation { continuation in
            if !mailbox.submit(.close(continuation)) { continuation.resume() }
        }
    }

    /// `true` while a connection is open.
    public var isConnected: Bool { status.phase == .connected }

    /// The broker node the client is connected to (one of ``AMQPConfiguration/endpoints``); `nil` while it is not
    /// connected.
    public var connectedEndpoint: AMQPConfiguration.Endpoint? { status.connectedEndpoint }

    /// How many connections this client has opened so far (1 after ``connect()``, +1 per reconnect).
    public var connectionCount: UInt64 { status.connections }

    /// `true` while the broker blocks publishing because of a resource alarm (memory or disk); confirms
    /// are delayed until it unblocks.
    public var isBlocked: Bool { status.isBlocked }

    /// Returns when the client is connected, at once if it already is.
    ///
    /// - Throws: ``AMQPError/Code/clientClosed`` when the client closes, `CancellationError` when the task
    ///   is cancelled.
    public func waitUntilConnected() async throws {
        try await status.waitUntilConnected()
    }

    // MARK: Topology

    /// Declares an exchange, and again after every reconnect.
    ///
    /// - Throws: ``AMQPError/Code/channelClosed`` when the broker refuses (e.g. 406: the exchange exists
    ///   with another type); ``AMQPError/Code/notConnected`` while reconnecting.
    public func declareExchange(_ declaration: ExchangeDeclaration) async throws {
        try await perform { .declareExchange(declaration, $0) }
    }

    /// Declares a queue, and again after every reconnect; returns its current counts.
    ///
    /// - Throws: ``AMQPError/Code/channelClosed`` when the queue exists with other arguments (406) or is
    ///   exclusive to another connection (405); ``AMQPError/Code/invalidArgument`` for an empty name.
    public func declareQueue(_ declaration: QueueDeclaration) async throws -> QueueInfo {
        try await perform { .declareQueue(declaration, $0) }
    }

    /// Binds a queue to an exchange, and again after every reconnect.
    public func bind(_ binding: QueueBinding) async throws {
        try await perform { .bind(binding, $0) }
    }

    /// Reads a queue's ready-message and consumer counts (a passive declare).
    ///
    /// - Throws: ``AMQPError/Code/channelClosed`` with reply 404 when the queue does not exist.
    public func inspectQueue(_ name: String) async throws -> QueueInfo {
        try await perform { .inspectQueue(name, $0) }
    }

    /// Deletes a queue and forgets its declaration and bindings; returns how many messages it held.
    @discardableResult
    public func deleteQueue(_ name: String) async throws -> UInt32 {
        try await perform { .deleteQueue(name, $0) }
    }

    /// Deletes an exchange and forgets its declaration and bindings.
    public func deleteExchange(_ name: String) async throws {
        try await perform { .deleteExchange(name, $0) }
    }

    // MARK: Publishing

    /// Publishes a batch on the confirm-mode channel and waits once for the broker to settle every message.
    ///
    /// Returns one ``PublishOutcome`` per message, in batch order. Only ``PublishOutcome/confirmed`` means
    /// the broker has the message; everything else should be published again later (or, for
    /// ``PublishOutcome/returned(replyCode:replyText:)``, handled as "nobody listens"). Returned messages
    /// are matched by message id; a mandatory message without one gets a generated UUID.
    ///
    /// - Throws: ``AMQPError/Code/clientClosed`` after ``close()``; otherwise failures are outcomes.
    public func publish(_ batch: [OutboundMessage]) async throws -> [PublishOutcome] {
        try await send(batch).outcomes()
    }

    /// Hands a batch to the connection thread and returns at once; await the receipt's
    /// ``PublishReceipt/outcomes()`` for what ``publish(_:)`` returns. Batches sent one after the other go out in
    /// that order. With a `sequence`, a batch is not sent at all (every message reported
    /// ``PublishOutcome/connectionLost``) when the publishing channel its sequence went out on is gone: see
    /// ``PublishSequence``. This is how a caller keeps several batches in flight without letting a later one overtake
    /// an earlier one that a reconnect lost.
    public func send(_ batch: [OutboundMessage], in sequence: PublishSequence? = nil) -> PublishReceipt {
        let receipt = PublishReceipt()
        if !mailbox.submit(.publish(batch, receipt, sequence)) { receipt.settle(.failure(refusal())) }
        return receipt
    }

    /// Publishes one message and waits for its confirm; see ``publish(_:)``.
    public func publish(_ message: OutboundMessage) async throws -> PublishOutcome {
        try await publish([message])[0]
    }

    // MARK: Consuming

    /// Subscribes to a queue on a channel of its own with the given prefetch (unacknowledged deliveries
    /// the broker allows in flight), and returns the deliveries as an async sequence.
    ///
    /// The sequence survives reconnects (the consumer is subscribed again with the same tag). It ends
    /// normally when the consumer is cancelled or the client closes, and throws
    /// ``AMQPError/Code/consumerCancelled`` when the broker cancels the consumer (its queue was deleted).
    /// Ending the iteration (cancelling the task) cancels the consumer; its unacknowledged deliveries go
    /// back to the queue. Acknowledge with ``ack(_:multiple:)``: `multiple` covers only this consumer.
    ///
    /// - Throws: ``AMQPError/Code/channelClosed`` when the broker refuses (404: no such queue; 403:
    ///   exclusive consumer elsewhere); ``AMQPError/Code/notConnected`` while reconnecting.
    public func consume(
        queue: String, prefetch: UInt16, exclusive: Bool = false, arguments: AMQPTable = [:]
    )
        async throws -> AMQPConsumer
    {
        let subscription = newSubscription(queue: queue)
        let (stream, continuation) = AsyncThrowingStream<InboundDelivery, any Error>.makeStream()
        let mailbox = mailbox
        continuation.onTermination = { reason in
            if case .cancelled = reason { _ = mailbox.submit(.cancelConsumer(id: subscription.id, nil)) }
        }
        try await start(
            subscription, prefetch: prefetch, exclusive: exclusive, arguments: arguments, .stream(continuation))
        return AMQPConsumer(subscription: subscription, deliveries: stream)
    }

    /// ``consume(queue:prefetch:exclusive:arguments:)`` without the async sequence: the connection's thread calls
    /// `onDelivery` with each delivery as it arrives, and `onEnd` once when the consumer ends, with the consumer tag
    /// and, when the broker cancelled the consumer or it could not be subscribed again (after a reconnect, or after
    /// the broker closed its channel), the error. No task sits between the socket and the receiver, so a delivery
    /// costs no task switch of its own; both handlers must return at once (hand the delivery to a queue, never wait),
    /// since the connection does nothing else meanwhile.
    ///
    /// The handlers may run before this returns: the first delivery can come as soon as the broker has the
    /// subscription. It survives reconnects like a consumer. ``cancel(_:)-(AMQPSubscription)`` and ``close()`` end
    /// it: `onEnd` is called without an error before `cancel` returns. A subscription that throws here never calls
    /// its handlers.
    public func subscribe(
        queue: String, prefetch: UInt16, exclusive: Bool = false, arguments: AMQPTable = [:],
        onEnd: @escaping @Sendable (_ consumerTag: String, _ error: (any Error)?) -> Void,
        onDelivery: @escaping @Sendable (InboundDelivery) -> Void
    ) async throws -> AMQPSubscription {
        let subscription = newSubscription(queue: queue)
        try await start(
            subscription, prefetch: prefetch, exclusive: exclusive, arguments: arguments,
            .handlers(delivery: onDelivery, end: onEnd))
        return subscription
    }

    private func newSubscription(queue: String) -> AMQPSubscription {
        let id = consumerIDs.withLock { next in
            defer { next += 1 }
            return next
        }
        let tag = "waybill.\(configuration.connectionName).\(id).\(UUID().uuidString.prefix(8).lowercased())"
        return AMQPSubscription(id: id, consumerTag: tag, queue: queue)
    }

    private func start(
        _ subscription: AMQPSubscription, prefetch: UInt16, exclusive: Bool, arguments: AMQPTable,
        _ deliveries: DeliverySink
    ) async throws {
        let request = ConsumerRequest(
            id: subscription.id, queue: subscription.queue, prefetch: prefetch, exclusive: exclusive,
            arguments: arguments, consumerTag: subscription.consumerTag, deliveries: deliveries)
        try await perform { .consume(request, $0) }
    }

    /// Cancels a consumer: the broker stops delivering, the consumer's channel closes (its unacknowledged
    /// deliveries go back to the queue) and its sequence ends.
    public func cancel(_ consumer: AMQPConsumer) async {
        await cancel(consumer.subscription)
    }

    /// Cancels a subscription: the broker stops delivering, its channel closes (its unacknowledged deliveries go
    /// back to the queue) and its `onEnd` is called.
    public func cancel(_ subscription: AMQPSubscription) async {
        await withCheckedContinuation { continuation in
            if !mailbox.submit(.cancelConsumer(id: subscription.id, continuation)) { continuation.resume() }
        }
    }

    /// Acknowledges a delivery (with `multiple`, also every earlier unsettled delivery of the same consumer).
    ///
    /// Fire-and-forget: AMQP does not confirm acks. A tag from an earlier channel generation is dropped.
    public func ack(_ tag: DeliveryTag, multiple: Bool = false) {
        _ = mailbox.submit(.settle(tag, .ack(multiple: multiple)))
    }

    /// Rejects a delivery (with `multiple`, every earlier unsettled one of the same consumer too); with
    /// `requeue` the broker delivers it again, otherwise it is dead-lettered or dropped.
    public func nack(_ tag: DeliveryTag, multiple: Bool = false, requeue: Bool = true) {
        _ = mailbox.submit(.settle(tag, .nack(multiple: multiple, requeue: requeue)))
    }

    /// Rejects one delivery; without `requeue` it is dead-lettered (if the queue has a dead-letter
    /// exchange) or dropped.
    public func reject(_ tag: DeliveryTag, requeue: Bool = false) {
        _ = mailbox.submit(.settle(tag, .reject(requeue: requeue)))
    }

    // MARK: Plumbing

    private func perform<T: Sendable>(_ command: (CheckedContinuation<T, any Error>) -> Command) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let command = command(continuation)
            if !mailbox.submit(command) { command.refuse(with: refusal()) }
        }
    }

    private func refusal() -> AMQPError {
        lifecycle.withLock { lifecycle in
            lifecycle == .closed
                ? AMQPError(.clientClosed, "the AMQP client is closed")
                : AMQPError(.notConnected, "the AMQP client is not connected; call connect() first")
        }
    }
}

/// The deliveries of one consumer, as an async sequence. See ``AMQPClient/consume(queue:prefetch:exclusive:arguments:)``.
public struct AMQPConsumer: AsyncSequence, Sendable {
    /// Each element is one delivery.
    public typealias Element = InboundDelivery

    /// The consumer as the client knows it.
    public let subscription: AMQPSubscription
    /// The consumer tag the broker knows this consumer by (stable across reconnects).
    public var consumerTag: String { subscription.consumerTag }
    /// The queue consumed from.
    public var queue: String { subscription.queue }
    let deliveries: AsyncThrowingStream<InboundDelivery, any Error>

    /// Iterates the deliveries.
    public func makeAsyncIterator() -> AsyncThrowingStream<InboundDelivery, any Error>.AsyncIterator {
        deliveries.makeAsyncIterator()
    }
}

/// One consumer of a queue: what ``AMQPClient/subscribe(queue:prefetch:exclusive:arguments:onEnd:onDelivery:)``
/// returns, and what an ``AMQPConsumer`` is underneath.
public struct AMQPSubscription: Sendable, Hashable {
    let id: Int
    /// The consumer tag the broker knows this consumer by (stable across reconnects).
    public let consumerTag: String
    /// The queue consumed from.
    public let queue: String
}
