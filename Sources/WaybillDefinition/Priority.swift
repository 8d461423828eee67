/// Priority lanes: when a participant's limit holds commands back, the commands of sagas in a higher lane go first.
/// Names stand for numbers (`high` 2, `normal` 1, `low` 0); any whole number between ``lowest`` and ``highest`` is a
/// lane too. A saga without a priority rule is `normal`.
public enum PriorityLane {
    /// The lane of `high`.
    public static let high = 2
    /// The lane of `normal`, and of every saga whose workflow declares no priority.
    public static let normal = 1
    /// The lane of `low`.
    public static let low = 0
    /// The lowest lane a number may name.
    public static let lowest = -100
    /// The highest lane a number may name.
    public static let highest = 100

    /// The lane a name or a number in text stands for: `high`, `normal`, `low`, or a whole number in range.
    public static func named(_ text: String) -> Int? {
        switch text.lowercased() {
        case "high": return high
        case "normal": return normal
        case "low": return low
        default:
            guard let number = Int(text), (lowest...highest).contains(number) else { return nil }
            return number
        }
    }

    /// `high`, `normal`, `low`, or the number: how views and metric labels name a lane.
    public static func name(_ lane: Int) -> String {
        switch lane {
        case high: "high"
        case normal: "normal"
        case low: "low"
        default: String(lane)
        }
    }
}

/// How a workflow's trigger derives a saga's priority lane from its start message: the value of ``value`` is a lane
/// (`high`, `normal`, `low`, a number) or, with ``map``, a key into it (a sales channel). Whatever does not resolve to
/// a lane (a missing field, an unknown name) is ``fallback``.
public struct PriorityRule: Sendable, Hashable {
    /// Evaluated over the start message (`${input.priority}`, `${input.channel}`), or a constant lane.
    public var value: Template
    /// The value's text to its lane; empty when the value names the lane itself.
    public var map: [String: Int]
    /// The lane when the value does not resolve to one.
    public var fallback: Int

    /// Describes a rule.
    public init(value: Template, map: [String: Int] = [:], fallback: Int = PriorityLane.normal) {
        self.value = value
        self.map = map
        self.fallback = fallback
    }

    /// The lane of a saga of `workflow` that started with `input`.
    public func lane(input: JSONValue, workflow: String) -> Int {
        guard let value = try? value.evaluate(in: EvaluationScope(input: input, sagaId: "", workflow: workflow)),
            let text = MessageWait.correlationText(value)
        else { return fallback }
        if !map.isEmpty { return map[text] ?? fallback }
        return PriorityLane.named(text) ?? fallback
    }
}

extension WorkflowDefinition {
    /// The priority lane of a saga that started with `input`: its trigger's rule, or `normal` without one.
    public func priorityLane(input: JSONValue) -> Int {
        trigger.priority?.lane(input: input, workflow: name) ?? PriorityLane.normal
    }
}
