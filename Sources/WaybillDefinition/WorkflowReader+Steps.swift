import Yams

/// Reading `steps`: ids, commands, splits, fan-out, compensation, retry and reallocation.
extension WorkflowReader {
    mutating func readSteps(_ entry: Entry) -> [StepDraft] {
        guard case .sequence(let sequence) = entry.value else {
            log.report(
                .wrongKind, at: location(of: entry.value),
                "steps must be a list of steps (each starting with '- id:'), not \(describe(entry.value))")
            return []
        }
        guard !sequence.isEmpty else {
            log.report(.invalidValue, at: location(of: entry.value), "steps is empty; add at least one step")
            return []
        }
        var drafts: [StepDraft] = []
        for node in sequence {
            guard case .mapping(let stepMapping) = node else {
                log.report(
                    .wrongKind, at: location(of: node),
                    "each step must be a mapping with an id and a command or split, not \(describe(node))")
                continue
            }
            drafts.append(readStep(stepMapping, at: location(of: node)))
        }
        return drafts
    }

    mutating func readStep(_ stepMapping: Node.Mapping, at stepLocation: SourceLocation) -> StepDraft {
        var draft = StepDraft(location: stepLocation)
        let entries = self.entries(of: stepMapping, allowed: WorkflowKeys.step, context: "in step")
        if let idEntry = entries["id"] {
            draft.idLocation = location(of: idEntry.value)
            if let id = text(idEntry, what: "a step id like reserve") {
                if Self.isStepId(id) {
                    draft.id = id
                } else {
                    log.report(
                        .invalidValue, at: location(of: idEntry.value),
                        "bad step id '\(id)'; use letters, digits, '_' and '-', e.g. reserve")
                }
            }
        } else {
            missing("id", in: "step", at: stepLocation, example: "id: <name>", given: entries)
        }

        let actions = ["command", "split", "choice", "wait"].compactMap { entries[$0] }.sorted {
            $0.keyLocation < $1.keyLocation
        }
        if actions.isEmpty {
            if entries.misspelt.isDisjoint(with: ["command", "split", "choice", "wait"]) {
                log.report(
                    .missingKey, at: stepLocation,
                    "\(draft.name) needs a command, a split, a choice or a wait; add command: <routing key>")
            }
        } else if actions.count > 1 {
            log.report(
                .conflict, at: actions[1].keyLocation,
                "\(draft.name) has both \(actions[0].key) and \(actions[1].key); a step does one thing, keep one of them"
            )
        } else if let command = entries["command"] {
            draft.kind = .command
            let input = entries["input"]
            if let template = readCommand(command: command, input: input, uses: &draft.uses, part: .action) {
                draft.action = .command(template)
            }
        } else if let split = entries["split"] {
            draft.kind = .split
            if let spec = readSplit(split, uses: &draft.uses) {
                draft.action = .split(spec)
            }
            if let input = entries["input"] {
                log.report(
                    .conflict, at: input.keyLocation,
                    "input belongs to command steps; a split step reads lines and stock from its split mapping")
            }
        } else if let choice = entries["choice"] {
            draft.kind = .choice
            if let spec = readChoice(choice, into: &draft) {
                draft.action = .choice(spec)
            }
        } else if let wait = entries["wait"] {
            draft.kind = .wait
            if let spec = readWait(wait, into: &draft) {
                draft.action = .wait(spec)
                draft.onTimeout = spec.onTimeout
            }
        }
        if draft.kind == .choice || draft.kind == .wait {
            // A local step sends nothing and has nothing to undo or retry.
            let what = draft.kind == .choice ? "a choice step only picks where the saga goes" : "a wait step only waits"
            for key in [
                "input", "for_each", "as", "compensate", "verify", "timeout", "retry", "pivot", "reallocate",
                "branch_milestone",
            ] {
                guard let field = entries[key] else { continue }
                if key == "timeout", draft.kind == .wait {
                    log.report(
                        .conflict, at: field.keyLocation,
                        "a wait's timeout goes inside it, with the message: wait: { message: ..., timeout: 3d }")
                    continue
                }
                log.report(.conflict, at: field.keyLocation, "\(what); \(key) belongs to command steps, remove it")
            }
        }
        if let next = entries["next"] {
            draft.next = readNext(next, into: &draft)
        }

        if draft.kind == .choice || draft.kind == .wait {
            if let milestone = entries["milestone"] {
                draft.milestone = milestoneName(milestone)
                draft.milestoneLocation = location(of: milestone.value)
            }
            return draft
        }
        readFanOut(entries, into: &draft)

        if let compensate = entries["compensate"] {
            draft.compensateLocation = compensate.keyLocation
            if draft.kind == .split {
                log.report(
                    .conflict, at: compensate.keyLocation, "a split step has nothing to undo; remove compensate")
            } else {
                draft.compensate = readSecondaryCommand(
                    compensate, key: "compensate", part: .compensate, example: "the undo command", uses: &draft.uses)
            }
        }
        if let verify = entries["verify"] {
            if draft.kind == .split {
                log.report(.conflict, at: verify.keyLocation, "a split step has no effect to verify; remove verify")
            } else {
                draft.verify = readSecondaryCommand(
                    verify, key: "verify", part: .verify, example: "the status query", uses: &draft.uses)
            }
        }
        if let timeout = entries["timeout"] {
            draft.timeout = duration(timeout)
        }
        if let retry = entries["retry"] {
            draft.retry = readRetry(retry)
            draft.retryLocation = location(of: retry.value)
        }
        if let milestone = entries["milestone"] {
            draft.milestone = milestoneName(milestone)
            draft.milestoneLocation = location(of: milestone.value)
        }
        if let branchMilestone = entries["branch_milestone"] {
            draft.branchMilestone = milestoneName(branchMilestone)
            draft.branchMilestoneLocation = location(of: branchMilestone.value)
            if draft.forEachLocation == nil {
                log.report(
                    .conflict, at: branchMilestone.keyLocation,
                    "branch_milestone is published once per for_each branch, and \(draft.name) has no for_each; "
                        + "use milestone for a step without branches")
            }
        }
        if let pivot = entries["pivot"] {
            draft.pivotLocation = pivot.keyLocation
            if case .scalar(let scalar) = pivot.value, scalar.style == .plain,
                case .bool(let flag)? = Self.plainLiteral(scalar.string)
            {
                draft.pivot = flag
            } else {
                log.report(
                    .invalidValue, at: location(of: pivot.value),
                    "pivot must be true or false, not \(describe(pivot.value))")
            }
        }
        if let reallocate = entries["reallocate"] {
            readReallocate(reallocate, into: &draft)
        }
        return draft
    }

    static func isStepId(_ text: String) -> Bool {
        !text.isEmpty
            && text.unicodeScalars.allSatisfy { scalar in
                scalar.isASCII
                    && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_"
                        || scalar == "-")
            }
    }

    /// `for_each` and `as`, which only make sense together.
    mutating func readFanOut(_ entries: Fields, into draft: inout StepDraft) {
        let forEach = entries["for_each"]
        let alias = entries["as"]
        if let forEach {
            draft.forEachLocation = forEach.keyLocation
            if draft.kind == .split {
                log.report(
                    .conflict, at: forEach.keyLocation,
                    "a split step cannot use for_each; fan out in the steps that use its shipments")
            } else {
                draft.forEach = readForEachItems(forEach, uses: &draft.uses)
            }
            if alias == nil {
                log.report(
                    .missingKey, at: forEach.keyLocation,
                    "for_each needs an 'as' name for the element; add as: <name>, e.g. as: shipment")
            }
        }
        if let alias {
            if forEach == nil {
                log.report(
                    .conflict, at: alias.keyLocation,
                    "'as' names the element of a for_each; add for_each or remove as")
            } else if let name = text(alias, what: "a name like shipment") {
                if ["input", "steps", "saga"].contains(name) {
                    log.report(
                        .invalidValue, at: location(of: alias.value),
                        "as '\(name)' would hide ${\(name)...}; pick another name, e.g. item")
                } else if !Self.isStepId(name) {
                    log.report(
                        .invalidValue, at: location(of: alias.value),
                        "bad 'as' name '\(name)'; use letters, digits, '_' and '-', e.g. shipment")
                } else {
                    draft.alias = name
                }
            }
        }
    }

    mutating func readForEachItems(_ entry: Entry, uses: inout [ExpressionUse]) -> Template? {
        let message = "for_each must be one ${...} expression that yields a list, or a literal list"
        switch entry.value {
        case .sequence:
            return template(entry.value, uses: &uses, part: .forEach)
        case .scalar(let scalar) where !isEmpty(entry.value):
            guard let template = stringTemplate(scalar, uses: &uses, part: .forEach) else { return nil }
            guard case .value = template else {
                log.report(.invalidValue, at: location(of: entry.value), "\(message), not \(describe(entry.value))")
                return nil
            }
            return template
        default:
            log.report(.wrongKind, at: location(of: entry.value), "\(message), not \(describe(entry.value))")
            return nil
        }
    }

    /// A step's `compensate` or `verify`: a mapping of `command` and `input`; `example` says what the command is in
    /// the hint of a missing one.
    mutating func readSecondaryCommand(
        _ entry: Entry, key: String, part: StepPart, example: String, uses: inout [ExpressionUse]
    ) -> CommandTemplate? {
        guard let commandMapping = mapping(entry, shape: "with command and input") else { return nil }
        let fields = entries(of: commandMapping, allowed: WorkflowKeys.compensate, context: "in \(key)")
        guard let command = fields["command"] else {
            missing(
                "command", in: key, at: location(of: entry.value), example: "command: <routing key of \(example)>",
                given: fields)
            return nil
        }
        return readCommand(command: command, input: fields["input"], uses: &uses, part: part)
    }

    mutating func readCommand(
        command: Entry, input: Entry?, uses: inout [ExpressionUse], part: StepPart
    ) -> CommandTemplate? {
        guard case .scalar(let scalar) = command.value, !isEmpty(command.value) else {
            log.report(
                .wrongKind, at: location(of: command.value),
                "command must be a routing key like erp.order.accept, not \(describe(command.value))")
            return nil
        }
        let routingKey = stringTemplate(scalar, uses: &uses, part: part)
        var body = Template.literal(.object([:]))
        if let input {
            guard let parsed = template(input.value, uses: &uses, part: part) else { return nil }
            body = parsed
        }
        return routingKey.map { CommandTemplate(routingKey: $0, input: body) }
    }

    mutating func readSplit(_ entry: Entry, uses: inout [ExpressionUse]) -> SplitStepSpec? {
        guard let mapping = mapping(entry, shape: "with lines, stock, strategy and backorder") else { return nil }
        let entries = self.entries(of: mapping, allowed: WorkflowKeys.split, context: "in split")
        let at = location(of: entry.value)
        var valid = true
        var templates: [String: Template] = [:]
        for key in ["lines", "stock", "priority"] {
            guard let field = entries[key] else { continue }
            if let value = template(field.value, uses: &uses, part: .action) {
                templates[key] = value
            } else {
                valid = false
            }
        }
        if entries["lines"] == nil {
            missing("lines", in: "split", at: at, example: "lines: ${input.lines}", given: entries)
        }
        if entries["stock"] == nil {
            missing("stock", in: "split", at: at, example: "stock: ${steps.reserve.output.stock}", given: entries)
        }
        var strategy = SplitStrategyName.fewestShipments
        if let strategyEntry = entries["strategy"], let name = text(strategyEntry, what: "a split strategy") {
            if let known = SplitStrategyName(rawValue: name) {
                strategy = known
            } else {
                let names = SplitStrategyName.allCases.map(\.rawValue)
                log.report(
                    .invalidValue, at: location(of: strategyEntry.value),
                    "unknown split strategy '\(name)'; "
                        + (Suggestion.closest(to: name, among: names).map { "did you mean '\($0)'?" }
                            ?? "the strategies are: \(names.joined(separator: ", "))"))
                valid = false
            }
        }
        var backorder = BackorderPolicy.reject
        if let backorderEntry = entries["backorder"], let name = text(backorderEntry, what: "'reject' or 'allow'") {
            if let known = BackorderPolicy(rawValue: name) {
                backorder = known
            } else {
                log.report(
                    .invalidValue, at: location(of: backorderEntry.value),
                    "backorder must be 'reject' or 'allow', not '\(name)'")
                valid = false
            }
        }
        guard valid, let lines = templates["lines"], let stock = templates["stock"] else { return nil }
        return SplitStepSpec(
            lines: lines, stock: stock, priority: templates["priority"], strategy: strategy, backorder: backorder)
    }

    mutating func readReallocate(_ entry: Entry, into draft: inout StepDraft) {
        draft.reallocateLocation = entry.keyLocation
        guard let mapping = mapping(entry, shape: "like { codes: [out_of_stock], split: split, max: 2 }") else {
            return
        }
        let entries = self.entries(of: mapping, allowed: WorkflowKeys.reallocate, context: "in reallocate")
        let at = location(of: entry.value)
        if let codes = entries["codes"] {
            let message = "reallocate codes must be a non-empty list of error codes, e.g. [out_of_stock]"
            if case .sequence(let sequence) = codes.value, !sequence.isEmpty {
                var values: Set<String> = []
                var valid = true
                for node in sequence {
                    if case .scalar(let scalar) = node, !isEmpty(node) {
                        values.insert(scalar.string)
                    } else {
                        log.report(.invalidValue, at: location(of: node), "\(message); \(describe(node)) is not a code")
                        valid = false
                    }
                }
                if valid { draft.reallocateCodes = values }
            } else {
                log.report(.invalidValue, at: location(of: codes.value), "\(message), not \(describe(codes.value))")
            }
        } else {
            missing("codes", in: "reallocate", at: at, example: "codes: [out_of_stock]", given: entries)
        }
        if let split = entries["split"] {
            draft.reallocateSplit = text(split, what: "the id of a split step")
            draft.reallocateSplitLocation = location(of: split.value)
        } else {
            missing("split", in: "reallocate", at: at, example: "split: <id of the split step>", given: entries)
        }
        if let maximum = entries["max"] {
            draft.reallocateMax = positiveInteger(maximum, what: "a positive integer (re-plans per saga)")
        } else {
            missing("max", in: "reallocate", at: at, example: "max: 2", given: entries)
        }
    }
}
