import AMQPTransport
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import WaybillDefinition
import WaybillSimulator
import WaybillWire
import WaybillWorker

/// Where the simulated participants listen and how they answer on the wire.
public struct ParticipantConfiguration: Sendable {
    /// The topic exchange the worker publishes commands to (`commands_exchange` of the worker).
    public var commandsExchange: String = "waybill.commands"
    /// The participants' durable queue. Commands wait here while the participants are down.
    public var queue: String = "waybill.participants"
    /// Binding keys on the commands exchange; `#` takes every command (unknown routing keys get `unknown_command`).
    public var bindingKeys: [String] = ["#"]
    /// Unacknowledged commands in flight at once. Commands with a reply delay stay unacknowledged until their reply
    /// is confirmed, so this also caps how many delayed replies can be pending.
    public var prefetch: UInt16 = 1000
    /// Most replies published in one confirmed batch.
    public var maxReplyBatch: Int = 256
    /// Arguments of the queue declaration (e.g. `x-queue-type`). Redeclaring with other arguments fails (406).
    public var queueArguments: AMQPTable = [:]

    /// A configuration with the defaults above.
    public init() {}
}

/// Binds a participant (a ``ParticipantSimulator``, or any function from command to response) to RabbitMQ, as
/// docs/wire.md describes a participant: it consumes commands from a queue bound to the commands exchange, and
/// publishes each reply to the default exchange with routing key = the command's `reply_to` and its `correlation_id`.
///
/// Ack ordering: a command is acknowledged only after its reply is confirmed by the broker (or at once when the
/// response is silence). If the reply cannot be confirmed the command is rejected back to its queue, and the
/// redelivery gets the participant's remembered reply, so a reply is never lost and an effect never doubles.
///
/// Reply delays are honoured without holding up other commands: a delayed reply waits in a task of its own, then
/// joins the next confirmed batch. The caller owns the ``AMQPClient`` (connect it before ``run()``, close it after).
public final class ParticipantService: Service, Sendable {
    /// Turns a command into what to answer. Called on the consuming task, one command at a time; keep it quick.
    public typealias Responder = @Sendable (SimulatedCommand) -> SimulatedResponse

    /// Counters since the service was created.
    public struct Statistics: Sendable, Hashable {
        /// Commands consumed (redeliveries included).
        public var commands: Int
        /// Replies the broker confirmed.
        public var replies: Int
        /// Commands answered with silence.
        public var silences: Int
        /// Replies that were not confirmed (their commands went back to the queue).
        public var unconfirmedReplies: Int
        /// Commands without a `reply_to`, acknowledged and dropped.
        public var withoutReplyTo: Int
    }

    /// A reply waiting to be published, and the command it answers.
    private struct PendingReply: Sendable {
        var message: OutboundMessage
        var command: DeliveryTag
    }

    /// The settings the service runs with.
    public let configuration: ParticipantConfiguration
    private let client: AMQPClient
    private let respond: Responder
    private let logger: Logger
    private let counters = Mutex(
        Statistics(commands: 0, replies: 0, silences: 0, unconfirmedReplies: 0, withoutReplyTo: 0))

    /// A service answering with `respond`.
    public init(
        client: AMQPClient, configuration: ParticipantConfiguration = ParticipantConfiguration(), logger: Logger,
        respond: @escaping Responder
    ) {
        self.client = client
        self.configuration = configuration
        self.logger = logger
        self.respond = respond
    }

    /// A service answering with `simulator`.
    public convenience init(
        client: AMQPClient, simulator: ParticipantSimulator,
        configuration: ParticipantConfiguration = ParticipantConfiguration(), logger: Logger
    ) {
        self.init(client: client, configuration: configuration, logger: logger, respond: simulator.handle)
    }

    /// The counters so far.
    public var statistics: Statistics { counters.withLock { $0 } }

    /// Declares the commands exchange (topic, durable, as the worker does), the queue and its bindings. ``run()``
    /// calls it; call it yourself to have the queue in place before anything publishes commands.
    public func declare() async throws {
        try await client.declareExchange(ExchangeDeclaration(name: configuration.commandsExchange, kind: .topic))
        _ = try await client.declareQueue(
            QueueDeclaration(name: configuration.queue, arguments: configuration.queueArguments))
        for key in configuration.bindingKeys {
            try await client.bind(
                QueueBinding(queue: configuration.queue, exchange: configuration.commandsExchange, bindingKey: key))
        }
    }

    /// Consumes and answers commands until graceful shutdown or cancellation, then publishes the replies still
    /// pending (delays are cut short) and returns. Commands whose reply is not confirmed by then go back to the
    /// queue when the client closes.
    public func run() async throws {
        try await declare()
        let consumer = try await client.consume(queue: configuration.queue, prefetch: configuration.prefetch)
        let replies = WorkQueue<PendingReply>()
        let stop = AsyncStream<Void>.makeStream()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.publish(from: replies) }
            await withGracefulShutdownHandler {
                await withDiscardingTaskGroup { delays in
                    delays.addTask { [client] in
                        for await _ in stop.stream { break }
                        await client.cancel(consumer)
                    }
                    do {
                        for try await delivery in consumer {
                            guard let (reply, delay) = answer(delivery) else { continue }
                            if delay <= .zero {
                                replies.push(reply)
                            } else {
                                delays.addTask {
                                    try? await Task.sleep(for: delay)
                                    replies.push(reply)
                                }
                            }
                        }
                    } catch {
                        logger.error(
                            "participants stopped consuming \(configuration.queue): \(error)",
                            metadata: ["queue": .string(configuration.queue)])
                    }
                    stop.continuation.finish()
                }
            } onGracefulShutdown: {
                stop.continuation.yield()
            }
            replies.finish()
        }
    }

    /// Runs the responder; acknowledges silences at once and returns the reply to publish otherwise.
    private func answer(_ delivery: InboundDelivery) -> (PendingReply, Duration)? {
        counters.withLock { $0.commands += 1 }
        let command = Self.command(from: delivery)
        switch respond(command) {
        case .silence:
            counters.withLock { $0.silences += 1 }
            client.ack(delivery.deliveryTag)
            return nil
        case .reply(let body, let delay):
            guard let replyTo = delivery.properties.replyTo, !replyTo.isEmpty else {
                counters.withLock { $0.withoutReplyTo += 1 }
                logger.warning(
                    "command without reply_to acknowledged and dropped",
                    metadata: ["routing_key": .string(delivery.routingKey)])
                client.ack(delivery.deliveryTag)
                return nil
            }
            let message = Self.reply(body, to: delivery, replyTo: replyTo)
            return (PendingReply(message: message, command: delivery.deliveryTag), delay)
        }
    }

    private func publish(from replies: WorkQueue<PendingReply>) async {
        while let batch = await replies.nextBatch(max: configuration.maxReplyBatch) {
            let outcomes: [PublishOutcome]
            do {
                outcomes = try await client.publish(batch.map(\.message))
            } catch {
                outcomes = Array(repeating: .connectionLost, count: batch.count)
            }
            var confirmed = 0
            for (pending, outcome) in zip(batch, outcomes) {
                if outcome == .confirmed {
                    confirmed += 1
                    client.ack(pending.command)
                } else {
                    client.nack(pending.command, requeue: true)
                }
            }
            let unconfirmed = batch.count - confirmed
            counters.withLock {
                $0.replies += confirmed
                $0.unconfirmedReplies += unconfirmed
            }
            if unconfirmed > 0 {
                logger.warning("\(unconfirmed) replies not confirmed; their commands go back to the queue")
            }
        }
    }

    // MARK: - Wire

    /// Reads a command delivery as docs/wire.md defines it: routing key, `message_id`, and the `idempotency-key`,
    /// `waybill-action`, `waybill-saga-id`, `waybill-attempt` and `waybill-compensates` headers. Missing headers become
    /// empty values (the simulator answers `bad_request` for a missing idempotency key; a missing or empty
    /// `waybill-compensates` is `nil`); a body that is not JSON is `undecodable`.
    public static func command(from delivery: InboundDelivery) -> SimulatedCommand {
        let headers = delivery.properties.headers
        func text(_ name: String) -> String {
            guard let value = headers[name] else { return "" }
            return value.stringValue ?? value.intValue.map { String($0) } ?? ""
        }
        let body: SimulatedCommand.Body
        do {
            body = .json(try JSONText.decode(delivery.body))
        } catch {
            body = .undecodable(reason: "\(error)")
        }
        return SimulatedCommand(
            routingKey: delivery.routingKey, messageId: delivery.properties.messageID ?? "",
            idempotencyKey: text(WireHeader.idempotencyKey),
            action: SimulatedCommand.Action(rawValue: text(WireHeader.action)) ?? .do,
            sagaId: text(WireHeader.sagaId), attempt: Int(text(WireHeader.attempt)) ?? 1,
            compensates: text(WireHeader.compensates).isEmpty ? nil : text(WireHeader.compensates), body: body)
    }

    /// The reply to `delivery`: persistent JSON to the default exchange, routing key `replyTo`, the command's
    /// `correlation_id` (its `message_id` when it has none). The reply's `message_id` is derived from the command's,
    /// so a reply sent again after a redelivery carries the same id and the worker's inbox drops it. The command's W3C
    /// `traceparent` and `tracestate` go back on the reply, so the reply stays in the order's trace.
    public static func reply(_ body: JSONValue, to delivery: InboundDelivery, replyTo: String) -> OutboundMessage {
        let commandId = delivery.properties.messageID
        var properties = MessageProperties(
            contentType: "application/json", persistent: true,
            correlationID: delivery.properties.correlationID ?? commandId, replyTo: nil,
            messageID: commandId.map { "\($0)/reply" } ?? UUID().uuidString)
        for header in ["traceparent", "tracestate"] {
            if let value = delivery.properties.headers[header] { properties.headers[header] = value }
        }
        return OutboundMessage(
            exchange: "", routingKey: replyTo, body: Data(JSONText.encodeBytes(body)), properties: properties)
    }
}
