import WaybillDefinition

/// Moving a running (or suspended) saga from the definition it started with to another version of its workflow.
///
/// The saga keeps everything it did: each step of the target takes the state of its counterpart in the source (the
/// step with the same id, or the one `mapping` names, `old → new`), so pending commands, timers and waits carry on
/// where they are. Target steps without a counterpart that come before the saga's position are bypassed (they never
/// run for it); the ones after it run as usual. It is refused, with what to do instead, whenever carrying on could
/// go wrong: see ``refusal(for:)`` and ``validate()``.
public struct SagaMigration: Sendable, Hashable {
    /// The definition the sagas run now.
    public var source: WorkflowDefinition
    /// The definition they move to, and its content hash.
    public var target: WorkflowDefinition
    public var targetHash: String
    /// Source step id → target step id, for steps renamed (or replaced) between the versions.
    public var mapping: [String: String]

    /// Describes a migration; check it with ``validate()`` before using it.
    public init(source: WorkflowDefinition, target: WorkflowDefinition, targetHash: String, mapping: [String: String]) {
        self.source = source
        self.target = target
        self.targetHash = targetHash
        self.mapping = mapping
    }

    /// The index in the target of the counterpart of source step `index`, if it has one.
    public func counterpart(of index: Int) -> Int? {
        let id = source.steps[index].id
        return target.stepIndex(of: mapping[id] ?? id)
    }

    /// What is wrong with the mapping whatever the saga, one line each: names that are not steps, two source steps
    /// mapped to one target step, and compensations the target would lose (a source step that can be undone whose
    /// counterpart cannot, or that has no counterpart). Empty when the migration can be used.
    public func validate() -> [String] {
        var problems: [String] = []
        if source.name != target.name {
            problems.append("v\(target.version) is a version of '\(target.name)', not of '\(source.name)'")
        }
        for (old, new) in mapping.sorted(by: { $0.key < $1.key }) {
            if source.stepIndex(of: old) == nil {
                problems.append("--map \(old)=\(new): v\(source.version) has no step '\(old)'")
            }
            if target.stepIndex(of: new) == nil {
                problems.append("--map \(old)=\(new): v\(target.version) has no step '\(new)'")
            }
        }
        let targets = Dictionary(grouping: source.steps.indices.compactMap { counterpart(of: $0) }, by: { $0 })
        for (index, uses) in targets.sorted(by: { $0.key < $1.key }) where uses.count > 1 {
            problems.append("two steps of v\(source.version) would become '\(target.steps[index].id)'")
        }
        for (index, step) in source.steps.enumerated() where step.compensate != nil {
            guard let new = counterpart(of: index) else {
                problems.append(
                    "step '\(step.id)' can be undone and v\(target.version) has no step '\(step.id)': sagas that ran "
                        + "it could no longer be compensated; map it with --map \(step.id)=<step of v\(target.version)>"
                )
                continue
            }
            if target.steps[new].compensate == nil {
                problems.append(
                    "step '\(step.id)' can be undone and its counterpart '\(target.steps[new].id)' in "
                        + "v\(target.version) cannot: sagas that ran it could no longer be compensated")
            }
        }
        var last = -1
        for index in source.steps.indices {
            guard let new = counterpart(of: index) else { continue }
            if new < last {
                problems.append(
                    "step '\(source.steps[index].id)' comes after '\(target.steps[last].id)' in v\(source.version) and "
                        + "before it in v\(target.version): a saga only moves forward, so the order must stay")
            }
            last = max(last, new)
        }
        return problems
    }

    /// Why `instance` cannot move (one line, with what to do instead), or `nil` when it can.
    public func refusal(for instance: SagaInstance) -> String? {
        if instance.definitionHash == targetHash { return "already runs v\(target.version)" }
        guard instance.version == source.version, instance.steps.count == source.steps.count else {
            return "runs v\(instance.version), not v\(source.version)"
        }
        switch instance.status {
        case .running, .suspended: break
        case .compensating: return "is compensating; let the compensation finish (a migration only moves forward)"
        case .completed, .compensated, .cancelled: return "is \(instance.status.rawValue): nothing is left to move"
        }
        if instance.compensation != nil {
            return "is undoing what it did (a compensation is under way or stuck); repair that first"
        }
        if instance.cursor < source.steps.count, counterpart(of: instance.cursor) == nil {
            let here = source.steps[instance.cursor].id
            return "waits at '\(here)', which v\(target.version) does not have; map it with --map \(here)=<step>"
        }
        for (index, state) in instance.steps.enumerated() where state.status != .pending && state.status != .bypassed {
            let step = source.steps[index]
            guard let new = counterpart(of: index) else { continue }
            let renamed = target.steps[new].id != step.id
            if renamed, state.branches.contains(where: { $0.attempt > 0 }) {
                return "sent '\(step.id)', which v\(target.version) calls '\(target.steps[new].id)': a retry or an "
                    + "undo would carry another idempotency key than what the participant saw; keep the step's id"
            }
            if let problem = Self.incompatible(step, target.steps[new], state: state) {
                return "'\(step.id)' \(problem)"
            }
        }
        return nil
    }

    /// Why a step the saga is in (or went through) cannot take another definition: a change of kind or fan-out while
    /// it has branches, or a changed wait while it waits.
    private static func incompatible(_ old: StepDefinition, _ new: StepDefinition, state: StepState) -> String? {
        guard !state.branches.isEmpty else { return nil }
        if old.action.kindName != new.action.kindName {
            return "is a \(old.action.kindName) step in one version and a \(new.action.kindName) in the other"
        }
        if (old.forEach == nil) != (new.forEach == nil) {
            return "fans out (for_each) in one version and not in the other"
        }
        if state.branches.contains(where: { $0.status == .waiting }), old.action != new.action {
            return "waits, and its wait changed between the versions; migrate once it moved on"
        }
        return nil
    }

    /// `instance` on the target definition (see the type's description); `nil` when ``refusal(for:)`` refuses it.
    func migrated(_ instance: SagaInstance) -> SagaInstance? {
        guard refusal(for: instance) == nil else { return nil }
        var sourceOf = [Int?](repeating: nil, count: target.steps.count)
        for index in source.steps.indices {
            if let new = counterpart(of: index) { sourceOf[new] = index }
        }
        let cursor =
            instance.cursor < source.steps.count
            ? (counterpart(of: instance.cursor) ?? target.steps.count) : target.steps.count
        var moved = instance
        moved.version = target.version
        moved.definitionHash = targetHash
        moved.cursor = cursor
        moved.steps = target.steps.indices.map { index in
            if let old = sourceOf[index] { return instance.steps[old] }
            var state = StepState()
            if index < cursor { state.status = .bypassed }
            return state
        }
        moved.completions = instance.completions.compactMap { ref in
            counterpart(of: ref.step).map { BranchRef(step: $0, branch: ref.branch) }
        }
        // A target whose pivot is a step the saga already got through has passed it.
        if let pivot = target.steps.firstIndex(where: \.pivot),
            moved.steps[pivot].branches.contains(where: { $0.status == .succeeded })
        {
            moved.pivotPassed = true
        }
        if var failure = moved.failure, let index = source.stepIndex(of: failure.step),
            let new = counterpart(of: index)
        {
            failure.step = target.steps[new].id
            moved.failure = failure
        }
        return moved
    }
}

extension SagaEngine {
    /// Moves `instance` to the migration's target definition at `now`: applied (no message is sent; the saga goes
    /// on from where it is under the target's steps), or rejected with ``SagaMigration/refusal(for:)``.
    public func migrate(_ instance: SagaInstance, _ migration: SagaMigration, now: Timestamp) -> Transition {
        let problems = migration.validate()
        if let first = problems.first { return Transition(instance: instance, actions: [], outcome: .rejected(first)) }
        guard var moved = migration.migrated(instance) else {
            let why = migration.refusal(for: instance) ?? "cannot move"
            return Transition(instance: instance, actions: [], outcome: .rejected("saga \(instance.key) \(why)"))
        }
        moved.updatedAt = now
        return Transition(instance: moved, actions: [], outcome: .applied)
    }
}
