/// A kind of effect whose count applied differs from what the participants hold: an effect applied twice (or held
/// without being applied) shows up as a difference.
public struct EffectMismatch: Sendable, Hashable, CustomStringConvertible {
    /// The routing key (or pattern) of the effect, e.g. `inventory.reserve` or `wms.*.release`.
    public var effect: String
    /// Effects the counters say were applied.
    public var applied: Int
    /// Effects the participants hold (plus the ones undone since).
    public var held: Int

    /// How many effects are out of place: `|applied - held|`.
    public var difference: Int { abs(applied - held) }

    /// `inventory.reserve: 12 effects applied, 11 held`.
    public var description: String { "\(effect): \(applied) effects applied, \(held) held" }
}

extension SimulationLedger {
    /// Cross-checks the counters against what the participants hold: each effect applied once shows up exactly once
    /// (an ERP order, a reservation or its release, a shipment or its cancel, a tracking id, an invoice). Empty unless
    /// some effect was applied twice (or the books are wrong). An effect lost on purpose
    /// (``CommandBehaviour/loseEffectRate``) counts as held. Stock that does not balance is ``stockImbalances``.
    public var effectMismatches: [EffectMismatch] {
        func applied(_ key: String) -> Int { counts(key).effectsApplied }
        func applied(prefix: String, suffix: String) -> Int {
            commands.filter { $0.key.hasPrefix(prefix) && $0.key.hasSuffix(suffix) }.values.reduce(0) {
                $0 + $1.effectsApplied
            }
        }
        func lost(prefix: String, suffix: String) -> Int {
            commands.filter { $0.key.hasPrefix(prefix) && $0.key.hasSuffix(suffix) }.values.reduce(0) {
                $0 + $1.lostEffects
            }
        }
        let checks = [
            EffectMismatch(
                effect: "erp.order.accept", applied: applied("erp.order.accept"),
                held: orders.values.reduce(0) { $0 + $1.acceptances }),
            EffectMismatch(
                effect: "erp.order.cancel", applied: applied("erp.order.cancel"),
                held: orders.values.reduce(0) { $0 + $1.cancellations }),
            EffectMismatch(
                effect: "inventory.reserve", applied: applied("inventory.reserve"),
                held: reservations.count + applied("inventory.release") + counts("inventory.reserve").lostEffects),
            EffectMismatch(
                effect: "wms.*.release", applied: applied(prefix: "wms.", suffix: ".release"),
                held: outstandingShipmentCount + applied(prefix: "wms.", suffix: ".cancel")
                    + lost(prefix: "wms.", suffix: ".release")),
            EffectMismatch(
                effect: "tms.shipment.create", applied: applied("tms.shipment.create"), held: trackingIds.count),
            EffectMismatch(
                effect: "billing.invoice.create", applied: applied("billing.invoice.create"), held: invoiceIds.count),
            EffectMismatch(
                effect: "erp.return.authorize", applied: applied("erp.return.authorize"),
                held: returns.values.reduce(0) { $0 + $1.authorizations }),
            EffectMismatch(
                effect: "erp.return.void", applied: applied("erp.return.void"),
                held: returns.values.reduce(0) { $0 + $1.voids }),
            EffectMismatch(
                effect: "inventory.restock", applied: applied("inventory.restock"),
                held: restocks.count + applied("inventory.unstock")),
            EffectMismatch(
                effect: "billing.credit.issue", applied: applied("billing.credit.issue"), held: credits.count),
            EffectMismatch(
                effect: "inventory.backorder.create", applied: applied("inventory.backorder.create"),
                held: backorders.count),
            EffectMismatch(
                effect: "inventory.backorder.cancel", applied: applied("inventory.backorder.cancel"),
                held: backorders.values.filter { $0.status == .cancelled }.count),
        ]
        return checks.filter { $0.difference > 0 }
    }
}
