import PlainText
import SagaEngine
import WaybillDefinition

/// `waybill reconcile` and `waybill reconcile report` output: the pass in one line, the findings grouped by workflow,
/// step, participant and kind, then each finding with what to do.
public enum ReconcileView {
    /// One group of findings.
    public struct Group: Sendable, Hashable, Comparable {
        public var workflow: String
        /// The step id (a branch's step: `release`, not `release[1]`).
        public var step: String
        public var participant: String
        public var kind: ReconcileFinding.Kind

        public static func < (lhs: Group, rhs: Group) -> Bool {
            (lhs.workflow, lhs.step, lhs.participant, lhs.kind.rawValue)
                < (rhs.workflow, rhs.step, rhs.participant, rhs.kind.rawValue)
        }
    }

    /// The findings by group, with how many of each were repaired.
    public static func groups(_ report: ReconcileReport) -> [(Group, count: Int, repaired: Int)] {
        var counts: [Group: (Int, Int)] = [:]
        for finding in report.findings {
            let group = Group(
                workflow: finding.workflow, step: String(finding.step.prefix { $0 != "[" }),
                participant: finding.participant, kind: finding.kind)
            let repaired = finding.repair == "repaired" ? 1 : 0
            let (count, fixed) = counts[group, default: (0, 0)]
            counts[group] = (count + 1, fixed + repaired)
        }
        return counts.sorted { $0.key < $1.key }.map { ($0.key, $0.value.0, $0.value.1) }
    }

    /// The whole report as text.
    public static func text(_ report: ReconcileReport) -> String {
        let statuses = report.sagas.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        let span = TimeText.span(milliseconds: max(0, report.finishedAt - report.startedAt))
        var out =
            "reconciliation \(report.id) by \(report.by)\(report.dryRun ? " (dry run: nothing sent)" : ""): "
            + "\(report.sagaCount) sagas" + (statuses.isEmpty ? "" : " (\(statuses))")
            + ", \(report.queryCount) \(report.dryRun ? "queries to send" : "queries")"
            + (report.dryRun ? "" : ", \(report.answered) answered") + " in \(span)\n"
        if report.dryRun {
            var table = TextTable(["participant", "queries"], right: [1])
            for (participant, count) in report.queries.sorted(by: { $0.key < $1.key }) {
                table.add([participant, String(count)])
            }
            if !table.isEmpty { out += "\n" + table.render(indent: "  ") }
        }
        let drift = report.findings.filter(\.kind.isDrift).count
        out += "findings: \(report.findings.count) (\(drift) drift"
        let repaired = report.findings.count { $0.repair == "repaired" }
        if report.repair { out += ", \(repaired) repaired" }
        out += ")\n"
        if !report.findings.isEmpty {
            var table = TextTable(["workflow", "step", "participant", "kind", "count", "repaired"], right: [4, 5])
            for (group, count, repaired) in groups(report) {
                table.add([
                    group.workflow, group.step, group.participant, group.kind.rawValue, String(count),
                    String(repaired),
                ])
            }
            out += "\n" + table.render(indent: "  ") + "\n"
            for finding in report.findings.sorted(by: { ($0.workflow, $0.sagaId) < ($1.workflow, $1.sagaId) }) {
                out +=
                    "  \(finding.workflow)/\(finding.sagaId) \(finding.step) \(finding.kind.rawValue): "
                    + finding.message
                if let repair = finding.repair { out += " [\(repair)]" }
                if !report.dryRun { out += finding.journaled ? " [journaled]" : " [not journaled: no owner answered]" }
                out += "\n"
            }
        }
        if !report.observations.isEmpty {
            var states: [String: Int] = [:]
            for observation in report.observations { states[observation.observed, default: 0] += 1 }
            out +=
                "suspended sagas (reported, not judged): "
                + states.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + "\n"
        }
        return out
    }

    /// The drift of `report` nothing repaired: ended sagas whose participants disagree with them, for an operator.
    public static func needsOperator(_ report: ReconcileReport) -> [ReconcileFinding] {
        report.findings.filter { $0.kind.isDrift && $0.repair != "repaired" }
    }

    /// The section `waybill sagas stuck` adds for the drift still open (``ReconcileReports/openDrift()``; empty
    /// when there is none): ended sagas do not wait for anything, but their effects need an operator.
    public static func stuckSection(_ open: [ReconcileFinding], limit: Int = 20) -> String {
        guard !open.isEmpty else { return "" }
        var out =
            "\ndrift found by reconciliation and not resolved (ended sagas whose participants disagree; "
            + "waybill reconcile report): \(open.count)\n"
        var table = TextTable(["saga", "status", "step", "kind", "since pass", "why"])
        for finding in open.prefix(limit) {
            table.add([
                "\(finding.workflow)/\(finding.sagaId)", finding.sagaStatus, finding.step, finding.kind.rawValue,
                finding.firstFound ?? "-", finding.message,
            ])
        }
        out += table.render(indent: "  ")
        if open.count > limit { out += "  ... \(open.count - limit) more\n" }
        return out
    }

    /// The whole report as JSON (``PrettyJSON``), with the groups.
    public static func json(_ report: ReconcileReport) -> JSONValue {
        func finding(_ finding: ReconcileFinding) -> JSONValue {
            var fields: [String: JSONValue] = [
                "workflow": .string(finding.workflow), "sagaId": .string(finding.sagaId),
                "sagaStatus": .string(finding.sagaStatus), "step": .string(finding.step),
                "participant": .string(finding.participant), "query": .string(finding.query),
                "idempotencyKey": .string(finding.idempotencyKey), "kind": .string(finding.kind.rawValue),
                "expected": .string(finding.expected), "message": .string(finding.message),
                "repairable": .bool(finding.repairable), "journaled": .bool(finding.journaled),
            ]
            if let observed = finding.observed { fields["observed"] = .string(observed) }
            if let details = finding.details { fields["details"] = details }
            if let repair = finding.repair { fields["repair"] = .string(repair) }
            return .object(fields)
        }
        var fields: [String: JSONValue] = [
            "id": .string(report.id), "by": .string(report.by), "dryRun": .bool(report.dryRun),
            "repair": .bool(report.repair),
            "startedAt": .string(TimeText.iso(Timestamp(milliseconds: report.startedAt))),
            "finishedAt": .string(TimeText.iso(Timestamp(milliseconds: report.finishedAt))),
            "durationMs": .number(Double(report.finishedAt - report.startedAt)),
            "sagas": .object(report.sagas.mapValues { .number(Double($0)) }),
            "queries": .object(report.queries.mapValues { .number(Double($0)) }),
            "answered": .number(Double(report.answered)),
            "findings": .array(report.findings.map(finding)),
            "groups": .array(
                groups(report).map { group, count, repaired in
                    [
                        "workflow": .string(group.workflow), "step": .string(group.step),
                        "participant": .string(group.participant), "kind": .string(group.kind.rawValue),
                        "count": .number(Double(count)), "repaired": .number(Double(repaired)),
                    ]
                }),
            "observations": .array(
                report.observations.map {
                    [
                        "workflow": .string($0.workflow), "sagaId": .string($0.sagaId), "step": .string($0.step),
                        "participant": .string($0.participant), "observed": .string($0.observed),
                    ]
                }),
        ]
        if let since = report.since { fields["since"] = .string(TimeText.iso(Timestamp(milliseconds: since))) }
        if let workflow = report.workflow { fields["workflow"] = .string(workflow) }
        return .object(fields)
    }
}
