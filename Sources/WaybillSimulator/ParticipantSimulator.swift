import Synchronization

/// The simulated participants of the order-fulfillment saga — ERP, inventory, one WMS per warehouse, TMS and
/// billing — and of the returns saga (ERP returns, the returns dock, QA, restocking and credit notes), as one
/// in-process, thread-safe object: a command in, a response (reply after a delay, or silence) out. Returns put units
/// back into the same warehouse model the orders take them from.
///
/// Inventory and the WMSs share one warehouse model. `inventory.reserve` reports the units on hand and records a
/// reservation but holds no units; `wms.<warehouse>.release` takes the units, or answers `out_of_stock` and takes
/// nothing when another order got them first. So concurrent orders race for stock the way they do in a real
/// warehouse, and the saga's reallocation path gets exercised.
///
/// Idempotency: effects are applied at most once per (routing key, idempotency key). Every ok reply is remembered
/// under that pair and returned again, unchanged, for any later command with the same pair (counted as a duplicate
/// absorbed). Error replies are never remembered, because no error applies an effect: a retry after `busy`,
/// `rejected`, `out_of_stock` or a silence runs the command again and may succeed. A reply lost after its effect was
/// applied (``CommandBehaviour/lostReplyRate``) is remembered, so the saga's retry gets it. Replies are remembered
/// for the simulator's lifetime (no eviction): sized for a demo or a test run, not for days of traffic.
///
/// Undo: every effect is also remembered under the idempotency key of the forward command that applied it. A
/// compensation finds its effect by its `waybill-compensates` header (the forward command's key) first, then by the
/// ids in its body, which may be null when the forward reply never came. An effect that was never applied is
/// "nothing to undo", answered ok. A forward command that arrives after its compensation ran is refused with
/// `already_compensated` and applies nothing, so the undo stays final.
///
/// The simulator never sleeps or reads a clock: the delay comes back in the response for the caller to honour.
public final class ParticipantSimulator: Sendable {
    /// The configuration the simulator was built with (behaviours as at start; see ``setBehaviours(_:)``).
    public let configuration: SimulationConfiguration
    /// Every routing key some participant handles, sorted: the fixed ERP, inventory, TMS and billing keys and
    /// `wms.<warehouse>.release` / `.cancel` per configured warehouse. The AMQP binding binds its queue to these.
    public let routingKeys: [String]
    private let state: Mutex<SimulationState>

    /// A simulator with `configuration`'s stock and behaviours.
    ///
    /// - Throws: ``SimulationConfigurationError`` when a warehouse name, quantity, rate or latency is invalid.
    public init(configuration: SimulationConfiguration) throws(SimulationConfigurationError) {
        try configuration.validate()
        self.configuration = configuration
        let initial = SimulationState(configuration: configuration)
        routingKeys = Operation.routingKeys(warehouses: initial.warehouses)
        state = Mutex(initial)
    }

    /// Runs `command` against the participant its routing key names and says how to answer.
    ///
    /// In this order: a command whose (routing key, idempotency key) already has a remembered reply gets it again;
    /// an unknown routing key gets `unknown_command`; a missing idempotency key or a body that is not JSON or lacks
    /// a field gets `bad_request`; then the first matching ``CommandBehaviour`` may inject `busy`, `rejected` or
    /// silence (no effect); otherwise the participant runs the command. Every reply, duplicates and errors included,
    /// comes with the latency drawn for the command.
    ///
    /// Safe to call from any thread; commands are applied one at a time, each completely or not at all.
    public func handle(_ command: SimulatedCommand) -> SimulatedResponse {
        state.withLock { $0.handle(command) }
    }

    /// Stock arrives for the open backorders (but discontinued SKUs), which are then filled first come first served;
    /// returns the `inventory.backorder.filled` events to publish, one per backorder filled. A demo calls it on a
    /// schedule; see `SimulationState.receiveStock()`.
    public func receiveStock() -> [SimulatedEvent] {
        state.withLock { $0.receiveStock() }
    }

    /// What the participants answer a verify query about the forward command keyed `key`: `applied`, `undone` or
    /// `absent`.
    public func effectState(ofKey key: String) -> String {
        state.withLock { $0.verify(key)["state"]?.stringValue ?? "absent" }
    }

    /// A consistent snapshot of the counters, stock, orders, reservations, shipments, trackings and invoices.
    public func ledger() -> SimulationLedger {
        state.withLock { $0.ledger }
    }

    /// What participants still hold for sagas that ended compensated or cancelled; see
    /// ``SimulationLedger/leaks(finishedSagas:)`` for the rules.
    ///
    /// - Parameter finishedSagas: saga id (the `waybill-saga-id` header) to how it ended.
    public func leaks(finishedSagas: [String: FinishedSagaOutcome]) -> [SimulationLeak] {
        ledger().leaks(finishedSagas: finishedSagas)
    }

    /// Replaces the behaviours from now on (a demo turning a warehouse flaky mid-run). Stock, ledger and remembered
    /// replies are kept.
    ///
    /// - Throws: ``SimulationConfigurationError`` when a behaviour is invalid; the old behaviours then stay.
    public func setBehaviours(_ behaviours: [CommandBehaviour]) throws(SimulationConfigurationError) {
        try SimulationConfiguration(behaviours: behaviours, seed: configuration.seed).validate()
        state.withLock { $0.behaviours = behaviours }
    }
}
