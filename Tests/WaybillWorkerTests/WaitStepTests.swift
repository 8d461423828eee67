import Foundation
import SagaEngine
import SagaStore
import Testing
import WaybillTestSupport

@testable import WaybillWorker

/// A `wait` step through a real worker and broker: its timer is durable, so a worker that stops while the saga waits
/// leaves it to the next one, which lets the saga go on when the wait ends.
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
struct WaitStepTests {
    @Test("a saga waiting in a wait step survives its worker's stop and finishes under the next worker")
    func waitSurvivesARestart() async throws {
        let edits = WorkflowEdits(replacements: [
            (old: "  - id: invoice\n", new: "  - id: cooling-off\n    wait: { for: 1500ms }\n  - id: invoice\n")
        ])
        try await Scenario.run(edits: edits) { scenario in
            let first = try await scenario.startWorker(1)
            try await scenario.placeOrder("o-1")
            let key = scenario.key("o-1")
            try await eventually("o-1 to wait in cooling-off") {
                try first.store.saga(key)?.currentStep == "cooling-off"
            }
            let waiting = try #require(try first.store.saga(key))
            #expect(waiting.instance.status == .running)
            #expect(try first.store.timers(of: key).map(\.kind) == [.wait])
            try await first.stop()

            let second = try await scenario.startWorker(2)
            let done = try await scenario.waitForStatus("o-1", .completed, in: second)
            // accept, reserve, split, release, ship, cooling-off, invoice
            #expect(done.instance.steps.count == 7)
            let cooled = 5
            #expect(done.instance.steps[cooled].status == .succeeded)
            #expect(
                (done.instance.steps[cooled].output?["waitedMs"]?.intValue ?? 0) >= 1_500,
                "the wait ended no earlier than due")
            #expect(scenario.participant.received(saga: "o-1").last?.routingKey == "billing.invoice.create")
        }
    }
}
