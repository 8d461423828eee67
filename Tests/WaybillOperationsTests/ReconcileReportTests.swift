import Foundation
import SagaEngine
import Testing
import WaybillDefinition
import WaybillTestSupport

@testable import WaybillOperations

/// A reconciliation's report: kept per pass, read back, grouped for people, and its unrepaired drift on the stuck
/// board.
@Suite struct ReconcileReportTests {
    static func finding(
        _ sagaId: String, _ step: String, _ participant: String, _ kind: ReconcileFinding.Kind, repair: String? = nil
    ) -> ReconcileFinding {
        ReconcileFinding(
            workflow: "order-fulfillment", sagaId: sagaId,
            sagaStatus: kind == .leakedEffect ? "compensated" : "completed",
            step: step, participant: participant, query: "\(participant).status", idempotencyKey: "\(sagaId)/\(step)",
            kind: kind, expected: kind == .leakedEffect ? "not_applied" : "applied",
            observed: kind == .unanswered ? nil : "absent", message: "\(kind.rawValue) of \(sagaId)",
            details: ["bin": "A1"], repairable: kind == .leakedEffect, repair: repair, journaled: true)
    }

    static let report = ReconcileReport(
        id: "20261206T120000Z", startedAt: 1_765_022_400_000, finishedAt: 1_765_022_402_500, by: "alice",
        since: 1_764_936_000_000, workflow: nil, dryRun: false, repair: true,
        sagas: ["completed": 90, "compensated": 10], queries: ["erp": 100, "inventory": 100, "wms": 130], answered: 329,
        findings: [
            finding("o-1", "release[0]", "wms", .leakedEffect, repair: "repaired"),
            finding("o-2", "release[1]", "wms", .leakedEffect, repair: "not repaired: still applied"),
            finding("o-3", "reserve", "inventory", .missingEffect),
            finding("o-4", "release[0]", "wms", .leakedEffect, repair: "repaired"),
            finding("o-5", "accept", "erp", .unanswered),
        ],
        observations: [
            ReconcileObservation(
                workflow: "order-fulfillment", sagaId: "o-9", step: "accept", participant: "erp", observed: "applied")
        ])

    @Test func keptPerPassAndReadBack() throws {
        let directory = try TemporaryDirectory()
        let reports = ReconcileReports(dataDirectory: directory.path)
        #expect(throws: OperationsError.self) { try reports.load() }
        try reports.save(Self.report)
        var later = Self.report
        later.id = "20261206T130000Z"
        later.findings = []
        try reports.save(later)
        #expect(reports.ids() == ["20261206T120000Z", "20261206T130000Z"])
        #expect(try reports.load() == later, "the latest by default")
        #expect(try reports.load("20261206T120000Z") == Self.report)
        #expect(throws: OperationsError.self) { try reports.load("20250101T000000Z") }
    }

    @Test func groupedByWorkflowStepParticipantAndKind() {
        let groups = ReconcileView.groups(Self.report)
        #expect(
            groups.map { "\($0.0.step) \($0.0.participant) \($0.0.kind.rawValue) \($0.count) \($0.repaired)" } == [
                "accept erp unanswered 1 0", "release wms leaked_effect 3 2", "reserve inventory missing_effect 1 0",
            ])
        let text = ReconcileView.text(Self.report)
        #expect(
            text.hasPrefix(
                "reconciliation 20261206T120000Z by alice: 100 sagas (10 compensated, 90 completed), 330 queries, 329 answered in 2s"
            ), "\(text)")
        #expect(text.contains("findings: 5 (4 drift, 2 repaired)"), "\(text)")
        #expect(text.contains("suspended sagas (reported, not judged): applied 1"), "\(text)")
        let json = ReconcileView.json(Self.report)
        #expect(json["groups"]?.arrayValue?.count == 3)
        #expect(json["findings"]?.arrayValue?[1]["repair"] == "not repaired: still applied")
        #expect(json["durationMs"] == 2_500)
    }

    @Test func unrepairedDriftGoesOnTheStuckBoard() {
        #expect(ReconcileView.needsOperator(Self.report).map(\.sagaId) == ["o-2", "o-3"])
        let section = ReconcileView.stuckSection(ReconcileView.needsOperator(Self.report))
        #expect(section.contains("drift found by reconciliation and not resolved"), "\(section)")
        #expect(section.contains("order-fulfillment/o-2") && section.contains("order-fulfillment/o-3"))
        #expect(!section.contains("order-fulfillment/o-1 ") && !section.contains("order-fulfillment/o-5"), "\(section)")
        #expect(ReconcileView.stuckSection([]).isEmpty)
    }

    @Test("open drift stays across passes until a pass asks about the effect again and finds it right")
    func openDriftAcrossPasses() throws {
        let directory = try TemporaryDirectory()
        let reports = ReconcileReports(dataDirectory: directory.path)
        #expect(reports.openDrift().isEmpty)
        try reports.updateOpenDrift(asked: Set(Self.report.findings.map(\.effect)), found: Self.report.findings)
        #expect(reports.openDrift().map(\.sagaId) == ["o-2", "o-3"], "unrepaired drift only")

        // A narrower pass that asks about o-3 only, and finds it right: o-2 stays open, o-3 leaves.
        let o3 = try #require(Self.report.findings.first { $0.sagaId == "o-3" })
        try reports.updateOpenDrift(asked: [o3.effect], found: [])
        #expect(reports.openDrift().map(\.sagaId) == ["o-2"])
        // A pass that finds o-2 again keeps it once.
        let o2 = try #require(Self.report.findings.first { $0.sagaId == "o-2" })
        try reports.updateOpenDrift(asked: [o2.effect], found: [o2])
        #expect(reports.openDrift().map(\.sagaId) == ["o-2"])
        #expect(!reports.ids().contains("open-drift"), "not a pass")
    }
}
