import Yams

/// Turns workflow YAML into a validated ``WorkflowDefinition``, or into every problem it has.
///
/// The loader walks Yams' node tree rather than decoding, so each problem points at its `line:column`. It reports
/// all problems it can find in one pass: a file with a misspelt key and a bad duration gets both diagnostics.
///
/// Defaults, from weakest to strongest:
/// - built in: `timeout` 30s; `retry` `max_attempts: 3`, `initial_interval: 1s`, `backoff: 2.0`,
///   `max_interval: 1m`, `jitter: full` (``builtInTimeout``, ``builtInRetry``);
/// - the file's `defaults` section;
/// - the step's own `timeout` / `retry`.
///
/// `retry` merges key by key: a step's `retry: { max_attempts: unlimited }` keeps the backoff and intervals from
/// `defaults` (or the built-in ones). A command's `input` defaults to `{}`; a split step's `strategy` to
/// `fewest-shipments` and `backorder` to `reject`.
///
/// YAML is read with the core schema's plain scalars: `true`/`false`, `null`/`~`, integers and decimals become
/// JSON values inside templates; `yes`, `no`, `on` and `off` stay strings.
public enum WorkflowLoader {
    /// The reply timeout of a step when neither the step nor `defaults` sets one.
    public static let builtInTimeout: Duration = .seconds(30)

    /// The retry policy of a step, key by key, when neither the step nor `defaults` sets a key.
    public static let builtInRetry = RetryPolicy(
        maxAttempts: .limited(3), initialInterval: .seconds(1), backoff: 2.0, maxInterval: .seconds(60),
        jitter: .full)

    /// Parses and validates `yaml`; `file` is only used to prefix diagnostics. Warnings are dropped: call
    /// ``loadReportingWarnings(yaml:file:)`` to get them.
    ///
    /// - Throws: ``WorkflowDiagnostics`` holding every problem found, in file order.
    public static func load(yaml: String, file: String) throws(WorkflowDiagnostics) -> WorkflowDefinition {
        try loadReportingWarnings(yaml: yaml, file: file).definition
    }

    /// Parses and validates a file that was read with ``WorkflowSource/read(file:)``.
    public static func load(_ source: WorkflowSource) throws(WorkflowDiagnostics) -> WorkflowDefinition {
        try load(yaml: source.text, file: source.file)
    }

    /// Parses and validates `yaml`, and returns the definition with the warnings about it (in file order).
    ///
    /// - Throws: ``WorkflowDiagnostics`` holding every error found, in file order; warnings of an invalid file are not
    ///   reported.
    public static func loadReportingWarnings(
        yaml: String, file: String
    ) throws(WorkflowDiagnostics) -> (definition: WorkflowDefinition, warnings: [WorkflowDiagnostic]) {
        var reader = WorkflowReader(yaml: yaml, file: file)
        let definition = reader.read()
        if let definition, reader.log.isEmpty { return (definition, reader.log.sortedWarnings) }
        if reader.log.isEmpty {
            reader.log.report(.yamlSyntax, at: .start, "the workflow could not be read")
        }
        throw reader.log.sorted
    }
}

// MARK: - Keys

/// The keys each mapping of the workflow language accepts, in the order the messages list them.
enum WorkflowKeys {
    static let topLevel = ["name", "version", "trigger", "input", "defaults", "steps", "milestones"]
    static let trigger = ["exchange", "routing_key", "saga_id", "priority"]
    static let priority = ["from", "map", "default"]
    static let defaults = ["timeout", "retry"]
    static let retry = ["max_attempts", "initial_interval", "backoff", "max_interval", "jitter"]
    static let step = [
        "id", "command", "input", "split", "for_each", "as", "compensate", "verify", "timeout", "retry", "milestone",
        "branch_milestone", "pivot", "reallocate", "choice", "next", "wait",
    ]
    static let wait = ["for", "message", "match", "key", "timeout", "on_timeout"]
    static let waitMessage = ["exchange", "routing_key"]
    static let target = ["next", "fail"]
    static let choiceRule = ["when", "next", "fail"]
    static let comparisons = [
        "equals", "not_equals", "in", "empty", "present", "less_than", "at_most", "greater_than", "at_least",
    ]
    static let compensate = ["command", "input"]
    static let split = ["lines", "stock", "priority", "strategy", "backorder"]
    static let reallocate = ["codes", "split", "max"]
    static let milestones = ["completed", "compensated", "failed", "cancelled"]
}

// MARK: - Drafts

/// Which part of a step an expression appears in; it decides what the expression may refer to.
enum StepPart: Sendable {
    /// The `for_each` expression: evaluated before any branch exists, so the `as` name is not visible.
    case forEach
    /// `command`, `input` or `split`: evaluated before the step ran, so the step's own output is not visible.
    case action
    /// `compensate`: evaluated after the step succeeded, so its own output is visible; or after its reply never came,
    /// when its own output reads as null (hence the warning).
    case compensate
    /// `verify`: evaluated when the saga ended, so its own output is visible (null when its reply never came).
    case verify
}

/// A `${...}` found in a step, with where it was written.
struct ExpressionUse {
    var path: ExpressionPath
    var location: SourceLocation
    var part: StepPart
}

/// The `retry` keys a mapping sets; unset keys come from the next weaker level.
struct RetryOverrides {
    var maxAttempts: RetryPolicy.MaxAttempts?
    var initialInterval: Duration?
    var backoff: Double?
    var maxInterval: Duration?
    var jitter: RetryPolicy.Jitter?

    var setsInterval: Bool { initialInterval != nil || maxInterval != nil }

    func applied(to base: RetryPolicy) -> RetryPolicy {
        RetryPolicy(
            maxAttempts: maxAttempts ?? base.maxAttempts, initialInterval: initialInterval ?? base.initialInterval,
            backoff: backoff ?? base.backoff, maxInterval: maxInterval ?? base.maxInterval,
            jitter: jitter ?? base.jitter)
    }
}

/// A step as read, before the checks that need the whole list of steps.
struct StepDraft {
    enum Kind { case command, split, choice, wait }

    var location: SourceLocation
    var id: String?
    var idLocation: SourceLocation
    var kind: Kind?
    var action: StepDefinition.Action?
    var forEach: Template?
    var forEachLocation: SourceLocation?
    var alias: String?
    var compensate: CommandTemplate?
    var compensateLocation: SourceLocation?
    var verify: CommandTemplate?
    var timeout: Duration?
    var retry: RetryOverrides?
    var retryLocation: SourceLocation?
    var milestone: String?
    var milestoneLocation: SourceLocation?
    var branchMilestone: String?
    var branchMilestoneLocation: SourceLocation?
    var pivot = false
    var pivotLocation: SourceLocation?
    var reallocateLocation: SourceLocation?
    var reallocateSplit: String?
    var reallocateSplitLocation: SourceLocation?
    var reallocateCodes: Set<String>?
    var reallocateMax: Int?
    var next: StepTarget?
    /// A message wait's `on_timeout`, a path out of the step besides `next`.
    var onTimeout: StepTarget?
    /// Every step id this step may jump to (`next`, choice rules), with where it was written.
    var targets: [(id: String, location: SourceLocation)] = []
    var uses: [ExpressionUse] = []

    init(location: SourceLocation) {
        self.location = location
        self.idLocation = location
    }

    /// `step 'reserve'`, or `this step` when the id is missing.
    var name: String { id.map { "step '\($0)'" } ?? "this step" }
}
