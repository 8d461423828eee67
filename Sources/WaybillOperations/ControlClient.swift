import AMQPTransport
import Foundation
import Logging
import WaybillWire

/// Where the broker is: the URL (never with a password in it) and the password from `WAYBILL_AMQP_PASSWORD`.
public struct BrokerSettings: Sendable {
    /// `amqp://user@host:port/vhost` or `amqps://...`.
    public var url: String
    /// The password, or `nil` for the URL's (or the client's default) credentials.
    public var password: String?

    /// Describes a broker.
    public init(url: String, password: String?) {
        self.url = url
        self.password = password
    }

    /// Settings for a URL that may carry its password (a program's own configuration, not a command line): the
    /// password moves out of the URL into ``password``.
    public static func from(urlWithPassword url: String, password: String? = nil) -> BrokerSettings {
        guard AMQPConfiguration.hasPassword(url), var components = URLComponents(string: url) else {
            return BrokerSettings(url: url, password: password)
        }
        let inURL = components.password?.removingPercentEncoding
        components.password = nil
        return BrokerSettings(url: components.string ?? url, password: password ?? inURL)
    }

    /// The client settings; a password inside the URL is refused (it would show in `ps` and shell history).
    func configuration() throws(OperationsError) -> AMQPConfiguration {
        if AMQPConfiguration.hasPassword(url) {
            throw OperationsError(
                .badArgument, "--amqp-url: do not put the password in the URL; set WAYBILL_AMQP_PASSWORD instead")
        }
        var configuration: AMQPConfiguration
        do {
            configuration = try AMQPConfiguration(url: url)
        } catch {
            throw OperationsError(.badArgument, "--amqp-url: \(error.message)", cause: error)
        }
        if let password { configuration.password = password }
        configuration.connectionName = "waybill-cli"
        configuration.connectTimeout = .seconds(10)
        return configuration
    }

    /// A logger that only reports warnings and errors (the CLI's output is for the operator, not connection chatter).
    public static var quietLogger: Logger {
        var logger = Logger(label: "waybill.cli")
        logger.logLevel = .warning
        return logger
    }

    /// A connected client.
    func connect(logger: Logger) async throws(OperationsError) -> AMQPClient {
        let configuration = try configuration()
        do {
            let client = try AMQPClient(configuration: configuration, logger: logger)
            try await client.connect()
            return client
        } catch {
            throw OperationsError(
                .broker,
                "cannot connect to the broker at \(configuration.endpoints.map(\.description).joined(separator: ", ")) as "
                    + "'\(configuration.user)'; check --amqp-url / WAYBILL_AMQP_URL and WAYBILL_AMQP_PASSWORD",
                cause: error)
        }
    }
}

/// What became of one control request.
public enum ControlResult: Sendable, Hashable {
    /// The worker answered.
    case replied(ControlReply)
    /// The worker did not answer within the wait; the request expires in its queue if nobody took it.
    case timedOut
    /// The request could not be delivered (no control queue, broker refused, connection lost).
    case failed(OperationsError)
}

/// Sends control requests to the owners of partitions and waits for their replies. ``AMQPControlChannel`` is the
/// real one; tests of the bulk runner pass their own.
public protocol ControlChannel: Sendable {
    /// Sends `message` to the partition queue `queue` (``RepairRoute/queue(of:)``) and waits at most `timeout` for
    /// the owner's reply. Check first that the partition has an owner (``RepairRoute/awaitOwners(of:)``): a request
    /// nobody consumes only times out.
    func request(_ message: ControlMessage, queue: String, timeout: Duration) async -> ControlResult
}

/// Requests over AMQP that each expect one reply: one connection, one exclusive auto-delete reply queue
/// (`waybill.cli.<uuid>`) for every request of this run, replies matched by `correlation_id`. The control protocol
/// (``AMQPControlChannel``) and a reconciliation's `verify` queries both travel this way.
public final class RequestReplyClient: Sendable {
    /// The connection, for anything else the caller publishes.
    public let client: AMQPClient
    /// The exclusive reply queue, gone when the connection closes.
    public let replyQueue: String
    private let router = ReplyRouter()

    private init(client: AMQPClient, replyQueue: String) {
        self.client = client
        self.replyQueue = replyQueue
    }

    /// How a request went.
    public enum Outcome: Sendable {
        /// The reply.
        case replied(InboundDelivery)
        /// No reply within the wait.
        case timedOut
        /// The broker did not take the request (`returned`: nothing was bound for it).
        case notSent(PublishOutcome)
        /// Publishing failed.
        case failed(any Error)
    }

    /// Connects, declares the reply queue, runs `body` with the client, then closes the connection.
    ///
    /// Replies are dispatched by a child task for as long as `body` runs.
    public static func with<T: Sendable>(
        broker: BrokerSettings, logger: Logger = BrokerSettings.quietLogger, prefetch: UInt16 = 256,
        _ body: (RequestReplyClient) async throws -> T
    ) async throws -> T {
        let client = try await broker.connect(logger: logger)
        let queue = "waybill.cli.\(UUID().uuidString.lowercased())"
        let consumer: AMQPConsumer
        do {
            _ = try await client.declareQueue(
                QueueDeclaration(name: queue, durable: false, exclusive: true, autoDelete: true))
            consumer = try await client.consume(queue: queue, prefetch: prefetch)
        } catch {
            await client.close()
            throw OperationsError(
                .broker, "cannot declare the reply queue \(queue); check the broker's permissions for this user",
                cause: error)
        }
        let channel = RequestReplyClient(client: client, replyQueue: queue)
        do {
            let result = try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await channel.dispatch(consumer) }
                defer { group.cancelAll() }
                return try await body(channel)
            }
            await client.close()
            return result
        } catch {
            await client.close()
            throw error
        }
    }

    /// Publishes `message` with `reply_to` this client's queue and a fresh `correlation_id` (and `message_id`), and
    /// waits at most `timeout` for the reply.
    public func request(_ message: OutboundMessage, timeout: Duration) async -> Outcome {
        let id = UUID().uuidString.lowercased()
        var outbound = message
        outbound.properties.correlationID = id
        outbound.properties.messageID = id
        outbound.properties.replyTo = replyQueue
        await router.register(id)
        let published: PublishOutcome
        do {
            published = try await client.publish(outbound)
        } catch {
            await router.expire(id)
            return .failed(error)
        }
        guard case .confirmed = published else {
            await router.expire(id)
            return .notSent(published)
        }
        let router = router
        let reply = await withTaskGroup(of: InboundDelivery?.self) { group in
            group.addTask { await router.wait(for: id) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                await router.expire(id)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            await router.expire(id)
            return first
        }
        return reply.map(Outcome.replied) ?? .timedOut
    }

    private func dispatch(_ consumer: AMQPConsumer) async {
        do {
            for try await delivery in consumer {
                client.ack(delivery.deliveryTag)
                guard let id = delivery.properties.correlationID else { continue }
                await router.deliver(delivery, for: id)
            }
        } catch {
            await router.failAll()
        }
    }
}

/// The control protocol over AMQP (see `ControlMessage.swift` for the wire format), on a ``RequestReplyClient``. A
/// request goes to the saga's partition queue on the default exchange with the header `waybill-input: control`, so
/// the partition's owner tells it from the starts and replies in the same queue.
public final class AMQPControlChannel: ControlChannel, Sendable {
    private let requests: RequestReplyClient

    init(requests: RequestReplyClient) {
        self.requests = requests
    }

    /// The exclusive reply queue.
    public var replyQueue: String { requests.replyQueue }

    /// Connects, declares the reply queue, runs `body` with the channel, then closes the connection.
    public static func with<T: Sendable>(
        broker: BrokerSettings, logger: Logger = BrokerSettings.quietLogger,
        _ body: (AMQPControlChannel) async throws -> T
    ) async throws -> T {
        try await RequestReplyClient.with(broker: broker, logger: logger) { requests in
            try await body(AMQPControlChannel(requests: requests))
        }
    }

    public func request(_ message: ControlMessage, queue: String, timeout: Duration) async -> ControlResult {
        let properties = MessageProperties(
            contentType: ControlMessage.contentType,
            headers: [WireHeader.input: .string(PartitionInput.control.rawValue)], persistent: true,
            expiration: String(max(1, timeout.milliseconds)), timestamp: Date(), appID: "waybill-cli")
        let outbound = OutboundMessage(
            exchange: "", routingKey: queue, body: Data(message.encoded()), mandatory: true, properties: properties)
        switch await requests.request(outbound, timeout: timeout) {
        case .replied(let delivery):
            do {
                return .replied(try ControlReply.decode(delivery.body))
            } catch {
                return .replied(ControlReply(status: .error, message: "unreadable reply from the worker: \(error)"))
            }
        case .timedOut:
            return .timedOut
        case .failed(let error):
            return .failed(
                OperationsError(.broker, "cannot publish to \(queue); check the broker and try again", cause: error))
        case .notSent(.returned):
            return .failed(
                OperationsError(
                    .broker,
                    "no queue \(queue) on this broker: no worker of this pool ever started here, or the pool name "
                        + "is wrong (--pool-name, pool_name in --config, WAYBILL_POOL_NAME); nothing was sent"))
        case .notSent(let outcome):
            return .failed(
                OperationsError(
                    .broker, "the broker did not take the request for \(queue) (\(outcome)); nothing was sent"))
        }
    }
}

/// Matches replies to waiting requests by correlation id; replies that arrive before their waiter are kept.
actor ReplyRouter {
    private var waiting: [String: CheckedContinuation<InboundDelivery?, Never>] = [:]
    private var arrived: [String: InboundDelivery] = [:]
    private var open: Set<String> = []

    func register(_ id: String) {
        open.insert(id)
    }

    func wait(for id: String) async -> InboundDelivery? {
        if let reply = arrived.removeValue(forKey: id) { return reply }
        guard open.contains(id) else { return nil }
        return await withCheckedContinuation { waiting[id] = $0 }
    }

    func deliver(_ reply: InboundDelivery, for id: String) {
        guard open.contains(id) else { return }
        if let continuation = waiting.removeValue(forKey: id) {
            open.remove(id)
            continuation.resume(returning: reply)
        } else {
            arrived[id] = reply
        }
    }

    func expire(_ id: String) {
        open.remove(id)
        arrived.removeValue(forKey: id)
        waiting.removeValue(forKey: id)?.resume(returning: nil)
    }

    func failAll() {
        for continuation in waiting.values { continuation.resume(returning: nil) }
        waiting = [:]
        open = []
    }
}
