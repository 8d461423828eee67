import Foundation
import SagaEngine
import SagaStore
import Testing
import WaybillDefinition
import WaybillTestSupport

@testable import WaybillWorker

/// `waybill workflows migrate` against real workers: a dry run says what would move and why the rest cannot, a bad
/// mapping is refused with nothing sent, and a real run moves waiting sagas through their owner, journaled and
/// verified, after which they finish on the new version.
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
struct MigrationRunTests {
    @Test("dry run, refused mapping, then a real migration of two waiting sagas that finish on the new version")
    func migrateWaitingSagas() async throws {
        try await Scenario.run { scenario in
            try scenario.rewriteWorkflow(WaitStepTests.paymentWait(scenario.names, timeout: "1h"))
            let first = try await scenario.startWorker(1)
            try await scenario.placeOrder("o-1")
            try await scenario.placeOrder("o-2")
            try await eventually("both orders to wait for their payments") {
                try first.store.sagas([scenario.key("o-1"), scenario.key("o-2")]).values.filter {
                    $0.currentStep == "payment" && $0.instance.version == 2
                }.count == 2
            }
            try await first.stop()

            // Version 3 renames the wait and issues invoices through another command.
            var edits = WaitStepTests.paymentWait(scenario.names, timeout: "1h")
            edits.replacements += [
                (old: "version: 2 ", new: "version: 3 "), (old: "- id: payment\n", new: "- id: await-payment\n"),
                (old: "command: billing.invoice.create", new: "command: billing.invoice.issue"),
            ]
            try scenario.rewriteWorkflow(edits)
            let second = try await scenario.startWorker(2)
            let migrate = [
                "workflows", "migrate", "--workflow", scenario.names.workflow, "--from", "2", "--to", "3",
                "--data-dir", scenario.dataDirectory,
            ]

            let unmapped = try await OperatorRepairTests.waybill(migrate + ["--dry-run"], in: scenario)
            #expect(unmapped.status == 0, "\(unmapped.output)")
            #expect(unmapped.output.contains("waits at 'payment', which v3 does not have"), "\(unmapped.output)")
            #expect(unmapped.output.contains("0 sagas would be sent"), "\(unmapped.output)")

            let mapped = try await OperatorRepairTests.waybill(
                migrate + ["--map", "payment=await-payment", "--dry-run"], in: scenario)
            #expect(mapped.output.contains("2 sagas would be sent"), "\(mapped.output)")
            #expect(mapped.output.contains("v2 → v3 at 'await-payment', running"), "\(mapped.output)")

            let lossy = try await OperatorRepairTests.waybill(
                migrate + ["--map", "payment=await-payment", "--map", "reserve=split", "--reason", "try"], in: scenario)
            #expect(lossy.status != 0)
            #expect(lossy.output.contains("sagas that ran it could no longer be compensated"), "\(lossy.output)")
            #expect(try second.store.saga(scenario.key("o-1"))?.instance.version == 2, "nothing was sent")

            let run = try await OperatorRepairTests.waybill(
                migrate + ["--map", "payment=await-payment", "--reason", "invoices move to billing.invoice.issue"],
                in: scenario)
            #expect(run.status == 0, "\(run.output)")
            #expect(run.output.contains("Verify: 2 of 2 sent sagas run v3 now"), "\(run.output)")
            let moved = try #require(try second.store.saga(scenario.key("o-1")))
            #expect(moved.instance.version == 3 && moved.currentStep == "await-payment")
            let journal = try second.store.journal(of: scenario.key("o-1")).map(\.entry)
            #expect(
                journal.contains { $0.kind == .operatorCommand && $0.detail.contains("migrate to") && $0.actor != nil },
                "\(journal.map(\.detail))")

            try await WaitStepTests.signal(#"{"orderId": "o-1"}"#, routingKey: "payment.card.confirmed", in: scenario)
            _ = try await scenario.waitForStatus("o-1", .completed, in: second)
            #expect(scenario.participant.received(saga: "o-1").last?.routingKey == "billing.invoice.issue")
        }
    }
}
