import PlainText
import SagaEngine
import SagaStore
import WaybillOperations
import WaybillSimulator

/// The demo's reconciliation: once every order ended, a pass asks the participants about every effect the sagas
/// say they kept or undid, repairs what it can (an undo a participant dropped is sent again under its key), and the
/// summary puts what was found beside the drift the simulator injected on purpose.
public struct ReconciliationSummary: Sendable {
    /// The pass, as `waybill reconcile report` shows it.
    public var report: ReconcileReport
    /// Forward keys whose undo the simulator dropped, and whose effect it lost.
    public var droppedUndoKeys: Set<String>
    public var lostEffectKeys: Set<String>
    /// What the participants say about each of those keys once the repairs ran (`applied`, `undone`, `absent`).
    public var injectedStates: [String: String]
    /// A second pass after the repairs, without repairing: what is left for an operator.
    public var recheck: ReconcileReport

    /// Runs the pass (with repairs) and a re-check on the stage's pool.
    static func run(stage: DemoStage, simulator: ParticipantSimulator) async throws -> ReconciliationSummary {
        let inspector = try SagaInspector(dataDirectory: stage.dataDirectory)
        let route = RepairRoute(
            pool: try SagaInspector.openPool(stage.dataDirectory), poolName: stage.setup.names.poolName)
        let broker = BrokerSettings.from(urlWithPassword: stage.setup.broker.url, password: stage.setup.broker.password)
        func reconciler(repair: Bool) -> Reconciler {
            Reconciler(
                inspector: inspector, route: repair ? route : nil, commandsExchange: stage.setup.names.commandsExchange,
                since: nil, workflow: nil, rate: nil, maxInFlight: 64, timeout: .seconds(10), repair: repair,
                by: "demo", now: { Timestamp.now() })
        }
        let report = try await reconciler(repair: true).run(broker: broker)
        try ReconcileReports(dataDirectory: stage.dataDirectory).save(report)
        let recheck = try await reconciler(repair: false).run(broker: broker)
        let ledger = simulator.ledger()
        let injected = ledger.droppedUndoKeys.union(ledger.lostEffectKeys)
        return ReconciliationSummary(
            report: report, droppedUndoKeys: ledger.droppedUndoKeys, lostEffectKeys: ledger.lostEffectKeys,
            injectedStates: Dictionary(uniqueKeysWithValues: injected.map { ($0, simulator.effectState(ofKey: $0)) }),
            recheck: recheck)
    }

    /// Findings of one kind.
    public func count(_ kind: ReconcileFinding.Kind, in report: ReconcileReport? = nil) -> Int {
        (report ?? self.report).findings.count { $0.kind == kind }
    }

    /// Findings the repair fixed.
    public var repaired: Int { report.findings.count { $0.repair == "repaired" } }

    /// The summary's section.
    public var lines: [String] {
        let seconds = Double(report.finishedAt - report.startedAt) / 1000
        var lines = [
            "Reconciliation (every effect the sagas kept or undid, asked of the participants' own records)",
            "  \(Format.grouped(report.sagaCount)) sagas, \(Format.grouped(report.queryCount)) verify queries, "
                + "\(Format.grouped(report.answered)) answered in \(Format.fixed(seconds, 1)) s",
            "  drift injected on purpose: \(droppedUndoKeys.count) undos dropped, \(lostEffectKeys.count) effects lost",
            "  found: \(count(.leakedEffect)) leaked (undone by the saga, still held) · \(repaired) repaired · "
                + "\(count(.missingEffect)) missing · \(count(.undoneEffect)) undone · "
                + "\(report.findings.count { !$0.kind.isDrift }) unanswered or refused",
            "  after the repairs: \(recheck.findings.count) left for an operator"
                + (recheck.findings.isEmpty ? "" : " (waybill reconcile report)"),
        ]
        for finding in recheck.findings.prefix(5) {
            lines.append("    ! \(finding.workflow)/\(finding.sagaId) \(finding.step): \(finding.message)")
        }
        if recheck.findings.count > 5 { lines.append("    ... \(recheck.findings.count - 5) more in the report") }
        return lines
    }
}
