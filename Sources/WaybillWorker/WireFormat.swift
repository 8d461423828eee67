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
        // Written member by member in sorted key order: the bytes ``JSONText/encodeBytes(_:)`` gives the same event
        // built as a value, without building it (every saga publishes eight or more of these).
        var data = JSONObjectWriter()
        if let branch = event.branch { data.member("branch", object: Self.json(branch)) }
        if let failure = event.failure {
            var fields = JSONObjectWriter()
            if let branch = failure.branch { fields.member("branch", object: Self.json(branch)) }
            fields.member("code", string: failure.code)
            fields.member("message", string: failure.message)
            fields.member("step", string: failure.step)
            data.member("failure", object: consume fields)
        }
        if let output = event.output { data.member("output", output) }
        data.member("sagaId", string: instance.key.id)
        data.member("schemaVersion", integer: EventSchema.version)
        data.member("status", string: event.status.rawValue)
        if let step = event.step { data.member("step", string: step) }
        data.member("version", integer: instance.version)
        data.member("workflow", string: instance.key.workflow)
        var body = JSONObjectWriter(capacity: 512)
        body.member("data", object: consume data)
        body.member("datacontenttype", string: "application/json")
        body.member("dataschema", string: EventSchema.identifier(of: event.name))
        body.member("id", string: event.eventId)
        body.member("source", string: "waybill/\(instance.key.workflow)")
        body.member("specversion", string: "1.0")
        body.member("subject", string: instance.key.id)
        body.member("time", string: UTCTime(millisecondsSinceEpoch: event.occurredAt.milliseconds).text(.milliseconds))
        body.member("type", string: event.name)
        let headers = [WireHeader.eventType: event.name, WireHeader.eventSchema: String(EventSchema.version)]
        return OutboxMessage(
            messageId: event.eventId, exchange: eventsExchange, routingKey: event.name,
            contentType: WireContentType.cloudEvents, headers: headers, body: body.finish(), kept: true)
    }

    /// `{"index": n, "item": element}`; a branch whose element is unknown has no `item`.
    private static func json(_ branch: MilestoneBranch) -> JSONObjectWriter {
        var fields = JSONObjectWriter(capacity: 64)
        fields.member("index", integer: branch.index)
        if let item = branch.item { fields.member("item", item) }
        return fields
    }
}
