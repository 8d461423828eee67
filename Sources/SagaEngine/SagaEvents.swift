import WaybillDefinition

/// Something that happened to a saga. The engine turns it into a new state plus actions.
public enum SagaEvent: Sendable, Hashable, Codable {
    /// A start message arrived (only valid for a saga that does not exist yet; see ``SagaEngine/start``).
    case start(input: JSONValue)
    /// A participant replied to the command whose message id is `correlationId`.
    case reply(correlationId: String, outcome: ReplyOutcome)
    /// A durable timer fired (a reply timeout or a retry delay; the instance knows which).
    case timerFired(timerId: String)
    /// A message a `wait` step waits for arrived; `waitId` is the wait's id (``AwaitedMessage/id``), `message` its
    /// body. The engine checks the message's key against the saga's match again before the wait ends.
    case signal(waitId: String, message: JSONValue)
    /// The broker returned a command as unroutable (`mandatory`); a retryable failure of that attempt.
    case commandReturned(messageId: String)
    /// An operator repair.
    case operatorCommand(OperatorCommand)
}

/// A participant's answer: the reply body of docs/wire.md, already parsed.
public enum ReplyOutcome: Sendable, Hashable, Codable {
    /// The command succeeded; `output` becomes the branch output (`nil` is stored as JSON `null`).
    case ok(output: JSONValue?)
    /// The command failed. A non-retryable error fails a forward attempt at once, whatever retries remain; a
    /// compensation is retried whatever the error.
    case error(StepError)
}

/// An operator's repair, with who asked and why (both go to the journal).
public struct OperatorCommand: Sendable, Hashable, Codable {
    /// What to do.
    public enum Action: Sendable, Hashable, Codable {
        /// Re-run the failed (or retry-waiting) step now; `step` narrows it, `nil` means the obvious one.
        case retry(step: String?)
        /// Mark a failed step as succeeded with `output` and go on (or skip the compensation in the way). For a
        /// `for_each` step `output` stands in for each skipped branch's output, and the step's output joins every
        /// branch's as usual; `branch` skips that branch alone (the step goes on once no branch is left failed).
        case skip(step: String, output: JSONValue, branch: Int? = nil)
        /// Start compensating now (only before the pivot).
        case compensate
        /// Stop the saga where it is; nothing is undone.
        case cancel
        /// Run the saga again from `step`: first undo, last first, what that step and every later one did (those
        /// with a compensation), then start `step` afresh (new idempotency keys). Not across a pivot already passed,
        /// and not while a command awaits its reply.
        case reset(step: String)
        /// Move the saga to another version of its workflow, the definition stored under `targetHash`, with
        /// `mapping` (source step id → target step id) for renamed steps. The engine cannot apply it alone (it needs
        /// that definition): the worker calls ``SagaEngine/migrate(_:_:now:)``.
        case migrate(targetHash: String, mapping: [String: String])
        /// Write a line in the saga's journal and change nothing else: what a reconciliation found about the effect
        /// of `step` (a step id, or a branch label `release[1]`), with `facts` as the line's data.
        case note(step: String?, facts: [String: JSONValue])
    }

    /// What to do.
    public var action: Action
    /// Who asked (an operator's name); journaled and shown, never checked, so the caller authenticates.
    public var by: String
    /// Why, in the operator's words; journaled, and for `compensate` quoted in the saga's failure message.
    public var reason: String

    /// Describes a repair; the engine may still reject it (``Transition/Outcome/rejected(_:)``) for the saga's state.
    public init(action: Action, by: String, reason: String) {
        self.action = action
        self.by = by
        self.reason = reason
    }
}

/// What the caller must do after a transition, in order.
public enum SagaAction: Sendable, Hashable, Codable {
    /// Publish a command to the commands exchange (persistent, mandatory).
    case sendCommand(CommandMessage)
    /// Publish a milestone event to the events exchange.
    case publishMilestone(MilestoneEvent)
    /// Persist a timer that must fire at `dueAt` even across restarts.
    case scheduleTimer(SagaTimer)
    /// Forget a timer that is no longer needed.
    case cancelTimer(id: String)
    /// Persist a wait for a message, so a signal finds the saga by its match (across restarts, like a timer).
    case awaitMessage(AwaitedMessage)
    /// Forget a wait for a message that ended (the message came, it timed out, or the saga stopped waiting).
    case cancelAwait(id: String)
    /// A command a participant's limit holds back (``CommandAdmission``): nothing is sent, no attempt is used and no
    /// reply timer runs. Its hold timer (``SagaTimer/Kind/hold``, scheduled in the same transition) keeps it across
    /// restarts; firing that timer sends it.
    case holdCommand(HeldCommand)
    /// The saga reached an end state (or suspended) and needs nothing more until an operator acts.
    case finished(SagaStatus)
}

/// A command held back by a participant's limit, as the limiter queues it.
public struct HeldCommand: Sendable, Hashable, Codable {
    /// The hold timer's id: fire it (``SagaEvent/timerFired(timerId:)``) to send the command.
    public var timerId: String
    /// The message id the command goes out with.
    public var messageId: String
    /// Where it goes: the limit is found by it.
    public var routingKey: String
    /// The saga's priority lane (``PriorityLane``).
    public var priority: Int
    /// When it was held: within a lane, the oldest goes first, and age raises the lane.
    public var heldAt: Timestamp
    /// The step's reply timeout, which starts when the command is sent.
    public var timeout: Duration

    /// Describes a held command.
    public init(
        timerId: String, messageId: String, routingKey: String, priority: Int, heldAt: Timestamp, timeout: Duration
    ) {
        self.timerId = timerId
        self.messageId = messageId
        self.routingKey = routingKey
        self.priority = priority
        self.heldAt = heldAt
        self.timeout = timeout
    }
}

/// Decides whether a command goes now or waits for a participant's limit: the worker's limiter. The engine asks it
/// before every send when it is set (``SagaEngine/admission``); without one every command goes at once.
public protocol CommandAdmission: Sendable {
    /// Whether commands with `routingKey` are under a limit: only those are held, and only those take a
    /// `rate_limited` reply as back-pressure rather than as a failed attempt.
    func isLimited(_ routingKey: String) -> Bool
    /// Whether the command may go now; `true` counts it as sent (in flight until its reply or its timeout), `false`
    /// holds it. Called while deciding, before the commit: a command admitted in a batch whose commit fails was never
    /// sent, and its place frees itself after its timeout.
    func admit(routingKey: String, messageId: String, timeout: Duration, now: Timestamp) -> Bool
}

/// A saga's wait for a message, as the store keeps it: a message on `exchange` whose routing key matches
/// `routingKey` and whose `key` evaluates to `match` ends the wait.
public struct AwaitedMessage: Sendable, Hashable, Codable {
    /// The wait's id: the id of its timeout timer.
    public var id: String
    /// The exchange the message is published to.
    public var exchange: String
    /// The binding key it is published with (`*` and `#` allowed).
    public var routingKey: String
    /// The key expression, as written (`${message.orderId}`).
    public var key: String
    /// The value the saga waits for, as text (``MessageWait/correlationText(_:)``).
    public var match: String

    /// Describes a wait.
    public init(id: String, exchange: String, routingKey: String, key: String, match: String) {
        self.id = id
        self.exchange = exchange
        self.routingKey = routingKey
        self.key = key
        self.match = match
    }
}

/// A command to a participant, fully evaluated.
public struct CommandMessage: Sendable, Hashable, Codable {
    /// Unique per attempt; the reply's `correlation_id`.
    public var messageId: String
    /// The routing key on the commands exchange.
    public var routingKey: String
    /// Stable across retries of the same step, branch and direction
    /// (`<saga>/<step>[/<branch>][/r<round>][/compensate]`); participants deduplicate on it, not on `messageId`.
    public var idempotencyKey: String
    /// The id of the step that sent it (the `waybill-step` header).
    public var step: String
    /// The `for_each` branch index; `nil` for a plain step (branch 0 internally, but not said on the wire).
    public var branch: Int?
    /// Do or undo (the `waybill-action` header).
    public var kind: CommandKind
    /// 1-based, counted separately for forward and compensation attempts.
    public var attempt: Int
    /// The evaluated `input` (or `compensate.input`) of the step: order data, so keep it out of logs.
    public var body: JSONValue
    /// For a compensation, the idempotency key of the forward command it undoes (the `waybill-compensates` header),
    /// so a participant can find the effect by that key alone; `nil` for a forward command.
    public var compensates: String?
    /// For a compensation, whether the forward command's outcome is unknown (``BranchState/outcomeUnknown``): it may
    /// never have taken effect, and its output is not known. Always `false` for a forward command.
    public var outcomeUnknown: Bool

    /// Describes a command.
    public init(
        messageId: String, routingKey: String, idempotencyKey: String, step: String, branch: Int?, kind: CommandKind,
        attempt: Int, body: JSONValue, compensates: String? = nil, outcomeUnknown: Bool = false
    ) {
        self.messageId = messageId
        self.routingKey = routingKey
        self.idempotencyKey = idempotencyKey
        self.step = step
        self.branch = branch
        self.kind = kind
        self.attempt = attempt
        self.body = body
        self.compensates = compensates
        self.outcomeUnknown = outcomeUnknown
    }
}

/// The idempotency keys the engine puts on commands (docs/wire.md, "Commands").
public enum IdempotencyKey {
    /// `<sagaId>/<stepId>[/<branch>][/r<round>]`: the key every forward attempt of one branch carries in one round.
    /// `branch` is `nil` for a step without `for_each` (not branch 0, which would add `/0`).
    public static func forward(sagaId: String, step: String, branch: Int?, round: Int) -> String {
        var key = sagaId + "/" + step
        if let branch { key += "/\(branch)" }
        if round > 0 { key += "/r\(round)" }
        return key
    }

    /// The key of the compensation that undoes the forward command keyed `forwardKey`: `<forwardKey>/compensate`.
    public static func compensation(of forwardKey: String) -> String {
        forwardKey + "/compensate"
    }
}

/// A milestone the rest of the company sees (`order.shipped`); docs/events.md lists them.
///
/// Three kinds share the type: a step's milestone (`step` and `output` set), a `for_each` branch's milestone
/// (`branch` set too) and an end-state milestone (`step` and `output` `nil`; `failure` set when the saga failed).
public struct MilestoneEvent: Sendable, Hashable, Codable {
    /// Unique and stable if re-sent.
    public var eventId: String
    /// The milestone name: the CloudEvents `type` and the routing key.
    public var name: String
    /// The step that produced it, or `nil` for an end-state milestone.
    public var step: String?
    /// The step's output (a branch milestone: the branch's own output); `nil` for an end-state milestone. Order data,
    /// so keep it out of logs.
    public var output: JSONValue?
    /// The saga's status when it happened: still `running` for a step milestone, even the last one.
    public var status: SagaStatus
    /// When the transition that produced it ran, not when it is published (that may be after a restart).
    public var occurredAt: Timestamp
    /// The `for_each` branch a per-branch milestone (`branch_milestone`) is about; `nil` for every other milestone,
    /// including the joined milestone of a `for_each` step.
    public var branch: MilestoneBranch?
    /// Why the saga failed, on the `compensated`, `failed` and `cancelled` end milestones; `nil` on the others.
    public var failure: MilestoneFailure?
}

/// One `for_each` branch as a milestone names it: its position and its element.
public struct MilestoneBranch: Sendable, Hashable, Codable {
    /// The element's 0-based position in the `for_each` array, as in the command's idempotency key
    /// (`<saga>/<step>/<index>`). After a reallocation re-planned the step, the same index may be another element.
    public var index: Int
    /// The `for_each` element (the shipment, with its id and warehouse). Order data, so keep it out of logs.
    public var item: JSONValue?

    /// Names a branch; `item` is `nil` only when the element could not be found any more.
    public init(index: Int, item: JSONValue?) {
        self.index = index
        self.item = item
    }
}

/// Why a saga failed, as its end milestone tells the rest of the company: the saga's ``SagaFailure`` with the
/// failing branch's element, or an operator's cancellation.
public struct MilestoneFailure: Sendable, Hashable, Codable {
    /// The stable code: a participant's (`out_of_stock`, kept as sent) or Waybill's (``StepError/timeoutCode``,
    /// ``StepError/operatorCode``, ``StepError/operatorCancelCode``, ...).
    public var code: String
    /// What went wrong, for people. It may quote a participant's error text or an operator's reason.
    public var message: String
    /// The id of the step that failed (for an operator's compensate or cancel, the step the saga was at).
    public var step: String
    /// The `for_each` branch that failed; `nil` for a plain step, or when the whole step failed (its `for_each`
    /// did not evaluate to an array).
    public var branch: MilestoneBranch?

    /// Describes a failure for an end milestone.
    public init(code: String, message: String, step: String, branch: MilestoneBranch?) {
        self.code = code
        self.message = message
        self.step = step
        self.branch = branch
    }
}

/// A durable timer.
public struct SagaTimer: Sendable, Hashable, Codable {
    /// What the timer is for.
    ///
    /// The raw values are stored in saga state and in the timers table: never rename one.
    public enum Kind: String, Sendable, Hashable, Codable {
        /// The step's `timeout` for the pending command; firing counts as a retryable failure.
        case replyTimeout
        /// The backoff delay before the next attempt (forward or compensation).
        case retry
        /// The end of a wait step: firing finishes the step.
        case wait
        /// A command a participant's limit holds back: never due by time (due at ``Timestamp/distantFuture``); the
        /// worker's limiter fires it to send the command.
        case hold
    }

    /// Unique within the saga (`<workflow>/<saga id>/t<n>`); fire it as ``SagaEvent/timerFired(timerId:)``.
    public var id: String
    /// What happens when it fires.
    public var kind: Kind
    /// When to fire it; firing late is fine, firing early is not (the engine does not check the time).
    public var dueAt: Timestamp

    /// Rebuilds a stored timer (the store's decoder, tests); only the engine schedules timers.
    public init(id: String, kind: Kind, dueAt: Timestamp) {
        self.id = id
        self.kind = kind
        self.dueAt = dueAt
    }
}

/// The result of applying one event.
public struct Transition: Sendable, Hashable {
    /// Whether the event changed the saga.
    public enum Outcome: Sendable, Hashable {
        /// The saga moved (its new state must be stored).
        case applied
        /// Nothing changed: a late or duplicate reply, a stale timer. Journal the note; store nothing else.
        case ignored(String)
        /// An operator command that makes no sense in this state; the message says why.
        case rejected(String)
    }

    /// The saga after the event; equal to the input instance unless `outcome` is `applied`.
    public var instance: SagaInstance
    /// What to do, in the same unit of work that stores `instance` and in this order: reordering them breaks the
    /// promise that a saga's commands and milestones go out in the order they happened.
    public var actions: [SagaAction]
    /// Whether the event changed the saga; store `instance` only when it is `applied`.
    public var outcome: Outcome
}
