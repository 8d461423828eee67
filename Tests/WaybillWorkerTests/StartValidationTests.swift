import Foundation
import SagaEngine
import Testing
import WaybillTestSupport

/// A start that does not have the shape the workflow's `input:` declares, end to end: the worker dead-letters it with
/// the JSON path of the first problem, it never becomes a saga, and the worker goes on with the next order.
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
struct StartValidationTests {
    @Test("a start without the workflow's input shape is dead-lettered with the JSON path and never becomes a saga")
    func refusedStart() async throws {
        try await Scenario.run { scenario in
            let worker = try await scenario.startWorker()
            try await scenario.publishStarts(
                [Data(#"{"orderId": 12345, "lines": [{"sku": "sku-1", "quantity": 1}]}"#.utf8)],
                messageIds: ["start-12345"])
            try await scenario.placeOrder("o-after")
            let dead = try await scenario.deadLetters(1)
            let reason = dead.first?.properties.headers["x-waybill-error"]?.stringValue ?? ""
            #expect(reason.hasPrefix("wire.bad_input"), "\(reason)")
            #expect(reason.contains("orderId"), "\(reason)")
            #expect(dead.first?.properties.messageID == "start-12345")
            try await scenario.waitForStatus("o-after", .completed, in: worker)
            #expect(try worker.store.saga(scenario.key("12345")) == nil)
        }
    }
}
