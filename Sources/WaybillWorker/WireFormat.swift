import Foundation
import SagaEngine
import SagaStore
import WaybillDefinition

/// SPEC §2 on the wire: how commands and milestone events are encoded, and how start messages and replies are read.
///
/// This is the only place that knows header names and body shapes, so participants, tests and the relay agree.
public struct WireFormat: Sendable {
    /// The topic exchange commands are published to.
    public var commandsExchange: String
    /// The topic exchange milestone events are published to.
    public var eventsExchange: String
    /// The worker's reply queue, sent as `reply_to`.
    public var replyQueue: String

    public init(commandsExchange: String, eventsExchange: String, replyQueue: String) {
        self.commandsExchange = commandsExchange
        self.eventsExchange = eventsExchange
        self.replyQueue = replyQueue
    }

    /// Header names of SPEC §2.
    public enum Header {
        public static let idempotencyKey = "idempotency-key"
        public static let sagaId = "waybill-saga-id"
        public static let workflow = "waybill-workflow"
        public static let step = "waybill-step"
        public static let action = "waybill-action"
        public static let attempt = "waybill-attempt"
        /// On dead-lettered messages: why the worker refused it.
        public static let error = "x-waybill-error"
    }

    /// The outbox messages for a transition's send and publish actions, in action order.
    public func outbox(for actions: [SagaAction], of instance: SagaInstance) -> [OutboxMessage] {
        var messages: [OutboxMessage] = []
        for action in actions {
            switch action {
            case .sendCommand(let command):
                messages.append(self.command(command, of: instance))
            case .publishMilestone(let event):
                messages.append(milestone(event, of: instance))
            case .scheduleTimer, .cancelTimer, .finished:
                continue
            }
        }
        return messages
    }

    /// A command: persistent, mandatory, `correlation_id` = `message_id`, reply to this worker's queue.
    public func command(_ command: CommandMessage, of instance: SagaInstance) -> OutboxMessage {
        OutboxMessage(
            messageId: command.messageId, exchange: commandsExchange, routingKey: command.routingKey,
            contentType: "application/json", correlationId: command.messageId, replyTo: replyQueue,
            headers: [
                Header.idempotencyKey: command.idempotencyKey,
                Header.sagaId: instance.key.id,
                Header.workflow: instance.key.workflow,
                Header.step: command.step,
                Header.action: command.kind.rawValue,
                Header.attempt: String(command.attempt),
            ],
            body: JSONText.encodeBytes(command.body), mandatory: true)
    }

    /// A milestone as a CloudEvents 1.0 structured event.
    public func milestone(_ event: MilestoneEvent, of instance: SagaInstance) -> OutboxMessage {
        var data: [String: JSONValue] = [
            "sagaId": .string(instance.key.id),
            "workflow": .string(instance.key.workflow),
            "version": .number(Double(instance.version)),
            "status": .string(event.status.rawValue),
        ]
        if let step = event.step { data["step"] = .string(step) }
        if let output = event.output { data["output"] = output }
        let body: JSONValue = [
            "specversion": "1.0",
            "id": .string(event.eventId),
            "source": .string("waybill/\(instance.key.workflow)"),
            "type": .string(event.name),
            "subject": .string(instance.key.id),
            "time": .string(Self.rfc3339(event.occurredAt)),
            "datacontenttype": "application/json",
            "data": .object(data),
        ]
        return OutboxMessage(
            messageId: event.eventId, exchange: eventsExchange, routingKey: event.name,
            contentType: "application/cloudevents+json", headers: [:], body: JSONText.encodeBytes(body))
    }

    /// `2026-11-25T17:20:50.123Z`.
    public static func rfc3339(_ timestamp: Timestamp) -> String {
        let seconds = timestamp.milliseconds / 1000
        let millis = Int(timestamp.milliseconds % 1000)
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
    }

    // MARK: - Reading

    /// Why an incoming message cannot be used; the text goes to the `x-waybill-error` header or the journal.
    public struct Refusal: Error, Sendable, Hashable, CustomStringConvertible {
        public var reason: String

        public init(_ reason: String) {
            self.reason = reason
        }

        public var description: String { reason }
    }

    /// Parses a start message body and evaluates the workflow's saga id.
    public static func start(
        _ body: some Collection<UInt8>, definition: WorkflowDefinition
    ) throws(Refusal) -> (
        sagaId: String, input: JSONValue
    ) {
        let input: JSONValue
        do {
            input = try JSONText.decode(body)
        } catch {
            throw Refusal("start message is not JSON: \(error)")
        }
        guard case .object = input else {
            throw Refusal("start message must be a JSON object, got \(input.typeName)")
        }
        let sagaId: String
        do {
            sagaId = try definition.trigger.sagaId.evaluateString(
                in: EvaluationScope(input: input, sagaId: "", workflow: definition.name))
        } catch {
            throw Refusal("start message has no saga id: \(error)")
        }
        guard !sagaId.isEmpty else { throw Refusal("start message has an empty saga id") }
        let limit = maxSagaIdBytes(workflow: definition.name)
        guard sagaId.utf8.count <= limit else {
            throw Refusal(
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
    public static func reply(_ body: some Collection<UInt8>) throws(Refusal) -> ReplyOutcome {
        let value: JSONValue
        do {
            value = try JSONText.decode(body)
        } catch {
            throw Refusal("reply is not JSON: \(error)")
        }
        switch value["status"]?.stringValue {
        case "ok":
            return .ok(output: value["output"])
        case "error":
            guard let code = value["code"]?.stringValue, !code.isEmpty else {
                throw Refusal("error reply without a string 'code'")
            }
            let retryable: Bool
            switch value["retryable"] {
            case .bool(let flag)?: retryable = flag
            case nil, .null?: retryable = false
            default: throw Refusal("error reply with a non-boolean 'retryable'")
            }
            return .error(StepError(code: code, message: value["message"]?.stringValue ?? "", retryable: retryable))
        default:
            throw Refusal("reply needs \"status\": \"ok\" or \"error\"")
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
