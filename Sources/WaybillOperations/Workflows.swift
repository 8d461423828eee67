import SagaEngine
import SagaStore
import WaybillDefinition

/// A stored workflow version with how many unfinished sagas run on it.
public struct WorkflowVersion: Sendable, Hashable {
    /// The stored definition (its source is empty in listings).
    public var definition: DefinitionRecord
    /// Unfinished sagas on this exact definition, by status.
    public var running: Int
    public var compensating: Int
    public var suspended: Int
    /// Whether another stored definition has the same name and version but different text (the file was edited
    /// without bumping `version`; sagas keep the text they started with).
    public var editedWithoutBump: Bool

    /// Unfinished sagas on it.
    public var inFlight: Int { running + compensating + suspended }
}

/// `waybill workflows show`: one version, its steps, and where its unfinished sagas are.
public struct WorkflowDetail: Sendable, Hashable {
    /// The version and its counts.
    public var version: WorkflowVersion
    /// The source (with the text).
    public var source: String
    /// The parsed definition, or `nil` when this binary cannot load it (then `loadError` says why).
    public var definition: WorkflowDefinition?
    /// Why the source does not load.
    public var loadError: String?
    /// Unfinished sagas by current step: (step, running, compensating, suspended).
    public var bySteps: [SagaStats.StepCount]
    /// The other stored versions of the same workflow, for context.
    public var otherVersions: [WorkflowVersion]
}

extension SagaInspector {
    /// Every stored definition with its unfinished sagas, by name, version and first sighting.
    ///
    /// A workflow with one stored definition is counted from the indexes alone; one with several (a new version
    /// rolled out while old sagas run) reads the `definition_hash` of its unfinished sagas.
    public func workflowVersions() throws(OperationsError) -> [WorkflowVersion] {
        let records = try definitionRecords()
        let usage = try usage(records: records)
        var perVersion: [String: Int] = [:]
        for record in records { perVersion["\(record.name)@\(record.version)", default: 0] += 1 }
        return records.map { record in
            let counts = usage[record.hash]?.totals ?? StatusCounts()
            return WorkflowVersion(
                definition: record, running: counts.running, compensating: counts.compensating,
                suspended: counts.suspended,
                editedWithoutBump: (perVersion["\(record.name)@\(record.version)"] ?? 0) > 1)
        }
    }

    /// Unfinished sagas by status.
    struct StatusCounts {
        var running = 0
        var compensating = 0
        var suspended = 0

        mutating func add(_ other: StatusCounts) {
            running += other.running
            compensating += other.compensating
            suspended += other.suspended
        }

        mutating func add(_ status: SagaStatus?) {
            switch status {
            case .running?: running += 1
            case .compensating?: compensating += 1
            case .suspended?: suspended += 1
            default: break
            }
        }
    }

    /// Unfinished sagas of one definition, in total and by current step.
    struct DefinitionUsage {
        var totals = StatusCounts()
        var bySteps: [String: StatusCounts] = [:]
    }

    /// Where the unfinished sagas of each stored definition are, by hash, added up over every file.
    func usage(records: [DefinitionRecord]) throws(OperationsError) -> [String: DefinitionUsage] {
        let parts = try read("counting sagas per definition") { snapshot in try Self.usage(snapshot, records: records) }
        if parts.count == 1 { return parts[0] }
        var total: [String: DefinitionUsage] = [:]
        for part in parts {
            for (hash, usage) in part {
                total[hash, default: DefinitionUsage()].totals.add(usage.totals)
                for (step, counts) in usage.bySteps {
                    total[hash, default: DefinitionUsage()].bySteps[step, default: StatusCounts()].add(counts)
                }
            }
        }
        return total
    }

    /// Where the unfinished sagas of each stored definition are in one file, by hash.
    static func usage(_ snapshot: StoreSnapshot, records: [DefinitionRecord]) throws -> [String: DefinitionUsage] {
        let unfinished = try snapshot.unfinishedStatuses()
        var hashesOf: [String: [String]] = [:]
        for record in records { hashesOf[record.name, default: []].append(record.hash) }
        var usage: [String: DefinitionUsage] = [:]
        for workflow in try snapshot.workflowsWithSagas() {
            let hashes = hashesOf[workflow] ?? []
            if hashes.count == 1 {
                var entry = DefinitionUsage()
                for step in try snapshot.currentSteps(of: workflow) {
                    var counts = StatusCounts()
                    try snapshot.forEachRow(workflow: workflow, step: step) { counts.add(unfinished[$0]) }
                    entry.bySteps[step] = counts
                    entry.totals.running += counts.running
                    entry.totals.compensating += counts.compensating
                    entry.totals.suspended += counts.suspended
                }
                usage[hashes[0]] = entry
                continue
            }
            // Several definitions: read the hash of each unfinished saga of this workflow.
            var mine: [SagaRowNumber] = []
            try snapshot.forEachRow(workflow: workflow, step: nil) { row in
                if unfinished[row] != nil { mine.append(row) }
            }
            for placement in try snapshot.placements(of: mine) {
                let status = unfinished[placement.row]
                let step = placement.currentStep ?? "-"
                usage[placement.definitionHash, default: DefinitionUsage()].totals.add(status)
                usage[placement.definitionHash, default: DefinitionUsage()].bySteps[step, default: StatusCounts()].add(
                    status)
            }
        }
        return usage
    }

    /// The version a reference names: `NAME` (its newest version), `NAME@VERSION` or `NAME@vVERSION` (the newest
    /// text of that version), or a hash prefix of at least 6 hex digits.
    public func workflowDetail(_ reference: String) throws(OperationsError) -> WorkflowDetail {
        let records = try definitionRecords()
        let usage = try usage(records: records)
        var perVersion: [String: Int] = [:]
        for record in records { perVersion["\(record.name)@\(record.version)", default: 0] += 1 }
        let versions = records.map { record in
            let counts = usage[record.hash]?.totals ?? StatusCounts()
            return WorkflowVersion(
                definition: record, running: counts.running, compensating: counts.compensating,
                suspended: counts.suspended,
                editedWithoutBump: (perVersion["\(record.name)@\(record.version)"] ?? 0) > 1)
        }
        let chosen = try Self.pick(reference, from: versions)
        let hash = chosen.definition.hash
        guard let record = try definitionRecord(hash: hash) else {
            throw OperationsError(.notFound, "definition \(hash.prefix(12)) vanished while reading; try again")
        }
        var definition: WorkflowDefinition?
        var loadError: String?
        do {
            definition = try self.definition(hash: hash)
        } catch {
            loadError = error.message
        }
        let order = definition.map { $0.steps.map(\.id) } ?? []
        let bySteps = (usage[hash]?.bySteps ?? [:]).compactMap { step, counts -> SagaStats.StepCount? in
            let entry = SagaStats.StepCount(
                workflow: record.name, step: step, running: counts.running, compensating: counts.compensating,
                suspended: counts.suspended)
            return entry.total > 0 ? entry : nil
        }.sorted {
            (order.firstIndex(of: $0.step) ?? Int.max, $0.step) < (order.firstIndex(of: $1.step) ?? Int.max, $1.step)
        }
        return WorkflowDetail(
            version: chosen, source: record.source, definition: definition, loadError: loadError, bySteps: bySteps,
            otherVersions: versions.filter { $0.definition.name == record.name && $0.definition.hash != hash })
    }

    static func pick(
        _ reference: String, from versions: [WorkflowVersion]
    ) throws(OperationsError)
        -> WorkflowVersion
    {
        let text = reference.lowercased()
        var name = text
        var version: Int?
        if let at = text.firstIndex(of: "@") {
            name = String(text[..<at])
            var number = text[text.index(after: at)...]
            if number.first == "v" { number = number.dropFirst() }
            guard let value = Int(number) else {
                throw OperationsError(
                    .badArgument, "'\(reference)': expected NAME, NAME@VERSION (e.g. order-fulfillment@2) or a hash")
            }
            version = value
        }
        let named = versions.filter {
            $0.definition.name == name && (version == nil || $0.definition.version == version)
        }
        if let newest = named.max(by: {
            ($0.definition.version, $0.definition.firstSeenAt) < ($1.definition.version, $1.definition.firstSeenAt)
        }) {
            return newest
        }
        if version == nil, text.count >= 6, text.allSatisfy(\.isHexDigit) {
            let matches = versions.filter { $0.definition.hash.hasPrefix(text) }
            if matches.count == 1 { return matches[0] }
            if matches.count > 1 {
                throw OperationsError(
                    .ambiguous,
                    "hash prefix '\(reference)' matches \(matches.count) definitions; give more digits: "
                        + matches.map { String($0.definition.hash.prefix(16)) }.joined(separator: ", "))
            }
        }
        let known = Array(Set(versions.map(\.definition.name))).sorted()
        throw OperationsError(
            .notFound,
            "no stored workflow '\(reference)'; this file knows "
                + (known.isEmpty ? "none (no worker stored a definition yet)" : known.joined(separator: ", ")))
    }
}

/// `waybill workflows list|show` as text and JSON.
public enum WorkflowsView {
    /// One row per stored definition.
    public static func listText(_ versions: [WorkflowVersion], now: Timestamp) -> String {
        guard !versions.isEmpty else { return "No workflow definitions stored (no worker has run on this file).\n" }
        var table = TextTable(
            ["WORKFLOW", "VERSION", "HASH", "FIRST SEEN", "RUNNING", "COMPENSATING", "SUSPENDED", "NOTE"],
            right: [1, 4, 5, 6])
        for version in versions {
            let record = version.definition
            table.add([
                record.name, String(record.version), String(record.hash.prefix(12)),
                TimeText.seconds(record.firstSeenAt),
                Words.number(version.running), Words.number(version.compensating), Words.number(version.suspended),
                version.editedWithoutBump ? "same version, different text" : "",
            ])
        }
        var out = table.render()
        out += "\(Words.count(versions.count, "definition")); counts are unfinished sagas on each exact text.\n"
        if versions.contains(where: \.editedWithoutBump) {
            out += "Some files were edited without bumping `version`: sagas keep the text they started with.\n"
        }
        return out
    }

    /// `{"workflows": [...]}`.
    public static func listJSON(_ versions: [WorkflowVersion]) -> JSONValue {
        ["workflows": .array(versions.map(versionJSON))]
    }

    /// The version's header, its steps, where its unfinished sagas are, and (with `source`) the YAML.
    public static func showText(_ detail: WorkflowDetail, includeSource: Bool) -> String {
        let record = detail.version.definition
        var out = "\(record.name)@v\(record.version)\n"
        var header = TextTable(["", ""])
        header.add(["hash", record.hash])
        header.add(["first seen", TimeText.seconds(record.firstSeenAt)])
        header.add([
            "unfinished",
            "\(Words.number(detail.version.inFlight)) (running \(Words.number(detail.version.running)), "
                + "compensating \(Words.number(detail.version.compensating)), "
                + "suspended \(Words.number(detail.version.suspended)))",
        ])
        if !detail.otherVersions.isEmpty {
            header.add([
                "other texts",
                detail.otherVersions.map { "v\($0.definition.version) \($0.definition.hash.prefix(12))" }
                    .joined(separator: ", "),
            ])
        }
        out += header.renderRows(indent: "  ")
        if let definition = detail.definition {
            out += "\nSteps\n"
            var steps = TextTable(["STEP", "DOES", "TIMEOUT", "RETRY", "UNDO", "NOTES"])
            let counts = Dictionary(detail.bySteps.map { ($0.step, $0) }, uniquingKeysWith: { first, _ in first })
            for step in definition.steps {
                var does = ""
                var undo = ""
                switch step.action {
                case .command(let command): does = TemplateText.text(command.routingKey)
                case .split: does = "split (local)"
                case .wait(let wait):
                    let span = TimeText.span(milliseconds: wait.duration.milliseconds)
                    if let message = wait.message {
                        does =
                            "wait for \(message.exchange)/\(message.routingKey), up to \(span)"
                            + (wait.onTimeout.map { " (then \($0))" } ?? "")
                    } else {
                        does = "wait \(span)"
                    }
                case .choice(let choice):
                    does =
                        "choice: "
                        + (choice.rules.map(\.target.description)
                        + (choice.isExhaustive ? [] : [step.next?.description ?? "next step"]))
                        .joined(separator: " | ")
                }
                if let compensate = step.compensate { undo = TemplateText.text(compensate.routingKey) }
                var notes: [String] = []
                if step.forEach != nil { notes.append("for each") }
                if step.pivot { notes.append("pivot") }
                if let milestone = step.milestone { notes.append("milestone \(milestone)") }
                if let count = counts[step.id], count.total > 0 { notes.append("\(Words.number(count.total)) here") }
                var retry = ""
                if case .command = step.action {
                    switch step.retry.maxAttempts {
                    case .limited(let limit): retry = "\(limit) attempts"
                    case .unlimited: retry = "unlimited"
                    }
                }
                steps.add([
                    step.id, does, step.action.isLocal ? "" : TimeText.span(milliseconds: step.timeout.milliseconds),
                    retry, undo, notes.joined(separator: ", "),
                ])
            }
            out += steps.render(indent: "  ")
        } else if let error = detail.loadError {
            out += "\n\(error)\n"
        }
        if !detail.bySteps.isEmpty {
            out += "\nUnfinished sagas by current step\n"
            var table = TextTable(["STEP", "RUNNING", "COMPENSATING", "SUSPENDED"], right: [1, 2, 3])
            for step in detail.bySteps {
                table.add([
                    step.step, Words.number(step.running), Words.number(step.compensating),
                    Words.number(step.suspended),
                ])
            }
            out += table.render(indent: "  ")
        }
        if includeSource {
            out += "\nSource\n" + detail.source + (detail.source.hasSuffix("\n") ? "" : "\n")
        } else {
            out += "\nThe YAML: waybill workflows show \(record.name)@\(record.version) --source\n"
        }
        return out
    }

    /// `{"workflow": {...}, "source", "steps": [...], "bySteps": [...], "otherVersions": [...]}`.
    public static func showJSON(_ detail: WorkflowDetail) -> JSONValue {
        let steps: [JSONValue] =
            detail.definition?.steps.map { step in
                var command: JSONValue = .null
                if case .command(let template) = step.action {
                    command = .string(TemplateText.text(template.routingKey))
                }
                var maxAttempts: JSONValue = "unlimited"
                if case .limited(let limit) = step.retry.maxAttempts { maxAttempts = JSONFields.int(limit) }
                // A choice's targets, rule by rule (`end`, `fail <code>` or a step id); null for other steps.
                var choices: JSONValue = .null
                if case .choice(let spec) = step.action {
                    choices = .array(spec.rules.map { .string($0.target.description) })
                }
                return [
                    "id": .string(step.id),
                    "kind": .string(step.action.kindName),
                    "command": command,
                    "compensate": step.compensate.map { .string(TemplateText.text($0.routingKey)) } ?? .null,
                    "forEach": .bool(step.forEach != nil),
                    "pivot": .bool(step.pivot),
                    "milestone": JSONFields.string(step.milestone),
                    "timeoutMs": JSONFields.int(step.timeout.milliseconds),
                    "maxAttempts": maxAttempts,
                    "next": JSONFields.string(step.next?.description),
                    "choices": choices,
                ]
            } ?? []
        return [
            "workflow": versionJSON(detail.version),
            "source": .string(detail.source),
            "loadError": JSONFields.string(detail.loadError),
            "steps": .array(steps),
            "bySteps": .array(
                detail.bySteps.map { step in
                    [
                        "step": .string(step.step), "running": JSONFields.int(step.running),
                        "compensating": JSONFields.int(step.compensating),
                        "suspended": JSONFields.int(step.suspended),
                    ]
                }),
            "otherVersions": .array(detail.otherVersions.map(versionJSON)),
        ]
    }

    private static func versionJSON(_ version: WorkflowVersion) -> JSONValue {
        [
            "name": .string(version.definition.name),
            "version": JSONFields.int(version.definition.version),
            "hash": .string(version.definition.hash),
            "firstSeenAt": JSONFields.time(version.definition.firstSeenAt),
            "running": JSONFields.int(version.running),
            "compensating": JSONFields.int(version.compensating),
            "suspended": JSONFields.int(version.suspended),
            "editedWithoutBump": .bool(version.editedWithoutBump),
        ]
    }
}

/// Templates written back the way a workflow file spells them (`wms.${shipment.warehouse}.release`).
enum TemplateText {
    static func text(_ template: Template) -> String {
        switch template {
        case .literal(let value): return value.stringValue ?? JSONText.encode(value)
        case .value(let path): return "${\(path)}"
        case .interpolated(let segments):
            return segments.map { segment in
                switch segment {
                case .text(let text): text
                case .expression(let path): "${\(path)}"
                }
            }.joined()
        case .array, .object: return "(structured)"
        }
    }
}
