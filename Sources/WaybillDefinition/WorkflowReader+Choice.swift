import Yams

/// Reading `choice` steps, their conditions, and `next` targets.
extension WorkflowReader {
    /// The words a target may be besides a step id.
    static let endTarget = "end"

    /// `choice:`, a list of rules `{when, next | fail}`; the last may leave `when` out (it always holds).
    mutating func readChoice(_ entry: Entry, into draft: inout StepDraft) -> ChoiceSpec? {
        let example = "a list of rules like - when: { value: \"${input.priority}\", equals: high }\n    next: <step id>"
        guard case .sequence(let sequence) = entry.value, !sequence.isEmpty else {
            log.report(
                .wrongKind, at: location(of: entry.value), "choice must be \(example), not \(describe(entry.value))")
            return nil
        }
        var rules: [ChoiceSpec.Rule] = []
        var valid = true
        for (index, node) in sequence.enumerated() {
            guard case .mapping(let mapping) = node else {
                log.report(
                    .wrongKind, at: location(of: node),
                    "each choice rule must be a mapping with when and next, not \(describe(node))")
                valid = false
                continue
            }
            let fields = entries(of: mapping, allowed: WorkflowKeys.choiceRule, context: "in a choice rule")
            var condition: Condition? = .all([])
            if let when = fields["when"] {
                condition = readCondition(when.value, uses: &draft.uses)
            } else if index != sequence.count - 1 {
                missing(
                    "when", in: "choice rule \(index + 1)", at: location(of: node),
                    example: "when: { value: ..., equals: ... } (only the last rule may leave it out)", given: fields)
                condition = nil
            }
            // The target is read even when the condition is not, so one run reports both.
            let target = readTarget(
                fields, at: location(of: node), owner: "a choice rule",
                failing: "the choice \(draft.id ?? "step") failed the saga", into: &draft)
            guard let condition, let target else {
                valid = false
                continue
            }
            rules.append(ChoiceSpec.Rule(when: condition, target: target))
        }
        return valid ? ChoiceSpec(rules: rules) : nil
    }

    /// A choice rule's or an `on_timeout`'s `next: <step id | end>` or `fail: {code, message}`; `owner` names what
    /// has the target in messages, and `failing` is the failure message when `fail` gives none.
    mutating func readTarget(
        _ fields: Fields, at: SourceLocation, owner: String, failing: String, into draft: inout StepDraft
    ) -> StepTarget? {
        switch (fields["next"], fields["fail"]) {
        case (nil, nil):
            if fields.misspelt.isDisjoint(with: ["next", "fail"]) {
                log.report(
                    .missingKey, at: at,
                    "\(owner) needs next: <step id> (or end), or fail: { code: <code>, message: <text> }")
            }
            return nil
        case (let next?, let fail?):
            let later = next.keyLocation < fail.keyLocation ? fail : next
            log.report(.conflict, at: later.keyLocation, "\(owner) has one target; keep next or fail")
            return nil
        case (let next?, nil):
            return readNext(next, into: &draft)
        case (nil, let fail?):
            guard let mapping = mapping(fail, shape: "like { code: credit_rejected, message: why }") else { return nil }
            let failFields = entries(of: mapping, allowed: ["code", "message"], context: "in fail")
            guard let codeEntry = failFields["code"] else {
                missing(
                    "code", in: "fail", at: location(of: fail.value), example: "code: <error code>", given: failFields)
                return nil
            }
            guard let code = text(codeEntry, what: "an error code like credit_rejected") else { return nil }
            let message = failFields["message"].flatMap { text($0, what: "a sentence") } ?? failing
            return .fail(code: code, message: message)
        }
    }

    /// `next: <step id>` or `next: end`; the step's existence and order are checked once every step is read.
    mutating func readNext(_ entry: Entry, into draft: inout StepDraft) -> StepTarget? {
        guard let name = text(entry, what: "a step id, or end") else { return nil }
        if name == Self.endTarget { return .end }
        guard Self.isStepId(name) else {
            log.report(
                .invalidValue, at: location(of: entry.value), "bad step id '\(name)' in next; name a later step, or end"
            )
            return nil
        }
        draft.targets.append((name, location(of: entry.value)))
        return .step(name)
    }

    /// A condition: `{value: ${...}, <comparison>: ...}`, or `{all: [...]}`, `{any: [...]}`, `{not: {...}}`.
    mutating func readCondition(_ node: Node, uses: inout [ExpressionUse]) -> Condition? {
        let shape =
            "a condition like { value: \"${input.total}\", greater_than: 100 }, or { all: [...] }, { any: [...] }, "
            + "{ not: ... }"
        guard case .mapping(let mapping) = node else {
            log.report(.wrongKind, at: location(of: node), "a condition must be \(shape), not \(describe(node))")
            return nil
        }
        let fields = entries(
            of: mapping, allowed: ["value", "all", "any", "not"] + WorkflowKeys.comparisons, context: "in a condition")
        let combinators = ["all", "any", "not"].compactMap { fields[$0] }
        if let combinator = combinators.first {
            guard combinators.count == 1, fields["value"] == nil,
                WorkflowKeys.comparisons.allSatisfy({ fields[$0] == nil })
            else {
                log.report(
                    .conflict, at: location(of: node),
                    "a condition is one of value, all, any or not; split it into all: [...]")
                return nil
            }
            if combinator.key == "not" {
                return readCondition(combinator.value, uses: &uses).map(Condition.not)
            }
            guard case .sequence(let sequence) = combinator.value else {
                log.report(
                    .wrongKind, at: location(of: combinator.value),
                    "\(combinator.key) must be a list of conditions, not \(describe(combinator.value))")
                return nil
            }
            var conditions: [Condition] = []
            for element in sequence {
                guard let condition = readCondition(element, uses: &uses) else { return nil }
                conditions.append(condition)
            }
            return combinator.key == "all" ? .all(conditions) : .any(conditions)
        }
        guard let value = fields["value"] else {
            missing("value", in: "condition", at: location(of: node), example: "value: \"${...}\"", given: fields)
            return nil
        }
        let comparisons = WorkflowKeys.comparisons.compactMap { fields[$0] }
        guard comparisons.count == 1, let comparison = comparisons.first else {
            log.report(
                comparisons.isEmpty ? .missingKey : .conflict, at: location(of: node),
                "a condition compares its value once; add one of \(WorkflowKeys.comparisons.joined(separator: ", "))")
            return nil
        }
        guard let subject = template(value.value, uses: &uses, part: .action) else { return nil }
        var ignored: [ExpressionUse] = []
        func literal() -> JSONValue? {
            guard let parsed = template(comparison.value, uses: &ignored, part: .action) else { return nil }
            guard let constant = parsed.constantValue else {
                log.report(
                    .invalidValue, at: location(of: comparison.value),
                    "\(comparison.key) takes a constant, not an expression; put the expression under value")
                return nil
            }
            return constant
        }
        switch comparison.key {
        case "equals": return literal().map { .compare(subject, .equals($0)) }
        case "not_equals": return literal().map { .compare(subject, .notEquals($0)) }
        case "in":
            guard let constant = literal() else { return nil }
            guard case .array(let values) = constant else {
                log.report(.wrongKind, at: location(of: comparison.value), "in takes a list of values, like [eu, us]")
                return nil
            }
            return .compare(subject, .oneOf(values))
        case "empty", "present":
            guard case .bool(let flag)? = literal() else {
                log.report(.invalidValue, at: location(of: comparison.value), "\(comparison.key) must be true or false")
                return nil
            }
            return .compare(subject, comparison.key == "empty" ? .empty(flag) : .present(flag))
        default:
            guard case .number(let bound)? = literal() else {
                log.report(.invalidValue, at: location(of: comparison.value), "\(comparison.key) must be a number")
                return nil
            }
            switch comparison.key {
            case "less_than": return .compare(subject, .lessThan(bound))
            case "at_most": return .compare(subject, .atMost(bound))
            case "greater_than": return .compare(subject, .greaterThan(bound))
            default: return .compare(subject, .atLeast(bound))
            }
        }
    }
}
