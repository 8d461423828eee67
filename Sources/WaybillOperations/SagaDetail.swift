import SagaEngine
import SagaStore
import WaybillDefinition
import WaybillWire

/// Everything `waybill sagas show` prints about one saga, computed once from its row, state, definition and timers
/// at a given `now`; ``ShowView`` only lays it out.
public struct SagaDetail: Sendable, Hashable {
    /// One attempt-carrying unit: a plain step's single branch, or one element of a `for_each` step.
    public struct Branch: Sendable, Hashable {
        /// The branch index (0 for a plain step).
        public var index: Int
        /// `release[1]` for a `for_each` branch, `accept` for a plain step.
        public var label: String
        /// A short name of the `for_each` element (`o-1-s2 w2`), or `nil`.
        public var itemLabel: String?
        /// The `for_each` element, or `nil`.
        public var item: JSONValue?
        /// Its state.
        public var status: BranchState.Status
        /// Forward attempts made (in this round).
        public var attempt: Int
        /// The step's attempt limit, `nil` for unlimited, or when the definition is unknown.
        public var maxAttempts: Int?
        /// Whether the definition is known, so `maxAttempts == nil` means unlimited.
        public var limitKnown: Bool
        /// Compensation attempts made.
        public var compensationAttempt: Int
        /// When it started and finished.
        public var startedAt: Timestamp?
        public var finishedAt: Timestamp?
        /// The last error of an attempt.
        public var lastError: StepError?
        /// The command awaiting a reply.
        public var pending: PendingCommand?
        /// Where the participant must reply while a command is pending: the saga's partition queue, when the saga
        /// was read from a pool.
        public var replyQueue: String?
        /// The live timer.
        public var timer: SagaTimer?
        /// Forward attempts of this round whose reply never came (their timeout fired first).
        public var unansweredAttempts: Int
        /// Whether the forward command may have taken effect although no ok reply came, so it is (or was, or should
        /// have been) compensated in case it did. For a saga stored before Waybill tracked unanswered attempts, a
        /// failed branch whose last attempt timed out.
        public var outcomeUnknown: Bool
        /// The branch's reply output (a skipped branch: the operator's), or `nil` while it has none.
        public var output: JSONValue?
    }

    /// What a step does.
    public enum StepKind: String, Sendable, Hashable {
        /// Sends a command and waits for its reply.
        case command
        /// Plans shipments inside the worker.
        case split
        /// Picks the saga's path inside the worker.
        case choice

        /// The kind of a step's action.
        init(_ action: StepDefinition.Action) {
            self = StepKind(rawValue: action.kindName) ?? .command
        }
    }

    /// One step of the definition, in order.
    public struct Step: Sendable, Hashable {
        /// The step id.
        public var id: String
        /// Its state.
        public var status: StepState.Status
        /// What the step does (`command` when the definition is unknown).
        public var kind: StepKind
        /// A local step (split, choice) sends no command.
        public var isLocal: Bool { kind != .command }
        /// Whether it fans out (`for_each`).
        public var fansOut: Bool
        /// Whether it is the pivot.
        public var pivot: Bool
        /// When it started and finished.
        public var startedAt: Timestamp?
        public var finishedAt: Timestamp?
        /// Its branches (empty while pending).
        public var branches: [Branch]
        /// The step's output (a `for_each` step: its branches' outputs in element order), or `nil` before it ends.
        public var output: JSONValue?
        /// The reply timeout of an attempt, when the definition is known.
        public var timeout: Duration?
    }

    /// Undo progress.
    public struct Compensation: Sendable, Hashable {
        /// `abort` (the saga ends compensated), `reallocate` (re-planning shipments) or `reset to STEP` (an operator's
        /// reset: the saga runs again from that step once this is undone).
        public var purpose: String
        /// Branches undone (or skipped by an operator) so far.
        public var undone: Int
        /// How many of those an operator skipped.
        public var skipped: Int
        /// Branches undone plus still to undo, ``owed`` ones included.
        public var total: Int
        /// The branches still to undo, next first (`reserve`, `release[1]`).
        public var queue: [String]
        /// Whether the plan is still running (`false` once the saga ended compensated).
        public var active: Bool
        /// The branches of this plan (undone or still queued) that are compensated because their forward command's
        /// reply never came, in case it took effect.
        public var unknownOutcome: [String]
        /// Branches that may have taken effect (their reply never came) that are neither undone nor queued: nothing
        /// will compensate them. Only a saga compensated before Waybill compensated such branches has any, and only
        /// when its definition is known; each needs checking at its participant.
        public var owed: [String]
        /// Whether the saga ended compensated with nothing owed: the one state `show` reports as fully undone.
        public var fullyUndone: Bool
    }

    /// Where a saga lives in a pool.
    public struct Placement: Sendable, Hashable {
        /// Its partition (``PoolDirectory/partition(of:)``).
        public var partition: Int
        /// The partition's queue: its starts, replies and repairs.
        public var queue: String

        /// Describes a placement.
        public init(partition: Int, queue: String) {
            self.partition = partition
            self.queue = queue
        }
    }

    /// Where an archived saga was read from.
    public struct Archived: Sendable, Hashable {
        /// The day file of the pool's archive.
        public var file: String
        /// When it left its partition file.
        public var at: Timestamp

        /// Describes an archived saga's place.
        public init(file: String, at: Timestamp) {
            self.file = file
            self.at = at
        }
    }

    /// The saga's row.
    public var row: SagaRow
    /// Set when the saga was read from the pool's archive: it finished long ago and left its partition file.
    public var archived: Archived?
    /// Its partition and queue, or `nil` when it was read from one file (`--db`).
    public var placement: Placement?
    /// The moment the detail was computed for.
    public var now: Timestamp
    /// Whether the definition was found and loaded (otherwise step ids are `step0`, `step1`, ... and limits unknown).
    public var definitionKnown: Bool
    /// The failure it is compensating or suspended for.
    public var failure: SagaFailure?
    /// The pivot step's id, if the definition has one.
    public var pivotStep: String?
    /// Whether the pivot has been passed.
    public var pivotPassed: Bool
    /// The steps, in definition order.
    public var steps: [Step]
    /// Undo progress, when anything is or was undone.
    public var compensation: Compensation?
    /// Why it is where it is, and what to do.
    public var diagnosis: Diagnosis
    /// The last few journal lines.
    public var recentJournal: [JournalLine]
    /// Timers in the timers table that no branch knows about (should be empty; a worker cleans them up).
    public var strayTimers: [StoredTimer]
    /// The start message's body, as the saga keeps it (later steps read it as `input`).
    public var input: JSONValue
    /// The saga's priority lane (``PriorityLane``), from its trigger's priority rule; `nil` when its workflow has no
    /// such rule (every saga is `normal` then) or the definition is not known.
    public var priority: Int?

    /// Computes the detail. `timers` are the rows of the timers table for this saga; `placement` is where it lives
    /// when it was read from a pool.
    public init(
        record: SagaRecord, definition: WorkflowDefinition?, timers: [StoredTimer], journal: [JournalLine],
        now: Timestamp, policy: StuckPolicy = StuckPolicy(), placement: Placement? = nil
    ) {
        let instance = record.instance
        row = record.row
        self.now = now
        definitionKnown = definition != nil
        failure = instance.failure
        pivotStep = definition?.steps.first(where: \.pivot)?.id
        pivotPassed = instance.pivotPassed
        priority = definition.flatMap { $0.trigger.priority == nil ? nil : $0.priorityLane(input: instance.input) }
        let names = SagaNames(instance: instance, definition: definition)
        let ledger = UndoLedger(instance: instance, definition: definition)
        self.placement = placement
        let replyQueue = placement?.queue
        steps = instance.steps.enumerated().map { index, state in
            let stepDefinition = definition.flatMap { index < $0.steps.count ? $0.steps[index] : nil }
            var maxAttempts: Int?
            if let stepDefinition, case .limited(let limit) = stepDefinition.retry.maxAttempts { maxAttempts = limit }
            let branches = state.branches.enumerated().map { branchIndex, branch in
                Branch(
                    index: branchIndex, label: names.branch(BranchRef(step: index, branch: branchIndex)),
                    itemLabel: branch.item.flatMap(SagaNames.itemLabel), item: branch.item, status: branch.status,
                    attempt: branch.attempt, maxAttempts: maxAttempts, limitKnown: stepDefinition != nil,
                    compensationAttempt: branch.compensationAttempt, startedAt: branch.startedAt,
                    finishedAt: branch.finishedAt, lastError: branch.lastError, pending: branch.pending,
                    replyQueue: branch.pending == nil ? nil : replyQueue, timer: branch.timer,
                    unansweredAttempts: branch.unansweredAttempts,
                    outcomeUnknown: UndoLedger.mayHaveTakenEffectWithoutReply(branch), output: branch.output)
            }
            return Step(
                id: names.step(index), status: state.status,
                kind: stepDefinition.map { StepKind($0.action) } ?? .command,
                fansOut: names.fansOut(index),
                pivot: stepDefinition?.pivot ?? false, startedAt: state.startedAt, finishedAt: state.finishedAt,
                branches: branches, output: state.output, timeout: stepDefinition?.timeout)
        }
        compensation = Self.compensation(instance, ledger: ledger, names: names)
        diagnosis = Diagnosis(record: record, definition: definition, now: now, policy: policy)
        recentJournal = journal
        input = instance.input
        let known = Set(instance.steps.flatMap { $0.branches.compactMap { $0.timer?.id } })
        strayTimers = timers.filter { !known.contains($0.id) }
    }

    private static func compensation(
        _ instance: SagaInstance, ledger: UndoLedger, names: SagaNames
    ) -> Compensation? {
        let plan = instance.compensation
        guard plan != nil || !ledger.undone.isEmpty || !ledger.owed.isEmpty || instance.status == .compensated else {
            return nil
        }
        var purpose = "abort"
        switch plan?.purpose {
        case .reallocate(_, let warehouses)?: purpose = "reallocate without \(warehouses.joined(separator: ", "))"
        case .reset(let step)?: purpose = "reset to \(names.step(step))"
        case .abort?, nil: break
        }
        let queue = plan?.queue ?? []
        return Compensation(
            purpose: purpose, undone: ledger.undone.count, skipped: ledger.skipped,
            total: ledger.undone.count + queue.count + ledger.owed.count, queue: queue.map(names.branch),
            active: plan != nil,
            unknownOutcome: ledger.unknownOutcome.map(names.branch), owed: ledger.owed.map(names.branch),
            fullyUndone: instance.status == .compensated && ledger.owed.isEmpty)
    }
}

/// What a saga's compensation undid and what it still owes, from its state alone: the one reading `show`'s
/// compensation summary and its diagnosis share.
///
/// A branch counts when its step has a `compensate` (by the definition; every step when the definition is unknown)
/// and it may have taken effect: it succeeded, or its outcome is unknown (``BranchState/outcomeUnknown``).
struct UndoLedger {
    /// Undone (or skipped by an operator) branches of the plan: after the plan's floor while a reallocation runs.
    var undone: [BranchRef] = []
    /// How many of ``undone`` an operator skipped.
    var skipped = 0
    /// Branches of the plan, undone or queued, compensated because their outcome is unknown.
    var unknownOutcome: [BranchRef] = []
    /// Branches that may have taken effect and that nothing will compensate (see ``SagaDetail/Compensation/owed``).
    var owed: [BranchRef] = []

    init(instance: SagaInstance, definition: WorkflowDefinition?) {
        func compensable(_ ref: BranchRef) -> Bool {
            guard let definition else { return true }
            return ref.step < definition.steps.count && definition.steps[ref.step].compensate != nil
        }
        var floor = -1
        switch instance.compensation?.purpose {
        case .reallocate(let split, _)?: floor = split
        case .reset(let step)?: floor = step - 1
        case .abort?, nil: break
        }
        let queued = Set(instance.compensation?.queue ?? [])
        var candidates = instance.completions
        for (stepIndex, step) in instance.steps.enumerated() {
            for (branchIndex, branch) in step.branches.enumerated() where branch.output == nil {
                if Self.mayHaveTakenEffectWithoutReply(branch) {
                    candidates.append(BranchRef(step: stepIndex, branch: branchIndex))
                }
            }
        }
        for ref in candidates where ref.step > floor && compensable(ref) {
            guard ref.step < instance.steps.count, ref.branch < instance.steps[ref.step].branches.count else {
                continue
            }
            let branch = instance.steps[ref.step].branches[ref.branch]
            if branch.outcomeUnknown, queued.contains(ref) || [.compensated, .skipped].contains(branch.status) {
                unknownOutcome.append(ref)
            }
            if queued.contains(ref) { continue }
            switch branch.status {
            case .compensated:
                undone.append(ref)
            case .skipped:
                undone.append(ref)
                skipped += 1
            case .failed
            where definition != nil
                && (instance.status == .compensated || instance.compensation?.purpose == .abort):
                // Without the definition, whether the step has anything to undo is not known.
                owed.append(ref)
            default:
                break
            }
        }
    }

    /// Whether a branch that never succeeded may have taken effect: the engine's ``BranchState/outcomeUnknown``, or,
    /// for a saga stored before the engine counted unanswered attempts, a failed branch whose last attempt timed out
    /// (directly, or before a failing sibling stopped its retries).
    static func mayHaveTakenEffectWithoutReply(_ branch: BranchState) -> Bool {
        if branch.outcomeUnknown { return true }
        guard branch.output == nil, branch.status == .failed, let error = branch.lastError else { return false }
        // The engine's own timeout reads `no reply to <message id> within <timeout>`; a participant's error reply
        // with the code `timeout` is an answer, not a silence.
        let silence = "\(StepError.timeoutCode): no reply to "
        return (error.code == StepError.timeoutCode && error.description.hasPrefix(silence))
            || (error.code == StepError.abandonedCode && error.message.contains("last error: " + silence))
    }
}

/// Step and branch names of one saga, from its definition when known.
struct SagaNames {
    let instance: SagaInstance
    let definition: WorkflowDefinition?

    func step(_ index: Int) -> String {
        if let definition, index < definition.steps.count { return definition.steps[index].id }
        return "step\(index)"
    }

    func fansOut(_ index: Int) -> Bool {
        if let definition, index < definition.steps.count { return definition.steps[index].forEach != nil }
        return index < instance.steps.count && instance.steps[index].branches.count > 1
    }

    /// `release[1]` for a `for_each` branch, `reserve` for a plain step.
    func branch(_ ref: BranchRef) -> String {
        fansOut(ref.step) ? "\(step(ref.step))[\(ref.branch)]" : step(ref.step)
    }

    /// `o-1-s2 w2` for a shipment (its `id` and `warehouse`), or the first string members of another object.
    static func itemLabel(_ item: JSONValue) -> String? {
        switch item {
        case .string(let text): return text
        case .number: return JSONText.encode(item)
        case .object(let members):
            let preferred = ["id", "warehouse"].compactMap { members[$0]?.stringValue }
            if !preferred.isEmpty { return preferred.joined(separator: " ") }
            return members.keys.sorted().compactMap { members[$0]?.stringValue }.first
        default: return nil
        }
    }
}

extension SagaInspector {
    /// What `waybill sagas show` and the web view's saga page show: the saga `reference` names, its definition,
    /// timers, the last `journal` lines, and (read from a pool whose queues start with `poolName`) its partition.
    public func detail(
        _ reference: SagaReference, journal: Int, now: Timestamp, policy: StuckPolicy = StuckPolicy(),
        poolName: String?
    ) throws(OperationsError) -> SagaDetail {
        let key: SagaKey
        switch try locate(reference) {
        case .stored(let stored):
            key = stored
        case .archived(let saga, let file):
            var detail = SagaDetail(
                record: saga.record, definition: (try? definition(hash: saga.definitionHash)) ?? nil, timers: [],
                journal: journal > 0 ? Array(saga.journalLines.suffix(journal)) : [], now: now, policy: policy,
                placement: nil)
            detail.archived = SagaDetail.Archived(file: file, at: Timestamp(milliseconds: saga.archivedAt))
            return detail
        }
        guard let record = try saga(key) else {
            throw OperationsError(.notFound, "saga \(key) vanished while reading; try again")
        }
        let definition = try? definition(hash: record.row.definitionHash)
        var placement: SagaDetail.Placement?
        if let pool, let poolName {
            let partition = pool.partition(of: key.id)
            placement = SagaDetail.Placement(
                partition: partition, queue: PoolQueues.partition(partition, pool: poolName))
        }
        return SagaDetail(
            record: record, definition: definition ?? nil, timers: try timers(of: key),
            journal: journal > 0 ? try journalTail(of: key, count: journal) : [], now: now, policy: policy,
            placement: placement)
    }
}
