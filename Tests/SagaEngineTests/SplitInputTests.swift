import SagaEngine
import Testing
import WaybillDefinition
import WaybillTestSupport

/// The split step's inputs (docs/workflows.md, "The split step"): inputs the engine cannot turn into a request and
/// requests the planner rejects fail the step the same way.
@Suite("Split step inputs")
struct SplitInputTests {
    @Test(
        "stock of the wrong shape, or that the planner rejects, fails the split with invalid_split_input and compensates",
        arguments: [
            ("not an array", "none", "split stock must be an array of {warehouse, sku, quantity}, got string"),
            (
                "an entry without quantity", [["warehouse": "w1", "sku": "A"]],
                "split stock entry 0 needs string 'warehouse' and 'sku' and an integer 'quantity'"
            ),
            (
                "an entry without warehouse name", OrderJSON.stock([("", "A", 5)]),
                "stock[0] has no warehouse name; every stock row needs its warehouse"
            ),
        ] as [(String, JSONValue, String)])
    func invalidStock(label: String, stock: JSONValue, message: String) throws {
        let saga = FulfillmentSagaTests.released(
            stock: stock, order: OrderJSON.order("o-1", lines: [("A", 1)]))
        #expect(saga.instance.steps[2].status == .failed)
        let failure = try #require(saga.instance.failure)
        #expect(failure.step == "split")
        #expect(failure.error == StepError(code: "invalid_split_input", message: message, retryable: false))
        #expect(saga.instance.status == .compensating)
        #expect(saga.last.commands.map(\.routingKey) == ["inventory.release"])
    }
}
