import WaybillDefinition
import WaybillSimulator

/// Builds commands the way the saga engine does (docs/wire.md): idempotency key
/// `<sagaId>/<stepId>[/<branch>][/r<round>][/compensate]`, a fresh message id per attempt, and on a compensation the
/// forward command's key in `compensates` (the `waybill-compensates` header).
struct SagaCommands {
    let sagaId: String

    func command(
        _ routingKey: String, step: String, branch: Int? = nil, round: Int = 0,
        action: SimulatedCommand.Action = .do, attempt: Int = 1, body: JSONValue
    ) -> SimulatedCommand {
        var forward = "\(sagaId)/\(step)"
        if let branch { forward += "/\(branch)" }
        if round > 0 { forward += "/r\(round)" }
        let key = action == .compensate ? forward + "/compensate" : forward
        return SimulatedCommand(
            routingKey: routingKey, messageId: "\(key)#\(attempt)", idempotencyKey: key, action: action,
            sagaId: sagaId, attempt: attempt, compensates: action == .compensate ? forward : nil, json: body)
    }

    func accept(_ lines: JSONValue, attempt: Int = 1) -> SimulatedCommand {
        command(
            "erp.order.accept", step: "accept", attempt: attempt, body: ["orderId": .string(sagaId), "lines": lines])
    }

    func cancelOrder(attempt: Int = 1) -> SimulatedCommand {
        command(
            "erp.order.cancel", step: "accept", action: .compensate, attempt: attempt,
            body: ["orderId": .string(sagaId)])
    }

    func reserve(_ lines: JSONValue, attempt: Int = 1) -> SimulatedCommand {
        command(
            "inventory.reserve", step: "reserve", attempt: attempt, body: ["orderId": .string(sagaId), "lines": lines])
    }

    func releaseReservation(_ reservationId: String, attempt: Int = 1) -> SimulatedCommand {
        command(
            "inventory.release", step: "reserve", action: .compensate, attempt: attempt,
            body: ["reservationId": .string(reservationId)])
    }

    /// The undo of `Workflows/order-fulfillment.yaml`: by the order id.
    func releaseOrderReservation(attempt: Int = 1) -> SimulatedCommand {
        command(
            "inventory.release", step: "reserve", action: .compensate, attempt: attempt,
            body: ["orderId": .string(sagaId)])
    }

    /// The `release` branch for `warehouse`; the shipment id is `<sagaId>-<warehouse>` as the split planner makes it.
    func release(
        branch: Int, warehouse: String, _ lines: JSONValue, round: Int = 0, attempt: Int = 1
    ) -> SimulatedCommand {
        command(
            "wms.\(warehouse).release", step: "release", branch: branch, round: round, attempt: attempt,
            body: ["shipmentId": .string(shipmentId(warehouse, round: round)), "lines": lines])
    }

    func cancelShipment(branch: Int, warehouse: String, round: Int = 0, attempt: Int = 1) -> SimulatedCommand {
        command(
            "wms.\(warehouse).cancel", step: "release", branch: branch, round: round, action: .compensate,
            attempt: attempt, body: ["shipmentId": .string(shipmentId(warehouse, round: round))])
    }

    func ship(branch: Int, warehouse: String, attempt: Int = 1) -> SimulatedCommand {
        command(
            "tms.shipment.create", step: "ship", branch: branch, attempt: attempt,
            body: ["shipmentId": .string(shipmentId(warehouse, round: 0)), "warehouse": .string(warehouse)])
    }

    func invoice(_ shipments: JSONValue, attempt: Int = 1) -> SimulatedCommand {
        command(
            "billing.invoice.create", step: "invoice", attempt: attempt,
            body: ["orderId": .string(sagaId), "shipments": shipments])
    }

    func holdBackorder(_ lines: JSONValue) -> SimulatedCommand {
        command(
            "inventory.backorder.create", step: "hold-backorder", body: ["orderId": .string(sagaId), "lines": lines])
    }

    func cancelBackorder() -> SimulatedCommand {
        command("inventory.backorder.cancel", step: "cancel-backorder", body: ["orderId": .string(sagaId)])
    }

    func releaseBackorder(branch: Int, shipment: JSONValue) -> SimulatedCommand {
        command(
            "wms.\(shipment["warehouse"]?.stringValue ?? "").release", step: "release-backorder", branch: branch,
            body: ["shipmentId": shipment["id"] ?? .null, "lines": shipment["lines"] ?? .null])
    }

    func shipmentId(_ warehouse: String, round: Int) -> String {
        round == 0 ? "\(sagaId)-\(warehouse)" : "\(sagaId)-r\(round)-\(warehouse)"
    }
}

/// Stock rows from `[warehouse: [sku: quantity]]`.
func stockRows(_ table: [String: [String: Int]]) -> [StockRecord] {
    table.flatMap { warehouse, skus in
        skus.map { StockRecord(warehouse: warehouse, sku: $0.key, quantity: $0.value) }
    }
}

/// Two warehouses: `east` has 3 of sku-a and 2 of sku-b, `west` has 10 of sku-a and none of sku-b.
let twoWarehouses: [String: [String: Int]] = [
    "east": ["sku-a": 3, "sku-b": 2],
    "west": ["sku-a": 10, "sku-b": 0],
]

func simulator(
    stock: [String: [String: Int]] = twoWarehouses, behaviours: [CommandBehaviour] = [], seed: UInt64 = 7,
    discontinued: [String] = []
) throws -> ParticipantSimulator {
    try ParticipantSimulator(
        configuration: SimulationConfiguration(
            stock: stockRows(stock), behaviours: behaviours, seed: seed, discontinued: discontinued))
}
