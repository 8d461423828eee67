/// One order line: a SKU and how many units of it.
public struct OrderLine: Sendable, Hashable, Codable {
    public var sku: String
    public var quantity: Int

    public init(sku: String, quantity: Int) {
        self.sku = sku
        self.quantity = quantity
    }
}

/// Units of a SKU available in a warehouse.
public struct StockLevel: Sendable, Hashable, Codable {
    public var warehouse: String
    public var sku: String
    public var quantity: Int

    public init(warehouse: String, sku: String, quantity: Int) {
        self.warehouse = warehouse
        self.sku = sku
        self.quantity = quantity
    }
}

/// What one warehouse ships.
public struct PlannedShipment: Sendable, Hashable, Codable {
    public var id: String
    public var warehouse: String
    public var lines: [OrderLine]

    public init(id: String, warehouse: String, lines: [OrderLine]) {
        self.id = id
        self.warehouse = warehouse
        self.lines = lines
    }
}

/// The planner's answer: shipments, and the units no warehouse could supply (only with backorders allowed).
public struct SplitPlan: Sendable, Hashable, Codable {
    public var shipments: [PlannedShipment]
    public var backordered: [OrderLine]

    public init(shipments: [PlannedShipment], backordered: [OrderLine]) {
        self.shipments = shipments
        self.backordered = backordered
    }
}

/// Everything the planner needs for one order.
public struct SplitRequest: Sendable, Hashable {
    /// Whether short stock fails the plan or is backordered.
    public enum Backorder: Sendable, Hashable {
        case reject
        case allow
    }

    public var lines: [OrderLine]
    public var stock: [StockLevel]
    /// Warehouses in priority order, best first; unlisted warehouses come after, by name.
    public var warehousePriority: [String]
    /// Warehouses that must not be used (a reallocation excludes the ones that failed).
    public var excludedWarehouses: Set<String>
    public var backorder: Backorder
    /// Shipment ids are `<prefix>-<warehouse>`.
    public var shipmentIdPrefix: String

    public init(
        lines: [OrderLine], stock: [StockLevel], warehousePriority: [String] = [],
        excludedWarehouses: Set<String> = [], backorder: Backorder = .reject, shipmentIdPrefix: String
    ) {
        self.lines = lines
        self.stock = stock
        self.warehousePriority = warehousePriority
        self.excludedWarehouses = excludedWarehouses
        self.backorder = backorder
        self.shipmentIdPrefix = shipmentIdPrefix
    }
}

/// Why no plan could be made.
public enum SplitPlanningError: Error, Sendable, Hashable {
    /// Stock is short and backorders are rejected; `short` lists the missing units per SKU.
    case insufficientStock(short: [OrderLine])
    /// The request itself is wrong (negative quantity, empty SKU, ...).
    case invalidRequest(String)
}

/// Plans shipments for an order across warehouses (SPEC §4). Deterministic: the same request gives the same plan.
public enum SplitPlanner {
    /// Plans with the `fewest-shipments` strategy.
    public static func plan(_ request: SplitRequest) throws(SplitPlanningError) -> SplitPlan {
        throw .invalidRequest("not implemented")
    }
}
