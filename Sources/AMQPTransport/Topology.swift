/// The routing algorithm of an exchange.
public struct ExchangeKind: RawRepresentable, Hashable, Sendable {
    /// The broker's type name, e.g. `topic`.
    public let rawValue: String

    /// Creates a kind from the broker's type name (for plugin exchanges not listed here).
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Routes by exact routing key.
    public static let direct = ExchangeKind(rawValue: "direct")
    /// Routes by routing-key pattern (`order.*`, `wms.#`).
    public static let topic = ExchangeKind(rawValue: "topic")
    /// Routes to every bound queue.
    public static let fanout = ExchangeKind(rawValue: "fanout")
    /// Routes by headers.
    public static let headers = ExchangeKind(rawValue: "headers")
    /// Spreads routing keys over bound queues by hash; the binding key is the queue's weight (e.g. `"1"`).
    /// Needs the `rabbitmq_consistent_hash_exchange` plugin (the test broker enables it).
    public static let consistentHash = ExchangeKind(rawValue: "x-consistent-hash")
}

/// An exchange to declare. Declared exchanges are declared again after every reconnect.
public struct ExchangeDeclaration: Sendable, Hashable {
    /// The exchange name; must not be empty or start with `amq.`.
    public var name: String
    /// Its routing algorithm.
    public var kind: ExchangeKind
    /// Survives a broker restart.
    public var durable: Bool
    /// Deleted by the broker when its last binding goes.
    public var autoDelete: Bool
    /// Only other exchanges can publish to it.
    public var `internal`: Bool
    /// Extra arguments, e.g. `alternate-exchange`.
    public var arguments: AMQPTable

    /// Creates a declaration; exchanges are durable by default.
    public init(
        name: String, kind: ExchangeKind, durable: Bool = true, autoDelete: Bool = false, internal: Bool = false,
        arguments: AMQPTable = [:]
    ) {
        self.name = name
        self.kind = kind
        self.durable = durable
        self.autoDelete = autoDelete
        self.internal = `internal`
        self.arguments = arguments
    }
}

/// A queue to declare. Declared queues are declared again after every reconnect, so the name must be
/// chosen by the client (server-named queues are refused): a reply queue that should vanish with the
/// connection is `exclusive` with a name like `waybill.replies.<worker id>`.
public struct QueueDeclaration: Sendable, Hashable {
    /// The queue name; must not be empty.
    public var name: String
    /// Survives a broker restart (required for quorum queues).
    public var durable: Bool
    /// Used only by this connection and deleted when it closes (it is declared anew after a reconnect).
    public var exclusive: Bool
    /// Deleted by the broker when its last consumer goes.
    public var autoDelete: Bool
    /// Queue arguments: `x-queue-type: quorum`, `x-delivery-limit`, `x-dead-letter-exchange`,
    /// `x-dead-letter-routing-key`, `x-single-active-consumer`, `x-max-length`, `x-overflow`, `x-message-ttl`...
    /// Redeclaring an existing queue with different arguments closes the channel with 406.
    public var arguments: AMQPTable

    /// Creates a declaration; queues are durable by default.
    public init(
        name: String, durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false,
        arguments: AMQPTable = [:]
    ) {
        self.name = name
        self.durable = durable
        self.exclusive = exclusive
        self.autoDelete = autoDelete
        self.arguments = arguments
    }
}

/// A binding of a queue to an exchange. Bindings are declared again after every reconnect.
public struct QueueBinding: Sendable, Hashable {
    /// The bound queue.
    public var queue: String
    /// The source exchange.
    public var exchange: String
    /// The binding key (a pattern for topic exchanges, a weight for consistent-hash exchanges).
    public var bindingKey: String
    /// Binding arguments (headers exchanges).
    public var arguments: AMQPTable

    /// Creates a binding.
    public init(queue: String, exchange: String, bindingKey: String, arguments: AMQPTable = [:]) {
        self.queue = queue
        self.exchange = exchange
        self.bindingKey = bindingKey
        self.arguments = arguments
    }
}

/// What the broker reports about a queue.
public struct QueueInfo: Sendable, Hashable {
    /// The queue name.
    public var name: String
    /// Messages ready for delivery (not counting delivered-but-unacknowledged ones).
    public var messageCount: UInt32
    /// Active consumers.
    public var consumerCount: UInt32

    /// Creates queue information.
    public init(name: String, messageCount: UInt32, consumerCount: UInt32) {
        self.name = name
        self.messageCount = messageCount
        self.consumerCount = consumerCount
    }
}
