import WaybillDefinition

/// An event a simulated participant publishes on its own (not a reply): its routing key and JSON body.
public struct SimulatedEvent: Sendable, Hashable {
    /// The routing key, e.g. `inventory.backorder.filled`.
    public var routingKey: String
    /// The body.
    public var body: JSONValue
}

/// Inventory's backorders: lines the warehouses could not supply when the order was placed wait, first come first
/// served, for stock to arrive; when every line of a backorder can be supplied, inventory takes the units out of stock
/// for it (so no later order gets them), plans its shipments and says so with `inventory.backorder.filled`. The WMS
/// release of such a shipment takes the held units; a cancel puts back what is still held.
extension SimulationState {
    /// The routing key of the event that says a backorder was filled.
    static let backorderFilled = "inventory.backorder.filled"

    mutating func createBackorder(orderId: String, lines: [ItemQuantity], sagaId: String) -> Outcome {
        let wanted = lines.filter { $0.quantity > 0 }
        if let existing = backorders[orderId], existing.status != .cancelled {
            return .alreadyApplied(["orderId": .string(orderId), "status": .string(existing.status.rawValue)])
        }
        guard !wanted.isEmpty else {
            return .refused(.conflict, "backorder of \(orderId) has no line with a quantity; nothing to wait for")
        }
        backorders[orderId] = SimulationLedger.Backorder(
            orderId: orderId, sagaId: sagaId, lines: wanted, status: .open)
        openBackorders.append(orderId)
        return .applied(["orderId": .string(orderId), "status": "open"])
    }

    mutating func cancelBackorder(orderId: String) -> Outcome {
        guard var backorder = backorders[orderId], backorder.status != .cancelled else {
            return .nothingToUndo(["orderId": .string(orderId), "undone": false])
        }
        for shipment in backorder.shipments where !backorder.released.contains(shipment.id) {
            for line in shipment.lines {
                stock[shipment.warehouse, default: [:]][line.sku, default: 0] += line.quantity
            }
            heldShipments[shipment.id] = nil
        }
        let returned = backorder.heldUnits
        backorder.status = .cancelled
        backorders[orderId] = backorder
        openBackorders.removeAll { $0 == orderId }
        return .applied(["orderId": .string(orderId), "undone": true, "unitsReturned": .number(Double(returned))])
    }

    /// The release of a shipment a filled backorder holds units for: those units, not the free stock.
    mutating func releaseHeld(
        _ shipmentId: String, of orderId: String, warehouse: String, lines: [ItemQuantity], sagaId: String
    ) -> Outcome {
        guard var backorder = backorders[orderId], backorder.status == .filled,
            let held = backorder.shipments.first(where: { $0.id == shipmentId })
        else {
            return .refused(.conflict, "shipment \(shipmentId) belongs to no filled backorder")
        }
        guard held.warehouse == warehouse, held.lines == lines else {
            return .refused(
                .conflict,
                "shipment \(shipmentId) holds other units (in \(held.warehouse)); release it as the backorder planned it"
            )
        }
        backorder.released.insert(shipmentId)
        backorders[orderId] = backorder
        heldShipments[shipmentId] = nil
        shipments[warehouse, default: [:]][shipmentId] = SimulationLedger.Shipment(
            id: shipmentId, warehouse: warehouse, sagaId: sagaId, lines: lines)
        return .applied(["shipmentId": .string(shipmentId), "warehouse": .string(warehouse)])
    }

    /// Stock arrives for what the open backorders wait for (every SKU but the discontinued ones), at the warehouse
    /// that held the most of it at the start; then the open backorders are filled in the order they were created,
    /// each only when all its lines can be. Returns one `inventory.backorder.filled` event per backorder filled now,
    /// after one per backorder filled earlier whose shipments are not all released yet.
    mutating func receiveStock() -> [SimulatedEvent] {
        var needed: [String: Int] = [:]
        for orderId in openBackorders {
            for line in backorders[orderId]?.lines ?? [] where !discontinued.contains(line.sku) {
                needed[line.sku, default: 0] += line.quantity
            }
        }
        for (sku, quantity) in needed.sorted(by: { $0.key < $1.key }) {
            let home = homeWarehouse(of: sku)
            let missing = quantity - (stock[home]?[sku] ?? 0)
            guard missing > 0 else { continue }
            stock[home, default: [:]][sku, default: 0] += missing
            arrivals[home, default: [:]][sku, default: 0] += missing
        }
        // Filled backorders whose shipments are not all released are announced again: the saga may not have been
        // waiting yet when the first announcement came (its hold's reply still on the way), and a message that finds
        // nobody waiting is only counted.
        var events = backorders.values.filter { $0.heldUnits > 0 }.sorted { $0.orderId < $1.orderId }.map(filled)
        for orderId in openBackorders {
            guard fill(orderId), let backorder = backorders[orderId] else { continue }
            events.append(filled(backorder))
        }
        openBackorders.removeAll { backorders[$0]?.status != .open }
        return events
    }

    /// The `inventory.backorder.filled` event of a filled backorder: `{orderId, shipments: [{id, warehouse, lines}]}`.
    private func filled(_ backorder: SimulationLedger.Backorder) -> SimulatedEvent {
        let shipments: [JSONValue] = backorder.shipments.map { shipment in
            [
                "id": .string(shipment.id), "warehouse": .string(shipment.warehouse),
                "lines": .array(
                    shipment.lines.map { ["sku": .string($0.sku), "quantity": .number(Double($0.quantity))] }),
            ]
        }
        return SimulatedEvent(
            routingKey: Self.backorderFilled,
            body: ["orderId": .string(backorder.orderId), "shipments": .array(shipments)])
    }

    /// Fills one open backorder when every line fits in one warehouse's free stock (the one with the most, then by
    /// name), grouping the lines into one shipment per warehouse; `false` when a line does not fit yet.
    private mutating func fill(_ orderId: String) -> Bool {
        guard var backorder = backorders[orderId], backorder.status == .open else { return false }
        var free = stock
        var byWarehouse: [String: [ItemQuantity]] = [:]
        for line in backorder.lines {
            let candidates = free.keys.sorted().filter { (free[$0]?[line.sku] ?? 0) >= line.quantity }
            guard let warehouse = candidates.max(by: { (free[$0]?[line.sku] ?? 0) < (free[$1]?[line.sku] ?? 0) })
            else { return false }
            free[warehouse, default: [:]][line.sku, default: 0] -= line.quantity
            byWarehouse[warehouse, default: []].append(line)
        }
        stock = free
        backorder.status = .filled
        backorder.shipments = byWarehouse.keys.sorted().map { warehouse in
            SimulationLedger.Shipment(
                id: "\(orderId)-bo-\(warehouse)", warehouse: warehouse, sagaId: backorder.sagaId,
                lines: byWarehouse[warehouse] ?? [])
        }
        for shipment in backorder.shipments { heldShipments[shipment.id] = orderId }
        backorders[orderId] = backorder
        return true
    }

    /// The warehouse that held the most of `sku` at the start (the first by name on a tie, or of all warehouses).
    private func homeWarehouse(of sku: String) -> String {
        let names = warehouses.sorted()
        return names.max { (initialStock[$0]?[sku] ?? 0) < (initialStock[$1]?[sku] ?? 0) } ?? names.first ?? ""
    }
}
