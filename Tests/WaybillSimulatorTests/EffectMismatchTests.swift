import Testing
import WaybillDefinition
import WaybillSimulator
import WaybillTestSupport

/// The ledger's cross-check of effects applied twice (`SimulationLedger.effectMismatches`), which the chaos run and
/// the demo's summary rely on.
@Suite struct EffectMismatchTests {
    /// An order that reserved, released from both warehouses, then compensated its release in `east`, with every
    /// command redelivered once.
    static func ledger() throws -> SimulationLedger {
        let participants = try simulator()
        let saga = SagaCommands(sagaId: "o-1")
        let ordered = OrderJSON.lines(["sku-a": 5, "sku-b": 2])
        let commands = [
            saga.accept(ordered), saga.reserve(ordered),
            saga.release(branch: 0, warehouse: "east", OrderJSON.lines(["sku-a": 3, "sku-b": 2])),
            saga.release(branch: 1, warehouse: "west", OrderJSON.lines(["sku-a": 2])),
            saga.cancelShipment(branch: 0, warehouse: "east"),
        ]
        for command in commands {
            #expect(participants.handle(command).isOK)
            #expect(participants.handle(command).isOK)
        }
        return participants.ledger()
    }

    @Test func effectsAppliedOnceAndUndoneOnceMatch() throws {
        let ledger = try Self.ledger()
        #expect(ledger.totals.duplicatesAbsorbed == 5)
        #expect(ledger.effectMismatches.isEmpty)
    }

    @Test func anEffectCountedTwiceOrHeldWithoutBeingAppliedIsNamed() throws {
        var doubled = try Self.ledger()
        doubled.commands["inventory.reserve"]?.effectsApplied += 1
        #expect(doubled.effectMismatches.map(\.description) == ["inventory.reserve: 2 effects applied, 1 held"])
        #expect(doubled.effectMismatches.map(\.difference) == [1])

        var vanished = try Self.ledger()
        vanished.shipments["west"] = nil
        #expect(vanished.effectMismatches.map(\.description) == ["wms.*.release: 2 effects applied, 1 held"])
    }

    @Test("an order accepted again after its cancel (an operator's reset) is counted twice, not as a mismatch")
    func acceptAfterCancelMatches() throws {
        let participants = try simulator()
        let saga = SagaCommands(sagaId: "o-9")
        let lines = OrderJSON.lines(["sku-a": 1])
        #expect(participants.handle(saga.accept(lines)).isOK)
        #expect(participants.handle(saga.cancelOrder()).isOK)
        let again = saga.command(
            "erp.order.accept", step: "accept", round: 1, body: ["orderId": "o-9", "lines": lines])
        #expect(participants.handle(again).isOK)
        let ledger = participants.ledger()
        #expect(ledger.orders["o-9"]?.status == .accepted)
        #expect(ledger.orders["o-9"]?.acceptances == 2)
        #expect(ledger.effectMismatches.isEmpty, "\(ledger.effectMismatches)")
    }
}
