import SagaEngine
import WaybillDefinition

/// The header names Waybill puts on commands and dead-lettered messages (docs/wire.md). Participants read them; the
/// worker writes them.
public enum WireHeader {
    /// Stable across retries of the same step of the same saga (and branch): `<sagaId>/<stepId>[/<branch>][/compensate]`.
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
    /// On dead-lettered messages: why the worker refused it.
    public static let error = "x-waybill-error"
}

/// The AMQP `content_type` values of Waybill's messages.
public enum WireContentType {
    /// Commands, replies, start messages and control messages.
    public static let json = "application/json"
    /// Milestone events: CloudEvents 1.0 in structured mode.
    public static let cloudEvents = "application/cloudevents+json"
}

/// Why an incoming message cannot be used; the text goes to the `x-waybill-error` header or the journal.
public struct WireRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong with the message, for people (never its payload).
    public var reason: String

    /// A refusal with its reason.
    public init(_ reason: String) {
        self.reason = reason
    }

    /// The reason.
    public var description: String { reason }
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
            throw WireRefusal("start message is not JSON: \(error)")
        }
        guard case .object = input else {
            throw WireRefusal("start message must be a JSON object, got \(input.typeName)")
        }
        let sagaId: String
        do {
            sagaId = try definition.trigger.sagaId.evaluateString(
                in: EvaluationScope(input: input, sagaId: "", workflow: definition.name))
        } catch {
            throw WireRefusal("start message has no saga id: \(error)")
        }
        guard !sagaId.isEmpty else { throw WireRefusal("start message has an empty saga id") }
        let limit = maxSagaIdBytes(workflow: definition.name)
        guard sagaId.utf8.count <= limit else {
            throw WireRefusal(
                "start message has a saga id of \(sagaId.utf8.count) bytes; workflow \(definition.name) allows at most "
                    + "\(limit), because message ids (<workflow>/<saga id>/m<n>) and routing keys are AMQP short "
                    + "strings of at most 255 bytes")
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
            throw WireRefusal("reply is not JSON: \(error)")
        }
        switch value["status"]?.stringValue {
        case "ok":
            return .ok(output: value["output"])
        case "error":
            guard let code = value["code"]?.stringValue, !code.isEmpty else {
                throw WireRefusal("error reply without a string 'code'")
            }
            let retryable: Bool
            switch value["retryable"] {
            case .bool(let flag)?: retryable = flag
            case nil, .null?: retryable = false
            default: throw WireRefusal("error reply with a non-boolean 'retryable'")
            }
            return .error(StepError(code: code, message: value["message"]?.stringValue ?? "", retryable: retryable))
        default:
            throw WireRefusal("reply needs \"status\": \"ok\" or \"error\"")
        }
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
