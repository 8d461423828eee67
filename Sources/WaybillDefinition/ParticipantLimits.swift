import Yams

/// How much the systems Waybill drives can take, declared once for a pool in `participants.yaml` beside the workflows
/// (``fileName``): per command pattern, at most so many commands sent and not yet answered, and at most so many sent
/// per second (with a burst). The first entry whose pattern matches a command's routing key applies to it.
public struct ParticipantLimits: Sendable, Hashable {
    /// The limits file's name in the workflows folder; workers and `waybill validate` read it as limits, not as a
    /// workflow.
    public static let fileName = "participants.yaml"

    /// The entries, in file order.
    public var limits: [ParticipantLimit]
    /// How long a held command waits before its priority rises by one lane, so a low-priority saga is never starved.
    public var aging: Duration

    /// The default aging: a held command moves up a lane every 30 seconds.
    public static let defaultAging: Duration = .seconds(30)

    /// Describes limits.
    public init(limits: [ParticipantLimit], aging: Duration = defaultAging) {
        self.limits = limits
        self.aging = aging
    }

    /// The limit a command with `routingKey` is under: the first whose pattern matches; `nil` when none does.
    public func limit(for routingKey: String) -> ParticipantLimit? {
        limits.first { MessageWait.topic($0.commands, matches: routingKey) }
    }

    /// The limits whose pattern matches no command that `definitions` send (forward or undo): most likely a pattern
    /// with `*` (one word) where `#` (any number of words) was meant. A `${...}` word of a command matches any word.
    public func unmatched(by definitions: [WorkflowDefinition]) -> [ParticipantLimit] {
        var shapes: [[String?]] = []
        for definition in definitions {
            for step in definition.steps {
                if case .command(let command) = step.action { shapes.append(Self.shape(of: command.routingKey)) }
                if let compensate = step.compensate { shapes.append(Self.shape(of: compensate.routingKey)) }
            }
        }
        return limits.filter { limit in
            let pattern = limit.commands.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            return !shapes.contains { Self.pattern(pattern[...], mayMatch: $0[...]) }
        }
    }

    /// A routing key template's words; `nil` for a word that holds an expression.
    private static func shape(of template: Template) -> [String?] {
        var text = ""
        switch template {
        case .literal(let value): text = value.stringValue ?? ""
        case .interpolated(let segments):
            for segment in segments {
                switch segment {
                case .text(let literal): text += literal
                case .expression: text += "\u{0}"
                }
            }
        default: text = "\u{0}"
        }
        return text.split(separator: ".", omittingEmptySubsequences: false).map {
            $0.contains("\u{0}") ? nil : String($0)
        }
    }

    private static func pattern(_ pattern: ArraySlice<String>, mayMatch key: ArraySlice<String?>) -> Bool {
        guard let word = pattern.first else { return key.isEmpty }
        if word == "#" {
            return Self.pattern(pattern.dropFirst(), mayMatch: key)
                || (!key.isEmpty && Self.pattern(pattern, mayMatch: key.dropFirst()))
        }
        guard let keyWord = key.first else { return false }
        guard word == "*" || keyWord == nil || keyWord == word else { return false }
        return Self.pattern(pattern.dropFirst(), mayMatch: key.dropFirst())
    }

    /// Whether `path` names the limits file (`participants.yaml`, or `.yml`, as workers read either).
    public static func isLimitsFile(_ path: String) -> Bool {
        let name = path.split(separator: "/").last.map(String.init)
        return name == fileName || name == "participants.yml"
    }
}

/// One participant's limits, for the commands whose routing key matches `commands`.
public struct ParticipantLimit: Sendable, Hashable {
    /// The routing key pattern (`*` one word, `#` any number), e.g. `erp.#`, `wms.*.release`.
    public var commands: String
    /// Commands sent and not yet answered (nor timed out), at most; `nil` for no such limit.
    public var maxInFlight: Int?
    /// Commands sent per second, at most; `nil` for no such limit.
    public var perSecond: Double?
    /// How many may go at once after a quiet spell (the rate's bucket size).
    public var burst: Int
    /// Where `commands` is written in the limits file (1-based line and column), for warnings; `nil` when made in code.
    public var line: Int?
    public var column: Int?

    /// Describes a limit; `burst` defaults to one second's worth (at least 1).
    public init(commands: String, maxInFlight: Int? = nil, perSecond: Double? = nil, burst: Int? = nil) {
        self.commands = commands
        self.maxInFlight = maxInFlight
        self.perSecond = perSecond
        self.burst = burst ?? max(1, Int((perSecond ?? 1).rounded(.up)))
    }

    /// `erp.*: 10 in flight, 200/s (burst 200)`.
    public var summary: String {
        var parts: [String] = []
        if let maxInFlight { parts.append("\(maxInFlight) in flight") }
        if let perSecond {
            let rate = perSecond == perSecond.rounded() ? String(Int(perSecond)) : String(perSecond)
            parts.append("\(rate)/s (burst \(burst))")
        }
        return "\(commands): " + parts.joined(separator: ", ")
    }
}

/// Reads `participants.yaml` into ``ParticipantLimits``, or into every problem it has, with `file:line:column`.
public enum ParticipantLimitsLoader {
    /// Parses and validates `yaml`; `file` prefixes the diagnostics.
    ///
    /// - Throws: ``WorkflowDiagnostics`` holding every problem found, in file order.
    public static func load(yaml: String, file: String) throws(WorkflowDiagnostics) -> ParticipantLimits {
        try loadReportingWarnings(yaml: yaml, file: file).limits
    }

    /// ``load(yaml:file:)`` with the warnings about a valid file (an entry an earlier pattern always wins over).
    public static func loadReportingWarnings(
        yaml: String, file: String
    ) throws(WorkflowDiagnostics) -> (limits: ParticipantLimits, warnings: [WorkflowDiagnostic]) {
        var reader = WorkflowReader(yaml: yaml, file: file)
        let limits = reader.readParticipantLimits()
        if let limits, reader.log.isEmpty { return (limits, reader.log.sortedWarnings) }
        if reader.log.isEmpty { reader.log.report(.yamlSyntax, at: .start, "the limits file could not be read") }
        throw reader.log.sorted
    }
}

extension WorkflowReader {
    static let limitsKeys = ["participants", "priority"]
    static let limitKeys = ["commands", "max_in_flight", "rate"]
    static let rateKeys = ["per_second", "burst"]

    /// `participants: [{commands, max_in_flight?, rate?: {per_second, burst?}}]`, `priority: {aging}`.
    mutating func readParticipantLimits() -> ParticipantLimits? {
        guard let root = compose() else { return nil }
        guard case .mapping(let top) = root else {
            log.report(
                .wrongKind, at: location(of: root),
                "a limits file must be a mapping with participants: [...], not \(describe(root))")
            return nil
        }
        let fields = entries(of: top, allowed: Self.limitsKeys, context: "at the top level")
        var aging = ParticipantLimits.defaultAging
        if let priority = fields["priority"], let priorityMapping = self.mapping(priority, shape: "like { aging: 30s }")
        {
            let keys = entries(of: priorityMapping, allowed: ["aging"], context: "in priority")
            if let entry = keys["aging"], let value = duration(entry) {
                if value > .zero {
                    aging = value
                } else {
                    log.report(.invalidValue, at: location(of: entry.value), "aging must be longer than 0, like 30s")
                }
            }
        }
        guard let participants = fields["participants"] else {
            missing(
                "participants", in: "the limits file", at: location(of: root),
                example: "participants: [{ commands: \"erp.#\", max_in_flight: 10 }]", given: fields)
            return nil
        }
        guard case .sequence(let sequence) = participants.value else {
            log.report(
                .wrongKind, at: location(of: participants.value),
                "participants must be a list of limits (each starting with '- commands:'), not "
                    + describe(participants.value))
            return nil
        }
        var limits: [ParticipantLimit] = []
        var firstLine: [String: Int] = [:]
        var valid = true
        for node in sequence {
            guard let (limit, at) = readLimit(node) else {
                valid = false
                continue
            }
            if let line = firstLine[limit.commands] {
                log.report(
                    .conflict, at: at,
                    "commands '\(limit.commands)' already has limits (line \(line)); keep one entry per pattern")
                valid = false
                continue
            }
            if let earlier = limits.first(where: { Self.covers($0.commands, limit.commands) }) {
                log.warn(
                    .mayBeBypassed, at: at,
                    "commands '\(limit.commands)' never applies: the earlier '\(earlier.commands)' matches every "
                        + "routing key it does; move it above")
            }
            firstLine[limit.commands] = at.line
            limits.append(limit)
        }
        return valid ? ParticipantLimits(limits: limits, aging: aging) : nil
    }

    /// One entry, with where its pattern is written.
    private mutating func readLimit(_ node: Node) -> (ParticipantLimit, SourceLocation)? {
        guard case .mapping(let limitMapping) = node else {
            log.report(
                .wrongKind, at: location(of: node),
                "each limit must be a mapping like { commands: \"erp.#\", max_in_flight: 10 }, not \(describe(node))")
            return nil
        }
        let fields = entries(of: limitMapping, allowed: Self.limitKeys, context: "in a limit")
        guard let commandsEntry = fields["commands"] else {
            missing(
                "commands", in: "this limit", at: location(of: node), example: "commands: \"erp.#\"", given: fields)
            return nil
        }
        let at = location(of: commandsEntry.value)
        guard let commands = text(commandsEntry, what: "a routing key pattern like erp.# or wms.*.release") else {
            return nil
        }
        guard Self.isPattern(commands) else {
            log.report(
                .invalidValue, at: at,
                "commands '\(commands)' is not a routing key pattern: words of letters, digits, '-' and '_' "
                    + "separated by '.', or * (one word) and # (any number)")
            return nil
        }
        var valid = true
        let maxInFlight = fields["max_in_flight"].flatMap { positiveInteger($0, what: "a whole number from 1") }
        if fields["max_in_flight"] != nil, maxInFlight == nil { valid = false }
        var perSecond: Double?
        var burst: Int?
        if let rate = fields["rate"] {
            if let rateMapping = mapping(rate, shape: "like { per_second: 200, burst: 50 }") {
                let rateFields = entries(of: rateMapping, allowed: Self.rateKeys, context: "in rate")
                if let entry = rateFields["per_second"] {
                    let number = text(entry, what: "a number of commands per second like 200").flatMap(Double.init)
                    if let number, number > 0, number.isFinite {
                        perSecond = number
                    } else {
                        log.report(
                            .invalidValue, at: location(of: entry.value),
                            "per_second must be a number above 0, like 200 or 0.5")
                        valid = false
                    }
                } else {
                    missing(
                        "per_second", in: "rate", at: location(of: rate.value), example: "per_second: 200",
                        given: rateFields)
                    valid = false
                }
                if let entry = rateFields["burst"] {
                    burst = positiveInteger(entry, what: "a whole number from 1")
                    if burst == nil { valid = false }
                }
            } else {
                valid = false
            }
        }
        if valid, maxInFlight == nil, perSecond == nil {
            log.report(
                .missingKey, at: at,
                "a limit needs max_in_flight, rate or both; add max_in_flight: 10 or rate: { per_second: 200 }")
            valid = false
        }
        guard valid else { return nil }
        var limit = ParticipantLimit(commands: commands, maxInFlight: maxInFlight, perSecond: perSecond, burst: burst)
        (limit.line, limit.column) = (at.line, at.column)
        return (limit, at)
    }

    /// Words of letters, digits, `-` and `_`, or `*` and `#`, separated by dots.
    static func isPattern(_ text: String) -> Bool {
        text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { word in
            word == "*" || word == "#"
                || (!word.isEmpty
                    && word.unicodeScalars.allSatisfy {
                        ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-"
                            || $0 == "_"
                    })
        }
    }

    /// Whether every routing key `later` matches is matched by `earlier`: checked on `later` with its wildcards read
    /// as words (`*` → one word, `#` → none and two words), which is exact for the patterns people write.
    static func covers(_ earlier: String, _ later: String) -> Bool {
        let words = later.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        var samples: [[String]] = [[]]
        for word in words {
            switch word {
            case "*": samples = samples.map { $0 + ["x1"] }
            case "#": samples = samples.flatMap { [$0, $0 + ["x2", "x3"]] }
            default: samples = samples.map { $0 + [word] }
            }
            if samples.count > 64 { return false }
        }
        return samples.allSatisfy { MessageWait.topic(earlier, matches: $0.joined(separator: ".")) }
    }
}
