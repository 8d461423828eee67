import Foundation
import SagaEngine
import SagaStore
import Testing
import WaybillDefinition
import WaybillDemo
import WaybillOperations
import WaybillSimulator
import WaybillTestSupport

/// `waybill reconcile` against a real pool, broker and the simulated participants' books: drift injected on purpose
/// (undos the participants dropped, effects they lost) is found, journaled on its saga and, where the saga undid the
/// effect, repaired; a run without drift finds nothing.
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason), .timeLimit(.minutes(3)))
struct ReconciliationTests {
    static func options(orders: Int, driftRate: Double, in directory: TemporaryDirectory) throws -> DemoOptions {
        var options = try DemoRunnerTests.options(orders: orders, failureRate: 0, in: directory)
        options.returns = 0
        options.driftRate = driftRate
        options.backorderDeadline = .seconds(2)
        options.arrivalInterval = .milliseconds(500)
        // Paced and on one worker, so the rest of the suite (some of it with one-second reply timeouts) keeps its CPU.
        options.workers = 1
        options.rate = 150
        return options
    }

    /// Whether `instance` kept the effect keyed `key` (`<saga>/<step>[/<branch>][/r<round>]`): the branch of that
    /// index and round succeeded.
    static func kept(_ key: String, in instance: SagaInstance, workflow file: String) -> Bool {
        let parts = key.split(separator: "/").map(String.init)
        guard parts.count >= 2, let definition = try? WorkflowLoader.load(WorkflowSource.read(file: file)),
            let step = definition.stepIndex(of: parts[1])
        else { return false }
        let index = parts.count > 2 ? Int(parts[2]) ?? 0 : 0
        let round = parts.last.flatMap { $0.hasPrefix("r") ? Int($0.dropFirst()) : nil } ?? 0
        let branches = instance.steps[step].branches
        return index < branches.count && branches[index].round == round && branches[index].status == .succeeded
    }

    @Test("dropped undos are found as leaked effects and repaired; lost effects of completed sagas as missing ones")
    func injectedDriftIsFoundAndRepaired() async throws {
        let directory = try TemporaryDirectory()
        let options = try Self.options(orders: 300, driftRate: 0.3, in: directory)
        let summary = try await DemoRunner.run(options, logger: TestBroker.logger("demo"), progress: { _ in })
        #expect(summary.everySagaEnded, "\(summary.text)")
        let reconciliation = try #require(summary.reconciliation, "\(summary.text)")
        let report = reconciliation.report
        #expect(report.sagaCount == 300)
        #expect(report.answered == report.queryCount && report.queryCount > 3 * 300, "\(summary.text)")
        #expect(!reconciliation.droppedUndoKeys.isEmpty && !reconciliation.lostEffectKeys.isEmpty, "drift injected")

        // Every dropped undo whose effect was in place is a leaked effect, and nothing else is.
        let leaked = report.findings.filter { $0.kind == .leakedEffect }
        let heldAfterDrop = reconciliation.droppedUndoKeys.filter { reconciliation.injectedStates[$0] != "absent" }
        #expect(Set(leaked.map(\.idempotencyKey)) == heldAfterDrop, "\(summary.text)")
        // The repair sends the undo again (the participants may drop that too: up to three times).
        let repaired = leaked.filter { $0.repair == "repaired" }
        let unrepaired = leaked.filter { $0.repair != "repaired" }
        #expect(!repaired.isEmpty)
        #expect(unrepaired.allSatisfy { $0.repair?.hasPrefix("not repaired") == true }, "\(unrepaired)")
        #expect(repaired.allSatisfy { reconciliation.injectedStates[$0.idempotencyKey] == "undone" })

        // Every lost effect of a saga that completed keeping it is a missing effect; one of a saga that compensated
        // (or of a branch a reallocation replaced) was undone anyway, so it is not drift.
        let inspector = try SagaInspector(dataDirectory: options.dataDirectory)
        var completedLost: Set<String> = []
        for key in reconciliation.lostEffectKeys {
            let sagaId = String(key.prefix { $0 != "/" })
            let saga = try #require(try inspector.saga(inspector.resolve(SagaReference(parsing: sagaId))))
            // Drift only where the saga kept the effect: its branch of that round still succeeded (a reallocation
            // may have replaced it, undoing what was lost anyway).
            if saga.instance.status == .completed, Self.kept(key, in: saga.instance, workflow: options.workflowFile) {
                completedLost.insert(key)
            }
        }
        let missing = report.findings.filter { $0.kind == .missingEffect }
        #expect(Set(missing.map(\.idempotencyKey)) == completedLost, "\(summary.text)")
        #expect(missing.allSatisfy { $0.repair == nil && !$0.repairable })
        #expect(report.findings.allSatisfy { $0.kind.isDrift }, "nothing unanswered: \(report.findings)")

        // Each finding is in its saga's journal, and the pass is kept for `waybill reconcile report`.
        #expect(report.findings.allSatisfy { $0.journaled })
        let finding = try #require(repaired.first)
        let journal = try inspector.journal(of: finding.key)
        let note = try #require(
            journal.last { $0.kind == "note" && $0.facts?["idempotencyKey"] == .string(finding.idempotencyKey) },
            "\(journal.map(\.detail))")
        #expect(note.actor == "demo")
        #expect(note.facts?["reconcile"] == "leaked_effect")
        #expect(note.facts?["repair"] == "repaired")
        #expect(note.detail.contains("reconciliation found leaked_effect"), "\(note.detail)")
        #expect(try ReconcileReports(dataDirectory: options.dataDirectory).load() == report)

        // After the repairs only the missing effects (and any undo dropped every time) are left.
        #expect(
            Set(reconciliation.recheck.findings.map(\.idempotencyKey))
                == completedLost.union(unrepaired.map(\.idempotencyKey)))
        if unrepaired.isEmpty {
            #expect(summary.leakedReservations == 0 && summary.otherLeaks.isEmpty, "\(summary.text)")
        }
        #expect(summary.duplicateEffects == 0, "\(summary.duplicateEffectDetails)")
        #expect(summary.text.contains("Reconciliation (every effect"), "\(summary.text)")
    }

    @Test("a clean run of 1,000 sagas has nothing to find")
    func cleanRunFindsNothing() async throws {
        let directory = try TemporaryDirectory()
        let options = try Self.options(orders: 1_000, driftRate: 0, in: directory)
        let summary = try await DemoRunner.run(options, logger: TestBroker.logger("demo"), progress: { _ in })
        #expect(summary.everySagaEnded, "\(summary.text)")
        let report = try #require(summary.reconciliation?.report, "\(summary.text)")
        #expect(report.sagaCount == 1_000)
        #expect((report.sagas["compensated"] ?? 0) > 0 && (report.sagas["completed"] ?? 0) > 0, "\(report.sagas)")
        #expect(report.queryCount > 3_000 && report.answered == report.queryCount)
        #expect(report.findings.isEmpty, "\(report.findings.prefix(5))")
        #expect(report.observations.isEmpty)
    }
}
