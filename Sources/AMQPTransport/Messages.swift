import Foundation

/// The AMQP basic properties of a message. Every field is optional on the wire; `nil` means "not set".
public struct MessageProperties: Sendable, Hashable {
    /// MIME type of the body, e.g. `application/json`.
    public var contentType: String?
    /// Encoding of the body, e.g. `gzip`.
    public var contentEncoding: String?
    /// Application headers.
    public var headers: AMQPTable
    /// `true` for delivery mode 2: a durable queue keeps the message across a broker restart.
    public var persistent: Bool
    /// Message priority (0-9), for priority queues.
    public var priority: UInt8?
    /// Correlates a reply with its request.
    public var correlationID: String?
    /// The queue a reply should be published to (through the default exchange).
    public var replyTo: String?
    /// Per-message TTL in milliseconds, as a decimal string.
    public var expiration: String?
    /// Application message identifier. A mandatory publish without one gets a generated UUID, because
    /// returned messages are matched to their publish by message id.
    public var messageID: String?
    /// When the message was created (whole seconds on the wire).
    public var timestamp: Date?
    /// Application message type name.
    public var type: String?
    /// The publishing user; RabbitMQ rejects a value other than the connection's user.
    public var userID: String?
    /// The publishing application.
    public var appID: String?

    /// Creates properties; every field defaults to "not set" and `persistent` to `false`.
    public init(
        contentType: String? = nil, contentEncoding: String? = nil, headers: AMQPTable = [:],
        persistent: Bool = false, priority: UInt8? = nil, correlationID: String? = nil, replyTo: String? = nil,
        expiration: String? = nil, messageID: String? = nil, timestamp: Date? = nil, type: String? = nil,
        userID: String? = nil, appID: String? = nil
    ) {
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.headers = headers
        self.persistent = persistent
        self.priority = priority
        self.correlationID = correlationID
        self.replyTo = replyTo
        self.expiration = expiration
        self.messageID = messageID
        self.timestamp = timestamp
        self.type = type
        self.userID = userID
        self.appID = appID
    }
}

/// A message to publish with ``AMQPClient/publish(_:)``.
public struct OutboundMessage: Sendable, Hashable {
    /// Exchange name; `""` is the default exchange, which routes by queue name.
    public var exchange: String
    /// Routing key (for the default exchange: the queue name).
    public var routingKey: String
    /// The body, sent as is.
    public var body: Data
    /// Ask the broker to return the message (outcome ``PublishOutcome/returned(replyCode:replyText:)``)
    /// when no queue is bound for it, instead of dropping it silently.
    public var mandatory: Bool
    /// Properties and headers.
    public var properties: MessageProperties

    /// Creates a message. The flat parameters fill ``properties``.
    public init(
        exchange: String, routingKey: String, body: Data, mandatory: Bool = false, persistent: Bool = false,
        contentType: String? = nil, messageID: String? = nil, correlationID: String? = nil, replyTo: String? = nil,
        type: String? = nil, timestamp: Date? = nil, headers: AMQPTable = [:]
    ) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.body = body
        self.mandatory = mandatory
        self.properties = MessageProperties(
            contentType: contentType, headers: headers, persistent: persistent, correlationID: correlationID,
            replyTo: replyTo, messageID: messageID, timestamp: timestamp, type: type)
    }

    /// Creates a message with full control over its properties.
    public init(
        exchange: String, routingKey: String, body: Data, mandatory: Bool = false, properties: MessageProperties
    ) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.body = body
        self.mandatory = mandatory
        self.properties = properties
    }
}

/// What the broker did with one published message.
public enum PublishOutcome: Sendable, Hashable {
    /// The broker took responsibility for the message (publisher confirm `basic.ack`).
    case confirmed
    /// The broker could not take the message (`basic.nack`, e.g. a full queue with `reject-publish`).
    /// Publish it again later.
    case nacked
    /// A mandatory message no queue was bound for came back (`basic.return`); it is not in any queue.
    case returned(replyCode: UInt16, replyText: String)
    /// The connection dropped before the broker confirmed the message. Treat it as not sent: it may or may
    /// not have reached a queue, so publish it again (consumers must tolerate duplicates).
    case connectionLost
    /// The broker closed the publishing channel before confirming the message (e.g. 404: the exchange
    /// does not exist). The error carries the broker's reply; the client has reopened the channel.
    /// Treat the message as not sent.
    case rejected(AMQPError)

    /// `true` only for ``confirmed``.
    public var isConfirmed: Bool { self == .confirmed }
}

/// Identifies a delivery for ``AMQPClient/ack(_:multiple:)`` and friends.
///
/// Delivery tags are only meaningful on the channel incarnation that delivered them. ``generation`` names
/// that incarnation: it changes whenever the consumer's channel is reopened (after a reconnect or a channel
/// error). The client silently drops settlements whose generation is not current, because the broker has
/// already put those messages back in the queue and will deliver them again with `redelivered` set.
public struct DeliveryTag: Sendable, Hashable, CustomStringConvertible {
    /// The broker's delivery tag on the consumer's channel.
    public var value: UInt64
    /// The channel incarnation that delivered the message; see the type's documentation.
    public var generation: UInt64
    /// The channel number the consumer used.
    public var channel: UInt16

    /// Creates a tag (normally you get one from ``InboundDelivery/deliveryTag``).
    public init(value: UInt64, generation: UInt64, channel: UInt16) {
        self.value = value
        self.generation = generation
        self.channel = channel
    }

    /// `7@g3/ch4`.
    public var description: String { "\(value)@g\(generation)/ch\(channel)" }
}

/// A message delivered to a consumer. Settle it with ``AMQPClient/ack(_:multiple:)``,
/// ``AMQPClient/nack(_:multiple:requeue:)`` or ``AMQPClient/reject(_:requeue:)``.
public struct InboundDelivery: Sendable, Hashable {
    /// The tag to settle this delivery with, including its channel generation.
    public var deliveryTag: DeliveryTag
    /// The consumer tag of the consumer that received the message.
    public var consumerTag: String
    /// `true` when the broker delivered this message before (to this or another consumer) without an ack.
    public var redelivered: Bool
    /// The exchange the message was published to (`""` for the default exchange).
    public var exchange: String
    /// The routing key it was published with.
    public var routingKey: String
    /// Properties and headers as published.
    public var properties: MessageProperties
    /// The body.
    public var body: Data

    /// The channel generation of ``deliveryTag``; see ``DeliveryTag``.
    public var generation: UInt64 { deliveryTag.generation }

    /// Creates a delivery (the client does this; tests may too).
    public init(
        deliveryTag: DeliveryTag, consumerTag: String, redelivered: Bool, exchange: String, routingKey: String,
        properties: MessageProperties, body: Data
    ) {
        self.deliveryTag = deliveryTag
        self.consumerTag = consumerTag
        self.redelivered = redelivered
        self.exchange = exchange
        self.routingKey = routingKey
        self.properties = properties
        self.body = body
    }
}
