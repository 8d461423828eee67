import SagaEngine
import WaybillDefinition

/// Why a non-terminal saga is where it is. Every saga that is not completed, compensated or cancelled falls in
/// exactly one class; the first that applies wins, in the order of ``allCases``.
public enum StuckClass: String, Sendable, Hashable, CaseIterable, Codable {
    /// Undoing a step keeps failing (its compensation waits to retry, was retried, or cannot even be built).
    case compensationFailing = "compensation-failing"
    /// A step failed for good after the pivot (non-retryable, or retries exhausted): an operator must act.
    case suspended
    /// A command waits for its reply past the step's timeout, and the reply-timeout timer has not fired.
    case replyOverdue = "reply-overdue"
    /// A retry timer is past due and has not fired.
    case timerOverdue = "timer-overdue"
    /// A step attempt failed retryably and waits for its next attempt.
    case retrying
    /// Nothing above applies, but the saga has not moved for longer than the threshold.
    case noProgress = "no-progress"
    /// Waiting for replies within their timeouts: not stuck.
    case onSchedule = "on-schedule"

    /// The heading `waybill sagas stuck` prints.
    public var title: String {
        switch self {
        case .compensationFailing: "compensation failing"
        case .suspended: "retries exhausted / suspended"
        case .replyOverdue: "waiting for a reply past its timeout"
        case .timerOverdue: "timer overdue (is a worker running?)"
        case .retrying: "retrying"
        case .noProgress: "no progress"
        case .onSchedule: "on schedule (not stuck)"
        }
    }

    /// A few words for inline use: `timer overdue`, `suspended`.
    public var shortTitle: String {
        switch self {
        case .compensationFailing: "compensation failing"
        case .suspended: "suspended"
        case .replyOverdue: "reply overdue"
        case .timerOverdue: "timer overdue"
        case .retrying: "retrying"
        case .noProgress: "no progress"
        case .onSchedule: "on schedule"
        }
    }

    /// Whether the class means the saga needs attention.
    public var isStuck: Bool { self != .onSchedule }

    /// Reads a `--class` value: the raw value (`reply-overdue`) or a few obvious synonyms.
    public static func parse(_ text: String) throws(OperationsError) -> StuckClass {
        let name = text.lowercased()
        if let value = StuckClass(rawValue: name) { return value }
        let synonyms: [String: StuckClass] = [
            "exhausted": .suspended, "compensation": .compensationFailing, "reply": .replyOverdue,
            "timer": .timerOverdue, "retry": .retrying, "idle": .noProgress, "healthy": .onSchedule,
        ]
        if let value = synonyms[name] { return value }
        throw OperationsError(
            .badArgument, "--class '\(text)': expected one of \(allCases.map(\.rawValue).joined(separator: ", "))")
    }
}

/// The two knobs of stuck detection.
public struct StuckPolicy: Sendable, Hashable {
    /// How late a timer may fire before it counts as overdue (a busy worker lags a little). Default 30s.
    public var grace: Duration
    /// How long a saga may go without progress before it counts as stuck. Default 15m.
    public var noProgressAfter: Duration

    /// The default policy: 30 seconds of grace, 15 minutes without progress.
    public init(grace: Duration = .seconds(30), noProgressAfter: Duration = .seconds(900)) {
        self.grace = grace
        self.noProgressAfter = noProgressAfter
    }
}

/// Classifies sagas from their decoded state. ``OperationsDatabase/stuckReport(now:policy:limit:only:)`` uses the
/// same rules, reading state only for the sagas the timers table and the status column cannot settle.
public enum StuckClassifier {
    /// The class of `instance` at `now`, or `nil` when it is terminal.
    public static func classify(_ instance: SagaInstance, now: Timestamp, policy: StuckPolicy) -> StuckClass? {
        guard !instance.status.isTerminal else { return nil }
        if compensationHead(of: instance).map({ isFailing($0.branch, in: instance) }) == true {
            return .compensationFailing
        }
        if instance.status == .suspended { return .suspended }
        let overdue = now.milliseconds - policy.grace.milliseconds
        var retrying = false
        var timerOverdue = false
        for step in instance.steps {
            for branch in step.branches {
                if let timer = branch.timer, timer.dueAt.milliseconds < overdue {
                    if timer.kind == .replyTimeout, branch.pending != nil { return .replyOverdue }
                    timerOverdue = true
                }
                if branch.status == .retryWait { retrying = true }
            }
        }
        if timerOverdue { return .timerOverdue }
        if retrying { return .retrying }
        if instance.updatedAt.milliseconds <= now.milliseconds - policy.noProgressAfter.milliseconds {
            return .noProgress
        }
        return .onSchedule
    }

    /// The branch next in line to be undone, if the saga is compensating (or re-planning).
    static func compensationHead(of instance: SagaInstance) -> (ref: BranchRef, branch: BranchState)? {
        guard let ref = instance.compensation?.queue.first, ref.step < instance.steps.count,
            ref.branch < instance.steps[ref.step].branches.count
        else { return nil }
        return (ref, instance.steps[ref.step].branches[ref.branch])
    }

    private static func isFailing(_ branch: BranchState, in instance: SagaInstance) -> Bool {
        instance.status == .suspended || branch.status == .compensationRetryWait
            || (instance.status == .compensating && branch.compensationAttempt >= 2)
    }
}
