import Foundation
import SagaEngine
import SagaStore
import Synchronization
import Testing
import WaybillDefinition
import WaybillTestSupport

/// The operator's repair path end to end: a participant fails a step after the pivot, the operator finds the saga with
/// `waybill sagas stuck`, repairs it with `waybill sagas skip` / `retry` (the real CLI binary, over the worker's
/// control queue), and the journal records who did it and why.
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
struct OperatorRepairTests {
    /// Runs `waybill ARGS` with the broker settings in its environment and returns its exit status and output.
    static func waybill(_ arguments: [String], in scenario: Scenario) async throws -> (status: Int32, output: String) {
        let (url, password) = try TestBroker.urlAndPassword()
        return try await WaybillBinary.run(
            arguments,
            environment: [
                "WAYBILL_AMQP_URL": url, "WAYBILL_AMQP_PASSWORD": password ?? "", "USER": "test-operator",
                "WAYBILL_POOL_NAME": scenario.names.poolName,
            ])
    }

    @Test("stuck shows a saga suspended after the pivot; skip and retry through the CLI complete it, journaled")
    func suspendedSagaRepairedThroughTheCLI() async throws {
        let billingHealthy = Mutex(false)
        let script: Participant.Script = { command in
            guard command.routingKey == "billing.invoice.create", !billingHealthy.withLock({ $0 }) else { return nil }
            return .error("account_locked", retryable: false)
        }
        try await Scenario.run(script: script) { scenario in
            let worker = try await scenario.startWorker()
            try await scenario.placeOrder("o-skip")
            try await scenario.placeOrder("o-retry")
            try await scenario.placeOrder("o-reset")
            _ = try await scenario.waitForStatus("o-skip", .suspended, in: worker)
            _ = try await scenario.waitForStatus("o-retry", .suspended, in: worker)
            _ = try await scenario.waitForStatus("o-reset", .suspended, in: worker)
            let database = scenario.dataDirectory
            let workflow = scenario.names.workflow

            let stuck = try await Self.waybill(["sagas", "stuck", "--data-dir", database, "--json"], in: scenario)
            #expect(stuck.status == 0, "\(stuck.output)")
            let report = try JSONText.decode(stuck.output)
            let suspended = report["classes"]?.arrayValue?.first { $0["class"]?.stringValue == "suspended" }
            #expect(suspended?["count"]?.intValue == 3, "\(stuck.output)")

            let skip = try await Self.waybill(
                [
                    "sagas", "skip", "\(workflow)/o-skip", "--step", "invoice", "--output",
                    #"{"invoiceId":"manual-7"}"#,
                    "--reason", "invoiced by hand, ticket OPS-42", "--by", "alice", "--data-dir", database,
                ], in: scenario)
            #expect(skip.status == 0, "\(skip.output)")
            // The state printed is the one after the owner applied the skip (the last step: the saga completed).
            #expect(skip.output.contains("\(workflow)/o-skip  completed"), "\(skip.output)")
            let skipped = try await scenario.waitForStatus("o-skip", .completed, in: worker)
            #expect(skipped.instance.steps[try Scenario.stepIndex("invoice")].output == ["invoiceId": "manual-7"])

            // Refused locally: the saga is no longer suspended.
            let again = try await Self.waybill(
                [
                    "sagas", "skip", "\(workflow)/o-skip", "--step", "invoice", "--reason", "twice", "--data-dir",
                    database,
                ],
                in: scenario)
            #expect(again.status != 0, "\(again.output)")

            billingHealthy.withLock { $0 = true }
            let retry = try await Self.waybill(
                [
                    "sagas", "retry", "\(workflow)/o-retry", "--reason", "billing account unlocked", "--data-dir",
                    database,
                ],
                in: scenario)
            #expect(retry.status == 0, "\(retry.output)")
            // After the owner's answer: running the invoice again (or already completed), no longer suspended.
            #expect(
                retry.output.contains("\(workflow)/o-retry  running")
                    || retry.output.contains("\(workflow)/o-retry  completed"), "\(retry.output)")
            _ = try await scenario.waitForStatus("o-retry", .completed, in: worker)

            // Reset to the failed step after the pivot: nothing to undo (invoice has no compensation), so the owner
            // runs it again at once, under a new idempotency key.
            let reset = try await Self.waybill(
                [
                    "sagas", "reset", "\(workflow)/o-reset", "--to", "invoice", "--reason",
                    "billing fixed, run it again",
                    "--data-dir", database,
                ],
                in: scenario)
            #expect(reset.status == 0, "\(reset.output)")
            _ = try await scenario.waitForStatus("o-reset", .completed, in: worker)
            let invoices = scenario.participant.received(saga: "o-reset").filter {
                $0.routingKey == "billing.invoice.create"
            }
            #expect(
                invoices.count == 2 && Set(invoices.map(\.idempotencyKey)).count == 2,
                "\(invoices.map(\.idempotencyKey))")
            let resetJournal = try worker.store.journal(of: scenario.key("o-reset"))
            #expect(
                resetJournal.contains {
                    $0.entry.detail.contains("operator reset to invoice") && $0.entry.facts?["action"] == "reset"
                }, "\(resetJournal.map(\.entry.detail))")

            let skipJournal = try worker.store.journal(of: scenario.key("o-skip"))
            #expect(
                skipJournal.contains {
                    $0.entry.actor == "alice" && $0.entry.detail.contains("invoiced by hand, ticket OPS-42")
                }, "\(skipJournal.map(\.entry.detail))")
            let retryJournal = try worker.store.journal(of: scenario.key("o-retry"))
            #expect(
                retryJournal.contains {
                    $0.entry.actor == "test-operator" && $0.entry.detail.contains("billing account unlocked")
                }, "\(retryJournal.map(\.entry.detail))")
        }
    }
}
