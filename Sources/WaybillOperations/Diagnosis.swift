import SagaEngine
import SagaStore
import WaybillDefinition

/// Why a saga is where it is, in one line, with the commands that would move it.
public struct Diagnosis: Sendable, Hashable {
    /// Its stuck class; `nil` for a terminal saga.
    public var stuckClass: StuckClass?
    /// One sentence: what the saga waits for or what went wrong, with times.
    public var reason: String
    /// A few words for tables: `ship[1] carrier_rejected (not retryable)`.
    public var brief: String
    /// Commands (or checks) that would move it, most likely first.
    public var suggestions: [String]
    /// The error code that keeps it in its class, when one does: the failure's (suspended), the failing
    /// compensation's last error, or the last error of the attempt waiting to retry; `nil` otherwise.
    public var code: String?

    /// Diagnoses a saga at `now`.
    public init(record: SagaRecord, definition: WorkflowDefinition?, now: Timestamp, policy: StuckPolicy) {
        let text = DiagnosisText(record: record, definition: definition, now: now, policy: policy)
        stuckClass = StuckClassifier.classify(record.instance, now: now, policy: policy)
        (reason, brief, suggestions) = text.explain(stuckClass)
        code = Self.code(of: record.instance, in: stuckClass)
    }

    private static func code(of instance: SagaInstance, in stuckClass: StuckClass?) -> String? {
        switch stuckClass {
        case .suspended?: return instance.failure?.error.code
        case .compensationFailing?: return StuckClassifier.compensationHead(of: instance)?.branch.lastError?.code
        case .retrying?:
            let waiting = instance.steps.lazy.flatMap(\.branches).first { $0.status == .retryWait }
            return waiting?.lastError?.code
        default: return nil
        }
    }
}

/// The sentences behind a ``Diagnosis``.
struct DiagnosisText {
    let record: SagaRecord
    let definition: WorkflowDefinition?
    let now: Timestamp
    let policy: StuckPolicy
    let names: SagaNames

    init(record: SagaRecord, definition: WorkflowDefinition?, now: Timestamp, policy: StuckPolicy) {
        self.record = record
        self.definition = definition
        self.now = now
        self.policy = policy
        names = SagaNames(instance: record.instance, definition: definition)
    }

    var instance: SagaInstance { record.instance }
    var reference: String { record.row.key.description }
    let why = "--reason '<why>'"

    func explain(_ stuckClass: StuckClass?) -> (String, String, [String]) {
        guard let stuckClass else { return terminal() }
        switch stuckClass {
        case .compensationFailing: return compensationFailing()
        case .suspended: return suspended()
        case .replyOverdue: return replyOverdue()
        case .timerOverdue: return timerOverdue()
        case .retrying: return retrying()
        case .noProgress: return noProgress()
        case .onSchedule: return onSchedule()
        }
    }

    // MARK: - Classes

    private func terminal() -> (String, String, [String]) {
        let when = TimeText.relative(instance.updatedAt, now: now)
        switch instance.status {
        case .completed:
            return ("not stuck: completed \(when)", "completed", [])
        case .compensated:
            let cause = instance.failure.map { " after \(failureLabel($0)) failed with \($0.error.code)" } ?? ""
            let owed = UndoLedger(instance: instance, definition: definition).owed
            guard owed.isEmpty else {
                let list = owed.map(names.branch).joined(separator: ", ")
                return (
                    "compensated \(when)\(cause), but not fully undone: \(list) got no reply and may have taken effect, "
                        + "and \(owed.count == 1 ? "was" : "were") never compensated (a worker older than this one "
                        + "did not undo such steps)",
                    "compensated, \(list) not undone",
                    owed.map { ref in
                        "check \(names.branch(ref)) at its participant (idempotency key \(forwardKey(ref))) and undo "
                            + "it by hand if it took effect"
                    }
                )
            }
            return (
                "not stuck: compensated \(when)\(cause); every step that may have taken effect was undone",
                "compensated", []
            )
        case .cancelled:
            return ("not stuck: cancelled by an operator \(when); nothing was undone", "cancelled", [])
        case .running, .compensating, .suspended:
            return ("", "", [])
        }
    }

    /// Suspended because a compensation command could not be built.
    private func undoBlocked(_ head: (ref: BranchRef, branch: BranchState)) -> (String, String, [String]) {
        let label = names.branch(head.ref)
        let step = names.step(head.ref.step)
        let error = instance.failure?.error ?? head.branch.lastError
        let cause = error.map { errorText($0) } ?? "an unknown error"
        return (
            "suspended while undoing \(label): its compensation cannot be sent (\(cause))",
            "undo \(label) blocked: \(error?.code ?? "failed")",
            [
                "after fixing the data: waybill sagas retry \(reference) --step \(step) \(why)",
                "if it was undone by hand: waybill sagas skip \(reference) --step \(step) \(why)",
            ]
        )
    }

    private func compensationFailing() -> (String, String, [String]) {
        guard let head = StuckClassifier.compensationHead(of: instance) else { return ("", "", []) }
        let label = names.branch(head.ref)
        let step = names.step(head.ref.step)
        let skip = "if it was undone by hand: waybill sagas skip \(reference) --step \(step) \(why)"
        let attempt = head.branch.compensationAttempt
        let last = head.branch.lastError.map { errorText($0) } ?? "an error"
        if head.branch.status == .compensationRetryWait {
            let next = head.branch.timer.map { " next attempt \(moment($0.dueAt))" } ?? ""
            return (
                "undoing \(label) keeps failing: compensation attempt \(attempt) failed with \(last);\(next) "
                    + "(compensations retry until they succeed)",
                "undo \(label): \(head.branch.lastError?.code ?? "failed"), attempt \(attempt)",
                ["retry it now: waybill sagas retry \(reference) \(why)", skip]
            )
        }
        let sent = head.branch.pending.map { " sent \(moment($0.sentAt))" } ?? ""
        return (
            "undoing \(label) keeps failing: compensation attempt \(attempt)\(sent) waits for its reply after "
                + "\(attempt - 1) failed (last: \(last))",
            "undo \(label): attempt \(attempt), last \(head.branch.lastError?.code ?? "error")",
            [skip]
        )
    }

    private func suspended() -> (String, String, [String]) {
        if let head = StuckClassifier.compensationHead(of: instance) {
            return undoBlocked(head)
        }
        guard let failure = instance.failure else {
            return (
                "suspended without a recorded failure; resume it", "suspended",
                ["waybill sagas resume \(reference) \(why)"]
            )
        }
        let label = failureLabel(failure)
        let attempts = attemptsOfFailure(failure)
        let cause: String
        let brief: String
        if failure.error.retryable {
            cause =
                "retries exhausted at \(label)\(attempts.map { " (\($0))" } ?? ""): last error \(errorText(failure.error))"
            brief = "\(label) \(failure.error.code)\(attempts.map { " (\($0))" } ?? "")"
        } else {
            cause = "\(label) failed with \(errorText(failure.error))"
            brief = "\(label) \(failure.error.code) (not retryable)"
        }
        let pivot =
            instance.pivotPassed
            ? " after the pivot\(pivotName.map { " '\($0)'" } ?? ""), so nothing can be undone any more" : ""
        return (
            "suspended \(moment(failure.at)): \(cause)\(pivot)",
            brief,
            [
                "once the cause is fixed: waybill sagas retry \(reference) --step \(failure.step) \(why)",
                "if the step was done by hand: waybill sagas skip \(reference) --step \(failure.step) "
                    + "--output '<json>' \(why)",
            ]
        )
    }

    private func replyOverdue() -> (String, String, [String]) {
        let overdue = now.milliseconds - policy.grace.milliseconds
        for (ref, branch) in branches() {
            guard let timer = branch.timer, timer.kind == .replyTimeout, timer.dueAt.milliseconds < overdue else {
                continue
            }
            let label = names.branch(ref)
            let late = TimeText.span(milliseconds: now.milliseconds - timer.dueAt.milliseconds)
            guard let pending = branch.pending else {
                return (
                    "the reply timeout of \(label) was due \(moment(timer.dueAt)) and has not fired: \(ownerQuestion)",
                    "\(label) reply timeout overdue \(late)", workerChecks()
                )
            }
            let what = pending.kind == .compensate ? "compensation" : "command"
            return (
                "waiting since \(TimeText.short(pending.sentAt, now: now)) for a reply to \(what) "
                    + "\(pending.routingKey) (\(label), \(attemptText(ref, branch, compensating: pending.kind == .compensate))); "
                    + "its timeout passed \(TimeText.relative(timer.dueAt, now: now)) and the timer has not fired: "
                    + ownerQuestion,
                "\(label) \(pending.routingKey) overdue \(late)",
                workerChecks()
            )
        }
        return ("", "", [])
    }

    private func timerOverdue() -> (String, String, [String]) {
        let overdue = now.milliseconds - policy.grace.milliseconds
        for (ref, branch) in branches() {
            guard let timer = branch.timer, timer.kind == .retry || timer.kind == .wait,
                timer.dueAt.milliseconds < overdue
            else { continue }
            let label = names.branch(ref)
            let what =
                timer.kind == .wait
                ? "end of the wait" : branch.status == .compensationRetryWait ? "compensation retry" : "retry"
            return (
                "the \(what) of \(label) was due \(moment(timer.dueAt)) and has not run: \(ownerQuestion)",
                "\(label) \(what) overdue \(TimeText.span(milliseconds: now.milliseconds - timer.dueAt.milliseconds))",
                workerChecks()
            )
        }
        return ("", "", [])
    }

    private func retrying() -> (String, String, [String]) {
        let waiting = branches().filter { $0.1.timer?.kind == .retry }
        guard let (ref, branch) = waiting.min(by: { ($0.1.timer?.dueAt ?? now) < ($1.1.timer?.dueAt ?? now) }) else {
            return ("", "", [])
        }
        let undo = branch.status == .compensationRetryWait
        let label = (undo ? "the undo of " : "") + names.branch(ref)
        let error = branch.lastError.map { errorText($0) } ?? "an error"
        let next = branch.timer.map { "; next attempt \(moment($0.dueAt))" } ?? ""
        let more = waiting.count > 1 ? " (\(waiting.count - 1) more branches retrying)" : ""
        let attempt = attemptText(ref, branch, compensating: undo)
        return (
            "retrying \(label): \(attempt) failed with \(error)\(next)\(more)",
            "\(names.branch(ref)) \(branch.lastError?.code ?? "error"), \(attempt)"
                + (branch.timer.map { ", next \(TimeText.relative($0.dueAt, now: now))" } ?? ""),
            ["retry now instead of waiting: waybill sagas retry \(reference) \(why)"]
        )
    }

    private func noProgress() -> (String, String, [String]) {
        let idle = TimeText.span(milliseconds: now.milliseconds - instance.updatedAt.milliseconds)
        let threshold = TimeText.span(milliseconds: policy.noProgressAfter.milliseconds)
        let step = record.row.currentStep ?? "the end"
        let pending = branches().compactMap { $0.1.pending }
        if pending.isEmpty && !branches().contains(where: { $0.1.timer != nil }) {
            return (
                "no progress for \(idle) (threshold \(threshold)) at \(step), and nothing is pending and no timer is "
                    + "set: the saga is wedged",
                "\(step): idle \(idle), nothing pending",
                ["waybill sagas resume \(reference) \(why)", "waybill sagas history \(reference)"]
            )
        }
        let keys = Array(Set(pending.map(\.routingKey))).sorted().joined(separator: ", ")
        return (
            "no progress for \(idle) (threshold \(threshold)) at \(step): waiting for "
                + "\(Words.count(pending.count, "reply", "replies")) (\(keys)) within the step's timeout",
            "\(step): idle \(idle), waiting for \(Words.count(pending.count, "reply", "replies"))",
            ["check the participants behind \(keys)", "waybill sagas history \(reference)"]
        )
    }

    private func onSchedule() -> (String, String, [String]) {
        let step = record.row.currentStep ?? "the end"
        if let (ref, branch) = branches().first(where: { $0.1.timer?.kind == .hold }), let pending = branch.pending {
            let lane = definition.map { PriorityLane.name($0.priorityLane(input: instance.input)) } ?? "normal"
            return (
                "not stuck: \(pending.routingKey) (\(names.branch(ref))) is held back by a participant's limit since "
                    + "\(moment(pending.sentAt)), \(lane) priority; it goes out in its turn (waybill pool shows the "
                    + "limits that bind)",
                "\(names.branch(ref)) held for its limit, \(TimeText.relative(pending.sentAt, now: now))",
                []
            )
        }
        if let (ref, branch) = branches().first(where: { $0.1.pending != nil }), let pending = branch.pending {
            let until = branch.timer.map { ", timeout \(TimeText.relative($0.dueAt, now: now))" } ?? ""
            let compensating = pending.kind == .compensate
            return (
                "not stuck: waiting for a reply to \(pending.routingKey) (\(names.branch(ref)), "
                    + "\(attemptText(ref, branch, compensating: compensating)))\(until)",
                "\(names.branch(ref)) waiting\(until)",
                []
            )
        }
        if let (ref, branch) = branches().first(where: { $0.1.status == .waiting }), let timer = branch.timer {
            if let definition,
                let awaited = SagaEngine(jitterSeed: 0).awaitedMessages(of: instance, definition: definition).first(
                    where: { $0.branch == ref })?.wait
            {
                return (
                    "not stuck: \(names.branch(ref)) waits for a message on \(awaited.exchange) "
                        + "\(awaited.routingKey) whose \(awaited.key) is '\(awaited.match)', until "
                        + "\(moment(timer.dueAt))" + timeoutTarget(ref),
                    "\(names.branch(ref)) waiting for \(awaited.routingKey), \(TimeText.relative(timer.dueAt, now: now))",
                    []
                )
            }
            return (
                "not stuck: \(names.branch(ref)) waits until \(moment(timer.dueAt))",
                "\(names.branch(ref)) waiting, \(TimeText.relative(timer.dueAt, now: now))", []
            )
        }
        return ("not stuck: running at \(step)", "\(step) running", [])
    }

    // MARK: - Pieces

    /// ` (then <target>)` for a message wait with an `on_timeout`, ` (then it fails)` without one.
    private func timeoutTarget(_ ref: BranchRef) -> String {
        guard let definition, ref.step < definition.steps.count,
            case .wait(let spec) = definition.steps[ref.step].action
        else { return "" }
        return spec.onTimeout.map { " (then \($0))" } ?? " (then it fails with \(StepError.waitTimeoutCode))"
    }

    /// The idempotency key the forward command of `ref` carried: `<sagaId>/<stepId>[/<branch>][/r<round>]`.
    private func forwardKey(_ ref: BranchRef) -> String {
        IdempotencyKey.forward(
            sagaId: instance.key.id, step: names.step(ref.step), branch: names.fansOut(ref.step) ? ref.branch : nil,
            round: instance.steps[ref.step].branches[ref.branch].round)
    }

    private var pivotName: String? { definition?.steps.first(where: \.pivot)?.id }

    /// Whoever owns the saga's partition now fires its timers (the worker that last wrote it may be gone).
    private var ownerQuestion: String { "does a live worker own its partition?" }

    private func workerChecks() -> [String] {
        [
            "check who owns its partition with `waybill pool status`, and start a worker if none does (the owner "
                + "fires overdue timers as soon as it runs)"
        ]
    }

    private func branches() -> [(BranchRef, BranchState)] {
        instance.steps.enumerated().flatMap { index, step in
            step.branches.enumerated().map { (BranchRef(step: index, branch: $0.offset), $0.element) }
        }
    }

    private func failureLabel(_ failure: SagaFailure) -> String {
        failure.branch.map { "\(failure.step)[\($0)]" } ?? failure.step
    }

    private func attemptsOfFailure(_ failure: SagaFailure) -> String? {
        guard let index = definition?.stepIndex(of: failure.step), index < instance.steps.count else { return nil }
        let branches = instance.steps[index].branches
        let branchIndex = failure.branch ?? 0
        guard branchIndex < branches.count else { return nil }
        return attemptText(BranchRef(step: index, branch: branchIndex), branches[branchIndex], compensating: false)
            .replacingAttemptWord()
    }

    /// `attempt 3 of 5`, `attempt 3 of unlimited`, `attempt 3` (definition unknown), `undo attempt 2`.
    func attemptText(_ ref: BranchRef, _ branch: BranchState, compensating: Bool) -> String {
        if compensating { return "undo attempt \(branch.compensationAttempt)" }
        guard let definition, ref.step < definition.steps.count else { return "attempt \(branch.attempt)" }
        switch definition.steps[ref.step].retry.maxAttempts {
        case .limited(let limit): return "attempt \(branch.attempt) of \(limit)"
        case .unlimited: return "attempt \(branch.attempt) of unlimited"
        }
    }

    /// `carrier_rejected "address invalid" (not retryable)`.
    func errorText(_ error: StepError) -> String {
        "\(error.code) \"\(Words.cut(error.message, 100))\"\(error.retryable ? "" : " (not retryable)")"
    }

    /// `at 10:05:00Z (3m ago)`.
    func moment(_ time: Timestamp) -> String {
        "at \(TimeText.short(time, now: now)) (\(TimeText.relative(time, now: now)))"
    }
}

extension String {
    /// `attempt 5 of 5` → `5 of 5 attempts`.
    fileprivate func replacingAttemptWord() -> String {
        hasPrefix("attempt ") ? String(dropFirst("attempt ".count)) + " attempts" : self
    }
}
