import Testing
import WaybillDefinition
import WaybillSimulator
import WaybillTestSupport

/// Inventory's backorders: held first come first served, filled when arriving stock covers every line (the units
/// held for the backorder's shipments), released from the hold, cancelled with the hold given back.
@Suite struct BackorderTests {
    @Test func stockArrivesForOpenBackordersWhichAreFilledInOrderAndReleasedFromTheirHold() throws {
        let participants = try simulator()
        let first = SagaCommands(sagaId: "o-1")
        let second = SagaCommands(sagaId: "o-2")
        #expect(participants.handle(first.holdBackorder(OrderJSON.lines(["sku-b": 4]))).isOK)
        #expect(participants.handle(second.holdBackorder(OrderJSON.lines(["sku-b": 1, "sku-a": 2]))).isOK)
        let again = participants.handle(first.holdBackorder(OrderJSON.lines(["sku-b": 4])))
        #expect(again.output?["status"] == "open", "a redelivered hold gets the same answer")

        let events = participants.receiveStock()
        #expect(events.map(\.routingKey) == ["inventory.backorder.filled", "inventory.backorder.filled"])
        #expect(events.map { $0.body["orderId"] } == ["o-1", "o-2"], "first come, first served")
        // sku-b was stocked at east only (2 units): 3 arrive there, so east holds 4 for o-1 and 1 for o-2.
        let filled = try #require(events.first?.body["shipments"])
        #expect(filled == [["id": "o-1-bo-east", "warehouse": "east", "lines": [["sku": "sku-b", "quantity": 4]]]])
        var ledger = participants.ledger()
        #expect(ledger.arrivals == ["east": ["sku-b": 3]])
        #expect(ledger.stock["east"]?["sku-b"] == 0, "held units are out of the free stock")
        #expect(ledger.backorders["o-1"]?.heldUnits == 4)
        #expect(ledger.stockImbalances.isEmpty)
        #expect(
            participants.receiveStock().map { $0.body["orderId"] } == ["o-1", "o-2"],
            "nothing is open any more; the filled ones not released are announced again")

        let shipment = try #require(filled.arrayValue?.first)
        #expect(participants.handle(first.releaseBackorder(branch: 0, shipment: shipment)).isOK)
        ledger = participants.ledger()
        #expect(ledger.backorders["o-1"]?.heldUnits == 0)
        #expect(ledger.shipments["east"]?["o-1-bo-east"]?.lines == [.init(sku: "sku-b", quantity: 4)])
        #expect(ledger.stockImbalances.isEmpty)
        #expect(ledger.effectMismatches.isEmpty)
        #expect(ledger.leaks(finishedSagas: ["o-1": .completed]).isEmpty)
        #expect(
            ledger.leaks(finishedSagas: ["o-2": .completed]).map(\.description)
                == ["saga o-2 still holds backorder of o-2 holding 3 units"])
    }

    @Test func aDiscontinuedSKUNeverArrivesAndTheCancelGivesBackWhatWasHeld() throws {
        let participants = try simulator(discontinued: ["sku-b"])
        let waiting = SagaCommands(sagaId: "o-1")
        let filled = SagaCommands(sagaId: "o-2")
        #expect(participants.handle(waiting.holdBackorder(OrderJSON.lines(["sku-b": 3]))).isOK)
        #expect(participants.handle(filled.holdBackorder(OrderJSON.lines(["sku-a": 12]))).isOK)
        let events = participants.receiveStock()
        #expect(events.map { $0.body["orderId"] } == ["o-2"])
        #expect(participants.ledger().backorders["o-1"]?.status == .open)
        #expect(
            participants.ledger().leaks(finishedSagas: ["o-1": .completed]).map(\.description)
                == ["saga o-1 still holds open backorder of o-1"])

        let cancelled = participants.handle(waiting.cancelBackorder())
        #expect(cancelled.output?["undone"] == true)
        let twice = participants.handle(
            SagaCommands(sagaId: "o-1").command(
                "inventory.backorder.cancel", step: "again", body: ["orderId": "o-1"]))
        #expect(twice.output?["undone"] == false, "a second cancel finds nothing to undo")

        // o-2 was filled (12 of sku-a, 2 arrived at west): its cancel puts the held units back.
        #expect(participants.ledger().stock["west"]?["sku-a"] == 0)
        #expect(participants.handle(filled.cancelBackorder()).output?["unitsReturned"] == 12)
        let ledger = participants.ledger()
        #expect(ledger.stock["west"]?["sku-a"] == 12)
        #expect(ledger.backorders.values.map(\.status) == [.cancelled, .cancelled])
        #expect(ledger.stockImbalances.isEmpty)
        #expect(ledger.effectMismatches.isEmpty)
        #expect(ledger.leaks(finishedSagas: ["o-1": .completed, "o-2": .completed]).isEmpty)
    }

    @Test func theERPCancelsTheLinesOfAnAcceptedOrder() throws {
        let participants = try simulator()
        let saga = SagaCommands(sagaId: "o-1")
        let lines = OrderJSON.lines(["sku-b": 4])
        let unknown = participants.handle(
            saga.command("erp.order.lines.cancel", step: "cancel-lines", body: ["orderId": "o-1", "lines": lines]))
        #expect(!unknown.isOK, "an order the ERP does not have")
        #expect(participants.handle(saga.accept(lines)).isOK)
        let done = participants.handle(
            saga.command("erp.order.lines.cancel", step: "cancel-lines", body: ["orderId": "o-1", "lines": lines]))
        #expect(done.isOK)
        #expect(participants.ledger().orders["o-1"]?.cancelledLines == [.init(sku: "sku-b", quantity: 4)])
    }
}
