import SagaEngine
import SagaStore

/// Which sagas `waybill sagas list` (and a bulk repair's `--where`) selects, and in which order.
///
/// All filters combine with AND; ``statuses`` is an OR within itself. Rows always come in a stable order:
/// `updated_at` (last progress), then workflow, then saga id, oldest progress first unless ``newestFirst``.
public struct SagaFilter: Sendable, Hashable {
    /// Keep only these statuses; empty means every status.
    public var statuses: [SagaStatus] = []
    /// Keep only this workflow.
    public var workflow: String?
    /// Keep only sagas whose current step (the step at the cursor) is this one.
    public var step: String?
    /// Keep only sagas without progress for at least this long (`updated_at <= now - stuckFor`).
    public var stuckFor: Duration?
    /// Keep only sagas that progressed at or after this time (`updated_at >= since`).
    public var since: Timestamp?
    /// Keep only sagas last written by this worker.
    public var owner: String?
    /// At most this many rows; `nil` means no limit (bulk repairs).
    public var limit: Int?
    /// Most recent progress first instead of oldest first.
    public var newestFirst = false

    /// A filter that selects everything, oldest progress first.
    public init() {}

    /// Whether any filter narrows the selection (a bulk repair refuses to run without one).
    public var narrows: Bool {
        !statuses.isEmpty || workflow != nil || step != nil || stuckFor != nil || since != nil || owner != nil
    }

    /// The store query this filter means at `now` (`--stuck-for` becomes an absolute progress time).
    public func query(now: Timestamp) -> SagaQuery {
        var query = SagaQuery()
        query.statuses = statuses
        query.workflow = workflow
        query.step = step
        query.updatedAtOrBefore = stuckFor.map { Timestamp(milliseconds: now.milliseconds - $0.milliseconds) }
        query.updatedAtOrAfter = since
        query.owner = owner
        query.limit = limit
        query.newestFirst = newestFirst
        return query
    }

    /// The filters as `waybill sagas list` flags, for output that tells the operator how to see the same rows.
    public var flags: String {
        var parts: [String] = []
        if !statuses.isEmpty { parts.append("--status \(statuses.map(\.rawValue).joined(separator: ","))") }
        if let workflow { parts.append("--workflow \(workflow)") }
        if let step { parts.append("--step \(step)") }
        if let stuckFor { parts.append("--stuck-for \(TimeText.span(milliseconds: stuckFor.milliseconds))") }
        if let since { parts.append("--since \(TimeText.seconds(since))") }
        if let owner { parts.append("--owner \(owner)") }
        return parts.joined(separator: " ")
    }

    /// Reads `--status` values: one or more of the six statuses, comma separated, plus `active` (running,
    /// compensating, suspended) and `terminal` (completed, compensated, cancelled).
    public static func parseStatuses(_ text: String) throws(OperationsError) -> [SagaStatus] {
        var result: [SagaStatus] = []
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: " ") }) where !part.isEmpty {
            let name = part.lowercased()
            let add: [SagaStatus]
            if let status = SagaStatus(rawValue: name) {
                add = [status]
            } else if name == "active" {
                add = [.running, .compensating, .suspended]
            } else if name == "terminal" {
                add = [.completed, .compensated, .cancelled]
            } else {
                throw OperationsError(
                    .badArgument,
                    "--status '\(part)': expected one of \(SagaStatus.allCases.map(\.rawValue).joined(separator: ", ")), "
                        + "active or terminal (comma separated)")
            }
            for status in add where !result.contains(status) { result.append(status) }
        }
        guard !result.isEmpty else {
            throw OperationsError(.badArgument, "--status is empty: expected e.g. suspended or running,compensating")
        }
        return result
    }

    /// Reads a `--limit`: a whole number from 1 to 1,000,000.
    public static func parseLimit(_ text: String, option: String = "--limit") throws(OperationsError) -> Int {
        guard let value = Int(text), (1...1_000_000).contains(value) else {
            throw OperationsError(.badArgument, "\(option) '\(text)': expected a whole number from 1 to 1000000")
        }
        return value
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        var view = self
        while view.first == set { view = view.dropFirst() }
        while view.last == set { view = view.dropLast() }
        return String(view)
    }
}

/// A saga named on the command line: `ID`, or `workflow/ID` when the same id exists in two workflows.
public struct SagaReference: Sendable, Hashable, CustomStringConvertible {
    /// The workflow, when the operator named it.
    public var workflow: String?
    /// The saga id (the order id).
    public var id: String

    /// Splits `text` at its first `/` when the part before it looks like a workflow name (`[a-z0-9-]+`).
    ///
    /// A saga id that itself contains `/` can always be named as `workflow/ID`; as a bare `ID` it is also tried
    /// whole when no workflow of that name has it (see ``SagaInspector/resolve(_:)``).
    public init(parsing text: String) throws(OperationsError) {
        let trimmed = text.trimmingCharacters(in: " ")
        guard !trimmed.isEmpty else {
            throw OperationsError(.badArgument, "empty saga id: expected ID or workflow/ID, e.g. o-1001")
        }
        if let slash = trimmed.firstIndex(of: "/") {
            let head = trimmed[..<slash]
            let tail = trimmed[trimmed.index(after: slash)...]
            let isName = !head.isEmpty && head.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "-" } && head.isASCII
            if isName, !tail.isEmpty {
                workflow = String(head)
                id = String(tail)
                return
            }
        }
        workflow = nil
        id = trimmed
    }

    /// A reference to exactly one saga.
    public init(_ key: SagaKey) {
        workflow = key.workflow
        id = key.id
    }

    /// `workflow/ID` or `ID`.
    public var description: String { workflow.map { "\($0)/\(id)" } ?? id }
}

extension Substring {
    fileprivate var isASCII: Bool { utf8.allSatisfy { $0 < 128 } }
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        Substring(self).trimmingCharacters(in: set)
    }
}
