import SagaEngine
import SagaStore
import WaybillDefinition

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
    }

    /// One step of the definition, in order.
    public struct Step: Sendable, Hashable {
        /// The step id.
        public var id: String
        /// Its state.
        public var status: StepState.Status
        /// A `split` (local) step sends no command.
        public var isSplit: Bool
        /// Whether it fans out (`for_each`).
        public var fansOut: Bool
        /// Whether it is the pivot.
        public var pivot: Bool
        /// When it started and finished.
        public var startedAt: Timestamp?
        public var finishedAt: Timestamp?
        /// Its branches (empty while pending).
        public var branches: [Branch]
        /// The reply timeout of an attempt, when the definition is known.
        public var timeout: Duration?
    }

    /// Undo progress.
    public struct Compensation: Sendable, Hashable {
        /// `abort` (the saga ends compensated) or `reallocate` (re-planning shipments).
        public var purpose: String
        /// Branches undone (or skipped by an operator) so far.
        public var undone: Int
        /// How many of those an operator skipped.
        public var skipped: Int
        /// Branches undone plus still to undo.
        public var total: Int
        /// The branches still to undo, next first (`reserve`, `release[1]`).
        public var queue: [String]
        /// Whether the plan is still running (`false` once the saga ended compensated).
        public var active: Bool
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

    /// The saga's row.
    public var row: SagaRow
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
        let names = SagaNames(instance: instance, definition: definition)
        self.placement = placement
        let replyQueue = placement?.queue
        steps = instance.steps.enumerated().map { index, state in
            let stepDefinition = definition.flatMap { index < $0.steps.count ? $0.steps[index] : nil }
            var maxAttempts: Int?
            if let stepDefinition, case .limited(let limit) = stepDefinition.retry.maxAttempts { maxAttempts = limit }
            var isSplit = false
            if let stepDefinition, case .split = stepDefinition.action { isSplit = true }
            let branches = state.branches.enumerated().map { branchIndex, branch in
                Branch(
                    index: branchIndex, label: names.branch(BranchRef(step: index, branch: branchIndex)),
                    itemLabel: branch.item.flatMap(SagaNames.itemLabel), item: branch.item, status: branch.status,
                    attempt: branch.attempt, maxAttempts: maxAttempts, limitKnown: stepDefinition != nil,
                    compensationAttempt: branch.compensationAttempt, startedAt: branch.startedAt,
                    finishedAt: branch.finishedAt, lastError: branch.lastError, pending: branch.pending,
                    replyQueue: branch.pending == nil ? nil : replyQueue, timer: branch.timer)
            }
            return Step(
                id: names.step(index), status: state.status, isSplit: isSplit, fansOut: names.fansOut(index),
                pivot: stepDefinition?.pivot ?? false, startedAt: state.startedAt, finishedAt: state.finishedAt,
                branches: branches, timeout: stepDefinition?.timeout)
        }
        compensation = Self.compensation(instance, definition: definition, names: names)
        diagnosis = Diagnosis(record: record, definition: definition, now: now, policy: policy)
        recentJournal = journal
        let known = Set(instance.steps.flatMap { $0.branches.compactMap { $0.timer?.id } })
        strayTimers = timers.filter { !known.contains($0.id) }
    }

    private static func compensation(
        _ instance: SagaInstance, definition: WorkflowDefinition?, names: SagaNames
    )
        -> Compensation?
    {
        func compensable(_ ref: BranchRef) -> Bool {
            guard let definition else { return true }
            return ref.step < definition.steps.count && definition.steps[ref.step].compensate != nil
        }
        func branch(_ ref: BranchRef) -> BranchState? {
            guard ref.step < instance.steps.count, ref.branch < instance.steps[ref.step].branches.count else {
                return nil
            }
            return instance.steps[ref.step].branches[ref.branch]
        }
        if let plan = instance.compensation {
            var floor = -1
            var purpose = "abort"
            if case .reallocate(let split, let warehouses) = plan.purpose {
                floor = split
                purpose = "reallocate without \(warehouses.joined(separator: ", "))"
            }
            let queued = Set(plan.queue)
            let done = instance.completions.filter { ref in
                ref.step > floor && compensable(ref) && !queued.contains(ref)
                    && [.compensated, .skipped].contains(branch(ref)?.status)
            }
            let skipped = done.filter { branch($0)?.status == .skipped }.count
            return Compensation(
                purpose: purpose, undone: done.count, skipped: skipped, total: done.count + plan.queue.count,
                queue: plan.queue.map(names.branch), active: true)
        }
        let undone = instance.completions.filter { [.compensated, .skipped].contains(branch($0)?.status) }
        guard !undone.isEmpty || instance.status == .compensated else { return nil }
        let skipped = undone.filter { branch($0)?.status == .skipped }.count
        return Compensation(
            purpose: "abort", undone: undone.count, skipped: skipped, total: undone.count, queue: [], active: false)
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
