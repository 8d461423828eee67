import SagaEngine
import WaybillDefinition

/// Why a non-terminal saga is where it is. Every saga that is not completed, compensated or cancelled falls in
/// exactly one class; the first that applies wins, in the order of ``allCases``.
public enum StuckClass: String, Sendable, Hashable, CaseIterable, Codable {
    /// Undoing a step failed and waits to be tried again.
    case compensationFailing = "compensation-failing"
    /// A step failed for good after the pivot (non-retryable, or retries exhausted), or an undo could not even be
    /// built: an operator must act.
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

/// What stuck detection looks at: the status, the last progress and the live timers. They are columns of the
/// `sagas` and `timers` tables, so the whole file can be classified from its indexes without decoding state;
/// ``StuckClassifier/signals(of:)`` reads the same facts from a decoded saga, so `show` and `stuck` always agree.
public struct StuckSignals: Sendable, Hashable {
    /// The saga's status.
    public var status: SagaStatus
    /// Its last progress.
    public var updatedAt: Timestamp
    /// Its live timers: kind and due time.
    public var timers: [Timer]

    /// A live timer.
    public struct Timer: Sendable, Hashable {
        /// Reply timeout or retry delay.
        public var kind: SagaTimer.Kind
        /// When it is due.
        public var dueAt: Timestamp
    }
}

/// The classification rules, first match wins:
/// 1. compensating with a retry timer (an undo failed and waits to be tried again):
///    ``StuckClass/compensationFailing``;
/// 2. suspended (a step failed for good after the pivot, or an undo could not even be built):
///    ``StuckClass/suspended``;
/// 3. a reply timeout more than the grace past due: ``StuckClass/replyOverdue``;
/// 4. a retry timer more than the grace past due: ``StuckClass/timerOverdue``;
/// 5. a retry timer: ``StuckClass/retrying``;
/// 6. no progress for the threshold: ``StuckClass/noProgress``;
/// 7. otherwise ``StuckClass/onSchedule``.
public enum StuckClassifier {
    /// The class of `instance` at `now`, or `nil` when it is terminal.
    public static func classify(_ instance: SagaInstance, now: Timestamp, policy: StuckPolicy) -> StuckClass? {
        classify(signals(of: instance), now: now, policy: policy)
    }

    /// The class of a saga with these signals at `now`, or `nil` when it is terminal.
    public static func classify(_ signals: StuckSignals, now: Timestamp, policy: StuckPolicy) -> StuckClass? {
        var timers = TimerFlags()
        let overdue = now.milliseconds - policy.grace.milliseconds
        for timer in signals.timers { timers.add(timer.kind, dueAt: timer.dueAt.milliseconds, overdueBefore: overdue) }
        return classify(
            status: signals.status, updatedAt: signals.updatedAt.milliseconds, timers: timers,
            idleBefore: now.milliseconds - policy.noProgressAfter.milliseconds)
    }

    /// What the rules need to know about a saga's timers.
    struct TimerFlags {
        var retry = false
        var retryOverdue = false
        var replyOverdue = false
        var waiting = false

        mutating func add(_ kind: SagaTimer.Kind, dueAt: Int64, overdueBefore: Int64) {
            switch kind {
            case .retry:
                retry = true
                if dueAt < overdueBefore { retryOverdue = true }
            case .replyTimeout:
                if dueAt < overdueBefore { replyOverdue = true }
            case .wait:
                // A wait step waits by design: on schedule until its timer is overdue.
                waiting = true
                if dueAt < overdueBefore { retryOverdue = true }
            case .hold:
                // Held back by a participant's limit: the limiter sends it in its turn (`waybill pool` shows the
                // limits that bind).
                waiting = true
            }
        }
    }

    /// The rules themselves, on plain values (the stuck report calls this for every saga with a timer reason).
    static func classify(status: SagaStatus, updatedAt: Int64, timers: TimerFlags, idleBefore: Int64) -> StuckClass? {
        switch status {
        case .completed, .compensated, .cancelled: return nil
        case .suspended: return .suspended
        case .compensating where timers.retry: return .compensationFailing
        case .running, .compensating: break
        }
        if timers.replyOverdue { return .replyOverdue }
        if timers.retryOverdue { return .timerOverdue }
        if timers.retry { return .retrying }
        if timers.waiting { return .onSchedule }
        if updatedAt <= idleBefore { return .noProgress }
        return .onSchedule
    }

    /// The signals of a decoded saga.
    public static func signals(of instance: SagaInstance) -> StuckSignals {
        StuckSignals(
            status: instance.status, updatedAt: instance.updatedAt,
            timers: instance.steps.flatMap { step in
                step.branches.compactMap { branch in
                    branch.timer.map { StuckSignals.Timer(kind: $0.kind, dueAt: $0.dueAt) }
                }
            })
    }

    /// The branch next in line to be undone, if the saga is compensating (or re-planning).
    static func compensationHead(of instance: SagaInstance) -> (ref: BranchRef, branch: BranchState)? {
        guard let ref = instance.compensation?.queue.first, ref.step < instance.steps.count,
            ref.branch < instance.steps[ref.step].branches.count
        else { return nil }
        return (ref, instance.steps[ref.step].branches[ref.branch])
    }
}
