import SagaEngine
import WaybillDefinition

/// Everything one handled message does to the store, written atomically with the rest of its batch by
/// ``SagaStore/commit(_:)``: the saga's new state, its journal entries, the inbox mark of the message, the outbox
/// messages it produced and its timer changes.
public struct SagaChange: Sendable {
    /// The saga this change belongs to.
    public var key: SagaKey
    /// When the message was handled: the inbox mark's and the outbox rows' time.
    public var at: Timestamp
    /// The saga's new state, or `nil` when the event was ignored or rejected (then only the journal entries and the
    /// inbox mark are written, and the outbox and timer lists should be empty).
    public var instance: SagaInstance?
    /// The id of the step at the cursor, stored for `waybill sagas list --step`; `nil` past the last step.
    public var currentStep: String?
    /// The worker that owns the saga (the `sagas.owner` column); `nil` keeps the stored owner.
    public var owner: String?
    /// What happened, in order; see ``JournalEntry/describing(_:before:transition:definition:at:)``.
    public var journal: [JournalEntry]
    /// The id of the delivered message that caused the change (start, reply or `timer:<id>`), recorded so a
    /// redelivery is recognised by ``SagaStore/processedMessageIds(in:)``. `nil` for operator commands.
    public var inboxMessageId: String?
    /// Messages to publish after the commit, in order; removed by ``SagaStore/deleteOutbox(ids:)`` once confirmed.
    public var outbox: [OutboxMessage]
    /// Timers to create or move (keyed by timer id within the saga).
    public var scheduleTimers: [SagaTimer]
    /// Timer ids of this saga to forget.
    public var cancelTimerIds: [String]
    /// Waits for a message to record (``SagaStore/waiters(exchange:routingKey:message:expressions:)`` finds them).
    public var awaitMessages: [AwaitedMessage]
    /// Wait ids of this saga to forget.
    public var cancelAwaitIds: [String]

    /// Describes a change; every list defaults to empty.
    public init(
        key: SagaKey, at: Timestamp, instance: SagaInstance?, currentStep: String?, owner: String? = nil,
        journal: [JournalEntry] = [], inboxMessageId: String? = nil, outbox: [OutboxMessage] = [],
        scheduleTimers: [SagaTimer] = [], cancelTimerIds: [String] = [], awaitMessages: [AwaitedMessage] = [],
        cancelAwaitIds: [String] = []
    ) {
        self.key = key
        self.at = at
        self.instance = instance
        self.currentStep = currentStep
        self.owner = owner
        self.journal = journal
        self.inboxMessageId = inboxMessageId
        self.outbox = outbox
        self.scheduleTimers = scheduleTimers
        self.cancelTimerIds = cancelTimerIds
        self.awaitMessages = awaitMessages
        self.cancelAwaitIds = cancelAwaitIds
    }

    /// Describes the change a transition makes: the new instance when it was applied, the current step taken from
    /// `definition`, the journal entries from ``JournalEntry/describing(_:before:transition:definition:at:)`` and the
    /// timer actions. The caller still builds `outbox` from the send and publish actions (it owns the wire format).
    public init(
        event: SagaEvent, before: SagaInstance?, transition: Transition, definition: WorkflowDefinition,
        at now: Timestamp, owner: String?, inboxMessageId: String?, outbox: [OutboxMessage] = []
    ) {
        let applied = transition.outcome == .applied
        var schedule: [SagaTimer] = []
        var cancel: [String] = []
        var awaits: [AwaitedMessage] = []
        var cancelAwaits: [String] = []
        if applied {
            for action in transition.actions {
                switch action {
                case .scheduleTimer(let timer): schedule.append(timer)
                case .cancelTimer(let id): cancel.append(id)
                case .awaitMessage(let wait): awaits.append(wait)
                case .cancelAwait(let id): cancelAwaits.append(id)
                case .sendCommand, .publishMilestone, .holdCommand, .finished: break
                }
            }
        }
        self.init(
            key: transition.instance.key, at: now, instance: applied ? transition.instance : nil,
            currentStep: transition.instance.currentStepId(in: definition), owner: owner,
            journal: JournalEntry.describing(
                event, before: before, transition: transition, definition: definition, at: now),
            inboxMessageId: inboxMessageId, outbox: applied ? outbox : [], scheduleTimers: schedule,
            cancelTimerIds: cancel, awaitMessages: awaits, cancelAwaitIds: cancelAwaits)
    }
}

/// A wait's binding key and key expression: what a message for wait steps is evaluated with.
public struct WaitExpression: Sendable, Hashable {
    /// The topic binding key (`payment.*.confirmed`).
    public var bindingKey: String
    /// The key expression as written (`${message.orderId}`).
    public var expression: String

    /// Describes one.
    public init(bindingKey: String, expression: String) {
        self.bindingKey = bindingKey
        self.expression = expression
    }
}

/// An AMQP message waiting in the outbox: generic, the worker builds it from a ``SagaAction``.
public struct OutboxMessage: Sendable, Hashable {
    /// The AMQP `message_id`. The store does not check that it is unique: the engine makes it so (the saga's key and a
    /// number from its own sequence), and consumers deduplicate by it.
    public var messageId: String
    /// The exchange to publish to (`""` is the default exchange).
    public var exchange: String
    /// The routing key; with `mandatory`, a key no queue is bound to makes the broker return the message.
    public var routingKey: String
    /// The `content_type` property, e.g. `application/json`.
    public var contentType: String?
    /// The `correlation_id` property: for a command, its message id, which the participant's reply carries back.
    public var correlationId: String?
    /// The `reply_to` property: the owning worker's reply queue, so replies reach the worker that holds the saga.
    public var replyTo: String?
    /// Application headers (string values only; numbers travel as text).
    public var headers: [String: String]
    /// The body bytes, published as they are: order data, so keep them out of logs.
    public var body: [UInt8]
    /// Whether to publish with the `mandatory` flag (commands: an unroutable one comes back as a failure).
    public var mandatory: Bool
    /// Whether the store keeps a copy after the confirm, for replay (milestone events): a row of the `events` table,
    /// written in the same commit, read back by ``StoreSnapshot/events(of:)`` and archived with the saga. Its body is
    /// stored there only (``SagaStore/pendingOutbox(limit:)`` reads it from there).
    public var kept: Bool

    /// Describes a message; publish it persistent.
    public init(
        messageId: String, exchange: String, routingKey: String, contentType: String? = nil,
        correlationId: String? = nil, replyTo: String? = nil, headers: [String: String] = [:], body: [UInt8],
        mandatory: Bool = false, kept: Bool = false
    ) {
        self.kept = kept
        self.messageId = messageId
        self.exchange = exchange
        self.routingKey = routingKey
        self.contentType = contentType
        self.correlationId = correlationId
        self.replyTo = replyTo
        self.headers = headers
        self.body = body
        self.mandatory = mandatory
    }
}

/// An outbox row read back for publishing.
public struct PendingOutboxMessage: Sendable, Hashable {
    /// The row id: publish in ascending order (per saga it is the order the messages were produced) and pass it to
    /// ``SagaStore/deleteOutbox(ids:)`` after the broker confirmed the message.
    public var id: Int64
    /// The saga that produced the message.
    public var key: SagaKey
    /// What to publish, exactly as committed.
    public var message: OutboxMessage
    /// When the message was committed; an old one means publishing is stuck (the broker is down or refusing it).
    public var createdAt: Timestamp
}

/// Unfinished sagas of one definition at one current step, running or not (compensating, or suspended): when the
/// oldest started.
public struct ActiveStepGroup: Sendable, Hashable {
    /// The definition the sagas run.
    public var definitionHash: String
    /// The step at the cursor; `nil` past the last step.
    public var currentStep: String?
    /// Whether the group is of compensating or suspended sagas (else running ones): they may be undoing the step
    /// at their cursor too.
    public var compensating: Bool
    /// When the oldest of them started.
    public var oldestStart: Timestamp

    /// Describes a group.
    public init(definitionHash: String, currentStep: String?, compensating: Bool, oldestStart: Timestamp) {
        self.definitionHash = definitionHash
        self.currentStep = currentStep
        self.compensating = compensating
        self.oldestStart = oldestStart
    }
}

/// A durable timer as the store keeps it, with its saga.
public struct StoredTimer: Sendable, Hashable {
    /// The saga the timer belongs to.
    public var key: SagaKey
    /// The timer id (unique within the saga); fire it as ``SagaEvent/timerFired(timerId:)``.
    public var id: String
    /// Reply timeout or retry delay.
    public var kind: SagaTimer.Kind
    /// When it is due; fire it then or later, never earlier.
    public var dueAt: Timestamp

    /// Describes a stored timer.
    public init(key: SagaKey, id: String, kind: SagaTimer.Kind, dueAt: Timestamp) {
        self.key = key
        self.id = id
        self.kind = kind
        self.dueAt = dueAt
    }
}

/// One line of a saga's audit trail, as written.
public struct JournalEntry: Sendable, Hashable {
    /// What the line records. Raw values are stable (the CLI filters on them).
    public struct Kind: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// The stored identifier.
        public var rawValue: String

        /// Wraps a stored identifier.
        public init(rawValue: String) {
            self.rawValue = rawValue
        }

        /// The stored identifier.
        public var description: String { rawValue }

        /// A start message created the saga.
        public static let start = Kind(rawValue: "start")
        /// A participant's reply moved the saga.
        public static let reply = Kind(rawValue: "reply")
        /// A durable timer fired and moved the saga.
        public static let timer = Kind(rawValue: "timer")
        /// A message a wait step waited for arrived.
        public static let signal = Kind(rawValue: "signal")
        /// The broker returned a command as unroutable.
        public static let returned = Kind(rawValue: "returned")
        /// An operator command was applied.
        public static let operatorCommand = Kind(rawValue: "operator")
        /// An event changed nothing (late or duplicate reply, stale timer).
        public static let ignored = Kind(rawValue: "ignored")
        /// An operator command made no sense in the saga's state.
        public static let rejected = Kind(rawValue: "rejected")
        /// A note from the worker or the CLI that is not a saga event.
        public static let note = Kind(rawValue: "note")
    }

    /// When the worker handled it (the transition's `now`), not when the message was sent.
    public var at: Timestamp
    /// What it records; the CLI filters on it.
    public var kind: Kind
    /// The step concerned, with the branch when there is one (`release[1]`).
    public var step: String?
    /// Who acted: an operator's name, or `nil` for the worker.
    public var actor: String?
    /// One human line; never an order payload (outputs are summarised and cut to ``summaryLimit`` characters).
    public var detail: String
    /// The same event as data, for scripts (`waybill sagas history --json`): a flat object whose keys are listed in
    /// docs/operations.md ("The journal as data"); `nil` for lines written before it existed and for notes.
    public var facts: JSONValue?

    /// How many characters of a step output or error message the detail may quote.
    public static let summaryLimit = 120

    /// Describes a journal line.
    public init(
        at: Timestamp, kind: Kind, step: String? = nil, actor: String? = nil, detail: String, facts: JSONValue? = nil
    ) {
        self.at = at
        self.kind = kind
        self.step = step
        self.actor = actor
        self.detail = detail
        self.facts = facts
    }
}

/// A journal line read back, with its position in the journal.
public struct JournalRecord: Sendable, Hashable {
    /// The journal row id; ascending ids are the order things happened (timestamps can tie).
    public var id: Int64
    /// The saga the line belongs to.
    public var key: SagaKey
    /// The line as it was written.
    public var entry: JournalEntry
}

/// A workflow definition as first seen, kept so a running saga keeps its version after the YAML changes.
public struct StoredDefinition: Sendable, Hashable {
    /// The SHA-256 of the source text, lowercase hex (`ContentHash.sha256Hex(_:)` in WaybillDefinition).
    public var hash: String
    /// The workflow name; several versions (and several edits of one version) are stored side by side.
    public var name: String
    /// The version the file declares; look definitions up by `hash`, since an edited file keeps its version.
    public var version: Int
    /// The YAML text exactly as loaded; parse it again to run a saga that started on it.
    public var source: String
    /// When a worker first stored it.
    public var firstSeenAt: Timestamp
}

/// A saga row read back with the columns the worker and the CLI need besides the state.
public struct StoredSaga: Sendable, Hashable {
    /// The saga's state, decoded.
    public var instance: SagaInstance
    /// The step at the cursor when it was stored (a column for queries); `instance` is the truth.
    public var currentStep: String?
    /// The worker that owns it; its replies go to that worker's queue.
    public var owner: String?
}
