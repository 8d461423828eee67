import WaybillDefinition

/// Something that happened to a saga. The engine turns it into a new state plus actions.
public enum SagaEvent: Sendable, Hashable, Codable {
    /// A start message arrived (only valid for a saga that does not exist yet; see ``SagaEngine/start``).
    case start(input: JSONValue)
    /// A participant replied to the command whose message id is `correlationId`.
    case reply(correlationId: String, outcome: ReplyOutcome)
    /// A durable timer fired (a reply timeout or a retry delay; the instance knows which).
    case timerFired(timerId: String)
    /// The broker returned a command as unroutable (`mandatory`); a retryable failure of that attempt.
    case commandReturned(messageId: String)
    /// An operator repair.
    case operatorCommand(OperatorCommand)
}

/// A participant's answer: the reply body of docs/wire.md.
public enum ReplyOutcome: Sendable, Hashable, Codable {
    case ok(output: JSONValue?)
    case error(StepError)
}

/// An operator's repair, with who asked and why (both go to the journal).
public struct OperatorCommand: Sendable, Hashable, Codable {
    /// What to do.
    public enum Action: Sendable, Hashable, Codable {
        /// Re-run the failed (or retry-waiting) step now; `step` narrows it, `nil` means the obvious one.
        case retry(step: String?)
        /// Mark a failed step as succeeded with `output` and go on (or skip the compensation in the way).
        case skip(step: String, output: JSONValue)
        /// Start compensating now (only before the pivot).
        case compensate
        /// Stop the saga where it is; nothing is undone.
        case cancel
    }

    public var action: Action
    public var by: String
    public var reason: String

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
    /// The saga reached an end state (or suspended) and needs nothing more until an operator acts.
    case finished(SagaStatus)
}

/// A command to a participant, fully evaluated.
public struct CommandMessage: Sendable, Hashable, Codable {
    /// Unique per attempt; the reply's `correlation_id`.
    public var messageId: String
    /// The routing key on the commands exchange.
    public var routingKey: String
    /// Stable across retries of the same step, branch and direction (`<saga>/<step>[/<branch>][/r<round>][/compensate]`).
    public var idempotencyKey: String
    public var step: String
    public var branch: Int?
    public var kind: CommandKind
    /// 1-based.
    public var attempt: Int
    public var body: JSONValue
}

/// A milestone the rest of the company sees (`order.shipped`).
public struct MilestoneEvent: Sendable, Hashable, Codable {
    /// Unique and stable if re-sent.
    public var eventId: String
    /// The milestone name: the CloudEvents `type` and the routing key.
    public var name: String
    /// The step that produced it, or `nil` for an end-state milestone.
    public var step: String?
    public var output: JSONValue?
    public var status: SagaStatus
    public var occurredAt: Timestamp
}

/// A durable timer.
public struct SagaTimer: Sendable, Hashable, Codable {
    /// What the timer is for.
    public enum Kind: String, Sendable, Hashable, Codable {
        case replyTimeout
        case retry
    }

    public var id: String
    public var kind: Kind
    public var dueAt: Timestamp
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

    public var instance: SagaInstance
    public var actions: [SagaAction]
    public var outcome: Outcome
}
