import AMQPTransport
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
            // The shipped steps with cooling-off where invoice was.
            let cooled = try Scenario.stepIndex("invoice")
            #expect(done.instance.steps.count == (try Scenario.stepIndex("cancel-lines")) + 2)
            #expect(done.instance.steps[cooled].status == .succeeded)
            #expect(
                (done.instance.steps[cooled].output?["waitedMs"]?.intValue ?? 0) >= 1_500,
                "the wait ended no earlier than due")
            #expect(scenario.participant.received(saga: "o-1").last?.routingKey == "billing.invoice.create")
        }
    }

    /// The order-fulfillment workflow with a wait for the order's payment message before the split.
    static func paymentWait(_ names: TestNames, timeout: String, onTimeout: String? = nil) -> WorkflowEdits {
        let wait = """
              - id: payment
                wait:
                  message: { exchange: \(names.signalExchange), routing_key: payment.*.confirmed }
                  match: "${input.orderId}"
                  key: "${message.orderId}"
                  timeout: \(timeout)

            """
        return WorkflowEdits(replacements: [(old: "  - id: split\n", new: wait + "  - id: split\n")])
    }

    /// Publishes a message to the test's signal exchange, confirmed.
    static func signal(_ body: String, routingKey: String, in scenario: Scenario) async throws {
        let outcomes = try await scenario.client.publish([
            OutboundMessage(
                exchange: scenario.names.signalExchange, routingKey: routingKey, body: Data(body.utf8),
                persistent: true, contentType: "application/json")
        ])
        #expect(outcomes.allSatisfy { $0.isConfirmed }, "\(outcomes)")
    }

    @Test(
        "a saga waits for its message across a worker restart; another order's message and a bad one leave it waiting")
    func messageSurvivesARestart() async throws {
        try await Scenario.run { scenario in
            try scenario.rewriteWorkflow(Self.paymentWait(scenario.names, timeout: "1h"))
            let first = try await scenario.startWorker(1)
            try await scenario.placeOrder("o-1")
            try await scenario.placeOrder("o-2")
            try await eventually("o-1 and o-2 to wait for their payments") {
                try first.store.sagas([scenario.key("o-1"), scenario.key("o-2")]).values.filter {
                    $0.currentStep == "payment"
                }.count == 2
            }
            let recorded = try first.store.awaitedMessages(of: scenario.key("o-1"))
            #expect(recorded.map(\.match) == ["o-1"])
            #expect(recorded.map(\.routingKey) == ["payment.*.confirmed"])
            #expect(recorded.map(\.exchange) == [scenario.names.signalExchange])

            // Every partition queue gets its own copy; the one that cannot be read is dead-lettered once.
            try await Self.signal("not json", routingKey: "payment.card.confirmed", in: scenario)
            let dead = try await scenario.deadLetters(1)
            #expect(dead.first?.properties.headers["x-waybill-error"]?.stringValue?.hasPrefix("wire.not_json") == true)
            try await Self.signal(#"{"orderId": "o-9"}"#, routingKey: "payment.card.confirmed", in: scenario)
            try await Self.signal(
                #"{"orderId": "o-1", "amount": 12}"#, routingKey: "payment.card.confirmed", in: scenario)
            let paid = try await scenario.waitForStatus("o-1", .completed, in: first)
            #expect(paid.instance.steps[2].output == ["orderId": "o-1", "amount": 12])
            #expect(try first.store.awaitedMessages(of: scenario.key("o-1")).isEmpty)
            #expect(try first.store.saga(scenario.key("o-2"))?.currentStep == "payment")
            try await first.stop()

            let second = try await scenario.startWorker(2)
            try await Self.signal(#"{"orderId": "o-2"}"#, routingKey: "payment.sepa.confirmed", in: scenario)
            let done = try await scenario.waitForStatus("o-2", .completed, in: second)
            #expect(done.instance.steps[2].status == .succeeded)
            let journal = try second.store.journal(of: scenario.key("o-2")).map(\.entry.kind)
            #expect(journal.filter { $0 == .signal }.count == 1)
            let deadLetters = try await scenario.client.inspectQueue(scenario.names.deadLetterQueue)
            #expect(deadLetters.messageCount == 0, "the other copies of the bad message were acknowledged")
        }
    }

    @Test("a message queued right behind the reply that starts the wait reaches the saga, whatever the batches")
    func messageRightBehindTheReply() async throws {
        let script: Participant.Script = { command in command.step == "reserve" ? .hold : nil }
        try await Scenario.run(script: script) { scenario in
            try scenario.rewriteWorkflow(Self.paymentWait(scenario.names, timeout: "1h"))
            let first = try await scenario.startWorker(1)
            try await scenario.placeOrder("o-4")
            try await scenario.participant.waitUntil("the reserve") { $0.contains { $0.step == "reserve" } }
            try await first.stop()
            // With no worker running, the reply and then the message wait in the saga's partition queue: the next
            // worker may take them in one batch (the wait is not committed when the message is decided) or in two.
            #expect(try await scenario.participant.answerHeld() == 1)
            try await Self.signal(
                #"{"orderId": "o-4", "amount": 7}"#, routingKey: "payment.card.confirmed", in: scenario)
            let second = try await scenario.startWorker(2)
            let done = try await scenario.waitForStatus("o-4", .completed, in: second)
            // payment's output is the message.
            #expect(done.instance.steps[2].output == ["orderId": "o-4", "amount": 7])
            let signals = try second.store.journal(of: scenario.key("o-4")).filter { $0.entry.kind == .signal }
            #expect(signals.count == 1, "the message ended the wait once: \(signals.map(\.entry.detail))")
        }
    }

    @Test("a wait whose message never comes times out and the saga compensates with wait_timeout")
    func messageTimesOut() async throws {
        try await Scenario.run { scenario in
            try scenario.rewriteWorkflow(Self.paymentWait(scenario.names, timeout: "1500ms"))
            let worker = try await scenario.startWorker(1)
            try await scenario.placeOrder("o-3")
            let undone = try await scenario.waitForStatus("o-3", .compensated, in: worker)
            #expect(undone.instance.failure?.error.code == "wait_timeout")
            #expect(undone.instance.failure?.step == "payment")
            #expect(
                scenario.participant.received(saga: "o-3").map(\.routingKey).suffix(2)
                    == ["inventory.release", "erp.order.cancel"])
            #expect(try worker.store.awaitedMessages(of: scenario.key("o-3")).isEmpty)
        }
    }
}
