import WaybillDefinition

/// A command as a participant receives it (docs/wire.md, "Commands"): the routing key, the properties and headers a
/// participant reads, and the body.
///
/// An AMQP binding builds one per delivery: `routingKey` from the delivery, `messageId` from `message_id`, the rest
/// from the `idempotency-key`, `waybill-action`, `waybill-saga-id`, `waybill-attempt` and `waybill-compensates`
/// headers.
public struct SimulatedCommand: Sendable, Hashable {
    /// The `waybill-action` header: whether the saga is moving forward or undoing a step.
    public enum Action: String, Sendable, Hashable, CaseIterable {
        /// A forward step.
        case `do`
        /// A compensation (undo) of an earlier step.
        case compensate
        /// A reconciliation's question: is the effect of the forward command with this idempotency key in place?
        /// Answered from the ledger (`applied`, `undone` or `absent`); nothing changes.
        case verify
    }

    /// The message body as the participant got it.
    public enum Body: Sendable, Hashable {
        /// A body that parsed as JSON.
        case json(JSONValue)
        /// Bytes that are not JSON. The simulator answers `bad_request`; `reason` goes into the reply's message.
        case undecodable(reason: String)
    }

    /// The routing key on the commands exchange; it alone decides which participant and operation run.
    public var routingKey: String
    /// The `message_id` (unique per attempt); the binding copies it into the reply's `correlation_id`.
    public var messageId: String
    /// The `idempotency-key` header, stable across retries of the same step, branch, round and direction
    /// (`<sagaId>/<stepId>[/<branch>][/r<round>][/compensate]`). Effects are applied once per key and routing key.
    public var idempotencyKey: String
    /// The `waybill-action` header. Only used to pick a ``CommandBehaviour``; the routing key decides what runs.
    public var action: Action
    /// The `waybill-saga-id` header: which saga holds what this command creates (reservations, shipments).
    public var sagaId: String
    /// The `waybill-attempt` header (1-based). Part of the key of the command's random draws, so a retry gets a
    /// fresh chance of an injected failure.
    public var attempt: Int
    /// The body: the step's evaluated `input`.
    public var body: Body
    /// The `waybill-compensates` header of a compensation: the idempotency key of the forward command it undoes. The
    /// participant finds the effect to undo by it first (the body's ids may be null when the forward reply never
    /// came), and answers "nothing to undo" when that command never took effect. `nil` on forward commands.
    public var compensates: String?

    /// A command with any body.
    public init(
        routingKey: String, messageId: String, idempotencyKey: String, action: Action = .do, sagaId: String,
        attempt: Int = 1, compensates: String? = nil, body: Body
    ) {
        self.routingKey = routingKey
        self.messageId = messageId
        self.idempotencyKey = idempotencyKey
        self.action = action
        self.sagaId = sagaId
        self.attempt = attempt
        self.compensates = compensates
        self.body = body
    }

    /// A command with a JSON body.
    public init(
        routingKey: String, messageId: String, idempotencyKey: String, action: Action = .do, sagaId: String,
        attempt: Int = 1, compensates: String? = nil, json: JSONValue
    ) {
        self.init(
            routingKey: routingKey, messageId: messageId, idempotencyKey: idempotencyKey, action: action,
            sagaId: sagaId, attempt: attempt, compensates: compensates, body: .json(json))
    }
}

/// What the simulator does with a command: reply after a delay, or say nothing.
public enum SimulatedResponse: Sendable, Hashable {
    /// Publish `body` (a reply body, docs/wire.md) to the command's `reply_to` once `after` has passed. The in-process
    /// API does not wait; the caller (the AMQP binding, a test) honours the delay or ignores it.
    case reply(body: JSONValue, after: Duration)
    /// Publish nothing: the saga's reply timeout will fire.
    case silence

    /// The reply body, or `nil` for ``silence``.
    public var body: JSONValue? {
        if case .reply(let body, _) = self { return body }
        return nil
    }

    /// The delay before the reply, or `nil` for ``silence``.
    public var delay: Duration? {
        if case .reply(_, let delay) = self { return delay }
        return nil
    }

    /// Whether this is a reply with `"status": "ok"`.
    public var isOK: Bool { body?["status"] == "ok" }

    /// The `output` of an ok reply, or `nil`.
    public var output: JSONValue? { isOK ? body?["output"] : nil }

    /// The `code` of an error reply, or `nil` for ok replies and ``silence``.
    public var errorCode: String? { body?["status"] == "error" ? body?["code"]?.stringValue : nil }

    /// The `retryable` flag of an error reply, or `nil` for ok replies and ``silence``.
    public var isRetryable: Bool? {
        guard body?["status"] == "error", case .bool(let flag)? = body?["retryable"] else { return nil }
        return flag
    }
}

/// The error codes simulated participants answer with (the reply's `code`).
public enum SimulatedErrorCode: String, Sendable, Hashable, CaseIterable {
    /// Injected: the participant is overloaded; retryable, nothing was applied.
    case busy
    /// Injected: the participant refuses the command; not retryable, nothing was applied.
    case rejected
    /// The warehouse no longer has the units a release asks for; not retryable, nothing was applied.
    case outOfStock = "out_of_stock"
    /// A release for a shipment id that is already released with other lines; not retryable.
    case conflict
    /// A forward command whose compensation already ran (it arrived after its undo: a redelivery, or a command that
    /// sat in a queue); refused so the undo stays final. Not retryable, nothing was applied.
    case alreadyCompensated = "already_compensated"
    /// Billing cannot pay the customer (a closed account: the simulator's customers whose id starts with `closed-`);
    /// not retryable, nothing was applied.
    case accountClosed = "account_closed"
    /// No simulated participant handles the routing key; not retryable.
    case unknownCommand = "unknown_command"
    /// The body is not JSON, lacks a field or has a field of the wrong type, or the idempotency key is missing;
    /// not retryable.
    case badRequest = "bad_request"

    /// Whether a saga may retry after this error.
    public var isRetryable: Bool { self == .busy }
}

extension SimulatedErrorCode {
    /// The reply body of this error (`{"status":"error","code":...,"message":...,"retryable":...}`).
    func reply(_ message: String) -> JSONValue {
        ["status": "error", "code": .string(rawValue), "message": .string(message), "retryable": .bool(isRetryable)]
    }
}

/// The body of a success reply (`{"status":"ok","output":...}`).
func okReply(_ output: JSONValue) -> JSONValue {
    ["status": "ok", "output": output]
}
