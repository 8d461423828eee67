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

    /// Parses and validates `yaml`; `file` is only used to prefix diagnostics.
    ///
    /// - Throws: ``WorkflowDiagnostics`` holding every problem found, in file order.
    public static func load(yaml: String, file: String) throws(WorkflowDiagnostics) -> WorkflowDefinition {
        var reader = WorkflowReader(yaml: yaml, file: file)
        let definition = reader.read()
        if let definition, reader.log.isEmpty { return definition }
        if reader.log.isEmpty {
            reader.log.report(.yamlSyntax, at: .start, "the workflow could not be read")
        }
        throw reader.log.sorted
    }

    /// Parses and validates a file that was read with ``WorkflowSource/read(file:)``.
    public static func load(_ source: WorkflowSource) throws(WorkflowDiagnostics) -> WorkflowDefinition {
        try load(yaml: source.text, file: source.file)
    }
}

// MARK: - Keys

/// The keys each mapping of the workflow language accepts, in the order the messages list them.
enum WorkflowKeys {
    static let topLevel = ["name", "version", "trigger", "defaults", "steps", "milestones"]
    static let trigger = ["exchange", "routing_key", "saga_id"]
    static let defaults = ["timeout", "retry"]
    static let retry = ["max_attempts", "initial_interval", "backoff", "max_interval", "jitter"]
    static let step = [
        "id", "command", "input", "split", "for_each", "as", "compensate", "timeout", "retry", "milestone", "pivot",
        "reallocate",
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
    /// `compensate`: evaluated after the step succeeded, so its own output is visible.
    case compensate
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
    enum Kind { case command, split }

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
    var timeout: Duration?
    var retry: RetryOverrides?
    var retryLocation: SourceLocation?
    var milestone: String?
    var pivot = false
    var pivotLocation: SourceLocation?
    var reallocateLocation: SourceLocation?
    var reallocateSplit: String?
    var reallocateSplitLocation: SourceLocation?
    var reallocateCodes: Set<String>?
    var reallocateMax: Int?
    var uses: [ExpressionUse] = []

    init(location: SourceLocation) {
        self.location = location
        self.idLocation = location
    }

    /// `step 'reserve'`, or `this step` when the id is missing.
    var name: String { id.map { "step '\($0)'" } ?? "this step" }
}

// MARK: - Reader

/// Walks one file's node tree, building drafts and logging problems.
struct WorkflowReader {
    var log: DiagnosticLog
    let yaml: String
    /// The source lines as Unicode scalars (libYAML counts columns in scalars), without line breaks.
    let lines: [[Unicode.Scalar]]

    init(yaml: String, file: String) {
        self.log = DiagnosticLog(file: file)
        self.yaml = yaml
        self.lines = yaml.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.last == "\r" ? Array(line.dropLast()) : Array(line)
        }
    }

    mutating func read() -> WorkflowDefinition? {
        guard let root = compose() else { return nil }
        guard case .mapping(let mapping) = root else {
            log.report(
                .wrongKind, at: location(of: root),
                "a workflow file must be a mapping with name, version, trigger and steps, not \(describe(root))")
            return nil
        }
        let entries = self.entries(of: mapping, allowed: WorkflowKeys.topLevel, context: "at the top level")
        let top = location(of: root)

        let name = entries["name"].flatMap { readWorkflowName($0) }
        if entries["name"] == nil { missing("name", in: "the workflow", at: top, example: "name: order-fulfillment") }
        let version = entries["version"].flatMap { readVersion($0) }
        if entries["version"] == nil { missing("version", in: "the workflow", at: top, example: "version: 1") }
        let trigger = entries["trigger"].flatMap { readTrigger($0) }
        if entries["trigger"] == nil {
            missing("trigger", in: "the workflow", at: top, example: "trigger: { exchange: ..., routing_key: ... }")
        }
        var defaultTimeout = WorkflowLoader.builtInTimeout
        var defaultRetry = WorkflowLoader.builtInRetry
        if let defaults = entries["defaults"] {
            (defaultTimeout, defaultRetry) = readDefaults(defaults)
        }
        var drafts: [StepDraft] = []
        if let steps = entries["steps"] {
            drafts = readSteps(steps)
        } else {
            missing("steps", in: "the workflow", at: top, example: "steps: [...]")
        }
        let milestones = entries["milestones"].map { readEndMilestones($0) } ?? EndMilestones()

        checkStepIds(drafts)
        checkReferences(drafts)
        checkPivot(drafts)
        checkReallocation(drafts)
        checkRetryIntervals(drafts, defaults: defaultRetry)

        guard log.isEmpty, let name, let version, let trigger else { return nil }
        var steps: [StepDefinition] = []
        for draft in drafts {
            guard let id = draft.id, let action = draft.action else { return nil }
            var reallocation: Reallocation?
            if let split = draft.reallocateSplit, let codes = draft.reallocateCodes, let max = draft.reallocateMax {
                reallocation = Reallocation(codes: codes, splitStep: split, max: max)
            }
            steps.append(
                StepDefinition(
                    id: id, action: action, forEach: draft.forEach.flatMap { items in
                        draft.alias.map { ForEach(items: items, alias: $0) }
                    },
                    compensate: draft.compensate, timeout: draft.timeout ?? defaultTimeout,
                    retry: draft.retry?.applied(to: defaultRetry) ?? defaultRetry, milestone: draft.milestone,
                    pivot: draft.pivot, reallocate: reallocation))
        }
        return WorkflowDefinition(name: name, version: version, trigger: trigger, steps: steps, milestones: milestones)
    }

    // MARK: YAML

    /// The document's root node, or `nil` after logging a syntax problem.
    mutating func compose() -> Node? {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml, Resolver.basic)
        } catch let error as YamlError {
            reportYamlError(error)
            return nil
        } catch {
            log.report(.yamlSyntax, at: .start, "YAML syntax error: \(error)")
            return nil
        }
        guard let root, !isEmpty(root) else {
            log.report(.yamlSyntax, at: .start, "the file is empty; a workflow needs name, version, trigger and steps")
            return nil
        }
        return root
    }

    mutating func reportYamlError(_ error: YamlError) {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _):
            let at = SourceLocation(line: mark.line, column: mark.column)
            var message = "YAML syntax error: \(problem)"
            if let context {
                message += " (\(context.text) at line \(context.mark.line), column \(context.mark.column))"
            }
            if let expression = unquotedExpression(near: at) {
                message += "; quote ${...} values inside { } and [ ]: \"\(expression)\""
            } else if character(at: at) == "\t" {
                message += "; indent with spaces, not tabs"
            }
            log.report(.yamlSyntax, at: at, message)
        case .composer(let context, let problem, let mark, _):
            let at = SourceLocation(line: mark.line, column: mark.column)
            if context?.text == "expected a single document in the stream" {
                log.report(.yamlSyntax, at: at, "a workflow file holds one YAML document; remove the second one")
            } else if problem == "found undefined alias" {
                log.report(.yamlSyntax, at: at, "YAML syntax error: unknown alias; define the anchor (&name) first")
            } else {
                log.report(.yamlSyntax, at: at, "YAML syntax error: \(problem)")
            }
        case .reader(let problem, let offset, _, _):
            log.report(.yamlSyntax, at: location(ofCharacterOffset: offset), "the file is not valid YAML text: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let first = SourceLocation(line: context.mark.line, column: context.mark.column)
            let key = duplicates.first ?? ""
            let second = secondOccurrence(ofKey: key, after: first) ?? first
            log.report(
                .yamlSyntax, at: second, "duplicate key '\(key)' (first on line \(first.line)); write each key once")
        default:
            log.report(.yamlSyntax, at: .start, "YAML syntax error: \(error)")
        }
    }

    /// A `${...}` written without quotes in a flow collection on the line of a syntax error, as it was written.
    func unquotedExpression(near location: SourceLocation) -> String? {
        guard location.line >= 1, location.line <= lines.count else { return nil }
        let line = lines[location.line - 1]
        var candidates: [(start: Int, text: String)] = []
        var index = 0
        while index + 1 < line.count {
            if line[index] == "$", line[index + 1] == "{", index == 0 || !"\"'".unicodeScalars.contains(line[index - 1])
            {
                var end = index + 2
                while end < line.count, line[end] != "}" { end += 1 }
                let stop = min(end + 1, line.count)
                var text = String.UnicodeScalarView()
                text.append(contentsOf: line[index..<stop])
                candidates.append((index, String(text)))
                index = stop
            } else {
                index += 1
            }
        }
        guard !candidates.isEmpty, line.contains(where: { $0 == "{" || $0 == "[" }) else { return nil }
        let column = location.column - 1
        let before = candidates.last { $0.start < column }
        return (before ?? candidates[0]).text
    }

    func character(at location: SourceLocation) -> Unicode.Scalar? {
        guard location.line >= 1, location.line <= lines.count else { return nil }
        let line = lines[location.line - 1]
        guard location.column >= 1, location.column <= line.count else { return nil }
        return line[location.column - 1]
    }

    func location(ofCharacterOffset offset: Int?) -> SourceLocation {
        guard let offset, offset >= 0 else { return .start }
        let prefix = yaml.prefix(offset)
        let lineCount = prefix.reduce(into: 1) { count, character in if character.isNewline { count += 1 } }
        let lastLine = prefix.split(separator: "\n", omittingEmptySubsequences: false).last ?? ""
        return SourceLocation(line: lineCount, column: lastLine.unicodeScalars.count + 1)
    }

    /// The next line after `first` where `key:` starts at the same column: the repeated key of a block mapping.
    func secondOccurrence(ofKey key: String, after first: SourceLocation) -> SourceLocation? {
        let keyScalars = Array(key.unicodeScalars)
        guard first.line < lines.count else { return nil }
        for lineIndex in first.line..<lines.count {
            let line = lines[lineIndex]
            let start = first.column - 1
            let indentation = line.prefix { $0 == " " || $0 == "-" }.count
            if indentation < start, !line.allSatisfy({ $0 == " " }), line.first != "#" { return nil }
            guard line.count >= start + keyScalars.count, Array(line[start..<start + keyScalars.count]) == keyScalars
            else { continue }
            let rest = line[(start + keyScalars.count)...].drop { $0 == " " }
            if rest.first == ":" { return SourceLocation(line: lineIndex + 1, column: first.column) }
        }
        return nil
    }

    // MARK: Node helpers

    func location(of node: Node) -> SourceLocation {
        node.mark.map { SourceLocation(line: $0.line, column: $0.column) } ?? .start
    }

    /// A plain empty scalar: `key:` with nothing after it, or `null` / `~`.
    func isEmpty(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain || scalar.style == .any else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    /// How a node reads in a message: `'text'`, `a mapping`, `a list`, `empty`.
    func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar):
            if isEmpty(node) { return "empty" }
            let text = scalar.string.count > 40 ? String(scalar.string.prefix(37)) + "..." : scalar.string
            return "'\(text)'"
        case .mapping: return "a mapping"
        case .sequence(let sequence): return sequence.isEmpty ? "an empty list" : "a list"
        case .alias: return "an alias"
        }
    }

    struct Entry {
        var key: String
        var keyLocation: SourceLocation
        var value: Node
    }

    /// The entries of a mapping by key, after logging keys that are not names or not in `allowed`.
    mutating func entries(of mapping: Node.Mapping, allowed: [String], context: String) -> [String: Entry] {
        var result: [String: Entry] = [:]
        for (keyNode, value) in mapping {
            let keyLocation = location(of: keyNode)
            guard case .scalar(let key) = keyNode else {
                log.report(.wrongKind, at: keyLocation, "keys must be names, not \(describe(keyNode))")
                continue
            }
            guard allowed.contains(key.string) else {
                let hint = Suggestion.closest(to: key.string, among: allowed).map { "did you mean '\($0)'?" }
                log.report(
                    .unknownKey, at: keyLocation,
                    "unknown key '\(key.string)' \(context); "
                        + (hint ?? "expected one of: \(allowed.joined(separator: ", "))"))
                continue
            }
            result[key.string] = Entry(key: key.string, keyLocation: keyLocation, value: value)
        }
        return result
    }

    mutating func missing(_ key: String, in owner: String, at location: SourceLocation, example: String) {
        log.report(.missingKey, at: location, "missing key '\(key)' in \(owner); add \(example)")
    }

    /// The mapping in `entry`, or `nil` after logging that it should be one.
    mutating func mapping(_ entry: Entry, shape: String) -> Node.Mapping? {
        guard case .mapping(let mapping) = entry.value else {
            log.report(
                .wrongKind, at: location(of: entry.value),
                "\(entry.key) must be a mapping \(shape), not \(describe(entry.value))")
            return nil
        }
        return mapping
    }

    /// The text of a non-empty scalar, or `nil` after logging what `what` should look like.
    mutating func text(_ entry: Entry, what: String) -> String? {
        guard case .scalar(let scalar) = entry.value, !isEmpty(entry.value) else {
            log.report(
                .wrongKind, at: location(of: entry.value), "\(entry.key) must be \(what), not \(describe(entry.value))")
            return nil
        }
        return scalar.string
    }

    /// A positive whole number written as digits.
    mutating func positiveInteger(_ entry: Entry, what: String) -> Int? {
        guard let text = text(entry, what: what) else { return nil }
        guard text.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }), let value = Int(text), value > 0 else {
            log.report(.invalidValue, at: location(of: entry.value), "\(entry.key) must be \(what), not '\(text)'")
            return nil
        }
        return value
    }

    mutating func duration(_ entry: Entry) -> Duration? {
        guard let text = text(entry, what: "a duration like 30s") else { return nil }
        do {
            return try DurationParser.parse(text)
        } catch {
            log.report(.badDuration, at: location(of: entry.value), error.message)
            return nil
        }
    }

    static func isName(_ text: String, extra: String) -> Bool {
        !text.isEmpty
            && text.unicodeScalars.allSatisfy { scalar in
                ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) || extra.unicodeScalars.contains(scalar)
            }
    }

    // MARK: Top level

    mutating func readWorkflowName(_ entry: Entry) -> String? {
        guard let name = text(entry, what: "a workflow name like order-fulfillment") else { return nil }
        guard Self.isName(name, extra: "-") else {
            log.report(
                .invalidValue, at: location(of: entry.value),
                "bad workflow name '\(name)'; use lowercase letters, digits and '-', e.g. order-fulfillment")
            return nil
        }
        return name
    }

    mutating func readVersion(_ entry: Entry) -> Int? {
        positiveInteger(entry, what: "a positive integer like 1")
    }

    mutating func readTrigger(_ entry: Entry) -> Trigger? {
        guard let mapping = mapping(entry, shape: "with exchange, routing_key and saga_id") else { return nil }
        let entries = self.entries(of: mapping, allowed: WorkflowKeys.trigger, context: "in trigger")
        let at = location(of: entry.value)
        var exchange: String?
        if let exchangeEntry = entries["exchange"] {
            exchange = text(exchangeEntry, what: "an exchange name like orders")
            if let name = exchange, !Self.isAMQPName(name, extra: ".-_:") {
                log.report(
                    .invalidValue, at: location(of: exchangeEntry.value),
                    "bad exchange name '\(name)'; use letters, digits, '.', '-', '_' and ':'")
                exchange = nil
            }
        } else {
            missing("exchange", in: "trigger", at: at, example: "exchange: orders")
        }
        var routingKey: String?
        if let keyEntry = entries["routing_key"] {
            routingKey = text(keyEntry, what: "a routing key like order.placed")
            if let key = routingKey, !Self.isAMQPName(key, extra: ".-_*#") {
                log.report(
                    .invalidValue, at: location(of: keyEntry.value),
                    "bad routing key '\(key)'; use words of letters, digits, '-' and '_' separated by '.'")
                routingKey = nil
            }
        } else {
            missing("routing_key", in: "trigger", at: at, example: "routing_key: order.placed")
        }
        var sagaId: Template?
        if let idEntry = entries["saga_id"] {
            sagaId = readSagaId(idEntry)
        } else {
            missing("saga_id", in: "trigger", at: at, example: "saga_id: ${input.orderId}")
        }
        guard let exchange, let routingKey, let sagaId else { return nil }
        return Trigger(exchange: exchange, routingKey: routingKey, sagaId: sagaId)
    }

    static func isAMQPName(_ text: String, extra: String) -> Bool {
        !text.isEmpty
            && text.unicodeScalars.allSatisfy { scalar in
                (scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)))
                    || extra.unicodeScalars.contains(scalar)
            }
    }

    mutating func readSagaId(_ entry: Entry) -> Template? {
        guard case .scalar(let scalar) = entry.value, !isEmpty(entry.value) else {
            log.report(
                .wrongKind, at: location(of: entry.value),
                "saga_id must be an expression like ${input.orderId}, not \(describe(entry.value))")
            return nil
        }
        var uses: [ExpressionUse] = []
        guard let template = stringTemplate(scalar, uses: &uses, part: .action) else { return nil }
        guard !uses.isEmpty else {
            log.report(
                .invalidValue, at: location(of: entry.value),
                "saga_id must contain an expression like ${input.orderId}; a constant would make every order a duplicate"
            )
            return nil
        }
        var valid = true
        for use in uses where use.path.root != .input {
            log.report(
                .badReference, at: use.location,
                "saga_id may only use ${input...}, not ${\(use.path)}; the saga has no data yet when it starts")
            valid = false
        }
        return valid ? template : nil
    }

    mutating func readDefaults(_ entry: Entry) -> (Duration, RetryPolicy) {
        var timeout = WorkflowLoader.builtInTimeout
        var retry = WorkflowLoader.builtInRetry
        guard let mapping = mapping(entry, shape: "with timeout and retry") else { return (timeout, retry) }
        let entries = self.entries(of: mapping, allowed: WorkflowKeys.defaults, context: "in defaults")
        if let timeoutEntry = entries["timeout"], let value = duration(timeoutEntry) {
            timeout = value
        }
        if let retryEntry = entries["retry"], let overrides = readRetry(retryEntry) {
            retry = overrides.applied(to: retry)
            if retry.maxInterval < retry.initialInterval {
                reportIntervals(retry, at: location(of: retryEntry.value))
            }
        }
        return (timeout, retry)
    }

    mutating func readRetry(_ entry: Entry) -> RetryOverrides? {
        let shape = "like { max_attempts: 5, initial_interval: 1s, backoff: 2.0, max_interval: 1m, jitter: full }"
        guard let mapping = mapping(entry, shape: shape) else { return nil }
        let entries = self.entries(of: mapping, allowed: WorkflowKeys.retry, context: "in retry")
        var overrides = RetryOverrides()
        if let attempts = entries["max_attempts"] {
            let what = "a positive integer or 'unlimited'"
            if let text = text(attempts, what: what) {
                if text == "unlimited" {
                    overrides.maxAttempts = .unlimited
                } else if let count = positiveInteger(attempts, what: what) {
                    overrides.maxAttempts = .limited(count)
                }
            }
        }
        if let initial = entries["initial_interval"] {
            overrides.initialInterval = duration(initial)
        }
        if let backoff = entries["backoff"], let text = text(backoff, what: "a number of at least 1.0") {
            if let factor = Double(text), factor.isFinite, factor >= 1.0, text.first?.isNumber == true {
                overrides.backoff = factor
            } else {
                log.report(
                    .invalidValue, at: location(of: backoff.value),
                    "backoff must be a number of at least 1.0 (1.0 keeps the delay constant), not '\(text)'")
            }
        }
        if let maximum = entries["max_interval"] {
            overrides.maxInterval = duration(maximum)
        }
        if let jitter = entries["jitter"], let text = text(jitter, what: "'full' or 'none'") {
            if let value = RetryPolicy.Jitter(rawValue: text) {
                overrides.jitter = value
            } else {
                log.report(.invalidValue, at: location(of: jitter.value), "jitter must be 'full' or 'none', not '\(text)'")
            }
        }
        return overrides
    }

    mutating func reportIntervals(_ retry: RetryPolicy, at location: SourceLocation) {
        log.report(
            .invalidValue, at: location,
            "max_interval \(DurationParser.format(retry.maxInterval)) is shorter than initial_interval "
                + "\(DurationParser.format(retry.initialInterval)); make max_interval at least initial_interval")
    }

    mutating func readEndMilestones(_ entry: Entry) -> EndMilestones {
        var milestones = EndMilestones()
        guard let mapping = mapping(entry, shape: "with completed, compensated, failed and cancelled") else {
            return milestones
        }
        let entries = self.entries(of: mapping, allowed: WorkflowKeys.milestones, context: "in milestones")
        milestones.completed = entries["completed"].flatMap { milestoneName($0) }
        milestones.compensated = entries["compensated"].flatMap { milestoneName($0) }
        milestones.failed = entries["failed"].flatMap { milestoneName($0) }
        milestones.cancelled = entries["cancelled"].flatMap { milestoneName($0) }
        return milestones
    }

    mutating func milestoneName(_ entry: Entry) -> String? {
        guard let name = text(entry, what: "a milestone name like order.shipped") else { return nil }
        guard Self.isName(name, extra: "._-") else {
            log.report(
                .invalidValue, at: location(of: entry.value),
                "bad milestone name '\(name)'; use lowercase letters, digits, '.', '_' and '-', e.g. order.shipped")
            return nil
        }
        return name
    }

    // MARK: Steps

    mutating func readSteps(_ entry: Entry) -> [StepDraft] {
        guard case .sequence(let sequence) = entry.value else {
            log.report(
                .wrongKind, at: location(of: entry.value),
                "steps must be a list of steps (each starting with '- id:'), not \(describe(entry.value))")
            return []
        }
        guard !sequence.isEmpty else {
            log.report(.invalidValue, at: location(of: entry.value), "steps is empty; add at least one step")
            return []
        }
        var drafts: [StepDraft] = []
        for node in sequence {
            guard case .mapping(let stepMapping) = node else {
                log.report(
                    .wrongKind, at: location(of: node),
                    "each step must be a mapping with an id and a command or split, not \(describe(node))")
                continue
            }
            drafts.append(readStep(stepMapping, at: location(of: node)))
        }
        return drafts
    }

    mutating func readStep(_ stepMapping: Node.Mapping, at stepLocation: SourceLocation) -> StepDraft {
        var draft = StepDraft(location: stepLocation)
        let entries = self.entries(of: stepMapping, allowed: WorkflowKeys.step, context: "in step")
        if let idEntry = entries["id"] {
            draft.idLocation = location(of: idEntry.value)
            if let id = text(idEntry, what: "a step id like reserve") {
                if Self.isStepId(id) {
                    draft.id = id
                } else {
                    log.report(
                        .invalidValue, at: location(of: idEntry.value),
                        "bad step id '\(id)'; use letters, digits, '_' and '-', e.g. reserve")
                }
            }
        } else {
            missing("id", in: "step", at: stepLocation, example: "id: <name>")
        }

        let command = entries["command"]
        let split = entries["split"]
        switch (command, split) {
        case (nil, nil):
            log.report(
                .missingKey, at: stepLocation,
                "\(draft.name) needs a command or a split; add command: <routing key>")
        case (let command?, let split?):
            let later = command.keyLocation < split.keyLocation ? split : command
            log.report(
                .conflict, at: later.keyLocation,
                "\(draft.name) has both command and split; a step does one thing, keep one of them")
        case (let command?, nil):
            draft.kind = .command
            let input = entries["input"]
            if let template = readCommand(command: command, input: input, uses: &draft.uses, part: .action) {
                draft.action = .command(template)
            }
        case (nil, let split?):
            draft.kind = .split
            if let spec = readSplit(split, uses: &draft.uses) {
                draft.action = .split(spec)
            }
            if let input = entries["input"] {
                log.report(
                    .conflict, at: input.keyLocation,
                    "input belongs to command steps; a split step reads lines and stock from its split mapping")
            }
        }

        readFanOut(entries, into: &draft)

        if let compensate = entries["compensate"] {
            draft.compensateLocation = compensate.keyLocation
            if draft.kind == .split {
                log.report(
                    .conflict, at: compensate.keyLocation, "a split step has nothing to undo; remove compensate")
            } else if let compensateMapping = mapping(compensate, shape: "with command and input") {
                let fields = self.entries(
                    of: compensateMapping, allowed: WorkflowKeys.compensate, context: "in compensate")
                if let command = fields["command"] {
                    draft.compensate = readCommand(
                        command: command, input: fields["input"], uses: &draft.uses, part: .compensate)
                } else {
                    missing(
                        "command", in: "compensate", at: location(of: compensate.value),
                        example: "command: <routing key of the undo command>")
                }
            }
        }
        if let timeout = entries["timeout"] {
            draft.timeout = duration(timeout)
        }
        if let retry = entries["retry"] {
            draft.retry = readRetry(retry)
            draft.retryLocation = location(of: retry.value)
        }
        if let milestone = entries["milestone"] {
            draft.milestone = milestoneName(milestone)
        }
        if let pivot = entries["pivot"] {
            draft.pivotLocation = pivot.keyLocation
            if case .scalar(let scalar) = pivot.value, scalar.style == .plain,
                case .bool(let flag)? = Self.plainLiteral(scalar.string)
            {
                draft.pivot = flag
            } else {
                log.report(
                    .invalidValue, at: location(of: pivot.value),
                    "pivot must be true or false, not \(describe(pivot.value))")
            }
        }
        if let reallocate = entries["reallocate"] {
            readReallocate(reallocate, into: &draft)
        }
        return draft
    }

    static func isStepId(_ text: String) -> Bool {
        !text.isEmpty
            && text.unicodeScalars.allSatisfy { scalar in
                scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_"
                    || scalar == "-")
            }
    }

    /// `for_each` and `as`, which only make sense together.
    mutating func readFanOut(_ entries: [String: Entry], into draft: inout StepDraft) {
        let forEach = entries["for_each"]
        let alias = entries["as"]
        if let forEach {
            draft.forEachLocation = forEach.keyLocation
            if draft.kind == .split {
                log.report(
                    .conflict, at: forEach.keyLocation,
                    "a split step cannot use for_each; fan out in the steps that use its shipments")
            } else {
                draft.forEach = readForEachItems(forEach, uses: &draft.uses)
            }
            if alias == nil {
                log.report(
                    .missingKey, at: forEach.keyLocation,
                    "for_each needs an 'as' name for the element; add as: <name>, e.g. as: shipment")
            }
        }
        if let alias {
            if forEach == nil {
                log.report(
                    .conflict, at: alias.keyLocation,
                    "'as' names the element of a for_each; add for_each or remove as")
            } else if let name = text(alias, what: "a name like shipment") {
                if ["input", "steps", "saga"].contains(name) {
                    log.report(
                        .invalidValue, at: location(of: alias.value),
                        "as '\(name)' would hide ${\(name)...}; pick another name, e.g. item")
                } else if !Self.isStepId(name) {
                    log.report(
                        .invalidValue, at: location(of: alias.value),
                        "bad 'as' name '\(name)'; use letters, digits, '_' and '-', e.g. shipment")
                } else {
                    draft.alias = name
                }
            }
        }
    }

    mutating func readForEachItems(_ entry: Entry, uses: inout [ExpressionUse]) -> Template? {
        let message = "for_each must be one ${...} expression that yields a list, or a literal list"
        switch entry.value {
        case .sequence:
            return template(entry.value, uses: &uses, part: .forEach)
        case .scalar(let scalar) where !isEmpty(entry.value):
            guard let template = stringTemplate(scalar, uses: &uses, part: .forEach) else { return nil }
            guard case .value = template else {
                log.report(.invalidValue, at: location(of: entry.value), "\(message), not \(describe(entry.value))")
                return nil
            }
            return template
        default:
            log.report(.wrongKind, at: location(of: entry.value), "\(message), not \(describe(entry.value))")
            return nil
        }
    }

    mutating func readCommand(
        command: Entry, input: Entry?, uses: inout [ExpressionUse], part: StepPart
    ) -> CommandTemplate? {
        guard case .scalar(let scalar) = command.value, !isEmpty(command.value) else {
            log.report(
                .wrongKind, at: location(of: command.value),
                "command must be a routing key like erp.order.accept, not \(describe(command.value))")
            return nil
        }
        let routingKey = stringTemplate(scalar, uses: &uses, part: part)
        var body = Template.literal(.object([:]))
        if let input {
            guard let parsed = template(input.value, uses: &uses, part: part) else { return nil }
            body = parsed
        }
        return routingKey.map { CommandTemplate(routingKey: $0, input: body) }
    }

    mutating func readSplit(_ entry: Entry, uses: inout [ExpressionUse]) -> SplitStepSpec? {
        guard let mapping = mapping(entry, shape: "with lines, stock, strategy and backorder") else { return nil }
        let entries = self.entries(of: mapping, allowed: WorkflowKeys.split, context: "in split")
        let at = location(of: entry.value)
        var valid = true
        var templates: [String: Template] = [:]
        for key in ["lines", "stock", "priority"] {
            guard let field = entries[key] else { continue }
            if let value = template(field.value, uses: &uses, part: .action) {
                templates[key] = value
            } else {
                valid = false
            }
        }
        if entries["lines"] == nil { missing("lines", in: "split", at: at, example: "lines: ${input.lines}") }
        if entries["stock"] == nil {
            missing("stock", in: "split", at: at, example: "stock: ${steps.reserve.output.stock}")
        }
        var strategy = SplitStrategyName.fewestShipments
        if let strategyEntry = entries["strategy"], let name = text(strategyEntry, what: "a split strategy") {
            if let known = SplitStrategyName(rawValue: name) {
                strategy = known
            } else {
                let names = SplitStrategyName.allCases.map(\.rawValue)
                log.report(
                    .invalidValue, at: location(of: strategyEntry.value),
                    "unknown split strategy '\(name)'; "
                        + (Suggestion.closest(to: name, among: names).map { "did you mean '\($0)'?" }
                            ?? "the strategies are: \(names.joined(separator: ", "))"))
                valid = false
            }
        }
        var backorder = BackorderPolicy.reject
        if let backorderEntry = entries["backorder"], let name = text(backorderEntry, what: "'reject' or 'allow'") {
            if let known = BackorderPolicy(rawValue: name) {
                backorder = known
            } else {
                log.report(
                    .invalidValue, at: location(of: backorderEntry.value),
                    "backorder must be 'reject' or 'allow', not '\(name)'")
                valid = false
            }
        }
        guard valid, let lines = templates["lines"], let stock = templates["stock"] else { return nil }
        return SplitStepSpec(
            lines: lines, stock: stock, priority: templates["priority"], strategy: strategy, backorder: backorder)
    }

    mutating func readReallocate(_ entry: Entry, into draft: inout StepDraft) {
        draft.reallocateLocation = entry.keyLocation
        guard let mapping = mapping(entry, shape: "like { codes: [out_of_stock], split: split, max: 2 }") else {
            return
        }
        let entries = self.entries(of: mapping, allowed: WorkflowKeys.reallocate, context: "in reallocate")
        let at = location(of: entry.value)
        if let codes = entries["codes"] {
            let message = "reallocate codes must be a non-empty list of error codes, e.g. [out_of_stock]"
            if case .sequence(let sequence) = codes.value, !sequence.isEmpty {
                var values: Set<String> = []
                for node in sequence {
                    if case .scalar(let scalar) = node, !isEmpty(node) {
                        values.insert(scalar.string)
                    } else {
                        log.report(.invalidValue, at: location(of: node), "\(message); \(describe(node)) is not a code")
                    }
                }
                if values.count == sequence.count { draft.reallocateCodes = values }
            } else {
                log.report(.invalidValue, at: location(of: codes.value), "\(message), not \(describe(codes.value))")
            }
        } else {
            missing("codes", in: "reallocate", at: at, example: "codes: [out_of_stock]")
        }
        if let split = entries["split"] {
            draft.reallocateSplit = text(split, what: "the id of a split step")
            draft.reallocateSplitLocation = location(of: split.value)
        } else {
            missing("split", in: "reallocate", at: at, example: "split: <id of the split step>")
        }
        if let maximum = entries["max"] {
            draft.reallocateMax = positiveInteger(maximum, what: "a positive integer (re-plans per saga)")
        } else {
            missing("max", in: "reallocate", at: at, example: "max: 2")
        }
    }

    // MARK: Templates

    /// A template from any node: mappings become objects, lists arrays, scalars literals or `${...}` strings.
    mutating func template(_ node: Node, uses: inout [ExpressionUse], part: StepPart) -> Template? {
        switch node {
        case .scalar(let scalar):
            if scalar.style == .plain || scalar.style == .any, let literal = Self.plainLiteral(scalar.string) {
                return .literal(literal)
            }
            return stringTemplate(scalar, uses: &uses, part: part)
        case .sequence(let sequence):
            var elements: [Template] = []
            var valid = true
            for element in sequence {
                if let value = template(element, uses: &uses, part: part) { elements.append(value) } else { valid = false }
            }
            return valid ? .array(elements) : nil
        case .mapping(let mapping):
            var members: [String: Template] = [:]
            var valid = true
            for (keyNode, value) in mapping {
                guard case .scalar(let key) = keyNode else {
                    log.report(.wrongKind, at: location(of: keyNode), "keys must be names, not \(describe(keyNode))")
                    valid = false
                    continue
                }
                if let member = template(value, uses: &uses, part: part) {
                    members[key.string] = member
                } else {
                    valid = false
                }
            }
            return valid ? .object(members) : nil
        case .alias:
            log.report(.wrongKind, at: location(of: node), "aliases are not supported here; write the value out")
            return nil
        }
    }

    /// The JSON value of a plain scalar that is not text: `null`, `~`, empty, booleans and numbers.
    static func plainLiteral(_ text: String) -> JSONValue? {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        default: break
        }
        let scalars = Array(text.unicodeScalars)
        var index = 0
        if index < scalars.count, scalars[index] == "-" || scalars[index] == "+" { index += 1 }
        let digitsStart = index
        while index < scalars.count, ("0"..."9").contains(scalars[index]) { index += 1 }
        var sawDigits = index > digitsStart
        if index < scalars.count, scalars[index] == "." {
            index += 1
            let fractionStart = index
            while index < scalars.count, ("0"..."9").contains(scalars[index]) { index += 1 }
            sawDigits = sawDigits || index > fractionStart
        }
        guard sawDigits else { return nil }
        if index < scalars.count, scalars[index] == "e" || scalars[index] == "E" {
            index += 1
            if index < scalars.count, scalars[index] == "-" || scalars[index] == "+" { index += 1 }
            let exponentStart = index
            while index < scalars.count, ("0"..."9").contains(scalars[index]) { index += 1 }
            guard index > exponentStart else { return nil }
        }
        guard index == scalars.count, let number = Double(text), number.isFinite else { return nil }
        return .number(number)
    }

    /// A string scalar parsed for `${...}`; records each expression with its position.
    mutating func stringTemplate(_ scalar: Node.Scalar, uses: inout [ExpressionUse], part: StepPart) -> Template? {
        let template: Template
        do {
            template = try Template.parse(string: scalar.string)
        } catch {
            log.report(.templateSyntax, at: location(in: scalar, characterOffset: error.offset), error.message)
            return nil
        }
        let offsets = Self.expressionOffsets(in: scalar.string)
        for (index, path) in template.paths.enumerated() {
            let offset = index < offsets.count ? offsets[index] : 0
            uses.append(ExpressionUse(path: path, location: location(in: scalar, characterOffset: offset), part: part))
        }
        return template
    }

    /// The character offsets of each `${` that `Template.parse` reads as an expression, in order.
    static func expressionOffsets(in text: String) -> [Int] {
        var offsets: [Int] = []
        var rest = Substring(text)
        while let open = rest.range(of: "${") {
            offsets.append(text.distance(from: text.startIndex, to: open.lowerBound))
            guard let close = rest[open.upperBound...].firstIndex(of: "}") else { break }
            rest = rest[rest.index(after: close)...]
        }
        return offsets
    }

    /// Where character `offset` of a scalar's value is in the file, when the value is written on one line as is;
    /// otherwise (escapes, block scalars, folded lines) the scalar's own position.
    func location(in scalar: Node.Scalar, characterOffset offset: Int) -> SourceLocation {
        guard let mark = scalar.mark else { return .start }
        let start = SourceLocation(line: mark.line, column: mark.column)
        let quoted = scalar.style == .singleQuoted || scalar.style == .doubleQuoted
        guard scalar.style == .plain || scalar.style == .any || quoted, mark.line <= lines.count else { return start }
        let contentColumn = mark.column + (quoted ? 1 : 0)
        let prefix = Array(String(scalar.string.prefix(offset)).unicodeScalars)
        let line = lines[mark.line - 1]
        let from = contentColumn - 1
        guard from >= 0, from + prefix.count <= line.count, Array(line[from..<from + prefix.count]) == prefix else {
            return start
        }
        return SourceLocation(line: mark.line, column: contentColumn + prefix.count)
    }

    // MARK: Whole-workflow checks

    mutating func checkStepIds(_ drafts: [StepDraft]) {
        var firstLine: [String: Int] = [:]
        for draft in drafts {
            guard let id = draft.id else { continue }
            if let line = firstLine[id] {
                log.report(
                    .duplicateStepId, at: draft.idLocation,
                    "duplicate step id '\(id)' (first used on line \(line)); give each step its own id")
            } else {
                firstLine[id] = draft.idLocation.line
            }
        }
    }

    mutating func checkReferences(_ drafts: [StepDraft]) {
        var indexById: [String: Int] = [:]
        for (index, draft) in drafts.enumerated() {
            if let id = draft.id, indexById[id] == nil { indexById[id] = index }
        }
        let ids = drafts.compactMap(\.id)
        for (index, draft) in drafts.enumerated() {
            for use in draft.uses {
                let written = "${\(use.path)}"
                switch use.path.root {
                case .input, .sagaId, .sagaWorkflow:
                    continue
                case .stepOutput(let id):
                    guard let target = indexById[id] else {
                        log.report(
                            .badReference, at: use.location,
                            "unknown step '\(id)' in \(written); "
                                + (Suggestion.closest(to: id, among: ids).map { "did you mean '\($0)'?" }
                                    ?? "name a step that runs before this one"))
                        continue
                    }
                    if target > index {
                        log.report(
                            .badReference, at: use.location,
                            "\(written) uses step '\(id)', which runs after \(draft.name); "
                                + "a step may only use the output of steps before it")
                    } else if target == index, use.part != .compensate {
                        log.report(
                            .badReference, at: use.location,
                            "\(draft.name) cannot use its own output \(written) before it ran; only its compensate may")
                    }
                case .alias(let name):
                    if name == draft.alias {
                        if use.part == .forEach {
                            log.report(
                                .badReference, at: use.location,
                                "for_each cannot use its own element '\(name)' in \(written); "
                                    + "the element exists only inside the step")
                        }
                        continue
                    }
                    if let owner = drafts.first(where: { $0.alias == name }) {
                        log.report(
                            .badReference, at: use.location,
                            "'\(name)' in \(written) is the for_each element of \(owner.name) and exists only there; "
                                + "use steps.<id>.output for its results")
                        continue
                    }
                    var roots = ["input", "steps", "saga"]
                    var accepted = "input, steps.<id>.output, saga.id or saga.workflow"
                    if let alias = draft.alias {
                        roots.append(alias)
                        accepted = "input, steps.<id>.output, saga.id, saga.workflow or '\(alias)' (this step's 'as')"
                    }
                    log.report(
                        .badReference, at: use.location,
                        "unknown name '\(name)' in \(written); "
                            + (Suggestion.closest(to: name, among: roots).map { "did you mean '\($0)'?" }
                                ?? "an expression starts with \(accepted)"))
                }
            }
        }
    }

    mutating func checkPivot(_ drafts: [StepDraft]) {
        var pivotIndex: Int?
        for (index, draft) in drafts.enumerated() where draft.pivot {
            guard let pivotLocation = draft.pivotLocation else { continue }
            if draft.kind == .split {
                log.report(
                    .pivot, at: pivotLocation,
                    "a split step cannot be the pivot; mark the command step that cannot be undone")
            } else if let first = pivotIndex {
                log.report(
                    .pivot, at: pivotLocation,
                    "only one step may be the pivot; \(drafts[first].name) on line \(drafts[first].location.line) "
                        + "already is")
            } else {
                pivotIndex = index
            }
        }
        guard let pivotIndex else { return }
        let pivotName = drafts[pivotIndex].id ?? "pivot"
        for (index, draft) in drafts.enumerated() where index >= pivotIndex {
            guard let at = draft.compensateLocation, draft.kind != .split else { continue }
            if index == pivotIndex {
                log.report(
                    .pivot, at: at,
                    "the pivot \(draft.name) cannot have compensate; it is the point of no return, remove compensate")
            } else {
                log.report(
                    .pivot, at: at,
                    "\(draft.name) runs after the pivot '\(pivotName)' and is never undone; remove compensate "
                        + "or move the step before the pivot")
            }
        }
    }

    mutating func checkReallocation(_ drafts: [StepDraft]) {
        for (index, draft) in drafts.enumerated() {
            guard let at = draft.reallocateLocation else { continue }
            if draft.kind != .command || draft.forEachLocation == nil {
                log.report(
                    .conflict, at: at,
                    "reallocate only works on a for_each command step; it re-plans the shipments of failed branches")
            }
            guard let split = draft.reallocateSplit, let splitAt = draft.reallocateSplitLocation else { continue }
            let splitIds = drafts.filter { $0.kind == .split }.compactMap(\.id)
            guard let target = drafts.firstIndex(where: { $0.id == split }) else {
                log.report(
                    .badReference, at: splitAt,
                    "reallocate split '\(split)' is not a step\(Suggestion.hint(for: split, among: splitIds)); "
                        + "name the split step to re-run")
                continue
            }
            if drafts[target].kind != .split {
                log.report(
                    .badReference, at: splitAt,
                    "reallocate split '\(split)' is a command step; name the split step to re-run")
            } else if target >= index {
                log.report(
                    .badReference, at: splitAt,
                    "reallocate split '\(split)' runs after \(draft.name); name a split step that runs before it")
            }
        }
    }

    mutating func checkRetryIntervals(_ drafts: [StepDraft], defaults: RetryPolicy) {
        for draft in drafts {
            guard let overrides = draft.retry, overrides.setsInterval, let at = draft.retryLocation else { continue }
            let merged = overrides.applied(to: defaults)
            if merged.maxInterval < merged.initialInterval {
                reportIntervals(merged, at: at)
            }
        }
    }
}
