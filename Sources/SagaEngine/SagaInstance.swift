import WaybillDefinition

/// A point in time in milliseconds since the Unix epoch. The engine never reads a clock: callers pass `now`.
public struct Timestamp: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// Milliseconds since 1970-01-01T00:00:00Z; not seconds, and not a monotonic clock reading.
    public var milliseconds: Int64

    /// The instant `milliseconds` after the Unix epoch (negative values are before it).
    public init(milliseconds: Int64) {
        self.milliseconds = milliseconds
    }

    /// Earlier instants sort first.
    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.milliseconds < rhs.milliseconds }

    /// This instant moved forward by `duration`.
    public func adding(_ duration: Duration) -> Timestamp {
        Timestamp(milliseconds: milliseconds + duration.milliseconds)
    }

    /// This instant moved forward by `milliseconds`.
    public func adding(milliseconds delta: Int64) -> Timestamp {
        Timestamp(milliseconds: milliseconds + delta)
    }

    /// 9999-12-31T23:59:59Z: when a timer that no clock fires is due (``SagaTimer/Kind/hold``).
    public static let distantFuture = Timestamp(milliseconds: 253_402_300_799_000)

    /// The raw count, `1700000000000ms`: for logs and test failures, not for users (format a date for them).
    public var description: String { "\(milliseconds)ms" }
}

/// Identifies a saga: the workflow it runs and its correlation id (the `trigger.saga_id` value).
///
/// Two workflows may use the same id (an order and its return); the pair is unique.
public struct SagaKey: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The workflow's `name` (not its file name, and without the version).
    public var workflow: String
    /// The correlation id; unique only together with `workflow`.
    public var id: String

    /// Names a saga; the store and the engine never check that it exists.
    public init(workflow: String, id: String) {
        self.workflow = workflow
        self.id = id
    }

    /// `workflow/id`.
    public var description: String { "\(workflow)/\(id)" }
}

/// The states a user sees.
///
/// The raw values are stored in saga state and shown by the CLI: never rename one.
public enum SagaStatus: String, Sendable, Hashable, Codable, CaseIterable {
    /// Steps are running forward.
    case running
    /// A step failed before the pivot; completed steps are being undone.
    case compensating
    /// Every step succeeded. Terminal.
    case completed
    /// Every completed step, and every step whose outcome is unknown (``BranchState/outcomeUnknown``), was undone.
    /// Terminal.
    case compensated
    /// A failure after the pivot (or a compensation that cannot even be built) needs an operator.
    case suspended
    /// An operator cancelled the saga. Terminal.
    case cancelled

    /// Whether the saga will never move again.
    public var isTerminal: Bool {
        switch self {
        case .completed, .compensated, .cancelled: true
        case .running, .compensating, .suspended: false
        }
    }
}

/// A saga's durable state: everything the engine needs to continue after a restart.
///
/// Only the engine changes it: edit a stored instance by hand and the invariants ``SagaEngine`` relies on (one pending
/// command and one timer per branch, `completions` in completion order) may no longer hold.
public struct SagaInstance: Sendable, Hashable, Codable {
    /// Which saga this is; it never changes after the start.
    public var key: SagaKey
    /// The workflow version the saga started with and keeps until it ends.
    public var version: Int
    /// The content hash of the definition the saga runs.
    public var definitionHash: String
    /// Where the saga is; check ``SagaStatus/isTerminal`` rather than listing the end states.
    public var status: SagaStatus
    /// The start message body.
    public var input: JSONValue
    /// One entry per step of the definition, in definition order.
    public var steps: [StepState]
    /// The index of the step running forward; `steps.count` once all succeeded.
    public var cursor: Int
    /// Successful step branches in the order they completed; compensation walks it backwards, taking each step's
    /// branches whose outcome is unknown (which are not listed here) before that step's completed ones.
    public var completions: [BranchRef]
    /// Present while completed branches are being undone (abort or reallocation).
    public var compensation: CompensationPlan?
    /// Set once the pivot step (or any branch of it) succeeded: from then on, failures suspend.
    public var pivotPassed: Bool
    /// The failure that made the saga compensate or suspend.
    public var failure: SagaFailure?
    /// When the start message was handled: the `now` given to
    /// ``SagaEngine/start(definition:definitionHash:sagaId:input:now:)``.
    public var startedAt: Timestamp
    /// The last time the saga changed (the "last progress" operators sort by).
    public var updatedAt: Timestamp
    /// Numbers message, timer and event ids; only ever grows.
    public var sequence: Int
    /// The W3C trace the saga belongs to, set by the worker from its start message; the engine never reads it.
    public var trace: SagaTrace?

    /// Rebuilds a stored instance (the store's decoder, tests). To begin a saga, call
    /// ``SagaEngine/start(definition:definitionHash:sagaId:input:now:)``: an instance made here runs nothing until an
    /// event is applied to it, and `steps` must hold one entry per step of the definition it runs.
    public init(
        key: SagaKey, version: Int, definitionHash: String, status: SagaStatus, input: JSONValue, steps: [StepState],
        cursor: Int, completions: [BranchRef], compensation: CompensationPlan?, pivotPassed: Bool,
        failure: SagaFailure?, startedAt: Timestamp, updatedAt: Timestamp, sequence: Int
    ) {
        self.key = key
        self.version = version
        self.definitionHash = definitionHash
        self.status = status
        self.input = input
        self.steps = steps
        self.cursor = cursor
        self.completions = completions
        self.compensation = compensation
        self.pivotPassed = pivotPassed
        self.failure = failure
        self.startedAt = startedAt
        self.updatedAt = updatedAt
        self.sequence = sequence
    }

    /// The id of the step at the cursor, or `nil` when the saga has moved past the last step.
    public func currentStepId(in definition: WorkflowDefinition) -> String? {
        cursor < definition.steps.count ? definition.steps[cursor].id : nil
    }
}

/// Points at one branch of one step (branch 0 for a step without `for_each`).
public struct BranchRef: Sendable, Hashable, Codable {
    /// The step's index in the definition (and in ``SagaInstance/steps``), not its id.
    public var step: Int
    /// The index in ``StepState/branches``: the `for_each` element's position, 0 for a plain step.
    public var branch: Int

    /// Points at a branch; nothing checks that it exists, and reading a missing one traps.
    public init(step: Int, branch: Int) {
        self.step = step
        self.branch = branch
    }
}

/// A step's progress.
public struct StepState: Sendable, Hashable, Codable {
    /// Where the step is.
    ///
    /// The raw values are stored in saga state: never rename one.
    public enum Status: String, Sendable, Hashable, Codable {
        /// Not started yet (the cursor has not reached it, or a reallocation reset it).
        case pending
        /// Branches are in flight or waiting to retry.
        case running
        /// A branch failed; in-flight siblings are awaited before the failure is handled.
        case failing
        /// Every branch succeeded; ``StepState/output`` is set.
        case succeeded
        /// A branch failed for good; the saga compensates, reallocates or suspends.
        case failed
        /// An operator skipped it with a given output.
        case skipped
        /// Not on the path the saga took: a `choice` or a `next:` jumped over it. It never runs (in this round), and
        /// there is nothing of it to undo.
        case bypassed
    }

    /// Where the step is.
    public var status: Status
    /// One branch for a plain step, one per element for a `for_each` step; empty until it starts (and always empty
    /// for a split step, which runs locally).
    public var branches: [BranchState]
    /// The step's output once it succeeded (for a `for_each` step, the branch outputs in element order).
    public var output: JSONValue?
    /// Bumped each time the step is re-planned by a reallocation; new branches start in this round.
    public var round: Int
    /// How many reallocations this step has caused.
    public var reallocations: Int
    /// For a split step: warehouses that reallocation excluded.
    public var excludedWarehouses: [String]
    /// When the step started (its latest run after a reallocation); `nil` while pending.
    public var startedAt: Timestamp?
    /// When it succeeded, failed or was skipped; `nil` while it runs, and cleared again by an operator retry.
    public var finishedAt: Timestamp?
    /// Branches of earlier rounds that a reallocation or a reset replaced (undone, or failed), oldest first: their
    /// effects are gone from ``branches`` but not from the participants' books, so a reconciliation still asks about
    /// them.
    public var retired: [RetiredBranch]

    /// A step that has not started. The engine creates these; a new one for an existing step forgets its rounds and
    /// exclusions, which a reallocation must carry over.
    public init() {
        status = .pending
        branches = []
        output = nil
        round = 0
        reallocations = 0
        excludedWarehouses = []
        startedAt = nil
        finishedAt = nil
        retired = []
    }
}

extension StepState {
    private enum CodingKeys: String, CodingKey {
        case status, branches, output, round, reallocations, excludedWarehouses, startedAt, finishedAt, retired
    }

    /// Reads a step; one written before retired branches were kept (an archived saga) has none.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        status = try container.decode(Status.self, forKey: .status)
        branches = try container.decode([BranchState].self, forKey: .branches)
        output = try container.decodeIfPresent(JSONValue.self, forKey: .output)
        round = try container.decode(Int.self, forKey: .round)
        reallocations = try container.decode(Int.self, forKey: .reallocations)
        excludedWarehouses = try container.decode([String].self, forKey: .excludedWarehouses)
        startedAt = try container.decodeIfPresent(Timestamp.self, forKey: .startedAt)
        finishedAt = try container.decodeIfPresent(Timestamp.self, forKey: .finishedAt)
        retired = try container.decodeIfPresent([RetiredBranch].self, forKey: .retired) ?? []
    }
}

/// A branch of an earlier round of a step, kept when a reallocation or a reset started the step afresh.
public struct RetiredBranch: Sendable, Hashable, Codable {
    /// Its index in the step's branches of its round (its idempotency key's branch).
    public var index: Int
    /// How it ended.
    public var state: BranchState

    public init(index: Int, state: BranchState) {
        self.index = index
        self.state = state
    }
}

/// One command's life: forward attempts, then maybe its compensation.
public struct BranchState: Sendable, Hashable, Codable {
    /// Where the branch is.
    ///
    /// The raw values are stored in saga state: never rename one.
    public enum Status: String, Sendable, Hashable, Codable {
        /// The command was sent; waiting for a reply or the timeout.
        case inFlight
        /// An attempt failed retryably; the retry timer is set.
        case retryWait
        /// The participant replied ok; the branch is in ``SagaInstance/completions``.
        case succeeded
        /// The forward command failed for good (or stopped retrying because a sibling failed). Compensated all the same
        /// when its outcome is unknown (``BranchState/outcomeUnknown``).
        case failed
        /// Its compensation command was sent.
        case compensating
        /// Its compensation failed and waits for the retry timer.
        case compensationRetryWait
        /// Its compensation succeeded.
        case compensated
        /// An operator skipped it (forward or compensation).
        case skipped
        /// A wait step's branch: its timer is set and nothing is sent.
        case waiting
    }

    /// The `for_each` element (the shipment); `nil` for a plain step.
    public var item: JSONValue?
    /// Where the branch is.
    public var status: Status
    /// Bumped when the branch is re-run from scratch (operator retry); part of its idempotency key when > 0.
    public var round: Int
    /// Forward attempts made so far in this round (1-based once sent).
    public var attempt: Int
    /// Compensation attempts made so far.
    public var compensationAttempt: Int
    /// The command awaiting a reply, if any.
    public var pending: PendingCommand?
    /// The one live timer (reply timeout or retry delay), if any.
    public var timer: SagaTimer?
    /// The reply's `output` once the forward command succeeded (`.null` when the reply had none); kept through
    /// compensation so the undo command can read it.
    public var output: JSONValue?
    /// The latest failure, forward or compensation; it stays after a later success, so it is not a failure flag.
    public var lastError: StepError?
    /// When its first attempt was sent; an operator retry keeps it.
    public var startedAt: Timestamp?
    /// When it last succeeded, failed or was compensated; a compensation in flight keeps the forward time.
    public var finishedAt: Timestamp?
    /// Forward attempts of this round that were sent and never answered: their reply timeout fired first. Each may
    /// still have taken effect at the participant, so a count above 0 makes a branch that never succeeded
    /// ``outcomeUnknown``. A later explicit error does not lower it (see ``outcomeUnknown``); an operator retry, which
    /// starts a new round under a new idempotency key, resets it.
    public var unansweredAttempts: Int

    /// A branch about to send its first attempt (status `inFlight`, no attempt made yet). `round` must be the step's
    /// ``StepState/round``, or the branch's idempotency key repeats an earlier round's.
    public init(item: JSONValue?, round: Int) {
        self.item = item
        self.round = round
        status = .inFlight
        attempt = 0
        compensationAttempt = 0
        unansweredAttempts = 0
    }

    /// Whether the forward command may have taken effect although no ok reply came: it never succeeded in this round,
    /// and at least one of its attempts was sent and never answered.
    ///
    /// The rule (docs/workflows.md, "Unknown outcomes"): an attempt whose reply timed out is possibly done; an
    /// explicit error reply means that attempt did nothing, and a command the broker returned unroutable was never
    /// delivered. Once possibly done, a branch stays so even if a later attempt gets a non-retryable error: every
    /// attempt carries the same idempotency key, so the participant applied the unanswered one at most once, but it
    /// may have, and the error of the later attempt does not say it did not. Such a branch is compensated like a
    /// succeeded one, with no output to read.
    public var outcomeUnknown: Bool { output == nil && unansweredAttempts > 0 }
}

/// A command that was sent and not yet answered.
public struct PendingCommand: Sendable, Hashable, Codable {
    /// The message id; replies carry it as `correlation_id`.
    public var messageId: String
    /// Where it was sent: the step's evaluated `command` (or `compensate.command`) on the commands exchange.
    public var routingKey: String
    /// Whether a reply completes the step or its undo.
    public var kind: CommandKind
    /// The forward attempt number, or the compensation attempt number when `kind` is `compensate`; 1-based.
    public var attempt: Int
    /// When the engine emitted it; the broker may have taken it later.
    public var sentAt: Timestamp

    /// Rebuilds a stored pending command (the store's decoder, tests); only the engine sends commands.
    public init(messageId: String, routingKey: String, kind: CommandKind, attempt: Int, sentAt: Timestamp) {
        self.messageId = messageId
        self.routingKey = routingKey
        self.kind = kind
        self.attempt = attempt
        self.sentAt = sentAt
    }
}

/// Why a step attempt failed.
public struct StepError: Sendable, Hashable, Codable, CustomStringConvertible {
    /// A stable machine code (`out_of_stock`, ``timeoutCode``); `reallocate.codes` in a workflow match it exactly.
    public var code: String
    /// What went wrong, for people; may quote participant data, so summarise it before logging.
    public var message: String
    /// Whether another attempt may succeed. A non-retryable error fails the step at once, whatever retries remain.
    public var retryable: Bool

    /// Describes a failure; participants' reply errors arrive as these.
    public init(code: String, message: String, retryable: Bool) {
        self.code = code
        self.message = message
        self.retryable = retryable
    }

    /// `code: message`, which includes the whole message (see ``message`` before logging it).
    public var description: String { "\(code): \(message)" }

    /// The reply timed out (retryable).
    public static let timeoutCode = "timeout"
    /// A `${...}` path did not resolve (non-retryable).
    public static let evaluationCode = "expression_error"
    /// The broker returned the command as unroutable (retryable).
    public static let unroutableCode = "unroutable"
    /// No message a wait step waited for came before its timeout, and it has no `on_timeout` target (non-retryable).
    public static let waitTimeoutCode = "wait_timeout"
    /// A participant's back-pressure reply: it refused the command for now (optionally saying when to come back,
    /// `retry_after`). For a command under a limit it is no failure: the command is held again and the limiter slows
    /// down for every saga; for any other command it is a retryable failed attempt.
    public static let rateLimitedCode = "rate_limited"
}

/// The failure a saga is compensating or suspended for.
public struct SagaFailure: Sendable, Hashable, Codable {
    /// The id of the step that failed (for an operator's compensate, the step the saga was at).
    public var step: String
    /// The `for_each` branch that failed; `nil` for a plain step or a failure of the whole step.
    public var branch: Int?
    /// The error that made the saga compensate or suspend; failures of sibling branches after it do not replace it.
    public var error: StepError
    /// When the failure was handled.
    public var at: Timestamp

    /// Rebuilds a stored failure (the store's decoder, tests); setting one does not make a saga compensate.
    public init(step: String, branch: Int?, error: StepError, at: Timestamp) {
        self.step = step
        self.branch = branch
        self.error = error
        self.at = at
    }
}

/// The undo work in progress.
public struct CompensationPlan: Sendable, Hashable, Codable {
    /// Why compensation runs.
    public enum Purpose: Sendable, Hashable, Codable {
        /// The saga is being undone; it ends `compensated`.
        case abort
        /// Branches after `splitStep` are undone so it can re-plan without `excludedWarehouses`.
        case reallocate(splitStep: Int, excludedWarehouses: [String])
        /// An operator's reset: the branches of `step` and every step after it that took effect are undone, then the
        /// saga runs again from `step` (``OperatorCommand/Action/reset(step:)``).
        case reset(step: Int)
    }

    /// Why the undo runs, which decides how the saga goes on once the queue is empty.
    public var purpose: Purpose
    /// Branches still to undo, next first.
    public var queue: [BranchRef]

    /// Rebuilds a stored plan (the store's decoder, tests); the engine makes its own when compensation begins, and
    /// `queue` must list branches steps last first: in each step, the branches whose outcome is unknown, then the
    /// completed ones in reverse completion order.
    public init(purpose: Purpose, queue: [BranchRef]) {
        self.purpose = purpose
        self.queue = queue
    }
}

/// Whether a command does a step or undoes it (the `waybill-action` header).
///
/// The raw values are stored in saga state and sent on the wire: never rename one.
public enum CommandKind: String, Sendable, Hashable, Codable {
    /// The step's forward command.
    case `do`
    /// The step's `compensate` command.
    case compensate
}

/// The W3C Trace Context a saga belongs to: the `traceparent` (and `tracestate`) of its start message, or of a trace
/// the worker began for it. Every command and milestone of the saga carries the same trace id on (docs/metrics.md),
/// so one order is one trace. Kept as the header texts, which the worker checked when it took them.
public struct SagaTrace: Sendable, Hashable, Codable {
    /// `00-<trace id>-<parent span id>-<flags>`: the span the saga's work descends from.
    public var traceParent: String
    /// Vendor entries to pass on unchanged, if the start message had any.
    public var traceState: String?

    public init(traceParent: String, traceState: String? = nil) {
        self.traceParent = traceParent
        self.traceState = traceState
    }
}
