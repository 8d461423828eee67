/// One family of errors (the store's, the operator commands', the wire's, ...): the type argument that makes
/// ``CodedError`` a distinct error type with codes of its own.
///
/// Declare it as a case-less enum, name the family's error type with a typealias and put its codes in a constrained
/// extension:
///
/// ```swift
/// public enum OperationsErrorDomain: ErrorDomain {}
/// public typealias OperationsError = CodedError<OperationsErrorDomain>
/// extension ErrorCode where Domain == OperationsErrorDomain {
///     public static let notFound = Self(rawValue: "operations.not_found")
/// }
/// ```
///
/// Give every family its own domain: two families that share one are the same Swift type, so `catch let e as
/// OperationsError` would catch the other's errors too and each one's codes would resolve for both.
public protocol ErrorDomain: Sendable {
    /// How ``CodedError/description`` shows a cause, inside the parentheses after the message. The default is
    /// `"\(cause)"`; a family overrides it when its causes print poorly by themselves. Whatever it returns ends up in
    /// logs and dead-letter headers, so it must not quote payloads or credentials.
    static func describe(cause: any Error) -> String
}

extension ErrorDomain {
    /// The cause's own description, `"\(cause)"`.
    public static func describe(cause: any Error) -> String { "\(cause)" }
}

/// A stable, machine-readable kind of failure in one ``ErrorDomain``: a dotted lower-case identifier such as
/// `operations.not_found`, which logs, dead-letter headers and scripts may match on.
///
/// Each family declares its codes as static members of `extension ErrorCode where Domain == ...`, so `.notFound`
/// resolves only where a code of that family is expected and codes of two families never compare. A code made with
/// ``init(rawValue:)`` equals a declared one only when the text is identical: use the static members.
public struct ErrorCode<Domain: ErrorDomain>: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The stable identifier, e.g. `operations.not_found`; it never changes once released.
    public let rawValue: String

    /// Wraps an identifier. Compare against the family's static codes, which are the only ones it throws.
    public init(rawValue: String) {
        self.rawValue = rawValue
    }

    /// The identifier, as logs and error lines show it.
    public var description: String { rawValue }
}

/// An error of one family: a stable ``code`` for programs, a ``message`` for people that says what went wrong and
/// how to fix it, and the ``cause`` underneath when there is one. Each family names it with a typealias
/// (`typealias OperationsError = CodedError<OperationsErrorDomain>`) and adds its own members in constrained
/// extensions.
///
/// Match on ``code``, never on ``message``: messages are rewritten to read better, codes are not. Equality and
/// hashing use the code and the message only; the cause is not compared.
public struct CodedError<Domain: ErrorDomain>: Error, Sendable, Hashable, CustomStringConvertible {
    /// The family's codes; its static members are declared in `extension ErrorCode where Domain == ...`.
    public typealias Code = ErrorCode<Domain>

    /// What kind of failure it is: branch on this.
    public var code: Code
    /// One line for people: what went wrong and what to do about it. Its wording may change; do not parse it.
    public var message: String
    /// The error underneath (a file system, database or broker error), if any. Shown in ``description``; not
    /// compared by `==`.
    public var cause: (any Error)?

    /// Makes an error; `message` should end with what the reader can do, and never quote payloads or credentials.
    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// `code: message (cause)`, without ` (cause)` when there is none; the cause as the domain's
    /// ``ErrorDomain/describe(cause:)`` shows it.
    public var description: String {
        let text = "\(code): \(message)"
        return cause.map { "\(text) (\(Domain.describe(cause: $0)))" } ?? text
    }

    /// Errors are equal when code and message are; the cause is not compared.
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message
    }

    /// Hashes the code and the message, like `==`.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(message)
    }
}
