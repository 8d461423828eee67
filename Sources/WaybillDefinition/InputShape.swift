/// The shape a workflow's start message must have, declared under `input:` in its YAML: required fields and their
/// types. A start that does not match is refused before it becomes a saga, naming the JSON path of the first problem.
///
/// ```yaml
/// input:
///   orderId: string
///   customer?: string          # `?` after a key: the field may be left out (or null)
///   lines:                     # a one-item list: an array whose every element has that shape
///     - sku: string
///       quantity: integer
/// ```
///
/// Objects are open: fields the shape does not name are allowed (a newer sender may add some).
public indirect enum InputShape: Sendable, Hashable {
    /// Any JSON value.
    case any
    /// A JSON string.
    case string
    /// A whole number.
    case integer
    /// Any JSON number.
    case number
    /// `true` or `false`.
    case boolean
    /// An object with these fields (and possibly others).
    case object([Field])
    /// An array whose every element has this shape.
    case array(InputShape)

    /// A field of an object shape.
    public struct Field: Sendable, Hashable {
        /// The member name.
        public var name: String
        /// The shape of its value.
        public var shape: InputShape
        /// Whether the member must be present and not null.
        public var required: Bool

        /// Describes a field.
        public init(name: String, shape: InputShape, required: Bool = true) {
            self.name = name
            self.shape = shape
            self.required = required
        }
    }

    /// The type names a scalar in the YAML may give.
    public static let typeNames: [String: InputShape] = [
        "any": .any, "string": .string, "integer": .integer, "number": .number, "boolean": .boolean,
        "object": .object([]), "array": .array(.any),
    ]

    /// Where and why a value does not have a shape.
    public struct Problem: Sendable, Hashable, CustomStringConvertible {
        /// The JSON path of the first problem: `$.lines[0].quantity`.
        public var path: String
        /// What is wrong there: `expected an integer, got the string "2"`.
        public var message: String

        /// `$.lines[0].quantity: expected an integer, got the string "2"`.
        public var description: String { "\(path): \(message)" }
    }

    /// The first place where `value` does not have this shape (depth first, fields in declared order), or `nil`.
    public func problem(in value: JSONValue, at path: String = "$") -> Problem? {
        switch (self, value) {
        case (.any, _), (.string, .string), (.boolean, .bool):
            return nil
        case (.number, .number(let number)):
            return number.isFinite ? nil : Problem(path: path, message: "expected a number, got \(number)")
        case (.integer, .number):
            return value.intValue != nil
                ? nil : Problem(path: path, message: "expected an integer, got \(Self.describe(value))")
        case (.object(let fields), .object(let members)):
            for field in fields {
                let fieldPath = path + Self.member(field.name)
                guard let member = members[field.name], member != .null else {
                    if field.required { return Problem(path: fieldPath, message: "missing (required)") }
                    continue
                }
                if let problem = field.shape.problem(in: member, at: fieldPath) { return problem }
            }
            return nil
        case (.array(let element), .array(let elements)):
            for (index, item) in elements.enumerated() {
                if let problem = element.problem(in: item, at: "\(path)[\(index)]") { return problem }
            }
            return nil
        default:
            return Problem(path: path, message: "expected \(expected), got \(Self.describe(value))")
        }
    }

    /// `a string`, `an array`.
    var expected: String {
        switch self {
        case .any: "any value"
        case .string: "a string"
        case .integer: "an integer"
        case .number: "a number"
        case .boolean: "a boolean"
        case .object: "an object"
        case .array: "an array"
        }
    }

    /// `.orderId`, or `["odd key"]` for a name that is not an identifier.
    private static func member(_ name: String) -> String {
        let plain =
            !name.isEmpty
            && name.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" }
        return plain ? ".\(name)" : "[\(JSONText.encode(.string(name)))]"
    }

    /// `the string "2"`, `the number 12345`, `null`, `an object`.
    private static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let flag): return "the boolean \(flag)"
        case .number: return "the number \(JSONText.encode(value))"
        case .string(let text):
            let shown = text.count > 40 ? String(text.prefix(37)) + "..." : text
            return "the string \(JSONText.encode(.string(shown)))"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}
