import Testing
import WaybillDefinition
import WaybillSimulator
import WaybillTestSupport

/// Whole orders through the participants: the happy path, redelivered commands, compensation, stock races.
@Suite struct OrderLifecycleTests {
    @Test func happyOrderRunsThroughEveryCommandAndTakesExactlyTheShippedUnits() throws {
        let participants = try simulator()
        let saga = SagaCommands(sagaId: "o-1")
        let ordered = OrderJSON.lines(["sku-a": 5, "sku-b": 2])

        let accepted = participants.handle(saga.accept(ordered))
        #expect(accepted.body == ["status": "ok", "output": ["orderId": "o-1"]])
        #expect(accepted.delay == .zero)

        let reserved = participants.handle(saga.reserve(ordered))
        #expect(reserved.isOK)
        let reservationId = try #require(reserved.output?["reservationId"]?.stringValue)
        // Current units on hand for the ordered SKUs, zero rows left out, sorted by warehouse then SKU.
        #expect(
            reserved.output?["stock"]
                == [
                    ["warehouse": "east", "sku": "sku-a", "quantity": 3],
                    ["warehouse": "east", "sku": "sku-b", "quantity": 2],
                    ["warehouse": "west", "sku": "sku-a", "quantity": 10],
                ])

        // The split step's plan: east ships what it has, west the rest of sku-a.
        let eastRelease = participants.handle(
            saga.release(branch: 0, warehouse: "east", OrderJSON.lines(["sku-a": 3, "sku-b": 2])))
        let westRelease = participants.handle(saga.release(branch: 1, warehouse: "west", OrderJSON.lines(["sku-a": 2])))
        #expect(eastRelease.output == ["shipmentId": "o-1-east", "warehouse": "east"])
        #expect(westRelease.output == ["shipmentId": "o-1-west", "warehouse": "west"])

        let eastShip = participants.handle(saga.ship(branch: 0, warehouse: "east"))
        let westShip = participants.handle(saga.ship(branch: 1, warehouse: "west"))
        let eastTracking = try #require(eastShip.output?["trackingId"]?.stringValue)
        let westTracking = try #require(westShip.output?["trackingId"]?.stringValue)
        #expect(eastTracking != westTracking)

        let invoiced = participants.handle(
            saga.invoice([try #require(eastShip.output), try #require(westShip.output)]))
        let invoiceId = try #require(invoiced.output?["invoiceId"]?.stringValue)

        let ledger = participants.ledger()
        #expect(ledger.stock == ["east": ["sku-a": 0, "sku-b": 0], "west": ["sku-a": 8, "sku-b": 0]])
        #expect(ledger.stockImbalances.isEmpty)
        #expect(ledger.orders["o-1"]?.status == .accepted)
        #expect(ledger.reservations.keys.sorted() == [reservationId])
        #expect(ledger.reservations[reservationId]?.orderId == "o-1")
        #expect(
            ledger.shipments["east"]?["o-1-east"]?.lines == [
                .init(sku: "sku-a", quantity: 3), .init(sku: "sku-b", quantity: 2),
            ])
        #expect(ledger.shipments["west"]?["o-1-west"]?.lines == [.init(sku: "sku-a", quantity: 2)])
        #expect(ledger.outstandingShipmentCount == 2)
        #expect(ledger.trackingIds == ["o-1-east": eastTracking, "o-1-west": westTracking])
        #expect(ledger.invoiceIds == ["o-1/o-1-east/o-1-west": invoiceId], "one invoice per order and delivery")
        let expectedEffects = [
            "erp.order.accept": 1, "inventory.reserve": 1, "wms.east.release": 1, "wms.west.release": 1,
            "tms.shipment.create": 2, "billing.invoice.create": 1,
        ]
        #expect(ledger.commands.mapValues(\.effectsApplied) == expectedEffects)
        #expect(ledger.totals.received == 7)
        #expect(ledger.totals.duplicatesAbsorbed == 0)
        // A completed order keeps its shipments and may keep its reservation: no leak.
        #expect(ledger.leaks(finishedSagas: ["o-1": .completed]).isEmpty)
        // Had it been compensated, all of it would still be held.
        #expect(
            ledger.leaks(finishedSagas: ["o-1": .compensated]).map(\.description) == [
                "saga o-1 still holds accepted order o-1",
                "saga o-1 still holds reservation \(reservationId)",
                "saga o-1 still holds shipment o-1-east in east",
                "saga o-1 still holds shipment o-1-west in west",
            ])
    }

    @Test func redeliveredCommandsGetTheSameReplyAndApplyTheirEffectOnce() throws {
        let participants = try simulator()
        let saga = SagaCommands(sagaId: "o-2")
        let ordered = OrderJSON.lines(["sku-a": 4])
        let commands = [
            saga.accept(ordered), saga.reserve(ordered),
            saga.release(branch: 0, warehouse: "west", OrderJSON.lines(["sku-a": 4])),
            saga.ship(branch: 0, warehouse: "west"), saga.invoice([["trackingId": "whatever"]]),
        ]
        for command in commands {
            let first = participants.handle(command)
            #expect(first.isOK, "\(command.routingKey) failed: \(String(describing: first.body))")
            // The same delivery again, then a retry of the same step (new message id and attempt, same key).
            var retry = command
            retry.messageId += "-retry"
            retry.attempt = 2
            #expect(participants.handle(command) == first, "redelivery of \(command.routingKey)")
            #expect(participants.handle(retry) == first, "retry of \(command.routingKey)")
        }

        let ledger = participants.ledger()
        for command in commands {
            let counts = ledger.counts(command.routingKey)
            #expect(counts.received == 3, "\(command.routingKey)")
            #expect(counts.effectsApplied == 1, "\(command.routingKey)")
            #expect(counts.duplicatesAbsorbed == 2, "\(command.routingKey)")
        }
        #expect(ledger.stock["west"]?["sku-a"] == 6)
        #expect(ledger.reservations.count == 1)
        #expect(ledger.trackingIds.count == 1)
        #expect(ledger.invoiceIds.count == 1)
        #expect(ledger.totals.duplicatesAbsorbed == 10)
    }

    @Test func theSameEffectUnderANewIdempotencyKeyIsNotAppliedTwice() throws {
        let participants = try simulator()
        let saga = SagaCommands(sagaId: "o-3")
        let take = OrderJSON.lines(["sku-a": 4])
        let first = participants.handle(saga.release(branch: 0, warehouse: "west", take))
        // An operator re-run of the branch (new key) for a shipment that is still out: nothing taken again.
        var rerun = saga.release(branch: 0, warehouse: "west", take)
        rerun.idempotencyKey += "/operator"
        #expect(participants.handle(rerun) == first)
        // The same shipment id with other lines is a conflict, and takes nothing either.
        var changed = saga.release(branch: 0, warehouse: "west", OrderJSON.lines(["sku-a": 5]))
        changed.idempotencyKey += "/changed"
        let conflict = participants.handle(changed)
        #expect(conflict.errorCode == "conflict")
        #expect(conflict.isRetryable == false)

        let ledger = participants.ledger()
        #expect(ledger.stock["west"]?["sku-a"] == 6)
        #expect(ledger.counts("wms.west.release").effectsApplied == 1)
        #expect(ledger.counts("wms.west.release").alreadyApplied == 1)
        #expect(ledger.counts("wms.west.release").businessErrors == 1)
    }

    @Test func compensationRestoresStockAndEndsEveryHold() throws {
        let participants = try simulator()
        let saga = SagaCommands(sagaId: "o-4")
        let ordered = OrderJSON.lines(["sku-a": 5, "sku-b": 2])
        #expect(participants.handle(saga.accept(ordered)).isOK)
        let reservationId = try #require(
            participants.handle(saga.reserve(ordered)).output?["reservationId"]?.stringValue)
        #expect(
            participants.handle(saga.release(branch: 0, warehouse: "east", OrderJSON.lines(["sku-a": 3, "sku-b": 2])))
                .isOK)
        #expect(participants.handle(saga.release(branch: 1, warehouse: "west", OrderJSON.lines(["sku-a": 2]))).isOK)
        #expect(participants.ledger().stock != twoWarehouses)

        // Reverse order of completion, as the engine compensates.
        let undo = [
            saga.cancelShipment(branch: 1, warehouse: "west"), saga.cancelShipment(branch: 0, warehouse: "east"),
            saga.releaseReservation(reservationId), saga.cancelOrder(),
        ]
        for command in undo {
            let response = participants.handle(command)
            #expect(response.output?["undone"] == true, "\(command.routingKey)")
        }

        let ledger = participants.ledger()
        #expect(ledger.stock == twoWarehouses)
        #expect(ledger.stock == ledger.initialStock)
        #expect(ledger.reservations.isEmpty)
        #expect(ledger.shipments.isEmpty)
        #expect(ledger.outstandingShipmentCount == 0)
        #expect(ledger.orders["o-4"]?.status == .cancelled)
        #expect(ledger.leaks(finishedSagas: ["o-4": .compensated]).isEmpty)
        #expect(ledger.totals.noOpCompensations == 0)

        // Compensating again under new keys finds nothing to undo: ok, counted, nothing changes.
        for var command in undo {
            command.idempotencyKey += "/again"
            let response = participants.handle(command)
            #expect(response.isOK)
            #expect(response.output?["undone"] == false, "\(command.routingKey)")
        }
        let after = participants.ledger()
        #expect(after.stock == twoWarehouses)
        #expect(after.totals.noOpCompensations == 4)
        #expect(after.counts("inventory.release").noOpCompensations == 1)
    }

    @Test func compensationsForThingsNeverMadeAreNoOps() throws {
        let participants = try simulator()
        let saga = SagaCommands(sagaId: "o-5")
        let responses = [
            participants.handle(saga.releaseReservation("rsv-999999")),
            participants.handle(saga.cancelShipment(branch: 0, warehouse: "east")),
            participants.handle(saga.cancelOrder()),
        ]
        #expect(responses.allSatisfy { $0.output?["undone"] == false })
        let ledger = participants.ledger()
        #expect(ledger.totals.noOpCompensations == 3)
        #expect(ledger.totals.effectsApplied == 0)
        #expect(ledger.stock == twoWarehouses)
        #expect(ledger.orders.isEmpty)
    }

    @Test func aLeakIsReportedOnlyForSagasThatShouldHaveUndoneIt() throws {
        let participants = try simulator()
        for id in ["done", "undone", "stopped", "stuck", "running"] {
            let saga = SagaCommands(sagaId: id)
            #expect(participants.handle(saga.reserve(OrderJSON.lines(["sku-a": 1]))).isOK)
            #expect(participants.handle(saga.release(branch: 0, warehouse: "west", OrderJSON.lines(["sku-a": 1]))).isOK)
        }
        let leaks = participants.leaks(finishedSagas: [
            "done": .completed, "undone": .compensated, "stopped": .cancelled, "stuck": .suspended,
        ])
        #expect(Set(leaks.map(\.sagaId)) == ["undone", "stopped"])
        #expect(
            leaks.filter { $0.sagaId == "undone" }.map(\.resource) == [
                .reservation(id: "rsv-000002"), .shipment(warehouse: "west", id: "undone-west"),
            ])
    }

    @Test func twoOrdersRacingForTheLastUnitsOneGetsOutOfStockAndNothingIsTakenFromIt() throws {
        let participants = try simulator()
        let first = SagaCommands(sagaId: "o-first")
        let second = SagaCommands(sagaId: "o-second")
        // Both reserved while east still had 3 of sku-a: both plans count on them.
        let firstStock = participants.handle(first.reserve(OrderJSON.lines(["sku-a": 3]))).output?["stock"]
        let secondStock =
            participants.handle(second.reserve(OrderJSON.lines(["sku-a": 2, "sku-b": 2]))).output?["stock"]
        #expect(firstStock?.arrayValue?.first == ["warehouse": "east", "sku": "sku-a", "quantity": 3])
        #expect(secondStock?.arrayValue?.first == ["warehouse": "east", "sku": "sku-a", "quantity": 3])

        #expect(participants.handle(first.release(branch: 0, warehouse: "east", OrderJSON.lines(["sku-a": 3]))).isOK)
        // The second order's shipment needs sku-a (gone) and sku-b (there): all or nothing.
        let lost = participants.handle(
            second.release(branch: 0, warehouse: "east", OrderJSON.lines(["sku-b": 2, "sku-a": 2])))
        #expect(lost.errorCode == "out_of_stock")
        #expect(lost.isRetryable == false)
        #expect(lost.body?["message"]?.stringValue?.contains("sku-a (needs 2, has 0)") == true)

        var ledger = participants.ledger()
        #expect(ledger.stock["east"] == ["sku-a": 0, "sku-b": 2])
        #expect(ledger.shipments["east"]?.keys.sorted() == ["o-first-east"])
        #expect(ledger.counts("wms.east.release").businessErrors == 1)

        // Not remembered: after reallocation to west (a new round, a new key) it succeeds; and a retry of the lost
        // key once stock is back runs again instead of replaying out_of_stock.
        #expect(
            participants.handle(second.release(branch: 0, warehouse: "west", OrderJSON.lines(["sku-a": 2]), round: 1))
                .isOK)
        #expect(participants.handle(first.cancelShipment(branch: 0, warehouse: "east")).isOK)
        let retried = participants.handle(
            second.release(branch: 0, warehouse: "east", OrderJSON.lines(["sku-b": 2, "sku-a": 2]), attempt: 2))
        #expect(retried.isOK)
        ledger = participants.ledger()
        #expect(ledger.stock["east"] == ["sku-a": 1, "sku-b": 0])
        #expect(ledger.stockImbalances.isEmpty)
    }

    @Test func parallelReleasesNeverOversellAWarehouse() async throws {
        let participants = try simulator(stock: ["hub": ["sku-a": 20]])
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for index in 0..<60 {
                group.addTask {
                    let saga = SagaCommands(sagaId: "p-\(index)")
                    return participants.handle(saga.release(branch: 0, warehouse: "hub", OrderJSON.lines(["sku-a": 1])))
                        .isOK
                }
            }
            var outcomes: [Bool] = []
            for await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
        #expect(outcomes.filter { $0 }.count == 20)
        let ledger = participants.ledger()
        #expect(ledger.stock["hub"]?["sku-a"] == 0)
        #expect(ledger.counts("wms.hub.release").effectsApplied == 20)
        #expect(ledger.counts("wms.hub.release").businessErrors == 40)
        #expect(ledger.outstandingShipmentCount == 20)
        #expect(ledger.stockImbalances.isEmpty)
    }
}
