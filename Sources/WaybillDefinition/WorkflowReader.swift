import Yams

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
        if entries["name"] == nil {
            missing("name", in: "the workflow", at: top, example: "name: order-fulfillment", given: entries)
        }
        let version = entries["version"].flatMap { readVersion($0) }
        if entries["version"] == nil {
            missing("version", in: "the workflow", at: top, example: "version: 1", given: entries)
        }
        let trigger = entries["trigger"].flatMap { readTrigger($0) }
        if entries["trigger"] == nil {
            missing(
                "trigger", in: "the workflow", at: top, example: "trigger: { exchange: ..., routing_key: ... }",
                given: entries)
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
            missing("steps", in: "the workflow", at: top, example: "steps: [...]", given: entries)
        }
        let milestones = entries["milestones"].map { readEndMilestones($0) } ?? EndMilestones()
        let input = entries["input"].flatMap { readTopInputShape($0.value) }

        checkStepIds(drafts)
        checkReferences(drafts)
        checkPivot(drafts)
        checkReallocation(drafts)
        checkTargets(drafts)
        checkPaths(drafts)
        checkMilestoneNames(drafts, ends: milestones)
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
                    id: id, action: action,
                    forEach: draft.forEach.flatMap { items in
                        draft.alias.map { ForEach(items: items, alias: $0) }
                    },
                    compensate: draft.compensate, verify: draft.verify, timeout: draft.timeout ?? defaultTimeout,
                    retry: draft.retry?.applied(to: defaultRetry) ?? defaultRetry, milestone: draft.milestone,
                    branchMilestone: draft.branchMilestone, pivot: draft.pivot, reallocate: reallocation,
                    next: draft.next))
        }
        return WorkflowDefinition(
            name: name, version: version, trigger: trigger, steps: steps, milestones: milestones, input: input)
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
            log.report(.yamlSyntax, at: .start, "the file could not be parsed as YAML")
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
            log.report(
                .yamlSyntax, at: location(ofCharacterOffset: offset), "the file is not valid YAML text: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let first = SourceLocation(line: context.mark.line, column: context.mark.column)
            let key = duplicates.first ?? ""
            let second = secondOccurrence(ofKey: key, after: first) ?? first
            log.report(
                .yamlSyntax, at: second, "duplicate key '\(key)' (first on line \(first.line)); write each key once")
        default:
            log.report(.yamlSyntax, at: .start, "the file could not be parsed as YAML")
        }
    }

    /// A `${...}` written without quotes in a flow collection on the line of a syntax error, as it was written.
    func unquotedExpression(near location: SourceLocation) -> String? {
        guard location.line >= 1, location.line <= lines.count else { return nil }
        let line = lines[location.line - 1]
        guard line.contains(where: { $0 == "{" || $0 == "[" }) else { return nil }
        var candidates: [(start: Int, text: String)] = []
        var quote: Unicode.Scalar?
        var index = 0
        scan: while index < line.count {
            let scalar = line[index]
            switch (quote, scalar) {
            case ("\"", "\\"):
                index += 1  // skip the escaped character
            case (let open?, _) where scalar == open:
                quote = nil
            case (nil, "\""), (nil, "'"):
                quote = scalar
            case (nil, "#") where index > 0 && line[index - 1] == " ":
                break scan
            case (nil, "$") where index + 1 < line.count && line[index + 1] == "{":
                var end = index + 2
                while end < line.count, line[end] != "}" { end += 1 }
                let stop = min(end + 1, line.count)
                var text = String.UnicodeScalarView()
                text.append(contentsOf: line[index..<stop])
                candidates.append((index, String(text)))
                index = stop
                continue scan
            default:
                break
            }
            index += 1
        }
        let column = location.column - 1
        return (candidates.last { $0.start < column } ?? candidates.first)?.text
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

    /// Where a repeated key is written again: later on the same line (a flow mapping), or on a later line at the
    /// same column before the mapping ends (a block mapping).
    func secondOccurrence(ofKey key: String, after first: SourceLocation) -> SourceLocation? {
        let keyScalars = Array(key.unicodeScalars)
        guard first.line >= 1, first.line <= lines.count, !keyScalars.isEmpty else { return nil }
        func isKey(in line: [Unicode.Scalar], at start: Int) -> Bool {
            guard start >= 0, line.count >= start + keyScalars.count,
                Array(line[start..<start + keyScalars.count]) == keyScalars
            else { return false }
            return line[(start + keyScalars.count)...].drop { $0 == " " }.first == ":"
        }
        let firstLine = lines[first.line - 1]
        var column = first.column - 1 + keyScalars.count
        while column < firstLine.count {
            let before = firstLine[column - 1]
            if before == " " || before == "{" || before == ",", isKey(in: firstLine, at: column) {
                return SourceLocation(line: first.line, column: column + 1)
            }
            column += 1
        }
        let start = first.column - 1
        for lineIndex in first.line..<lines.count {
            let line = lines[lineIndex]
            let content = line.drop { $0 == " " }
            if content.isEmpty || content.first == "#" { continue }
            let indentation = line.prefix { $0 == " " || $0 == "-" }.count
            if indentation < start { return nil }
            if isKey(in: line, at: start) { return SourceLocation(line: lineIndex + 1, column: first.column) }
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

    /// The entries of a mapping, and which known keys its unknown keys probably meant.
    struct Fields {
        var entries: [String: Entry] = [:]
        /// Known keys that an unknown key in the same mapping is a likely typo of (`comand` → `command`).
        var misspelt: Set<String> = []

        subscript(key: String) -> Entry? { entries[key] }
    }

    /// The entries of a mapping by key, after logging keys that are not names or not in `allowed`.
    mutating func entries(of mapping: Node.Mapping, allowed: [String], context: String) -> Fields {
        var result = Fields()
        for (keyNode, value) in mapping {
            let keyLocation = location(of: keyNode)
            guard case .scalar(let key) = keyNode else {
                log.report(.wrongKind, at: keyLocation, "keys must be names, not \(describe(keyNode))")
                continue
            }
            guard allowed.contains(key.string) else {
                let suggestion = Suggestion.closest(to: key.string, among: allowed)
                if let suggestion { result.misspelt.insert(suggestion) }
                log.report(
                    .unknownKey, at: keyLocation,
                    "unknown key '\(key.string)' \(context); "
                        + (suggestion.map { "did you mean '\($0)'?" }
                            ?? "expected one of: \(allowed.joined(separator: ", "))"))
                continue
            }
            result.entries[key.string] = Entry(key: key.string, keyLocation: keyLocation, value: value)
        }
        return result
    }

    /// Reports a missing required key, unless an unknown key in the same mapping was already reported as its typo.
    mutating func missing(
        _ key: String, in owner: String, at location: SourceLocation, example: String, given fields: Fields
    ) {
        guard !fields.misspelt.contains(key) else { return }
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
            exchange = amqpName(
                exchangeEntry, what: "an exchange name like orders", extra: ".-_:",
                problem: { "bad exchange name '\($0)'; use letters, digits, '.', '-', '_' and ':'" })
        } else {
            missing("exchange", in: "trigger", at: at, example: "exchange: orders", given: entries)
        }
        var routingKey: String?
        if let keyEntry = entries["routing_key"] {
            routingKey = amqpName(
                keyEntry, what: "a routing key like order.placed", extra: ".-_*#",
                problem: { "bad routing key '\($0)'; use words of letters, digits, '-' and '_' separated by '.'" })
        } else {
            missing("routing_key", in: "trigger", at: at, example: "routing_key: order.placed", given: entries)
        }
        var sagaId: Template?
        if let idEntry = entries["saga_id"] {
            sagaId = readSagaId(idEntry)
        } else {
            missing("saga_id", in: "trigger", at: at, example: "saga_id: ${input.orderId}", given: entries)
        }
        var priority: PriorityRule?
        var priorityValid = true
        if let priorityEntry = entries["priority"] {
            priority = readPriority(priorityEntry)
            priorityValid = priority != nil
        }
        guard let exchange, let routingKey, let sagaId, priorityValid else { return nil }
        return Trigger(exchange: exchange, routingKey: routingKey, sagaId: sagaId, priority: priority)
    }

    /// `priority: ${input.priority}` (or a constant lane), or `priority: { from: ${input.channel}, map: { b2b: high,
    /// marketplace: low }, default: normal }`.
    mutating func readPriority(_ entry: Entry) -> PriorityRule? {
        let lanes = "high, normal, low or a whole number from \(PriorityLane.lowest) to \(PriorityLane.highest)"
        if case .mapping(let mapping) = entry.value {
            let entries = self.entries(of: mapping, allowed: WorkflowKeys.priority, context: "in priority")
            guard let fromEntry = entries["from"] else {
                missing(
                    "from", in: "priority", at: location(of: entry.value), example: "from: ${input.channel}",
                    given: entries)
                return nil
            }
            let value = priorityValue(fromEntry)
            var rule = PriorityRule(value: value ?? .literal(.null))
            var valid = value != nil
            if let mapEntry = entries["map"] {
                if let map = self.mapping(mapEntry, shape: "from values to lanes, like { b2b: high, marketplace: low }")
                {
                    for (keyNode, laneNode) in map {
                        guard case .scalar(let key) = keyNode else {
                            log.report(
                                .wrongKind, at: location(of: keyNode), "keys must be values, not \(describe(keyNode))")
                            valid = false
                            continue
                        }
                        let laneEntry = Entry(key: key.string, keyLocation: location(of: keyNode), value: laneNode)
                        if let lane = priorityLane(laneEntry, lanes: lanes) {
                            rule.map[key.string] = lane
                        } else {
                            valid = false
                        }
                    }
                } else {
                    valid = false
                }
            } else {
                missing(
                    "map", in: "priority", at: location(of: entry.value),
                    example: "map: { b2b: high, marketplace: low }",
                    given: entries)
                valid = false
            }
            if let fallbackEntry = entries["default"] {
                if let lane = priorityLane(fallbackEntry, lanes: lanes) { rule.fallback = lane } else { valid = false }
            }
            return valid ? rule : nil
        }
        if case .scalar(let scalar) = entry.value, !scalar.string.contains("${") {
            return priorityLane(entry, lanes: lanes).map {
                PriorityRule(value: .literal(.string(PriorityLane.name($0))))
            }
        }
        return priorityValue(entry).map { PriorityRule(value: $0) }
    }

    /// A priority's `${input...}` expression.
    private mutating func priorityValue(_ entry: Entry) -> Template? {
        startExpression(
            entry, name: "priority", example: "${input.priority}", why: "it is decided when the saga starts"
        )?.template
    }

    /// A lane name or number.
    private mutating func priorityLane(_ entry: Entry, lanes: String) -> Int? {
        guard let text = text(entry, what: lanes) else { return nil }
        guard let lane = PriorityLane.named(text) else {
            log.report(.invalidValue, at: location(of: entry.value), "unknown priority '\(text)'; use \(lanes)")
            return nil
        }
        return lane
    }

    /// The text of `entry` when it is an AMQP name of ASCII letters, digits and `extra`; otherwise reports it, with
    /// `problem(text)` when it is text of the wrong form, and returns `nil`.
    mutating func amqpName(_ entry: Entry, what: String, extra: String, problem: (String) -> String) -> String? {
        guard let name = text(entry, what: what) else { return nil }
        guard Self.isAMQPName(name, extra: extra) else {
            log.report(.invalidValue, at: location(of: entry.value), problem(name))
            return nil
        }
        return name
    }

    static func isAMQPName(_ text: String, extra: String) -> Bool {
        !text.isEmpty
            && text.unicodeScalars.allSatisfy { scalar in
                (scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)))
                    || extra.unicodeScalars.contains(scalar)
            }
    }

    mutating func readSagaId(_ entry: Entry) -> Template? {
        guard
            let (template, constant) = startExpression(
                entry, name: "saga_id", example: "${input.orderId}", why: "the saga has no data yet when it starts")
        else { return nil }
        guard !constant else {
            log.report(
                .invalidValue, at: location(of: entry.value),
                "saga_id must contain an expression like ${input.orderId}; a constant would make every order a duplicate"
            )
            return nil
        }
        return template
    }

    /// An expression over the start message alone (`saga_id`, `priority`): a non-empty scalar whose `${...}` read only
    /// `${input...}`; `why` ends the message about any other reference. `constant` when it has no `${...}` at all.
    mutating func startExpression(
        _ entry: Entry, name: String, example: String, why: String
    ) -> (template: Template, constant: Bool)? {
        guard case .scalar(let scalar) = entry.value, !isEmpty(entry.value) else {
            log.report(
                .wrongKind, at: location(of: entry.value),
                "\(name) must be an expression like \(example), not \(describe(entry.value))")
            return nil
        }
        var uses: [ExpressionUse] = []
        guard let template = stringTemplate(scalar, uses: &uses, part: .action) else { return nil }
        var valid = true
        for use in uses where use.path.root != .input {
            log.report(.badReference, at: use.location, "\(name) may only use ${input...}, not ${\(use.path)}; \(why)")
            valid = false
        }
        return valid ? (template, uses.isEmpty) : nil
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
                log.report(
                    .invalidValue, at: location(of: jitter.value), "jitter must be 'full' or 'none', not '\(text)'")
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

    /// The shape of a whole start message: a start is a JSON object, so only a mapping of fields, `object` or `any`.
    mutating func readTopInputShape(_ node: Node) -> InputShape? {
        guard let shape = readInputShape(node) else { return nil }
        switch shape {
        case .object, .any: return shape
        default:
            log.report(
                .invalidValue, at: location(of: node),
                "input describes the whole start message, a JSON object: give its fields (e.g. orderId: string), "
                    + "not \(describe(node))")
            return nil
        }
    }

    /// The shape under `input:`: a type name, a mapping of fields (a key ending in `?` is optional), or a one-item list
    /// for an array of that shape. `nil` after logging a problem.
    mutating func readInputShape(_ node: Node) -> InputShape? {
        let types = InputShape.typeNames.keys.sorted().joined(separator: ", ")
        switch node {
        case .scalar(let scalar):
            guard let shape = InputShape.typeNames[scalar.string] else {
                let suggestion = Suggestion.closest(to: scalar.string, among: Array(InputShape.typeNames.keys))
                log.report(
                    .invalidValue, at: location(of: node),
                    "unknown input type \(describe(node)); "
                        + (suggestion.map { "did you mean '\($0)'?" } ?? "expected one of: \(types)"))
                return nil
            }
            return shape
        case .mapping(let mapping):
            var fields: [InputShape.Field] = []
            var valid = true
            for (keyNode, value) in mapping {
                guard case .scalar(let key) = keyNode, !key.string.isEmpty, key.string != "?" else {
                    log.report(
                        .wrongKind, at: location(of: keyNode), "input fields must be names, not \(describe(keyNode))")
                    valid = false
                    continue
                }
                let optional = key.string.hasSuffix("?")
                let name = optional ? String(key.string.dropLast()) : key.string
                guard let shape = readInputShape(value) else {
                    valid = false
                    continue
                }
                fields.append(InputShape.Field(name: name, shape: shape, required: !optional))
            }
            return valid ? .object(fields) : nil
        case .sequence(let sequence):
            guard sequence.count == 1, let element = sequence.first else {
                log.report(
                    .invalidValue, at: location(of: node),
                    "an input list has exactly one item, the shape of every element (e.g. - sku: string), not "
                        + "\(sequence.count)")
                return nil
            }
            return readInputShape(element).map { .array($0) }
        case .alias:
            log.report(.wrongKind, at: location(of: node), "input shapes cannot use YAML aliases")
            return nil
        }
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
}
