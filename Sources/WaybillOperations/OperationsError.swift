/// Why an operator command could not do its job: a stable ``code`` for scripts, a one-line ``message`` that says
/// what went wrong and what to do instead, and the error underneath (``cause``) when there is one. The CLI prints
/// `waybill <command>: ` and the ``description`` and exits with ``exitCode``.
///
/// Messages never quote order payloads (inputs, outputs, bodies); they may quote saga ids, step ids and error codes.
public struct OperationsError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure it is; raw values (`operations.<snake_case>`) are stable and exit codes depend on them.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// The stable identifier, e.g. `operations.not_found`.
        public var rawValue: String

        /// Wraps an identifier.
        public init(rawValue: String) {
            self.rawValue = rawValue
        }

        /// The identifier.
        public var description: String { rawValue }

        /// A command-line value could not be read (a duration, a status, JSON, a saga reference).
        public static let badArgument = Code(rawValue: "operations.bad_argument")
        /// No saga, workflow or message matches the reference.
        public static let notFound = Code(rawValue: "operations.not_found")
        /// A bare saga id exists in more than one workflow; the message lists `workflow/id` for each.
        public static let ambiguous = Code(rawValue: "operations.ambiguous")
        /// The database file cannot be opened or read, or is not a Waybill store.
        public static let database = Code(rawValue: "operations.database")
        /// The saga's state or its workflow definition cannot be read.
        public static let corrupt = Code(rawValue: "operations.corrupt")
        /// A repair makes no sense in the saga's current state; nothing was sent.
        public static let refused = Code(rawValue: "operations.refused")
        /// The broker could not be reached or refused the request.
        public static let broker = Code(rawValue: "operations.broker")
        /// The owning worker did not answer in time.
        public static let timeout = Code(rawValue: "operations.timeout")
    }

    /// What kind of failure it is.
    public var code: Code
    /// One line: what went wrong, and how to fix it.
    public var message: String
    /// The error underneath (the store's, the broker's), if any.
    public var cause: (any Error)?

    /// Makes an error; `message` should end with what the operator can do.
    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// `code: message (cause)`.
    public var description: String {
        cause.map { "\(code): \(message) (\($0))" } ?? "\(code): \(message)"
    }

    /// Errors are equal when code and message are; the cause is not compared.
    public static func == (lhs: OperationsError, rhs: OperationsError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message
    }

    /// Hashes the code and the message.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(message)
    }

    /// The process exit status the CLI uses: 2 for bad arguments, 3 for not found or ambiguous, 4 for refused
    /// repairs, 5 for broker trouble and timeouts, 1 otherwise.
    public var exitCode: Int32 {
        switch code {
        case .badArgument: 2
        case .notFound, .ambiguous: 3
        case .refused: 4
        case .broker, .timeout: 5
        default: 1
        }
    }
}
