import Testing
import WaybillDefinition
import WaybillSimulator
import WaybillTestSupport

/// Customer returns through the participants of `Workflows/returns.yaml`: authorize, receive, inspect, restock per
/// line, credit; and the undo when the credit is refused.
@Suite struct ReturnLifecycleTests {
    let lines = OrderJSON.lines(["sku-a": 2, "sku-b": 1])

    func restock(
        _ saga: SagaCommands, branch: Int, sku: String, quantity: Int, undo: Bool = false
    )
        -> SimulatedCommand
    {
        saga.command(
            undo ? "inventory.unstock" : "inventory.restock", step: "restock", branch: branch,
            action: undo ? .compensate : .do,
            body: [
                "returnId": .string(saga.sagaId), "warehouse": "east", "sku": .string(sku),
                "quantity": .number(Double(quantity)),
            ])
    }

    @Test("a return is authorized, received, inspected, restocked and credited; stock and ledger add up")
    func completeReturn() throws {
        let participants = try simulator()
        let saga = SagaCommands(sagaId: "r-1")
        let before = participants.ledger().stock["east"]?["sku-a"] ?? 0

        let authorized = participants.handle(
            saga.command(
                "erp.return.authorize", step: "authorize",
                body: ["returnId": "r-1", "orderId": "o-1", "lines": lines]))
        let authorizationId = try #require(authorized.output?["authorizationId"]?.stringValue)
        let received = participants.handle(
            saga.command(
                "wms.return.receive", step: "receive",
                body: [
                    "returnId": "r-1", "authorizationId": .string(authorizationId), "warehouse": "east",
                    "lines": lines,
                ]))
        let receiptId = try #require(received.output?["receiptId"]?.stringValue)
        let inspected = participants.handle(
            saga.command(
                "qa.return.inspect", step: "inspect", body: ["returnId": "r-1", "receiptId": .string(receiptId)]))
        let resellable = try #require(inspected.output?["resellable"]?.arrayValue)
        let damaged = try #require(inspected.output?["damaged"]?.arrayValue)
        #expect(resellable.count + damaged.count == 2)
        let units = resellable.compactMap { $0["quantity"]?.intValue }.reduce(0, +)
        #expect(inspected.output?["refundAmount"] == .number(Double(units) * 12.5))

        for (branch, line) in resellable.enumerated() {
            let sku = try #require(line["sku"]?.stringValue)
            let quantity = try #require(line["quantity"]?.intValue)
            #expect(participants.handle(restock(saga, branch: branch, sku: sku, quantity: quantity)).isOK)
        }
        let credited = participants.handle(
            saga.command(
                "billing.credit.issue", step: "credit",
                body: ["returnId": "r-1", "customerId": "c-1", "amount": 25, "currency": "EUR"]))
        #expect(credited.output?["creditId"] == "crd-000001")

        let ledger = participants.ledger()
        #expect(ledger.returns["r-1"]?.status == .authorized)
        #expect(ledger.credits["r-1"] == "crd-000001")
        let restockedA = resellable.contains { $0["sku"] == "sku-a" } ? 2 : 0
        #expect(ledger.stock["east"]?["sku-a"] == before + restockedA)
        #expect(ledger.stockImbalances.isEmpty, "restocked units are accounted")
        #expect(ledger.effectMismatches.isEmpty)
        #expect(ledger.leaks(finishedSagas: ["r-1": .completed]).isEmpty)
    }

    @Test("a closed account refuses the credit; the undo takes the restocked units out and voids the return")
    func refusedCreditIsUndone() throws {
        let participants = try simulator()
        let saga = SagaCommands(sagaId: "r-2")
        _ = participants.handle(
            saga.command(
                "erp.return.authorize", step: "authorize", body: ["returnId": "r-2", "orderId": "o-2", "lines": lines]))
        #expect(participants.handle(restock(saga, branch: 0, sku: "sku-a", quantity: 2)).isOK)
        let refused = participants.handle(
            saga.command(
                "billing.credit.issue", step: "credit",
                body: ["returnId": "r-2", "customerId": "closed-c-2", "amount": 25]))
        #expect(refused.errorCode == "account_closed")
        #expect(refused.isRetryable == false)
        #expect(
            participants.ledger().leaks(finishedSagas: ["r-2": .compensated]).map(\.description).sorted() == [
                "saga r-2 still holds 2 × sku-a restocked in east", "saga r-2 still holds authorized return r-2",
            ])

        // Undone by the forward keys alone (the waybill-compensates header), as after a reply that never came.
        let unstock = participants.handle(restock(saga, branch: 0, sku: "sku-a", quantity: 2, undo: true))
        #expect(unstock.output?["undone"] == true)
        let void = participants.handle(
            saga.command("erp.return.void", step: "authorize", action: .compensate, body: ["returnId": .null]))
        #expect(void.output?["undone"] == true)
        let ledger = participants.ledger()
        #expect(ledger.leaks(finishedSagas: ["r-2": .compensated]).isEmpty)
        #expect(ledger.returns["r-2"]?.status == .voided)
        #expect(ledger.restocks.isEmpty)
        #expect(ledger.stockImbalances.isEmpty)
        #expect(ledger.effectMismatches.isEmpty)
        #expect(ledger.credits.isEmpty)
    }

    @Test("a parcel for a return that was never authorized is refused")
    func receiveNeedsAuthorization() throws {
        let participants = try simulator()
        let saga = SagaCommands(sagaId: "r-3")
        let received = participants.handle(
            saga.command(
                "wms.return.receive", step: "receive",
                body: ["returnId": "r-3", "authorizationId": "rma-x", "warehouse": "east", "lines": lines]))
        #expect(received.errorCode == "conflict")
    }

    @Test(
        "an undo that names a restock that never applied takes nothing, even when another branch restocked the same line"
    )
    func keyedUnstockTakesOnlyItsOwnRestock() throws {
        let participants = try simulator()
        let saga = SagaCommands(sagaId: "r-4")
        #expect(participants.handle(restock(saga, branch: 0, sku: "sku-a", quantity: 1)).isOK)
        let stock = participants.ledger().stock["east"]?["sku-a"]
        let undo = participants.handle(restock(saga, branch: 1, sku: "sku-a", quantity: 1, undo: true))
        #expect(undo.output?["undone"] == false)
        #expect(participants.ledger().stock["east"]?["sku-a"] == stock)
        #expect(participants.ledger().restocks.count == 1)
    }

    @Test("a return authorized again after a void (an operator's reset) counts both authorizations")
    func authorizeAfterVoid() throws {
        let participants = try simulator()
        let first = SagaCommands(sagaId: "r-5")
        let authorize: JSONValue = ["returnId": "r-5", "orderId": "o-5", "lines": lines]
        _ = participants.handle(first.command("erp.return.authorize", step: "authorize", body: authorize))
        _ = participants.handle(
            first.command("erp.return.void", step: "authorize", action: .compensate, body: ["returnId": "r-5"]))
        let again = participants.handle(
            first.command("erp.return.authorize", step: "authorize", round: 1, body: authorize))
        #expect(again.output?["authorizationId"] == "rma-000002")
        let ledger = participants.ledger()
        #expect(ledger.returns["r-5"]?.status == .authorized)
        #expect(ledger.returns["r-5"]?.authorizations == 2)
        #expect(ledger.returns["r-5"]?.voids == 1)
        #expect(ledger.effectMismatches.isEmpty, "\(ledger.effectMismatches)")
    }
}
