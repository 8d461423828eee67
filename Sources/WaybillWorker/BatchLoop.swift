import AMQPTransport
import Foundation
import Logging
import SagaEngine
import SagaStore
import Synchronization
import WaybillDefinition
import WaybillWire

/// The worker's hot loop body: one batch of inputs → transitions → one commit → one confirmed publish → acks.
///
/// This is the one place that decides what a message means: applied to a saga, ignored and journaled, forwarded to
/// its partition, or dead-lettered with an `x-waybill-error` reason. It runs on a single task.
final class BatchLoop: Sendable {
    private let configuration: WorkerConfiguration
    private let client: AMQPClient
    private let store: SagaStore
    private let registry: DefinitionRegistry
    private let engine: SagaEngine
    private let wire: WireFormat
    private let logger: Logger
    private let feedback: @Sendable (WorkerInput) -> Void
    /// Benchmarks only: called with the batch once its publish returned (see `SagaWorker`'s `batchObserver`).
    private let afterPublish: (@Sendable ([WorkerInput]) -> Void)?
    /// Set when outbox rows were left unconfirmed (broker down, nack): the next batch publishes them first.
    private let outboxDirty = Mutex(false)
    /// When the inbox is next pruned (ms since the epoch); pruning goes on tick after tick while it finds a full batch.
    private let inboxPruneDue = Mutex<Int64>(0)

    init(
        configuration: WorkerConfiguration, client: AMQPClient, store: SagaStore, registry: DefinitionRegistry,
        logger: Logger, feedback: @escaping @Sendable (WorkerInput) -> Void,
        afterPublish: (@Sendable ([WorkerInput]) -> Void)? = nil
    ) {
        self.configuration = configuration
        self.client = client
        self.store = store
        self.registry = registry
        self.engine = SagaEngine(jitterSeed: configuration.jitterSeed)
        self.wire = WireFormat(
            commandsExchange: configuration.commandsExchange, eventsExchange: configuration.eventsExchange,
            replyQueue: configuration.replyQueue)
        self.logger = logger
        self.feedback = feedback
        self.afterPublish = afterPublish
    }

    /// One event for one saga, and what caused it.
    private struct Item {
        var key: SagaKey
        var event: SagaEvent
        var inbox: String?
        var timerId: String?
        var start: DefinitionRegistry.Entry?
        /// An operator's repair: the control message to answer once the batch is committed.
        var control: InboundDelivery?
    }

    /// Messages that are published, not committed, before their delivery is settled (forwards, dead letters).
    private struct Relay {
        var message: OutboundMessage
        var delivery: InboundDelivery
    }

    /// A reply whose body could not be read: journaled if its saga is ours, dead-lettered otherwise.
    private struct MalformedReply {
        var key: SagaKey
        var refusal: WireRefusal
        var delivery: InboundDelivery
    }

    // MARK: - One batch

    func process(_ batch: [WorkerInput]) async {
        let now = Timestamp.now()
        if outboxDirty.withLock({ $0 }) { try? await flushOutbox() }
        // Older rows still unconfirmed (the flush failed): this batch's rows must not overtake them, or a saga's
        // events and commands could reach the broker out of order. They stay in the outbox for the next flush, which
        // publishes in commit order.
        let backlog = outboxDirty.withLock { $0 }

        var items: [Item] = []
        var relays: [Relay] = []
        var settle: [InboundDelivery] = []
        var malformed: [MalformedReply] = []
        var ticked = false
        for input in batch {
            switch input {
            case .tick:
                ticked = true
            case .returned(let messageId):
                if let key = WireMessages.sagaKey(fromMessageId: messageId) {
                    items.append(Item(key: key, event: .commandReturned(messageId: messageId)))
                }
            case .delivery(let source, let delivery):
                classify(source, delivery, items: &items, relays: &relays, settle: &settle, malformed: &malformed)
            }
        }
        if ticked {
            do {
                for timer in try store.dueTimers(before: now, limit: configuration.batchSize) {
                    items.append(
                        Item(
                            key: timer.key, event: .timerFired(timerId: timer.id), inbox: "timer:\(timer.id)",
                            timerId: timer.id))
                }
            } catch {
                logger.error("cannot read due timers: \(error)")
            }
            pruneInboxIfDue(now: now)
        }

        var changes: [SagaChange] = []
        do {
            changes = try transitions(items, malformed: malformed, relays: &relays, settle: &settle, now: now)
        } catch {
            logger.error("batch of \(batch.count) failed before commit, deliveries go back to their queues: \(error)")
            requeue(settle + relays.map(\.delivery))
            try? await Task.sleep(for: .milliseconds(200))
            return
        }
        let outboxIds: [Int64]
        do {
            outboxIds = try store.commit(changes)
        } catch {
            logger.error("commit of \(changes.count) saga changes failed, deliveries go back to their queues: \(error)")
            requeue(settle + relays.map(\.delivery))
            try? await Task.sleep(for: .milliseconds(200))
            return
        }
        let outbox = backlog ? [] : changes.flatMap(\.outbox)
        let published = await publish(relays.map(\.message) + outbox.map(Self.outbound))
        afterPublish?(batch)
        var confirmed: [Int64] = []
        for (index, message) in outbox.enumerated() {
            if handleOutcome(published[relays.count + index], of: message) { confirmed.append(outboxIds[index]) }
        }
        do {
            try store.deleteOutbox(ids: confirmed)
        } catch {
            logger.error("cannot delete \(confirmed.count) confirmed outbox rows (they will be sent again): \(error)")
        }
        var failed: [InboundDelivery] = []
        for (index, relay) in relays.enumerated() {
            if published[index] == .confirmed { settle.append(relay.delivery) } else { failed.append(relay.delivery) }
        }
        requeue(failed)
        acknowledge(settle)
    }

    /// Forgets inbox marks older than the retention, a bounded batch per tick, so the table does not grow forever.
    private func pruneInboxIfDue(now: Timestamp) {
        guard now.milliseconds >= inboxPruneDue.withLock({ $0 }) else { return }
        let limit = 5_000
        var removed = 0
        do {
            removed = try store.pruneInbox(
                before: now.adding(milliseconds: -configuration.inboxRetention.milliseconds), limit: limit)
        } catch {
            logger.warning("cannot prune the inbox: \(error)")
        }
        if removed > 0 { logger.debug("forgot \(removed) old inbox marks") }
        inboxPruneDue.withLock { $0 = removed == limit ? now.milliseconds : now.milliseconds + 600_000 }
    }

    private func classify(
        _ source: WorkerInput.Source, _ delivery: InboundDelivery, items: inout [Item], relays: inout [Relay],
        settle: inout [InboundDelivery], malformed: inout [MalformedReply]
    ) {
        guard delivery.body.count <= configuration.maxMessageBytes else {
            let refusal = WireRefusal(
                .tooLarge,
                "message of \(delivery.body.count) bytes exceeds max_message_bytes \(configuration.maxMessageBytes); "
                    + "send a smaller body or raise max_message_bytes")
            // A reply for one of our sagas is journaled there, like an unreadable reply; anything else is refused.
            if case .reply = source, let correlationId = delivery.properties.correlationID,
                let key = WireMessages.sagaKey(fromMessageId: correlationId)
            {
                malformed.append(MalformedReply(key: key, refusal: refusal, delivery: delivery))
            } else {
                relays.append(deadLetter(delivery, source: source, refusal))
            }
            return
        }
        switch source {
        case .router(let workflow):
            guard let entry = registry.current[workflow] else { return }
            do {
                let start = try WireMessages.start(delivery.body, definition: entry.definition)
                var properties = delivery.properties
                properties.persistent = true
                properties.headers[WireHeader.sagaId] = .string(start.sagaId)
                relays.append(
                    Relay(
                        message: OutboundMessage(
                            exchange: WorkerTopology.partitionExchange(workflow), routingKey: start.sagaId,
                            body: delivery.body, mandatory: true, properties: properties),
                        delivery: delivery))
            } catch {
                relays.append(deadLetter(delivery, source: source, error))
            }
        case .start(let workflow):
            guard let entry = registry.current[workflow] else { return }
            do {
                let start = try WireMessages.start(delivery.body, definition: entry.definition)
                items.append(
                    Item(
                        key: SagaKey(workflow: workflow, id: start.sagaId), event: .start(input: start.input),
                        // Keyed by saga id too: publishers reuse message ids (counters that restart, constants).
                        inbox: delivery.properties.messageID.map { "start:\(workflow):\(start.sagaId):\($0)" },
                        start: entry))
                settle.append(delivery)
            } catch {
                relays.append(deadLetter(delivery, source: source, error))
            }
        case .reply:
            guard let correlationId = delivery.properties.correlationID,
                let key = WireMessages.sagaKey(fromMessageId: correlationId)
            else {
                let refusal = WireRefusal(
                    .unknownCorrelationId,
                    "reply without a Waybill correlation_id; copy the command's correlation_id into the reply")
                relays.append(deadLetter(delivery, source: source, refusal))
                return
            }
            do {
                let outcome = try WireMessages.reply(delivery.body)
                items.append(
                    Item(
                        key: key, event: .reply(correlationId: correlationId, outcome: outcome),
                        // Keyed by the command too: a participant's message ids need not be unique across replies.
                        inbox: delivery.properties.messageID.map { "reply:\(correlationId):\($0)" }))
                settle.append(delivery)
            } catch {
                malformed.append(MalformedReply(key: key, refusal: error, delivery: delivery))
            }
        case .control:
            do {
                let message = try ControlMessage.decode(delivery.body)
                items.append(
                    Item(
                        key: SagaKey(workflow: message.workflow, id: message.sagaId),
                        event: .operatorCommand(try message.operatorCommand()),
                        inbox: delivery.properties.messageID.map { "control:\($0)" }, control: delivery))
            } catch {
                relays.append(controlReply(to: delivery, ControlReply(status: .error, message: error.description)))
            }
        }
    }

    /// The answer to an operator's control message, published after the batch committed; its delivery is settled
    /// once the answer is confirmed. Without a `reply_to` there is nobody to answer: the message is only settled.
    private func controlReply(to delivery: InboundDelivery, _ reply: ControlReply) -> Relay {
        logger.info(
            "operator request answered",
            metadata: ["status": .string(reply.status.rawValue), "message": .string(reply.message)])
        return Relay(
            message: OutboundMessage(
                exchange: "", routingKey: delivery.properties.replyTo ?? "", body: Data(reply.encoded()),
                persistent: false, contentType: ControlMessage.contentType,
                correlationID: delivery.properties.correlationID),
            delivery: delivery)
    }

    /// Runs the engine over the batch, in order; several events of one saga see each other's results.
    private func transitions(
        _ items: [Item], malformed: [MalformedReply], relays: inout [Relay], settle: inout [InboundDelivery],
        now: Timestamp
    ) throws -> [SagaChange] {
        let inboxIds = items.compactMap(\.inbox)
        var seen = inboxIds.isEmpty ? [] : try store.processedMessageIds(in: inboxIds)
        var keys = Set(items.map(\.key))
        keys.formUnion(malformed.map(\.key))
        var working = try store.sagas(Array(keys)).mapValues(\.instance)
        var changes: [SagaChange] = []
        changes.reserveCapacity(items.count)

        for reply in malformed {
            guard working[reply.key] != nil else {
                relays.append(deadLetter(reply.delivery, source: .reply, reply.refusal))
                continue
            }
            let correlationId = reply.delivery.properties.correlationID ?? "?"
            changes.append(
                SagaChange(
                    key: reply.key, at: now, instance: nil, currentStep: nil,
                    journal: [
                        JournalEntry(
                            at: now, kind: .note,
                            detail: "malformed reply to \(correlationId) acknowledged and ignored: \(reply.refusal)")
                    ]))
            settle.append(reply.delivery)
        }

        for item in items {
            if let inbox = item.inbox, !seen.insert(inbox).inserted {
                if let control = item.control {
                    relays.append(
                        controlReply(to: control, ControlReply(status: .error, message: "duplicate request \(inbox)")))
                }
                continue
            }
            let before = working[item.key]
            let transition: Transition
            let definition: WorkflowDefinition
            switch (item.event, before) {
            case (.start(let input), nil):
                guard let entry = item.start else { continue }
                definition = entry.definition
                transition = engine.start(
                    definition: definition, definitionHash: entry.hash, sagaId: item.key.id, input: input, now: now)
            case (_, let instance?):
                guard let known = try registry.definition(hash: instance.definitionHash) else {
                    logger.error("saga \(item.key) runs definition \(instance.definitionHash), which is not stored")
                    continue
                }
                definition = known
                transition = engine.apply(item.event, to: instance, definition: definition, now: now)
            case (_, nil):
                if let control = item.control {
                    relays.append(
                        controlReply(
                            to: control,
                            ControlReply(
                                status: .error,
                                message: "worker \(configuration.workerId) has no saga \(item.key)")))
                } else if let timerId = item.timerId {
                    changes.append(
                        SagaChange(key: item.key, at: now, instance: nil, currentStep: nil, cancelTimerIds: [timerId]))
                } else {
                    logger.warning("event for unknown saga \(item.key) dropped", metadata: ["event": "\(item.event)"])
                }
                continue
            }
            let applied = transition.outcome == .applied
            var change = SagaChange(
                event: item.event, before: before, transition: transition, definition: definition, at: now,
                owner: configuration.workerId, inboxMessageId: item.inbox,
                outbox: applied ? wire.outbox(for: transition.actions, of: transition.instance) : [])
            if !applied, let timerId = item.timerId { change.cancelTimerIds.append(timerId) }
            changes.append(change)
            if let control = item.control {
                let reply: ControlReply
                switch transition.outcome {
                case .applied:
                    reply = ControlReply(
                        status: .applied, message: change.journal.last?.detail ?? "applied",
                        sagaStatus: transition.instance.status.rawValue)
                case .rejected(let reason), .ignored(let reason):
                    reply = ControlReply(
                        status: .rejected, message: reason, sagaStatus: transition.instance.status.rawValue)
                }
                relays.append(controlReply(to: control, reply))
            }
            if applied {
                working[item.key] = transition.instance
                log(transition, definition: definition)
            }
        }
        return changes
    }

    private func log(_ transition: Transition, definition: WorkflowDefinition) {
        guard let finished = transition.actions.last, case .finished(let status) = finished else {
            if logger.logLevel <= .debug {
                logger.debug(
                    "saga advanced",
                    metadata: [
                        "saga.id": .string(transition.instance.key.id),
                        "saga.workflow": .string(transition.instance.key.workflow),
                        "step.id": .string(transition.instance.currentStepId(in: definition) ?? "-"),
                    ])
            }
            return
        }
        var metadata: Logger.Metadata = [
            "saga.id": .string(transition.instance.key.id), "saga.workflow": .string(transition.instance.key.workflow),
        ]
        if let failure = transition.instance.failure {
            metadata["step.id"] = .string(failure.step)
            metadata["error.code"] = .string(failure.error.code)
        }
        logger.log(level: status == .suspended ? .warning : .info, "saga \(status.rawValue)", metadata: metadata)
    }

    // MARK: - Publishing and settling

    private func publish(_ messages: [OutboundMessage]) async -> [PublishOutcome] {
        guard !messages.isEmpty else { return [] }
        do {
            return try await client.publish(messages)
        } catch {
            logger.warning("publish of \(messages.count) messages failed: \(error)")
            return Array(repeating: .connectionLost, count: messages.count)
        }
    }

    /// Whether an outbox row is done with: confirmed, returned unroutable (then its saga hears about it), or refused
    /// by the client because AMQP cannot carry it (a routing key or id over 255 bytes, built from saga data): such a
    /// row would fail the same way forever, so it is dropped and a command's saga hears about it as unroutable.
    private func handleOutcome(_ outcome: PublishOutcome, of message: OutboxMessage) -> Bool {
        switch outcome {
        case .confirmed:
            return true
        case .returned:
            if message.mandatory { feedback(.returned(messageId: message.messageId)) }
            return true
        case .rejected(let error) where error.code == .invalidArgument:
            logger.error(
                "dropping an outbox message AMQP cannot carry",
                metadata: [
                    "message.id": .string(String(message.messageId.prefix(120))),
                    "error": .string(error.message),
                ])
            if message.mandatory { feedback(.returned(messageId: message.messageId)) }
            return true
        case .nacked, .connectionLost, .rejected:
            outboxDirty.withLock { $0 = true }
            return false
        }
    }

    /// Publishes every outbox row left from before (a crash, a lost connection), oldest first.
    func flushOutbox() async throws {
        while true {
            let pending = try store.pendingOutbox(limit: 1000)
            outboxDirty.withLock { $0 = false }
            guard !pending.isEmpty else { return }
            let outcomes = await publish(pending.map { Self.outbound($0.message) })
            var confirmed: [Int64] = []
            for (row, outcome) in zip(pending, outcomes) where handleOutcome(outcome, of: row.message) {
                confirmed.append(row.id)
            }
            try store.deleteOutbox(ids: confirmed)
            if confirmed.count < pending.count {
                outboxDirty.withLock { $0 = true }
                logger.warning("\(pending.count - confirmed.count) outbox messages not confirmed; will retry")
                return
            }
            logger.info("published \(confirmed.count) outbox messages left from before")
        }
    }

    static func outbound(_ message: OutboxMessage) -> OutboundMessage {
        OutboundMessage(
            exchange: message.exchange, routingKey: message.routingKey, body: Data(message.body),
            mandatory: message.mandatory,
            properties: MessageProperties(
                contentType: message.contentType, headers: message.headers.mapValues { .string($0) }, persistent: true,
                correlationID: message.correlationId, replyTo: message.replyTo, messageID: message.messageId))
    }

    /// Sends `delivery` to the dead-letter exchange with `refusal` (code first) in the `x-waybill-error` header.
    private func deadLetter(_ delivery: InboundDelivery, source: WorkerInput.Source, _ refusal: WireRefusal) -> Relay {
        let reason = refusal.description
        var properties = delivery.properties
        properties.persistent = true
        properties.headers[WireHeader.error] = .string(reason)
        properties.headers[WireHeader.deadLetterSource] = .string(Self.name(of: source))
        properties.headers[WireHeader.deadLetterRoutingKey] = .string(delivery.routingKey)
        properties.headers[WireHeader.deadLetterExchange] = .string(delivery.exchange)
        logger.warning(
            "dead-lettering a message", metadata: ["reason": .string(reason), "source": .string(Self.name(of: source))])
        return Relay(
            message: OutboundMessage(
                exchange: configuration.deadLetterExchange, routingKey: delivery.routingKey, body: delivery.body,
                properties: properties),
            delivery: delivery)
    }

    private static func name(of source: WorkerInput.Source) -> String {
        switch source {
        case .router(let workflow): "starts/\(workflow)"
        case .start(let workflow): "partition/\(workflow)"
        case .reply: "replies"
        case .control: "control"
        }
    }

    private func requeue(_ deliveries: [InboundDelivery]) {
        for delivery in deliveries { client.nack(delivery.deliveryTag, requeue: true) }
    }

    /// Acknowledges with one `multiple` ack per consumer: the highest tag covers every earlier delivery, all of
    /// which were settled by this or an earlier batch (deliveries are handled in arrival order).
    private func acknowledge(_ deliveries: [InboundDelivery]) {
        var highest: [String: DeliveryTag] = [:]
        for delivery in deliveries {
            let consumer = delivery.consumerTag
            if let current = highest[consumer],
                current.generation > delivery.deliveryTag.generation
                    || (current.generation == delivery.deliveryTag.generation
                        && current.value >= delivery.deliveryTag.value)
            {
                continue
            }
            highest[consumer] = delivery.deliveryTag
        }
        for tag in highest.values { client.ack(tag, multiple: true) }
    }
}
