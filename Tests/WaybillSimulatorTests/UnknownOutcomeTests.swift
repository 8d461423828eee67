import Testing
import WaybillDefinition
import WaybillSimulator
import WaybillTestSupport

/// Compensations of commands whose reply never came: the participant finds the effect by the `waybill-compensates`
/// key alone, answers ok when there is nothing to undo, and keeps the undo final (docs/wire.md).
@Suite struct UnknownOutcomeTests {
    static let take = OrderJSON.lines(["sku-a": 2])

    @Test func undoingACommandThatNeverTookEffectIsOkWithNothingToUndo() throws {
        let participants = try simulator(behaviours: [CommandBehaviour(pattern: "wms.east.release", silenceRate: 1)])
        let saga = SagaCommands(sagaId: "u-1")
        #expect(participants.handle(saga.release(branch: 0, warehouse: "east", Self.take)) == .silence)

        // As the engine sends it when the release's reply never came: the body's id may be null.
        var undo = saga.cancelShipment(branch: 0, warehouse: "east")
        undo.body = .json(["shipmentId": .null])
        let answer = participants.handle(undo)
        #expect(answer.isOK)
        #expect(answer.output == ["shipmentId": .null, "undone": false])
        let ledger = participants.ledger()
        #expect(ledger.counts("wms.east.cancel").noOpCompensations == 1)
        #expect(ledger.counts("wms.east.cancel").badRequests == 0)
        #expect(ledger.stock == twoWarehouses)
    }

    @Test func anEffectWhoseReplyWasLostIsFoundByTheCompensatesKeyAlone() throws {
        let participants = try simulator(behaviours: [
            CommandBehaviour(pattern: "wms.east.release", lostReplyRate: 1),
            CommandBehaviour(pattern: "inventory.reserve", lostReplyRate: 1),
        ])
        let saga = SagaCommands(sagaId: "u-2")
        #expect(participants.handle(saga.reserve(Self.take)) == .silence)
        #expect(participants.handle(saga.release(branch: 0, warehouse: "east", Self.take)) == .silence)
        var ledger = participants.ledger()
        #expect(ledger.reservations.count == 1)
        #expect(ledger.stock["east"]?["sku-a"] == 1)

        var cancel = saga.cancelShipment(branch: 0, warehouse: "east")
        cancel.body = .json([:])
        #expect(participants.handle(cancel).output == ["shipmentId": "u-2-east", "undone": true])
        var release = saga.releaseReservation("ignored")
        release.body = .json(["reservationId": .null])
        let released = participants.handle(release)
        #expect(released.output?["undone"] == true)

        ledger = participants.ledger()
        #expect(ledger.reservations.isEmpty)
        #expect(ledger.shipments.isEmpty)
        #expect(ledger.stock == twoWarehouses)
        #expect(ledger.counts("wms.east.cancel").effectsApplied == 1)
        #expect(ledger.leaks(finishedSagas: ["u-2": .compensated]).isEmpty)
    }

    @Test func theKeyWinsOverTheBodyAndTheBodyStillWorksWithoutAKey() throws {
        let participants = try simulator()
        let first = SagaCommands(sagaId: "u-3")
        let second = SagaCommands(sagaId: "u-4")
        #expect(participants.handle(first.release(branch: 0, warehouse: "east", Self.take)).isOK)
        #expect(participants.handle(second.release(branch: 0, warehouse: "west", Self.take)).isOK)

        // The key names u-3's shipment; a body naming another one does not redirect the undo.
        var keyed = first.cancelShipment(branch: 0, warehouse: "east")
        keyed.body = .json(["shipmentId": "u-4-west"])
        #expect(participants.handle(keyed).output == ["shipmentId": "u-3-east", "undone": true])
        // Without the header, the body decides, as before.
        var unkeyed = second.cancelShipment(branch: 0, warehouse: "west")
        unkeyed.compensates = nil
        #expect(participants.handle(unkeyed).output == ["shipmentId": "u-4-west", "undone": true])
        #expect(participants.ledger().shipments.isEmpty)
    }

    @Test func theShippedWorkflowReleasesAReservationByItsOrderId() throws {
        let participants = try simulator()
        let saga = SagaCommands(sagaId: "u-5")
        #expect(participants.handle(saga.reserve(Self.take)).isOK)
        var release = saga.releaseOrderReservation()
        release.compensates = nil
        #expect(participants.handle(release).output?["undone"] == true)
        #expect(participants.ledger().reservations.isEmpty)
        #expect(participants.handle(saga.releaseOrderReservation(attempt: 2)).output?["undone"] == true)
    }

    @Test func aForwardCommandArrivingAfterItsUndoIsRefusedAndAppliesNothing() throws {
        let participants = try simulator(behaviours: [CommandBehaviour(pattern: "wms.east.release", silenceRate: 1)])
        let saga = SagaCommands(sagaId: "u-6")
        #expect(participants.handle(saga.release(branch: 0, warehouse: "east", Self.take)) == .silence)
        #expect(participants.handle(saga.cancelShipment(branch: 0, warehouse: "east")).output?["undone"] == false)

        // A redelivery of the forward command after its compensation ran.
        try participants.setBehaviours([])
        let late = participants.handle(saga.release(branch: 0, warehouse: "east", Self.take, attempt: 2))
        #expect(late.errorCode == "already_compensated")
        #expect(late.isRetryable == false)
        let ledger = participants.ledger()
        #expect(ledger.shipments.isEmpty)
        #expect(ledger.stock == twoWarehouses)
        #expect(ledger.counts("wms.east.release").businessErrors == 1)
        #expect(ledger.leaks(finishedSagas: ["u-6": .compensated]).isEmpty)
    }

    @Test func anUndoWithNoIdAndNoKeyIsStillABadRequest() throws {
        let participants = try simulator()
        var undo = SagaCommands(sagaId: "u-7").cancelShipment(branch: 0, warehouse: "east")
        undo.compensates = nil
        undo.body = .json(["shipmentId": .null])
        #expect(participants.handle(undo).errorCode == "bad_request")
    }
}
