import CodedError

/// The data `${...}` expressions see while a saga runs.
public struct EvaluationScope: Sendable {
    /// The start message body.
    public var input: JSONValue
    /// Outputs of the steps that have succeeded, by step id.
    public var stepOutputs: [String: JSONValue]
    /// The `for_each` element in scope, if any.
    public var alias: (name: String, value: JSONValue)?
    public var sagaId: String
    public var workflow: String
    /// Steps whose output is unknown: every `steps.<id>.output...` path of one of them evaluates to `null`, however
    /// deep, instead of failing. The engine sets it to the step it compensates when the forward command's reply never
    /// came; `stepOutputs` may still hold its siblings' outputs, which such a path does not read either.
    public var unknownOutputs: Set<String> = []

    public init(
        input: JSONValue, stepOutputs: [String: JSONValue] = [:], alias: (name: String, value: JSONValue)? = nil,
        sagaId: String, workflow: String
    ) {
        self.input = input
        self.stepOutputs = stepOutputs
        self.alias = alias
        self.sagaId = sagaId
        self.workflow = workflow
    }
}

/// A `${...}` path that did not resolve against the saga's data. At run time this fails the step
/// non-retryably: retrying cannot make missing data appear.
public struct EvaluationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of problem it is; the raw values (`expression.<snake_case>`) are stable.
    public typealias Code = ErrorCode<EvaluationErrorDomain>

    /// What kind of problem it is.
    public var code: Code
    /// The path as written.
    public var path: String
    /// What was missing or of the wrong type.
    public var reason: String

    /// Creates the error; `reason` names what is missing, never the saga's data.
    public init(_ code: Code, path: String, reason: String) {
        self.code = code
        self.path = path
        self.reason = reason
    }

    /// `cannot evaluate ${path}: reason`: what a step failure records. Fix the start message or the path.
    public var message: String { "cannot evaluate ${\(path)}: \(reason)" }

    /// `code: message`.
    public var description: String { "\(code): \(message)" }
}

/// The expression evaluator's error family: the domain of ``EvaluationError/Code``. Its codes share the
/// `expression.` prefix with ``TemplateSyntaxError/Code`` but are a type of their own, so the two never mix.
public enum EvaluationErrorDomain: ErrorDomain {}

/// The evaluator's codes: the raw values (`expression.<snake_case>`) are stable.
extension ErrorCode where Domain == EvaluationErrorDomain {
    /// `steps.<id>.output` of a step that has not succeeded (yet).
    public static let noStepOutput = Self(rawValue: "expression.no_step_output")
    /// A `for_each` alias used outside its step.
    public static let undefinedName = Self(rawValue: "expression.undefined_name")
    /// A member looked up on a non-object, an index on a non-array, or a non-string where text is needed.
    public static let wrongType = Self(rawValue: "expression.wrong_type")
    /// The object has no such member.
    public static let noMember = Self(rawValue: "expression.no_member")
    /// The array is shorter than the index.
    public static let indexOutOfRange = Self(rawValue: "expression.index_out_of_range")
}

extension ExpressionPath {
    /// Resolves the path in `scope`.
    public func evaluate(in scope: EvaluationScope) throws(EvaluationError) -> JSONValue {
        var current: JSONValue
        switch root {
        case .input:
            current = scope.input
        case .sagaId:
            return .string(scope.sagaId)
        case .sagaWorkflow:
            return .string(scope.workflow)
        case .stepOutput(let id):
            if scope.unknownOutputs.contains(id) { return .null }
            guard let output = scope.stepOutputs[id] else {
                throw EvaluationError(.noStepOutput, path: description, reason: "step '\(id)' has no output yet")
            }
            current = output
        case .alias(let name):
            guard let alias = scope.alias, alias.name == name else {
                throw EvaluationError(.undefinedName, path: description, reason: "'\(name)' is not defined here")
            }
            current = alias.value
        }
        for component in components {
            switch component {
            case .member(let name):
                guard case .object(let members) = current else {
                    throw EvaluationError(
                        .wrongType, path: description, reason: "'\(name)' looked up on \(current.typeName)")
                }
                guard let next = members[name] else {
                    throw EvaluationError(.noMember, path: description, reason: "no member '\(name)'")
                }
                current = next
            case .index(let index):
                guard case .array(let elements) = current else {
                    throw EvaluationError(
                        .wrongType, path: description, reason: "index [\(index)] applied to \(current.typeName)")
                }
                guard index < elements.count else {
                    throw EvaluationError(
                        .indexOutOfRange, path: description, reason: "index [\(index)] out of range (\(elements.count))"
                    )
                }
                current = elements[index]
            }
        }
        return current
    }
}

extension Template {
    /// Evaluates the template to a JSON value.
    public func evaluate(in scope: EvaluationScope) throws(EvaluationError) -> JSONValue {
        switch self {
        case .literal(let value):
            return value
        case .value(let path):
            return try path.evaluate(in: scope)
        case .interpolated(let segments):
            var text = ""
            for segment in segments {
                switch segment {
                case .text(let piece): text += piece
                case .expression(let path): text += try path.evaluate(in: scope).interpolationText
                }
            }
            return .string(text)
        case .array(let elements):
            var values: [JSONValue] = []
            values.reserveCapacity(elements.count)
            for element in elements { values.append(try element.evaluate(in: scope)) }
            return .array(values)
        case .object(let members):
            var values: [String: JSONValue] = [:]
            values.reserveCapacity(members.count)
            for (key, member) in members { values[key] = try member.evaluate(in: scope) }
            return .object(values)
        }
    }

    /// Evaluates the template to a string (routing keys, saga ids): numbers print without a fraction when whole.
    public func evaluateString(in scope: EvaluationScope) throws(EvaluationError) -> String {
        let value = try evaluate(in: scope)
        switch value {
        case .string(let text): return text
        case .number, .bool: return value.interpolationText
        default:
            throw EvaluationError(
                .wrongType, path: paths.first?.description ?? "", reason: "expected a string, got \(value.typeName)")
        }
    }
}

extension JSONValue {
    /// How the value reads inside an interpolated string.
    var interpolationText: String {
        switch self {
        case .null: "null"
        case .bool(let value): value ? "true" : "false"
        case .number(let value):
            if let integer = intValue { String(integer) } else { String(value) }
        case .string(let value): value
        case .array, .object: JSONText.encode(self)
        }
    }
}

extension Condition {
    /// Whether the condition holds over `scope`.
    ///
    /// A path that does not resolve (no such member, a member of null or of something that is not an object, no output
    /// of a bypassed step, an index past the end) reads as null for `equals`, `not_equals`, `in`, `empty` and `present`, so an optional field can be tested as it is. A
    /// numeric comparison throws the ``EvaluationError`` of such a path, and ``EvaluationError/Code/wrongType`` for a
    /// value that is not a number, which fails the choice step: an order total that is missing must not silently pick
    /// the cheaper path.
    public func holds(in scope: EvaluationScope) throws(EvaluationError) -> Bool {
        switch self {
        case .all(let conditions):
            for condition in conditions where try !condition.holds(in: scope) { return false }
            return true
        case .any(let conditions):
            for condition in conditions where try condition.holds(in: scope) { return true }
            return false
        case .not(let condition):
            return try !condition.holds(in: scope)
        case .compare(let template, let comparison):
            let value: JSONValue
            do {
                value = try template.evaluate(in: scope)
            } catch  where [.noMember, .noStepOutput, .indexOutOfRange, .wrongType].contains(error.code) {
                switch comparison {
                case .lessThan, .atMost, .greaterThan, .atLeast: throw error
                default: value = .null
                }
            }
            switch comparison {
            case .equals(let expected): return value == expected
            case .notEquals(let expected): return value != expected
            case .oneOf(let values): return values.contains(value)
            case .empty(let wanted): return value.isEmptyValue == wanted
            case .present(let wanted): return (value != .null) == wanted
            case .lessThan(let bound): return try Self.number(value, template) < bound
            case .atMost(let bound): return try Self.number(value, template) <= bound
            case .greaterThan(let bound): return try Self.number(value, template) > bound
            case .atLeast(let bound): return try Self.number(value, template) >= bound
            }
        }
    }

    private static func number(_ value: JSONValue, _ template: Template) throws(EvaluationError) -> Double {
        guard case .number(let number) = value else {
            throw EvaluationError(
                .wrongType, path: template.pathText,
                reason: "a numeric comparison needs a number, got \(value.typeName)")
        }
        return number
    }
}

extension Template {
    /// The path of a one-expression template, for messages; `value` for anything else.
    var pathText: String {
        if case .value(let path) = self { return path.description }
        return "value"
    }
}

extension JSONValue {
    /// null, "", [] and {}.
    var isEmptyValue: Bool {
        switch self {
        case .null: true
        case .string(let text): text.isEmpty
        case .array(let elements): elements.isEmpty
        case .object(let members): members.isEmpty
        case .bool, .number: false
        }
    }
}
