import PlainText
import SagaEngine
import SagaStore
import WaybillDefinition
import WaybillWire

/// How the worker writes commands and milestone events (docs/wire.md): the outbox messages of a transition. What
/// both sides of the wire must agree on (header names, content types, reading starts and replies) is in WaybillWire.
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

    /// The outbox messages for a transition's send and publish actions, in action order.
    public func outbox(for actions: [SagaAction], of instance: SagaInstance) -> [OutboxMessage] {
        var messages: [OutboxMessage] = []
        for action in actions {
            switch action {
            case .sendCommand(let command):
                messages.append(self.command(command, of: instance))
            case .publishMilestone(let event):
                messages.append(milestone(event, of: instance))
            case .scheduleTimer, .cancelTimer, .awaitMessage, .cancelAwait, .holdCommand, .finished:
                continue
            }
        }
        return messages
    }

    /// A command: persistent, mandatory, `correlation_id` = `message_id`, reply to this worker's queue; a
    /// compensation also names the forward command it undoes (`waybill-compensates`).
    public func command(_ command: CommandMessage, of instance: SagaInstance) -> OutboxMessage {
        var headers = [
            WireHeader.idempotencyKey: command.idempotencyKey,
            WireHeader.sagaId: instance.key.id,
            WireHeader.workflow: instance.key.workflow,
            WireHeader.step: command.step,
            WireHeader.action: command.kind.rawValue,
            WireHeader.attempt: String(command.attempt),
        ]
        if let forwardKey = command.compensates { headers[WireHeader.compensates] = forwardKey }
        return OutboxMessage(
            messageId: command.messageId, exchange: commandsExchange, routingKey: command.routingKey,
            contentType: WireContentType.json, correlationId: command.messageId, replyTo: replyQueue,
            headers: headers, body: JSONText.encodeBytes(command.body), mandatory: true)
    }

    /// A milestone as a CloudEvents 1.0 structured event (docs/events.md), with its type and the schema version of
    /// its `data` in headers too; the store keeps it for replay.
    public func milestone(_ event: MilestoneEvent, of instance: SagaInstance) -> OutboxMessage {
        var data: [String: JSONValue] = [
            "sagaId": .string(instance.key.id),
            "workflow": .string(instance.key.workflow),
            "version": .number(Double(instance.version)),
            "status": .string(event.status.rawValue),
            "schemaVersion": .number(Double(EventSchema.version)),
        ]
        if let step = event.step { data["step"] = .string(step) }
        if let output = event.output { data["output"] = output }
        if let branch = event.branch { data["branch"] = Self.json(branch) }
        if let failure = event.failure {
            var fields: [String: JSONValue] = [
                "code": .string(failure.code), "message": .string(failure.message), "step": .string(failure.step),
            ]
            if let branch = failure.branch { fields["branch"] = Self.json(branch) }
            data["failure"] = .object(fields)
        }
        let body: JSONValue = [
            "specversion": "1.0",
            "id": .string(event.eventId),
            "source": .string("waybill/\(instance.key.workflow)"),
            "type": .string(event.name),
            "subject": .string(instance.key.id),
            "time": .string(UTCTime(millisecondsSinceEpoch: event.occurredAt.milliseconds).text(.milliseconds)),
            "datacontenttype": "application/json",
            "dataschema": .string(EventSchema.identifier(of: event.name)),
            "data": .object(data),
        ]
        let headers = [WireHeader.eventType: event.name, WireHeader.eventSchema: String(EventSchema.version)]
        return OutboxMessage(
            messageId: event.eventId, exchange: eventsExchange, routingKey: event.name,
            contentType: WireContentType.cloudEvents, headers: headers, body: JSONText.encodeBytes(body), kept: true)
    }

    /// `{"index": n, "item": element}`; a branch whose element is unknown has no `item`.
    private static func json(_ branch: MilestoneBranch) -> JSONValue {
        var fields: [String: JSONValue] = ["index": .number(Double(branch.index))]
        if let item = branch.item { fields["item"] = item }
        return .object(fields)
    }
}
