import CodedError

/// One problem found in a workflow file, at a 1-based line and column.
///
/// Its `description` is exactly `file:line:column: message` for an error and `file:line:column: warning: message` for
/// a warning, the forms editors and CI logs turn into links. The message says what is wrong and how to fix it; it
/// never contains Swift type names.
public struct WorkflowDiagnostic: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of problem this is; the raw values (`workflow.<snake_case>`) are stable across releases, so
    /// scripts may match on them. The printed diagnostic does not show the code.
    public typealias Code = ErrorCode<WorkflowDiagnosticDomain>

    /// Whether the problem stops the file from loading.
    public enum Severity: String, Sendable, Hashable {
        /// The file is invalid; no worker runs it.
        case error
        /// The file loads and runs, but something in it will likely go wrong at run time.
        case warning
    }

    /// The file name as the user gave it (the diagnostic prints it verbatim).
    public var file: String
    /// The 1-based line.
    public var line: Int
    /// The 1-based column, counted in Unicode scalars like libYAML does.
    public var column: Int
    /// What is wrong and how to fix it.
    public var message: String
    /// The kind of problem.
    public var code: Code
    /// An error (the file does not load) or a warning (it does); a warning is never thrown.
    public var severity: Severity

    /// Creates a diagnostic; `line` and `column` are 1-based.
    public init(file: String, line: Int, column: Int, message: String, code: Code, severity: Severity = .error) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
        self.code = code
        self.severity = severity
    }

    /// `file:line:column: message`, or `file:line:column: warning: message` for a warning.
    public var description: String {
        "\(file):\(line):\(column): " + (severity == .warning ? "warning: " : "") + message
    }
}

/// The workflow loader's error family: the domain of ``WorkflowDiagnostic/Code``, whose codes are
/// `workflow.<snake_case>`.
public enum WorkflowDiagnosticDomain: ErrorDomain {}

/// The workflow loader's codes: the raw values (`workflow.<snake_case>`) are stable across releases.
extension ErrorCode where Domain == WorkflowDiagnosticDomain {
    /// The file is not well-formed YAML (or is empty, or holds several documents).
    public static let yamlSyntax = Self(rawValue: "workflow.yaml_syntax")
    /// A key the workflow language does not know.
    public static let unknownKey = Self(rawValue: "workflow.unknown_key")
    /// A key the workflow language requires is absent.
    public static let missingKey = Self(rawValue: "workflow.missing_key")
    /// A mapping where a list belongs, a scalar where a mapping belongs, and so on.
    public static let wrongKind = Self(rawValue: "workflow.wrong_kind")
    /// A value of the right kind with a bad content (a name pattern, a number range, an unknown choice).
    public static let invalidValue = Self(rawValue: "workflow.invalid_value")
    /// A duration that does not read like `500ms`, `30s`, `5m`, `2h`, `1d` or `1m30s`.
    public static let badDuration = Self(rawValue: "workflow.bad_duration")
    /// Two steps share an id.
    public static let duplicateStepId = Self(rawValue: "workflow.duplicate_step_id")
    /// A `${...}` that cannot be parsed.
    public static let templateSyntax = Self(rawValue: "workflow.template_syntax")
    /// A `${...}` whose root is unknown, or that uses a step that has not run at that point.
    public static let badReference = Self(rawValue: "workflow.bad_reference")
    /// Keys that cannot be combined (`command` and `split`, `for_each` without `as`, ...).
    public static let conflict = Self(rawValue: "workflow.conflict")
    /// A pivot rule is broken: a second pivot, a pivot split step, or a `compensate` on or after the pivot.
    public static let pivot = Self(rawValue: "workflow.pivot")
    /// A warning: a step's `compensate` reads the step's own output, which is `null` when the forward command's reply
    /// never came (the step is then compensated in case it took effect, with no output to read).
    public static let compensationReadsOwnOutput = Self(rawValue: "workflow.compensation_reads_own_output")
    /// A warning: a step reads the output of a step that a `choice` or `next` may jump over on the way to it (the
    /// path does not resolve then), or a step no path reaches.
    public static let mayBeBypassed = Self(rawValue: "workflow.may_be_bypassed")
    /// The file could not be read at all (``WorkflowSourceReadError``).
    public static let unreadableFile = Self(rawValue: "workflow.unreadable_file")
    /// The file has one or more problems (``WorkflowDiagnostics``, which lists them).
    public static let invalidFile = Self(rawValue: "workflow.invalid_file")
}

/// Every problem found in one workflow file, in the order they appear in the file.
///
/// The loader does not stop at the first problem, so a user fixes a file in one round.
public struct WorkflowDiagnostics: Error, Sendable, Hashable, CustomStringConvertible {
    /// The problems, sorted by line and column; never empty when thrown.
    public var diagnostics: [WorkflowDiagnostic]

    /// Wraps a list of problems.
    public init(_ diagnostics: [WorkflowDiagnostic]) {
        self.diagnostics = diagnostics
    }

    /// Always ``WorkflowDiagnostic/Code/invalidFile``; each problem has its own code in ``diagnostics``.
    public var code: WorkflowDiagnostic.Code { .invalidFile }

    /// `FILE has N problem(s); fix them and run waybill validate FILE`, for a log line that does not list them.
    public var message: String {
        let file = diagnostics.first?.file ?? "the workflow file"
        let count = diagnostics.count == 1 ? "1 problem" : "\(diagnostics.count) problems"
        return "\(file) has \(count); fix them and check with `waybill validate \(file)`"
    }

    /// One `file:line:column: message` line per problem.
    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}

/// A 1-based position in the YAML text.
struct SourceLocation: Sendable, Hashable, Comparable {
    var line: Int
    var column: Int

    static let start = SourceLocation(line: 1, column: 1)

    static func < (lhs: SourceLocation, rhs: SourceLocation) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }
}

/// Collects diagnostics for one file while the loader walks it.
struct DiagnosticLog {
    let file: String
    private(set) var entries: [WorkflowDiagnostic] = []
    /// Warnings, kept apart: they never make the file invalid.
    private(set) var warnings: [WorkflowDiagnostic] = []

    init(file: String) {
        self.file = file
    }

    /// Whether no error was reported (warnings do not count).
    var isEmpty: Bool { entries.isEmpty }

    mutating func report(_ code: WorkflowDiagnostic.Code, at location: SourceLocation, _ message: String) {
        entries.append(
            WorkflowDiagnostic(file: file, line: location.line, column: location.column, message: message, code: code))
    }

    mutating func warn(_ code: WorkflowDiagnostic.Code, at location: SourceLocation, _ message: String) {
        warnings.append(
            WorkflowDiagnostic(
                file: file, line: location.line, column: location.column, message: message, code: code,
                severity: .warning))
    }

    /// The problems in file order; problems at the same position keep the order they were found in.
    var sorted: WorkflowDiagnostics {
        WorkflowDiagnostics(Self.inFileOrder(entries))
    }

    /// The warnings in file order.
    var sortedWarnings: [WorkflowDiagnostic] {
        Self.inFileOrder(warnings)
    }

    private static func inFileOrder(_ diagnostics: [WorkflowDiagnostic]) -> [WorkflowDiagnostic] {
        let ordered = diagnostics.enumerated().sorted { left, right in
            let leftKey = (left.element.line, left.element.column, left.offset)
            let rightKey = (right.element.line, right.element.column, right.offset)
            return leftKey < rightKey
        }
        return ordered.map(\.element)
    }
}

/// "Did you mean ...?" for misspelt keys, step ids and choices.
enum Suggestion {
    /// The candidate closest to `word` when it is close enough to be a likely typo, else `nil`.
    static func closest(to word: String, among candidates: [String]) -> String? {
        let limit = max(1, min(3, word.count / 3))
        var best: (candidate: String, distance: Int)?
        for candidate in candidates {
            let distance = editDistance(word.lowercased(), candidate.lowercased())
            if distance <= limit, distance < (best?.distance ?? Int.max) {
                best = (candidate, distance)
            }
        }
        return best?.candidate
    }

    /// `; did you mean 'x'?` or the empty string.
    static func hint(for word: String, among candidates: [String]) -> String {
        closest(to: word, among: candidates).map { "; did you mean '\($0)'?" } ?? ""
    }

    /// Levenshtein distance, where swapping two neighbouring characters counts as one edit.
    static func editDistance(_ left: String, _ right: String) -> Int {
        let a = Array(left)
        let b = Array(right)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var table = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { table[i][0] = i }
        for j in 0...b.count { table[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                var value = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    value = min(value, table[i - 2][j - 2] + 1)
                }
                table[i][j] = value
            }
        }
        return table[a.count][b.count]
    }
}
