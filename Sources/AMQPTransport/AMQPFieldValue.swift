import Foundation

/// An AMQP field table: message headers, or the arguments of a queue, exchange, binding or consumer.
///
/// Keys are unordered on the wire; this client encodes them sorted so that equal tables encode equally.
public typealias AMQPTable = [String: AMQPFieldValue]

/// One value in an ``AMQPTable``.
///
/// Integers of every width decode as ``int(_:)`` and encode as a signed 64-bit `l` field, which RabbitMQ
/// accepts for every numeric argument (`x-delivery-limit`, `x-max-length`, ...). Literals work:
/// `["x-queue-type": "quorum", "x-delivery-limit": 5, "x-single-active-consumer": true]`.
public enum AMQPFieldValue: Sendable, Hashable {
    /// A boolean (`t`).
    case bool(Bool)
    /// An integer; sent as a signed 64-bit field (`l`).
    case int(Int64)
    /// A floating point number; sent as a double (`d`).
    case double(Double)
    /// A UTF-8 string (`S`).
    case string(String)
    /// Raw bytes (`x`).
    case bytes(Data)
    /// A timestamp in whole seconds since 1970 (`T`).
    case timestamp(Date)
    /// An array of values (`A`).
    case array([AMQPFieldValue])
    /// A nested table (`F`).
    case table(AMQPTable)
    /// No value (`V`).
    case void

    /// The string, when this is a ``string(_:)`` (or UTF-8 ``bytes(_:)``).
    public var stringValue: String? {
        switch self {
        case .string(let value): value
        case .bytes(let data): String(data: data, encoding: .utf8)
        default: nil
        }
    }

    /// The integer, when this is an ``int(_:)``.
    public var intValue: Int64? {
        if case .int(let value) = self { value } else { nil }
    }

    /// The boolean, when this is a ``bool(_:)``.
    public var boolValue: Bool? {
        if case .bool(let value) = self { value } else { nil }
    }

    /// The nested table, when this is a ``table(_:)``.
    public var tableValue: AMQPTable? {
        if case .table(let value) = self { value } else { nil }
    }
}

extension AMQPFieldValue: ExpressibleByStringLiteral {
    /// A ``string(_:)`` literal.
    public init(stringLiteral value: String) { self = .string(value) }
}

extension AMQPFieldValue: ExpressibleByIntegerLiteral {
    /// An ``int(_:)`` literal.
    public init(integerLiteral value: Int64) { self = .int(value) }
}

extension AMQPFieldValue: ExpressibleByBooleanLiteral {
    /// A ``bool(_:)`` literal.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension AMQPFieldValue: ExpressibleByFloatLiteral {
    /// A ``double(_:)`` literal.
    public init(floatLiteral value: Double) { self = .double(value) }
}

extension AMQPFieldValue: ExpressibleByArrayLiteral {
    /// An ``array(_:)`` literal.
    public init(arrayLiteral elements: AMQPFieldValue...) { self = .array(elements) }
}

extension AMQPFieldValue: ExpressibleByDictionaryLiteral {
    /// A ``table(_:)`` literal.
    public init(dictionaryLiteral elements: (String, AMQPFieldValue)...) {
        self = .table(AMQPTable(elements, uniquingKeysWith: { _, last in last }))
    }
}
