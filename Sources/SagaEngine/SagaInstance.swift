import WaybillDefinition

/// A point in time in milliseconds since the Unix epoch. The engine never reads a clock: callers pass `now`.
public struct Timestamp: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var milliseconds: Int64

    public init(milliseconds: Int64) {
        self.milliseconds = milliseconds
    }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.milliseconds < rhs.milliseconds }

    /// This instant moved forward by `duration`.
    public func adding(_ duration: Duration) -> Timestamp {
        Timestamp(milliseconds: milliseconds + duration.milliseconds)
    }

    /// This instant moved forward by `milliseconds`.
    public func adding(milliseconds delta: Int64) -> Timestamp {
        Timestamp(milliseconds: milliseconds + delta)
    }

    public var description: String { "\(milliseconds)ms" }
}

/// Identifies a saga: the workflow it runs and its correlation id (the `trigger.saga_id` value).
///
/// Two workflows may use the same id (an order and its return); the pair is unique.
public struct SagaKey: Sendable, Hashable, Codable, CustomStringConvertible {
    public var workflow: String
    public var id: String

    public init(workflow: String, id: String) {
        self.workflow = workflow
        self.id = id
    }

    /// `workflow/id`.
    public var description: String { "\(workflow)/\(id)" }
}

/// The states a user sees.
public enum SagaStatus: String, Sendable, Hashable, Codable, CaseIterable {
    /// Steps are running forward.
    case running
    /// A step failed before the pivot; completed steps are being undone.
    case compensating
    /// Every step succeeded. Terminal.
    case completed
    /// Every completed step was undone. Terminal.
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
public struct SagaInstance: Sendable, Hashable, Codable {
    public var key: SagaKey
    /// The workflow version the saga started with and keeps until it ends.
    public var version: Int
    /// The content hash of the definition the saga runs.
    public var definitionHash: String
    public var status: SagaStatus
    /// The start message body.
    public var input: JSONValue
    /// One entry per step of the definition, in definition order.
    public var steps: [StepState]
    /// The index of the step running forward; `steps.count` once all succeeded.
    public var cursor: Int
    /// Successful step branches in the order they completed; compensation walks it backwards.
    public var completions: [BranchRef]
    /// Present while completed branches are being undone (abort or reallocation).
    public var compensation: CompensationPlan?
    /// Set once the pivot step (or any branch of it) succeeded: from then on, failures suspend.
    public var pivotPassed: Bool
    /// The failure that made the saga compensate or suspend.
    public var failure: SagaFailure?
    public var startedAt: Timestamp
    /// The last time the saga changed (the "last progress" operators sort by).
    public var updatedAt: Timestamp
    /// Numbers message, timer and event ids; only ever grows.
    public var sequence: Int

    /// The id of the step at the cursor, or `nil` when the saga has moved past the last step.
    public func currentStepId(in definition: WorkflowDefinition) -> String? {
        cursor < definition.steps.count ? definition.steps[cursor].id : nil
    }
}

/// Points at one branch of one step (branch 0 for a step without `for_each`).
public struct BranchRef: Sendable, Hashable, Codable {
    public var step: Int
    public var branch: Int

    public init(step: Int, branch: Int) {
        self.step = step
        self.branch = branch
    }
}

/// A step's progress.
public struct StepState: Sendable, Hashable, Codable {
    /// Where the step is.
    public enum Status: String, Sendable, Hashable, Codable {
        case pending
        /// Branches are in flight or waiting to retry.
        case running
        /// A branch failed; in-flight siblings are awaited before the failure is handled.
        case failing
        case succeeded
        case failed
        /// An operator skipped it with a given output.
        case skipped
    }

    public var status: Status
    /// One branch for a plain step, one per element for a `for_each` step; empty until it starts.
    public var branches: [BranchState]
    /// The step's output once it succeeded (for a `for_each` step, the branch outputs in element order).
    public var output: JSONValue?
    /// Bumped each time the step is re-planned by a reallocation; new branches start in this round.
    public var round: Int
    /// How many reallocations this step has caused.
    public var reallocations: Int
    /// For a split step: warehouses that reallocation excluded.
    public var excludedWarehouses: [String]
    public var startedAt: Timestamp?
    public var finishedAt: Timestamp?

    public init() {
        status = .pending
        branches = []
        output = nil
        round = 0
        reallocations = 0
        excludedWarehouses = []
        startedAt = nil
        finishedAt = nil
    }
}

/// One command's life: forward attempts, then maybe its compensation.
public struct BranchState: Sendable, Hashable, Codable {
    /// Where the branch is.
    public enum Status: String, Sendable, Hashable, Codable {
        /// The command was sent; waiting for a reply or the timeout.
        case inFlight
        /// An attempt failed retryably; the retry timer is set.
        case retryWait
        case succeeded
        case failed
        /// Its compensation command was sent.
        case compensating
        /// Its compensation failed and waits for the retry timer.
        case compensationRetryWait
        case compensated
        /// An operator skipped it (forward or compensation).
        case skipped
    }

    /// The `for_each` element (the shipment); `nil` for a plain step.
    public var item: JSONValue?
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
    public var output: JSONValue?
    public var lastError: StepError?
    public var startedAt: Timestamp?
    public var finishedAt: Timestamp?

    public init(item: JSONValue?, round: Int) {
        self.item = item
        self.round = round
        status = .inFlight
        attempt = 0
        compensationAttempt = 0
    }
}

/// A command that was sent and not yet answered.
public struct PendingCommand: Sendable, Hashable, Codable {
    /// The message id; replies carry it as `correlation_id`.
    public var messageId: String
    public var routingKey: String
    public var kind: CommandKind
    public var attempt: Int
    public var sentAt: Timestamp
}

/// Why a step attempt failed.
public struct StepError: Sendable, Hashable, Codable, CustomStringConvertible {
    public var code: String
    public var message: String
    public var retryable: Bool

    public init(code: String, message: String, retryable: Bool) {
        self.code = code
        self.message = message
        self.retryable = retryable
    }

    public var description: String { "\(code): \(message)" }

    /// The reply timed out (retryable).
    public static let timeoutCode = "timeout"
    /// A `${...}` path did not resolve (non-retryable).
    public static let evaluationCode = "expression_error"
    /// The broker returned the command as unroutable (retryable).
    public static let unroutableCode = "unroutable"
}

/// The failure a saga is compensating or suspended for.
public struct SagaFailure: Sendable, Hashable, Codable {
    public var step: String
    public var branch: Int?
    public var error: StepError
    public var at: Timestamp
}

/// The undo work in progress.
public struct CompensationPlan: Sendable, Hashable, Codable {
    /// Why compensation runs.
    public enum Purpose: Sendable, Hashable, Codable {
        /// The saga is being undone; it ends `compensated`.
        case abort
        /// Branches after `splitStep` are undone so it can re-plan without `excludedWarehouses`.
        case reallocate(splitStep: Int, excludedWarehouses: [String])
    }

    public var purpose: Purpose
    /// Branches still to undo, next first.
    public var queue: [BranchRef]
}

/// Whether a command does a step or undoes it (the `waybill-action` header).
public enum CommandKind: String, Sendable, Hashable, Codable {
    case `do`
    case compensate
}
