import CodedError

/// A JSON value with `${...}` expressions in it, evaluated against a saga's data.
///
/// A string that is exactly one `${...}` becomes ``value(_:)`` and yields the JSON value itself (object, array,
/// number); a string with text around expressions becomes ``interpolated(_:)`` and always yields a string.
public indirect enum Template: Sendable, Hashable {
    /// A constant.
    case literal(JSONValue)
    /// Exactly one expression: its JSON value.
    case value(ExpressionPath)
    /// Text and expressions concatenated into a string.
    case interpolated([TemplateSegment])
    /// An array whose elements are templates.
    case array([Template])
    /// An object whose member values are templates.
    case object([String: Template])
}

/// A piece of an interpolated string.
public enum TemplateSegment: Sendable, Hashable {
    /// Literal text.
    case text(String)
    /// An expression whose value is inserted as text.
    case expression(ExpressionPath)
}

/// A parsed `${...}` path: a root (`input`, `steps.<id>.output`, a `for_each` alias, `saga.id`, `saga.workflow`)
/// followed by member names and array indexes.
public struct ExpressionPath: Sendable, Hashable, CustomStringConvertible {
    /// Where a path starts.
    public enum Root: Sendable, Hashable {
        /// The start message body.
        case input
        /// The output of the step with this id (for a `for_each` step, the array of branch outputs).
        case stepOutput(String)
        /// The element bound by a `for_each` step's `as`.
        case alias(String)
        /// The saga id.
        case sagaId
        /// The workflow name.
        case sagaWorkflow
    }

    /// One selector after the root.
    public enum Component: Sendable, Hashable {
        /// An object member, `.name`.
        case member(String)
        /// An array element, `[0]`.
        case index(Int)
    }

    /// Where the path starts.
    public var root: Root
    /// The selectors after the root, in order.
    public var components: [Component]

    /// Creates a path from its parts.
    public init(root: Root, components: [Component] = []) {
        self.root = root
        self.components = components
    }

    /// The path as written, without `${` and `}`.
    public var description: String {
        var text: String
        switch root {
        case .input: text = "input"
        case .stepOutput(let id): text = "steps.\(id).output"
        case .alias(let name): text = name
        case .sagaId: text = "saga.id"
        case .sagaWorkflow: text = "saga.workflow"
        }
        for component in components {
            switch component {
            case .member(let name): text += ".\(name)"
            case .index(let index): text += "[\(index)]"
            }
        }
        return text
    }
}

extension Template {
    /// The value of a template without expressions (literals, and arrays and objects of them); `nil` when it has one.
    public var constantValue: JSONValue? {
        switch self {
        case .literal(let value): return value
        case .value, .interpolated: return nil
        case .array(let elements):
            var values: [JSONValue] = []
            for element in elements {
                guard let value = element.constantValue else { return nil }
                values.append(value)
            }
            return .array(values)
        case .object(let members):
            var values: [String: JSONValue] = [:]
            for (key, member) in members {
                guard let value = member.constantValue else { return nil }
                values[key] = value
            }
            return .object(values)
        }
    }
}

/// Why a `${...}` expression or a template string could not be parsed.
public struct TemplateSyntaxError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of problem it is; the raw value is stable.
    public typealias Code = ErrorCode<TemplateSyntaxErrorDomain>

    /// What kind of problem it is.
    public var code: Code
    /// What is wrong and how to write it instead.
    public var message: String
    /// The offset in characters inside the scalar where the problem starts.
    public var offset: Int

    /// Creates the error; `offset` counts characters from the start of the scalar.
    public init(_ code: Code = .badSyntax, message: String, offset: Int) {
        self.code = code
        self.message = message
        self.offset = offset
    }

    /// `code: message`.
    public var description: String { "\(code): \(message)" }
}

/// The expression parser's error family: the domain of ``TemplateSyntaxError/Code``, whose one code is
/// `expression.bad_syntax`.
public enum TemplateSyntaxErrorDomain: ErrorDomain {}

/// The expression parser's code: the raw value is stable.
extension ErrorCode where Domain == TemplateSyntaxErrorDomain {
    /// The `${...}` cannot be parsed: unterminated, an empty name, a bad index, an unknown root or saga field.
    public static let badSyntax = Self(rawValue: "expression.bad_syntax")
}

extension ExpressionPath {
    /// Parses the text between `${` and `}`, e.g. `steps.reserve.output.stock[0].sku`.
    public static func parse(_ text: String) throws(TemplateSyntaxError) -> ExpressionPath {
        var tokens: [Component] = []
        var index = text.startIndex
        var name = ""
        var offset = 0
        func flushName() throws(TemplateSyntaxError) {
            guard !name.isEmpty else {
                throw TemplateSyntaxError(message: "empty name in expression '${\(text)}'", offset: offset)
            }
            tokens.append(.member(name))
            name = ""
        }
        while index < text.endIndex {
            let character = text[index]
            switch character {
            case ".":
                if !(name.isEmpty && tokens.last.map { if case .index = $0 { true } else { false } } == true) {
                    try flushName()
                }
            case "[":
                if !name.isEmpty { try flushName() }
                guard let close = text[index...].firstIndex(of: "]"),
                    let value = Int(text[text.index(after: index)..<close]),
                    value >= 0
                else {
                    throw TemplateSyntaxError(
                        message: "bad array index in expression '${\(text)}'; write [0], [1], ...", offset: offset)
                }
                tokens.append(.index(value))
                offset += text.distance(from: index, to: close)
                index = close
            default:
                guard character.isLetter || character.isNumber || character == "_" || character == "-" else {
                    throw TemplateSyntaxError(
                        message: "unexpected character '\(character)' in expression '${\(text)}'", offset: offset)
                }
                name.append(character)
            }
            index = text.index(after: index)
            offset += 1
        }
        if !name.isEmpty { try flushName() }
        guard case .member(let head)? = tokens.first else {
            throw TemplateSyntaxError(message: "empty expression '${\(text)}'", offset: 0)
        }
        switch head {
        case "input":
            return ExpressionPath(root: .input, components: Array(tokens.dropFirst()))
        case "saga":
            guard tokens.count == 2, case .member(let field) = tokens[1], field == "id" || field == "workflow" else {
                throw TemplateSyntaxError(
                    message: "unknown saga field in '${\(text)}'; use saga.id or saga.workflow", offset: 0)
            }
            return ExpressionPath(root: field == "id" ? .sagaId : .sagaWorkflow)
        case "steps":
            guard tokens.count >= 3, case .member(let stepId) = tokens[1], tokens[2] == .member("output") else {
                throw TemplateSyntaxError(
                    message: "a step reference must read steps.<id>.output, not '${\(text)}'", offset: 0)
            }
            return ExpressionPath(root: .stepOutput(stepId), components: Array(tokens.dropFirst(3)))
        default:
            return ExpressionPath(root: .alias(head), components: Array(tokens.dropFirst()))
        }
    }
}

extension Template {
    /// Parses one YAML/JSON string scalar: plain text, exactly one `${...}`, or text with expressions in it.
    public static func parse(string: String) throws(TemplateSyntaxError) -> Template {
        guard string.contains("${") else { return .literal(.string(string)) }
        var segments: [TemplateSegment] = []
        var rest = Substring(string)
        var consumed = 0
        while let open = rest.range(of: "${") {
            let text = rest[rest.startIndex..<open.lowerBound]
            if !text.isEmpty { segments.append(.text(String(text))) }
            let afterOpen = rest[open.upperBound...]
            guard let close = afterOpen.firstIndex(of: "}") else {
                throw TemplateSyntaxError(
                    message: "unterminated expression: '${' without a closing '}'",
                    offset: consumed + rest.distance(from: rest.startIndex, to: open.lowerBound))
            }
            let inner = String(afterOpen[afterOpen.startIndex..<close])
            do {
                segments.append(.expression(try ExpressionPath.parse(inner)))
            } catch {
                var shifted = error
                shifted.offset += consumed + rest.distance(from: rest.startIndex, to: open.upperBound)
                throw shifted
            }
            consumed += rest.distance(from: rest.startIndex, to: close) + 1
            rest = afterOpen[afterOpen.index(after: close)...]
        }
        if !rest.isEmpty { segments.append(.text(String(rest))) }
        if segments.count == 1, case .expression(let path) = segments[0] { return .value(path) }
        return .interpolated(segments)
    }

    /// Every expression path in this template, in document order.
    public var paths: [ExpressionPath] {
        switch self {
        case .literal: []
        case .value(let path): [path]
        case .interpolated(let segments):
            segments.compactMap { if case .expression(let path) = $0 { path } else { nil } }
        case .array(let elements): elements.flatMap(\.paths)
        case .object(let members): members.keys.sorted().flatMap { members[$0]!.paths }
        }
    }
}
