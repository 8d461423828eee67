/// Checks workflow files and renders the report `waybill validate` prints.
///
/// The text is part of the contract (CI logs and editors read it), so it is built here, where tests can pin it:
/// - a valid file: `FILE: ok: NAME vVERSION, N steps, pivot STEP, trigger EXCHANGE/ROUTING_KEY`
///   (`no pivot` when no step is the pivot; `, N warnings` at the end when it has some), then one
///   `FILE:LINE:COLUMN: warning: message` line per warning, in file order;
/// - a valid limits file (``ParticipantLimits/fileName``): `FILE: ok: participant limits, N entries, aging 30s`;
/// - an invalid file: one `FILE:LINE:COLUMN: message` line per problem, in file order;
/// - an unreadable file: `FILE: cannot read file: REASON`.
public enum WorkflowValidator {
    /// What became of one file.
    public enum Outcome: Sendable, Hashable {
        /// The file is a valid workflow; `hash` is its content hash.
        case valid(WorkflowDefinition, hash: String)
        /// The file is a valid limits file (`participants.yaml`).
        case limits(ParticipantLimits)
        /// The file has problems.
        case invalid(WorkflowDiagnostics)
        /// The file could not be read.
        case unreadable(WorkflowSourceReadError)
    }

    /// One file's result and the lines printed for it.
    public struct FileResult: Sendable, Hashable {
        /// The file name as given.
        public var file: String
        /// What became of it.
        public var outcome: Outcome
        /// The warnings about a valid file, in file order; a warning does not make the file invalid.
        public var warnings: [WorkflowDiagnostic] = []

        /// Whether the file is a valid workflow.
        public var isValid: Bool {
            switch outcome {
            case .valid, .limits: true
            case .invalid, .unreadable: false
            }
        }

        /// The printed lines, without line breaks: the summary and the warnings for a valid file, else the problems.
        public var lines: [String] {
            summaryLines + warningLines
        }

        /// The lines for standard output: the summary of a valid file, nothing for another.
        public var summaryLines: [String] {
            switch outcome {
            case .valid(let definition, _):
                return [WorkflowValidator.summary(of: definition, file: file, warnings: warnings.count)]
            case .limits(let limits):
                let count = limits.limits.count
                let warned =
                    warnings.isEmpty ? "" : warnings.count == 1 ? ", 1 warning" : ", \(warnings.count) warnings"
                return [
                    "\(file): ok: participant limits, \(count == 1 ? "1 entry" : "\(count) entries"), aging "
                        + "\(DurationParser.format(limits.aging))\(warned)"
                ]
            case .invalid, .unreadable:
                return []
            }
        }

        /// The lines for standard error: a valid file's warnings, or the problems of another.
        public var warningLines: [String] {
            switch outcome {
            case .valid, .limits: warnings.map(\.description)
            case .invalid(let diagnostics): diagnostics.diagnostics.map(\.description)
            case .unreadable(let error): [error.description]
            }
        }
    }

    /// The results of all files, and what to print.
    public struct Report: Sendable, Hashable {
        /// One result per file, in the order given.
        public var files: [FileResult]

        /// The summaries of valid files, each line ending in a line break (for standard output).
        public var standardOutput: String {
            render(files.flatMap(\.summaryLines))
        }

        /// The warnings of valid files and the problems of invalid and unreadable ones, each line ending in a line
        /// break (for standard error).
        public var standardError: String {
            render(files.flatMap(\.warningLines))
        }

        /// Every line in file order, as a terminal that merges both streams shows them.
        public var text: String {
            render(files.flatMap(\.lines))
        }

        /// 0 when every file is valid, 1 otherwise (also for an empty list of files, which checks nothing).
        public var exitCode: Int32 {
            !files.isEmpty && files.allSatisfy(\.isValid) ? 0 : 1
        }

        private func render(_ lines: [String]) -> String {
            lines.map { $0 + "\n" }.joined()
        }
    }

    /// Reads, loads and validates each file.
    ///
    /// - Parameter read: how a file is read; tests pass in-memory text, the CLI the default.
    public static func validate(
        files: [String],
        read: (String) throws(WorkflowSourceReadError) -> WorkflowSource = WorkflowSource.read(file:)
    ) -> Report {
        var results = files.map { file in result(for: file, read: read) }
        // A limit that matches no command of the workflows beside it limits nothing.
        for index in results.indices {
            guard case .limits(let limits) = results[index].outcome else { continue }
            let folder = directory(of: results[index].file)
            let definitions = results.compactMap { result -> WorkflowDefinition? in
                guard case .valid(let definition, _) = result.outcome, directory(of: result.file) == folder else {
                    return nil
                }
                return definition
            }
            guard !definitions.isEmpty else { continue }
            for limit in limits.unmatched(by: definitions) {
                results[index].warnings.append(
                    WorkflowDiagnostic(
                        file: results[index].file, line: limit.line ?? 1, column: limit.column ?? 1,
                        message:
                            "commands '\(limit.commands)' matches no command of the workflows beside it, so it limits "
                            + "nothing; '*' is one word and '#' any number (erp.# covers erp.order.accept)",
                        code: .invalidValue, severity: .warning))
            }
        }
        return Report(files: results)
    }

    /// Whether a file not named like the limits file is one all the same: a top-level `participants:` and no
    /// `steps:`.
    private static func looksLikeLimits(_ text: String) -> Bool {
        var participants = false
        for line in text.split(separator: "\n") {
            if line.hasPrefix("participants:") { participants = true }
            if line.hasPrefix("steps:") || line.hasPrefix("name:") { return false }
        }
        return participants
    }

    private static func directory(of file: String) -> String {
        file.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    }

    /// Validates text that is already in memory, as if read from `file`.
    public static func validate(_ source: WorkflowSource) -> FileResult {
        let named = ParticipantLimits.isLimitsFile(source.file)
        if named || looksLikeLimits(source.text) {
            do {
                var (limits, warnings) = try ParticipantLimitsLoader.loadReportingWarnings(
                    yaml: source.text, file: source.file)
                if !named {
                    warnings.insert(
                        WorkflowDiagnostic(
                            file: source.file, line: 1, column: 1,
                            message:
                                "a limits file; workers read it only as \(ParticipantLimits.fileName) in the workflows "
                                + "folder",
                            code: .invalidValue, severity: .warning), at: 0)
                }
                return FileResult(file: source.file, outcome: .limits(limits), warnings: warnings)
            } catch {
                return FileResult(file: source.file, outcome: .invalid(error))
            }
        }
        do {
            let (definition, warnings) = try WorkflowLoader.loadReportingWarnings(yaml: source.text, file: source.file)
            return FileResult(
                file: source.file, outcome: .valid(definition, hash: source.hash), warnings: warnings)
        } catch {
            return FileResult(file: source.file, outcome: .invalid(error))
        }
    }

    /// The one-line summary of a valid workflow, e.g.
    /// `Workflows/order-fulfillment.yaml: ok: order-fulfillment v1, 6 steps, pivot ship, trigger orders/order.placed`,
    /// with `, 1 warning` at the end when `warnings` is 1.
    public static func summary(of definition: WorkflowDefinition, file: String, warnings: Int = 0) -> String {
        let count = definition.steps.count
        let steps = count == 1 ? "1 step" : "\(count) steps"
        let pivot = definition.steps.first(where: \.pivot).map { "pivot \($0.id)" } ?? "no pivot"
        let trigger = "trigger \(definition.trigger.exchange)/\(definition.trigger.routingKey)"
        let warned = warnings == 0 ? "" : warnings == 1 ? ", 1 warning" : ", \(warnings) warnings"
        return "\(file): ok: \(definition.name) v\(definition.version), \(steps), \(pivot), \(trigger)\(warned)"
    }

    private static func result(
        for file: String, read: (String) throws(WorkflowSourceReadError) -> WorkflowSource
    ) -> FileResult {
        do {
            return validate(try read(file))
        } catch {
            return FileResult(file: file, outcome: .unreadable(error))
        }
    }
}
