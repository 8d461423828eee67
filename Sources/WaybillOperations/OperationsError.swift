import CodedError
import SagaStore

/// Why an operator command could not do its job: a stable ``CodedError/code`` for scripts, a one-line
/// ``CodedError/message`` that says what went wrong and what to do instead, and the error underneath (the store's,
/// the broker's) as ``CodedError/cause`` when there is one. The CLI prints `waybill <command>: ` and the description
/// and exits with ``CodedError/exitCode``.
///
/// Scripts match on the code or the exit status, never on the message. Messages never quote order payloads (inputs,
/// outputs, bodies); they may quote saga ids, step ids and error codes.
public typealias OperationsError = CodedError<OperationsErrorDomain>

/// The operator commands' error family (``OperationsError``): its codes are `operations.<snake_case>`.
public enum OperationsErrorDomain: ErrorDomain {
    /// A store error shows its code (and SQLite's result, when there is one) but not its message, which the
    /// operator error already carries; never SQL text, so the CLI's error stays one line.
    public static func describe(cause: any Error) -> String {
        guard let store = cause as? SagaStoreError else { return "\(cause)" }
        return store.cause.map { "\(store.code); \(SagaStoreErrorDomain.describe(cause: $0))" } ?? "\(store.code)"
    }
}

/// The operator commands' codes: the raw values (`operations.<snake_case>`) are stable and exit codes depend on them.
extension ErrorCode where Domain == OperationsErrorDomain {
    /// A command-line value could not be read (a duration, a status, JSON, a saga reference).
    public static let badArgument = Self(rawValue: "operations.bad_argument")
    /// No saga, workflow or message matches the reference.
    public static let notFound = Self(rawValue: "operations.not_found")
    /// A bare saga id exists in more than one workflow; the message lists `workflow/id` for each.
    public static let ambiguous = Self(rawValue: "operations.ambiguous")
    /// The database file cannot be opened or read, or is not a Waybill store.
    public static let database = Self(rawValue: "operations.database")
    /// The saga's state or its workflow definition cannot be read.
    public static let corrupt = Self(rawValue: "operations.corrupt")
    /// A repair makes no sense in the saga's current state, or a pool command cannot run while workers run (a
    /// repartition); nothing was sent or changed.
    public static let refused = Self(rawValue: "operations.refused")
    /// No live worker owns the partition of a saga to repair (none held its lock within the wait); nothing was
    /// sent, so the repair is safe to try again once a worker runs.
    public static let noOwner = Self(rawValue: "operations.no_owner")
    /// The broker could not be reached or refused the request.
    public static let broker = Self(rawValue: "operations.broker")
    /// The owning worker did not answer in time.
    public static let timeout = Self(rawValue: "operations.timeout")
    /// The program a command hands over to (`waybill-demo`, behind `waybill demo` and `waybill bench`) is missing or
    /// cannot be started.
    public static let cannotRun = Self(rawValue: "operations.cannot_run")
}

extension CodedError where Domain == OperationsErrorDomain {
    /// The process exit status the CLI uses: 2 for bad arguments, 3 for not found or ambiguous, 4 for refused
    /// repairs, 5 for broker trouble and timeouts, 6 when no live worker owns the saga's partition, 1 otherwise.
    public var exitCode: Int32 {
        switch code {
        case .badArgument: 2
        case .notFound, .ambiguous: 3
        case .refused: 4
        case .broker, .timeout: 5
        case .noOwner: 6
        default: 1
        }
    }
}
