import Testing
import WaybillDefinition
import WaybillSimulator
import WaybillTestSupport

/// The participants answer a reconciliation's verify queries from their books, by the forward command's idempotency
/// key, and drift on purpose when told to: an undo answered ok and dropped, or an effect lost after its ok reply.
@Suite struct VerifyQueryTests {
    /// A verify query about the forward command keyed `key`.
    static func verify(_ key: String, routingKey: String = "inventory.reservation.status") -> SimulatedCommand {
        SimulatedCommand(
            routingKey: routingKey, messageId: "q-\(key)", idempotencyKey: key, action: .verify, sagaId: "v",
            json: [:])
    }

    static func state(_ participants: ParticipantSimulator, _ key: String) -> JSONValue? {
        participants.handle(verify(key)).output?["state"]
    }

    @Test func appliedThenUndoneAndAbsentForAKeyNeverSeen() throws {
        let participants = try simulator()
        let saga = SagaCommands(sagaId: "v-1")
        #expect(Self.state(participants, "v-1/release/0") == "absent")
        #expect(participants.handle(saga.release(branch: 0, warehouse: "west", OrderJSON.lines(["sku-a": 2]))).isOK)
        #expect(Self.state(participants, "v-1/release/0") == "applied")
        #expect(
            participants.handle(Self.verify("v-1/release/0")).output?["details"] == [
                "effect": "shipment v-1-west at west"
            ])
        #expect(participants.handle(saga.cancelShipment(branch: 0, warehouse: "west")).isOK)
        #expect(Self.state(participants, "v-1/release/0") == "undone")
        #expect(participants.effectState(ofKey: "v-1/release/0") == "undone")

        // A query changes nothing and is counted apart from the commands.
        let counts = participants.ledger().counts("inventory.reservation.status")
        #expect(counts.verifyQueries == 4 && counts.received == 0 && counts.effectsApplied == 0)
    }

    @Test func aDroppedUndoLeavesTheEffectAndTheSameUndoSentAgainWorks() throws {
        let participants = try simulator(behaviours: [CommandBehaviour(pattern: "wms.*", dropUndoRate: 1)])
        let saga = SagaCommands(sagaId: "v-2")
        #expect(participants.handle(saga.release(branch: 0, warehouse: "west", OrderJSON.lines(["sku-a": 2]))).isOK)
        #expect(participants.handle(saga.cancelShipment(branch: 0, warehouse: "west")).isOK, "answered ok")
        #expect(Self.state(participants, "v-2/release/0") == "applied", "but nothing was undone")
        #expect(participants.ledger().droppedUndoKeys == ["v-2/release/0"])
        #expect(participants.ledger().counts("wms.west.cancel").droppedUndos == 1)

        try participants.setBehaviours([])
        #expect(participants.handle(saga.cancelShipment(branch: 0, warehouse: "west")).isOK)
        #expect(Self.state(participants, "v-2/release/0") == "undone", "the repair's undo under the same key")
        #expect(participants.ledger().stock["west"]?["sku-a"] == 10)
    }

    @Test func aLostEffectIsAbsentAndTheStockStillBalances() throws {
        let participants = try simulator(behaviours: [CommandBehaviour(pattern: "*", loseEffectRate: 1)])
        let saga = SagaCommands(sagaId: "v-3")
        #expect(participants.handle(saga.reserve(OrderJSON.lines(["sku-a": 1]))).isOK)
        #expect(participants.handle(saga.release(branch: 0, warehouse: "west", OrderJSON.lines(["sku-a": 2]))).isOK)
        #expect(Self.state(participants, "v-3/reserve") == "absent")
        #expect(Self.state(participants, "v-3/release/0") == "absent")
        let ledger = participants.ledger()
        #expect(ledger.lostEffectKeys == ["v-3/reserve", "v-3/release/0"])
        #expect(ledger.reservations.isEmpty && ledger.outstandingShipmentCount == 0)
        #expect(ledger.stockImbalances.isEmpty)
    }

    @Test func driftRatesAreChecked() {
        #expect(throws: SimulationConfigurationError.self) {
            try simulator(behaviours: [CommandBehaviour(pattern: "*", dropUndoRate: 1.5)])
        }
    }
}
