import CodedError
import SagaEngine
import WaybillDefinition

/// The header names Waybill puts on commands and dead-lettered messages (docs/wire.md). Participants read them; the
/// worker writes them.
public enum WireHeader {
    /// Stable across retries of the same step of the same saga (and branch):
    /// `<sagaId>/<stepId>[/<branch>][/r<round>][/compensate]`.
    public static let idempotencyKey = "idempotency-key"
    /// The saga id.
    public static let sagaId = "waybill-saga-id"
    /// The saga's workflow name.
    public static let workflow = "waybill-workflow"
    /// The step id.
    public static let step = "waybill-step"
    /// `do` or `compensate`.
    public static let action = "waybill-action"
    /// The 1-based attempt number.
    public static let attempt = "waybill-attempt"
    /// Only on compensations: the `idempotency-key` of the forward command this one undoes
    /// (`<sagaId>/<stepId>[/<branch>][/r<round>]`). A participant finds the effect to undo by it, because the forward
    /// command's reply (and its output) may never have arrived; an effect it never applied means nothing to undo.
    public static let compensates = "waybill-compensates"
    /// On dead-lettered messages: why the worker refused it (`wire.<code>: message`).
    public static let error = "x-waybill-error"
    /// On dead-lettered messages: the queue it was consumed from.
    public static let deadLetterSource = "x-waybill-source"
    /// On dead-lettered messages: the exchange it was first published to (where a replay sends it again).
    public static let deadLetterExchange = "x-waybill-exchange"
    /// On dead-lettered messages: the routing key it was first published with.
    public static let deadLetterRoutingKey = "x-waybill-routing-key"
    /// On dead-lettered messages: when the worker dead-lettered it (an AMQP timestamp, whole seconds, as RabbitMQ's
    /// own `x-death` time is).
    public static let deadLetteredAt = "x-waybill-dead-lettered-at"
    /// Every header a worker adds when it dead-letters a message; a replay strips them.
    public static let deadLetterHeaders = [
        error, deadLetterSource, deadLetterExchange, deadLetterRoutingKey, deadLetteredAt,
    ]
    /// On messages in a partition queue: what the message is, `start` (forwarded by a worker) or `control` (an
    /// operator's repair); a message without it is a participant's reply.
    public static let input = "waybill-input"
    /// On milestone events: the event type (`order.shipped`), the same as the CloudEvents `type` and the routing key,
    /// so a consumer can filter without reading the body.
    public static let eventType = "waybill-event-type"
    /// On milestone events: the version of the layout of the event's `data` (``EventSchema/version``) as text.
    public static let eventSchema = "waybill-event-schema"
    /// On a replayed milestone event (`waybill events replay`): the replay that sent the copy, the same as the
    /// CloudEvents `waybillreplay` attribute. The event keeps its original id.
    public static let replay = "waybill-replay"
}

/// A reconciliation's question to a participant (docs/wire.md, "Verify queries"): is the effect of the forward
/// command with this `idempotency-key` in place? Sent like a command (`waybill-action: verify`, `reply_to`,
/// `correlation_id`), answered like one, with `output.state` `applied`, `undone` or `absent` and optional
/// `output.details`.
public enum VerifyQuery {
    /// The `waybill-action` header of a query.
    public static let action = "verify"

    /// What the participant says about the effect.
    public enum State: String, Sendable, Hashable, CaseIterable, Codable {
        /// In place.
        case applied
        /// It was applied, then undone.
        case undone
        /// The participant has no trace of it.
        case absent
    }

    /// What a reply to a query says.
    public enum Answer: Sendable, Hashable {
        /// The effect's state, with the participant's details (`nil` when it gave none).
        case state(State, details: JSONValue?)
        /// The participant could not answer (an error reply): its code and message.
        case refused(code: String, message: String)
        /// The reply is not an answer: why.
        case unreadable(String)
    }

    /// Reads a reply body.
    public static func answer(_ body: some Collection<UInt8>) -> Answer {
        let outcome: ReplyOutcome
        do {
            outcome = try WireMessages.reply(body)
        } catch {
            return .unreadable(error.message)
        }
        switch outcome {
        case .ok(let output):
            guard let text = output?["state"]?.stringValue, let state = State(rawValue: text) else {
                return .unreadable(
                    "an ok reply must say output.state: \(State.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return .state(state, details: output?["details"])
        case .error(let error):
            return .refused(code: error.code, message: error.message)
        }
    }
}

/// The layout of the `data` of milestone events (docs/events.md).
public enum EventSchema {
    /// The version of the layout, sent as `data.schemaVersion` and in the `waybill-event-schema` header. Under one
    /// version fields are only ever added, so a consumer must ignore fields it does not know; removing, renaming or
    /// retyping a field bumps it.
    public static let version = 1

    /// The CloudEvents `dataschema` of an event of `type`: `urn:waybill:event:<type>:v<version>`, the `$id` of the JSON
    /// Schema of its `data` (the repository ships one per event of the shipped workflows, in
    /// `schemas/events/<type>.v<version>.json`; docs/events.md).
    public static func identifier(of type: String) -> String {
        "urn:waybill:event:\(type):v\(version)"
    }
}

/// The queues of a worker pool, named after the pool (`pool_name`, `waybill` by default) so that several pools can
/// share a broker.
public enum PoolQueues {
    /// The queue of one partition: every start, reply and repair for the partition's sagas, consumed by its owner
    /// alone (a quorum queue with single-active-consumer), e.g. `waybill.p07`. It is the `reply_to` of the
    /// partition's commands, so replies reach whichever worker owns the saga when they arrive.
    public static func partition(_ partition: Int, pool: String) -> String {
        "\(pool).\(partition < 10 ? "p0" : "p")\(partition)"
    }

    /// The partition a partition queue's name stands for, or `nil` for another name.
    public static func partition(ofQueue queue: String, pool: String) -> Int? {
        guard queue.hasPrefix(pool + ".p") else { return nil }
        return Int(queue.dropFirst(pool.count + 2))
    }
}

/// The value of ``WireHeader/input`` on the messages of a partition queue.
public enum PartitionInput: String, Sendable {
    /// A start message, forwarded by a worker to its saga's partition; `waybill-workflow` names the workflow.
    case start
    /// An operator's repair (``ControlMessage``).
    case control
}

/// The AMQP `content_type` values of Waybill's messages.
public enum WireContentType {
    /// Commands, replies, start messages and control messages.
    public static let json = "application/json"
    /// Milestone events: CloudEvents 1.0 in structured mode.
    public static let cloudEvents = "application/cloudevents+json"
}

/// Why an incoming message cannot be used. The worker dead-letters it with the description, `code: message (cause)`,
/// in the `x-waybill-error` header (docs/wire.md), or journals it for the saga a malformed reply belongs to.
///
/// Scripts match on the code at the start of the header, never on the message. Messages name fields and sizes,
/// never the payload; the cause is why the body could not be read (a ``JSONTextError`` or an ``EvaluationError``),
/// if that is the reason.
public typealias WireRefusal = CodedError<WireRefusalDomain>

/// The wire's refusal family (``WireRefusal``): its codes are `wire.<snake_case>`.
public enum WireRefusalDomain: ErrorDomain {}

/// What is wrong with a message: the raw values (`wire.<snake_case>`) are stable and start the `x-waybill-error`
/// header, so scripts may match on them.
extension ErrorCode where Domain == WireRefusalDomain {
    /// The body is not JSON.
    public static let notJSON = Self(rawValue: "wire.not_json")
    /// A start message whose body is JSON but not an object.
    public static let notAnObject = Self(rawValue: "wire.not_an_object")
    /// A start message that does not have the shape its workflow declares under `input:`; the message names the JSON
    /// path of the first problem.
    public static let badInput = Self(rawValue: "wire.bad_input")
    /// The workflow's `trigger.saga_id` does not find a saga id in the start message, or finds an empty one.
    public static let noSagaId = Self(rawValue: "wire.no_saga_id")
    /// The saga id is too long for the AMQP short strings Waybill mints from it.
    public static let sagaIdTooLong = Self(rawValue: "wire.saga_id_too_long")
    /// A reply body that is JSON but not `{"status":"ok",...}` or `{"status":"error","code":...}`.
    public static let badReply = Self(rawValue: "wire.bad_reply")
    /// The body is larger than the worker's `max_message_bytes`.
    public static let tooLarge = Self(rawValue: "wire.too_large")
    /// A reply whose `correlation_id` is not a message id Waybill minted.
    public static let unknownCorrelationId = Self(rawValue: "wire.unknown_correlation_id")
    /// A control message (an operator's repair) that cannot be used and has no `reply_to` to be told so.
    public static let badControl = Self(rawValue: "wire.bad_control")
    /// A message in a partition queue whose `waybill-input` header is neither `start` nor `control`, or a forwarded
    /// start for a workflow this worker does not run.
    public static let unknownInput = Self(rawValue: "wire.unknown_input")
}

/// How Waybill reads what arrives on the wire (docs/wire.md): start messages, replies and the ids it minted itself.
/// The worker and the simulated participants read through these, so both sides agree.
public enum WireMessages {
    /// Parses a start message body and evaluates the workflow's saga id.
    public static func start(
        _ body: some Collection<UInt8>, definition: WorkflowDefinition
    ) throws(WireRefusal) -> (
        sagaId: String, input: JSONValue
    ) {
        let input: JSONValue
        do {
            input = try JSONText.decode(body)
        } catch {
            throw WireRefusal(.notJSON, "start message is not JSON; publish the order as a JSON object", cause: error)
        }
        guard case .object = input else {
            throw WireRefusal(.notAnObject, "start message must be a JSON object, got \(input.typeName)")
        }
        let sagaId: String
        do {
            sagaId = try definition.trigger.sagaId.evaluateString(
                in: EvaluationScope(input: input, sagaId: "", workflow: definition.name))
        } catch {
            throw WireRefusal(
                .noSagaId, "start message has no saga id where the workflow's trigger.saga_id looks for it",
                cause: error)
        }
        guard !sagaId.isEmpty else {
            throw WireRefusal(.noSagaId, "start message has an empty saga id; publish the order with its id")
        }
        let limit = maxSagaIdBytes(workflow: definition.name)
        guard sagaId.utf8.count <= limit else {
            throw WireRefusal(
                .sagaIdTooLong,
                "start message has a saga id of \(sagaId.utf8.count) bytes; workflow \(definition.name) allows at most "
                    + "\(limit), because message ids (<workflow>/<saga id>/m<n>) and routing keys are AMQP short "
                    + "strings of at most 255 bytes")
        }
        if let problem = definition.input?.problem(in: input) {
            throw WireRefusal(
                .badInput,
                "start message does not have the input workflow \(definition.name) declares: \(problem); fix the "
                    + "order and publish it again")
        }
        return (sagaId, input)
    }

    /// The longest saga id (in UTF-8 bytes) whose minted ids, `<workflow>/<saga id>/<letter><sequence>`, fit the
    /// 255-byte AMQP short strings they travel in (`message_id`, `correlation_id`); 20 bytes are kept for the letter
    /// and the sequence number.
    public static func maxSagaIdBytes(workflow: String) -> Int {
        255 - workflow.utf8.count - 2 - 20
    }

    /// Parses a reply body: `{"status":"ok","output":...}` or `{"status":"error","code":...,"retryable":...}`.
    public static func reply(_ body: some Collection<UInt8>) throws(WireRefusal) -> ReplyOutcome {
        let value: JSONValue
        do {
            value = try JSONText.decode(body)
        } catch {
            throw WireRefusal(.notJSON, "reply is not JSON", cause: error)
        }
        switch value["status"]?.stringValue {
        case "ok":
            return .ok(output: value["output"])
        case "error":
            guard let code = value["code"]?.stringValue, !code.isEmpty else {
                throw WireRefusal(.badReply, "error reply without a string 'code'")
            }
            let retryable: Bool
            switch value["retryable"] {
            case .bool(let flag)?: retryable = flag
            case nil, .null?: retryable = false
            default: throw WireRefusal(.badReply, "error reply with a non-boolean 'retryable'")
            }
            return .error(StepError(code: code, message: value["message"]?.stringValue ?? "", retryable: retryable))
        default:
            throw WireRefusal(.badReply, "reply needs \"status\": \"ok\" or \"error\"")
        }
    }

    /// The `retry_after` of a `rate_limited` reply: seconds (a number) before the participant takes commands again;
    /// `nil` when the reply has none or it is not a positive number.
    public static func retryAfter(_ body: some Collection<UInt8>) -> Duration? {
        guard let seconds = (try? JSONText.decode(body))?["retry_after"]?.numberValue, seconds > 0, seconds.isFinite
        else { return nil }
        return .milliseconds(Int64(min(seconds, 3_600) * 1_000))
    }

    /// The saga a command's message id (a reply's `correlation_id`) belongs to: ids are `<workflow>/<saga id>/m<n>`.
    public static func sagaKey(fromMessageId id: String) -> SagaKey? {
        guard let slash = id.firstIndex(of: "/"), let last = id.lastIndex(of: "/"), slash < last else { return nil }
        let workflow = String(id[..<slash])
        let sagaId = String(id[id.index(after: slash)..<last])
        guard !workflow.isEmpty, !sagaId.isEmpty else { return nil }
        return SagaKey(workflow: workflow, id: sagaId)
    }
}
