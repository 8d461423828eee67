/// The checks that need every step: ids, references, the pivot, reallocation, milestone names and merged retry
/// intervals.
extension WorkflowReader {
    mutating func checkStepIds(_ drafts: [StepDraft]) {
        var firstLine: [String: Int] = [:]
        for draft in drafts {
            guard let id = draft.id else { continue }
            if let line = firstLine[id] {
                log.report(
                    .duplicateStepId, at: draft.idLocation,
                    "duplicate step id '\(id)' (first used on line \(line)); give each step its own id")
            } else {
                firstLine[id] = draft.idLocation.line
            }
        }
    }

    mutating func checkReferences(_ drafts: [StepDraft]) {
        var indexById: [String: Int] = [:]
        for (index, draft) in drafts.enumerated() {
            if let id = draft.id, indexById[id] == nil { indexById[id] = index }
        }
        let ids = drafts.compactMap(\.id)
        for (index, draft) in drafts.enumerated() {
            for use in draft.uses {
                let written = "${\(use.path)}"
                switch use.path.root {
                case .input, .sagaId, .sagaWorkflow:
                    continue
                case .stepOutput(let id):
                    guard let target = indexById[id] else {
                        log.report(
                            .badReference, at: use.location,
                            "unknown step '\(id)' in \(written); "
                                + (Suggestion.closest(to: id, among: ids).map { "did you mean '\($0)'?" }
                                    ?? "name a step that runs before this one"))
                        continue
                    }
                    if target > index {
                        log.report(
                            .badReference, at: use.location,
                            "\(written) uses step '\(id)', which runs after \(draft.name); "
                                + "a step may only use the output of steps before it")
                    } else if target == index, use.part != .compensate, use.part != .verify {
                        log.report(
                            .badReference, at: use.location,
                            "\(draft.name) cannot use its own output \(written) before it ran; only its compensate and "
                                + "verify may")
                    } else if target == index, use.part == .compensate {
                        log.warn(
                            .compensationReadsOwnOutput, at: use.location,
                            "the compensate of \(draft.name) reads its own output \(written), which is null when the "
                                + "step's reply never came (it is then compensated in case it took effect); undo by "
                                + "what the command sent (an order or shipment id) or by the waybill-compensates "
                                + "header instead")
                    }
                case .alias(let name):
                    if name == draft.alias {
                        if use.part == .forEach {
                            log.report(
                                .badReference, at: use.location,
                                "for_each cannot use its own element '\(name)' in \(written); "
                                    + "the element exists only inside the step")
                        }
                        continue
                    }
                    if draft.forEachLocation != nil, draft.alias == nil {
                        continue  // already reported: for_each needs an 'as' name, which is likely this one
                    }
                    if let owner = drafts.first(where: { $0.alias == name }) {
                        log.report(
                            .badReference, at: use.location,
                            "'\(name)' in \(written) is the for_each element of \(owner.name) and exists only there; "
                                + "use steps.<id>.output for its results")
                        continue
                    }
                    var roots = ["input", "steps", "saga"]
                    var accepted = "input, steps.<id>.output, saga.id or saga.workflow"
                    if let alias = draft.alias {
                        roots.append(alias)
                        accepted = "input, steps.<id>.output, saga.id, saga.workflow or '\(alias)' (this step's 'as')"
                    }
                    log.report(
                        .badReference, at: use.location,
                        "unknown name '\(name)' in \(written); "
                            + (Suggestion.closest(to: name, among: roots).map { "did you mean '\($0)'?" }
                                ?? "an expression starts with \(accepted)"))
                }
            }
        }
    }

    mutating func checkPivot(_ drafts: [StepDraft]) {
        var pivotIndex: Int?
        for (index, draft) in drafts.enumerated() where draft.pivot {
            guard let pivotLocation = draft.pivotLocation else { continue }
            if draft.kind == .split {
                log.report(
                    .pivot, at: pivotLocation,
                    "a split step cannot be the pivot; mark the command step that cannot be undone")
            } else if let first = pivotIndex {
                log.report(
                    .pivot, at: pivotLocation,
                    "only one step may be the pivot; \(drafts[first].name) on line \(drafts[first].location.line) "
                        + "already is")
            } else {
                pivotIndex = index
            }
        }
        guard let pivotIndex else { return }
        let pivotName = drafts[pivotIndex].id ?? "pivot"
        for (index, draft) in drafts.enumerated() where index >= pivotIndex {
            guard let at = draft.compensateLocation, draft.kind != .split else { continue }
            if index == pivotIndex {
                log.report(
                    .pivot, at: at,
                    "the pivot \(draft.name) cannot have compensate; it is the point of no return, remove compensate")
            } else {
                log.report(
                    .pivot, at: at,
                    "\(draft.name) runs after the pivot '\(pivotName)' and is never undone; remove compensate "
                        + "or move the step before the pivot")
            }
        }
    }

    mutating func checkReallocation(_ drafts: [StepDraft]) {
        for (index, draft) in drafts.enumerated() {
            guard let at = draft.reallocateLocation else { continue }
            if draft.kind != .command || draft.forEachLocation == nil {
                log.report(
                    .conflict, at: at,
                    "reallocate only works on a for_each command step; it re-plans the shipments of failed branches")
            }
            guard let split = draft.reallocateSplit, let splitAt = draft.reallocateSplitLocation else { continue }
            let splitIds = drafts.filter { $0.kind == .split }.compactMap(\.id)
            guard let target = drafts.firstIndex(where: { $0.id == split }) else {
                log.report(
                    .badReference, at: splitAt,
                    "reallocate split '\(split)' is not a step\(Suggestion.hint(for: split, among: splitIds)); "
                        + "name the split step to re-run")
                continue
            }
            if drafts[target].kind != .split {
                log.report(
                    .badReference, at: splitAt,
                    "reallocate split '\(split)' is a command step; name the split step to re-run")
            } else if target >= index {
                log.report(
                    .badReference, at: splitAt,
                    "reallocate split '\(split)' runs after \(draft.name); name a split step that runs before it")
            }
        }
    }

    mutating func checkRetryIntervals(_ drafts: [StepDraft], defaults: RetryPolicy) {
        for draft in drafts {
            guard let overrides = draft.retry, overrides.setsInterval, let at = draft.retryLocation else { continue }
            let merged = overrides.applied(to: defaults)
            if merged.maxInterval < merged.initialInterval {
                reportIntervals(merged, at: at)
            }
        }
    }

    /// A per-branch milestone needs a name of its own: consumers tell events apart by name (the CloudEvents type and
    /// routing key), and one that is also an end milestone would make every branch look like the end of the saga.
    mutating func checkMilestoneNames(_ drafts: [StepDraft], ends: EndMilestones) {
        let endNames = [
            ("completed", ends.completed), ("compensated", ends.compensated), ("failed", ends.failed),
            ("cancelled", ends.cancelled),
        ]
        let fix = "so consumers could not tell the events apart; give the per-branch event a name of its own"
        for (index, draft) in drafts.enumerated() {
            guard let name = draft.branchMilestone, let at = draft.branchMilestoneLocation else { continue }
            if let end = endNames.first(where: { $0.1 == name }) {
                log.report(
                    .conflict, at: at,
                    "branch_milestone '\(name)' is also the \(end.0) milestone under milestones, so every branch "
                        + "would look like the end of the saga; give the per-branch event a name of its own")
            } else if let other = drafts.first(where: { $0.milestone == name }) {
                let line = other.milestoneLocation.map { " (line \($0.line))" } ?? ""
                log.report(
                    .conflict, at: at,
                    "branch_milestone '\(name)' is also the milestone of \(other.name)\(line), \(fix)")
            } else if let other = drafts[..<index].first(where: { $0.branchMilestone == name }) {
                let line = other.branchMilestoneLocation.map { " (line \($0.line))" } ?? ""
                log.report(
                    .conflict, at: at,
                    "branch_milestone '\(name)' is also the branch_milestone of \(other.name)\(line), \(fix)")
            }
        }
    }

    /// Jumps (`next`, choice rules) go to a step that exists and runs later: a saga never goes back, so every step
    /// runs at most once per round and compensation can walk the steps backwards. `end` is not a step id.
    mutating func checkTargets(_ drafts: [StepDraft]) {
        let ids = drafts.compactMap(\.id)
        for draft in drafts where draft.id == Self.endTarget {
            log.report(
                .invalidValue, at: draft.idLocation,
                "step id 'end' is reserved (next: end completes the saga); give the step another id")
        }
        for (index, draft) in drafts.enumerated() {
            for (id, at) in draft.targets {
                guard let target = drafts.firstIndex(where: { $0.id == id }) else {
                    log.report(
                        .badReference, at: at,
                        "next '\(id)' is not a step; "
                            + (Suggestion.closest(to: id, among: ids).map { "did you mean '\($0)'?" }
                                ?? "name a later step, or end"))
                    continue
                }
                if target <= index {
                    log.report(
                        .badReference, at: at,
                        "next '\(id)' \(target == index ? "is \(draft.name) itself" : "runs before \(draft.name)"); a "
                            + "saga only moves forward, so name a later step (or end)")
                }
            }
        }
    }

    /// Where jumps make a workflow unsafe or its data unreliable: an error when a path reaches a step after the pivot
    /// without running the pivot (the steps after the pivot have no compensation, so that path could never be undone);
    /// warnings for a step no path reaches, and for a `${steps.<id>.output...}` of a step that some path to the reading
    /// step jumps over (a choice may test such a path: it reads as null there).
    mutating func checkPaths(_ drafts: [StepDraft]) {
        guard drafts.contains(where: { $0.kind == .choice || $0.next != nil || $0.onTimeout != nil }) else { return }
        let indexById = Dictionary(drafts.enumerated().compactMap { index, draft in draft.id.map { ($0, index) } }) {
            first, _ in first
        }
        // Where each step can go next: a choice's targets, and its fall-through unless a rule always holds; another
        // step's next, or the step after it.
        var successors = [Set<Int>](repeating: [], count: drafts.count)
        for (index, draft) in drafts.enumerated() {
            func add(_ target: StepTarget?) {
                switch target {
                case .step(let id)?: if let target = indexById[id] { successors[index].insert(target) }
                case nil: if index + 1 < drafts.count { successors[index].insert(index + 1) }
                case .end?, .fail?: break
                }
            }
            if case .choice(let spec)? = draft.action {
                spec.rules.forEach { add($0.target) }
                if !spec.isExhaustive { add(draft.next) }
            } else {
                add(draft.next)
            }
            if let onTimeout = draft.onTimeout { add(onTimeout) }
        }
        // The steps every path from the first step to a step runs through (the step itself included): the
        // intersection over its predecessors. Steps only move forward, so one pass in order sees every predecessor
        // first. `nil` is a step no path reaches.
        var always = [Set<Int>?](repeating: nil, count: drafts.count)
        for index in drafts.indices {
            if index == 0 {
                always[0] = [0]
                continue
            }
            let predecessors = (0..<index).filter { successors[$0].contains(index) }.compactMap { always[$0] }
            guard let first = predecessors.first else { continue }
            always[index] = predecessors.dropFirst().reduce(first) { $0.intersection($1) }.union([index])
        }
        let pivot = drafts.firstIndex(where: \.pivot)
        for (index, draft) in drafts.enumerated() {
            guard let reached = always[index] else {
                log.warn(
                    .mayBeBypassed, at: draft.idLocation,
                    "no path reaches \(draft.name): every choice and next jumps over it; remove it or point a next at it"
                )
                continue
            }
            if let pivot, index > pivot, !reached.contains(pivot) {
                log.report(
                    .pivot, at: draft.idLocation,
                    "a path reaches \(draft.name), which comes after the pivot '\(drafts[pivot].id ?? "pivot")', without "
                        + "running the pivot (a choice or next jumps over it); steps after the pivot are never undone, "
                        + "so a failure on that path could not be compensated. Jump to the pivot, to a step before it, "
                        + "or to end instead")
            }
            guard draft.kind != .choice else { continue }
            for use in draft.uses {
                guard case .stepOutput(let id) = use.path.root, let source = indexById[id], source < index,
                    !reached.contains(source)
                else { continue }
                log.warn(
                    .mayBeBypassed, at: use.location,
                    "\(draft.name) reads ${\(use.path)}, but a choice or next may jump over step '\(id)' on the way, "
                        + "and then the path does not resolve; read it only on paths that run '\(id)', or route with a "
                        + "choice that tests it with present")
            }
        }
    }
}
