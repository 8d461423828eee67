import CodedError

/// One order line: a SKU and how many units of it.
public struct OrderLine: Sendable, Hashable, Codable {
    /// The stock-keeping unit; must not be empty.
    public var sku: String
    /// Units ordered (or shipped, or backordered); an order line must not be negative, 0 means "nothing".
    public var quantity: Int

    /// Makes a line of `quantity` units of `sku`.
    public init(sku: String, quantity: Int) {
        self.sku = sku
        self.quantity = quantity
    }
}

/// Units of a SKU available in a warehouse.
public struct StockLevel: Sendable, Hashable, Codable {
    /// The warehouse holding the units; it names the shipment, so it must not be empty.
    public var warehouse: String
    /// The SKU held.
    public var sku: String
    /// Units available; rows with 0 or fewer are ignored, and rows for the same warehouse and SKU add up.
    public var quantity: Int

    /// Makes a stock row: `quantity` units of `sku` in `warehouse`.
    public init(warehouse: String, sku: String, quantity: Int) {
        self.warehouse = warehouse
        self.sku = sku
        self.quantity = quantity
    }
}

/// What one warehouse ships.
public struct PlannedShipment: Sendable, Hashable, Codable {
    /// `<shipmentIdPrefix>-<warehouse>`: unique within a plan, since a warehouse ships at most once per plan.
    public var id: String
    /// The warehouse that ships.
    public var warehouse: String
    /// What it ships, in the order the SKUs first appear in the order; never empty, no SKU twice.
    public var lines: [OrderLine]

    /// Makes a shipment.
    public init(id: String, warehouse: String, lines: [OrderLine]) {
        self.id = id
        self.warehouse = warehouse
        self.lines = lines
    }
}

/// The planner's answer: shipments, and the units no warehouse could supply (only with backorders allowed).
public struct SplitPlan: Sendable, Hashable, Codable {
    /// One shipment per chosen warehouse, best-ranked warehouse first.
    public var shipments: [PlannedShipment]
    /// Units that no usable warehouse has, one line per SKU, sorted by SKU; always empty with `.reject`.
    public var backordered: [OrderLine]

    /// Makes a plan.
    public init(shipments: [PlannedShipment], backordered: [OrderLine]) {
        self.shipments = shipments
        self.backordered = backordered
    }
}

/// Everything the planner needs for one order.
public struct SplitRequest: Sendable, Hashable {
    /// Whether short stock fails the plan or is backordered.
    public enum Backorder: Sendable, Hashable {
        /// Short stock throws `SplitPlanningError.insufficientStock`; nothing is shipped.
        case reject
        /// Ship what the usable warehouses have and list the rest in `SplitPlan.backordered`.
        case allow
    }

    /// The order. Lines with the same SKU are merged into one (quantities summed) at the place of the first;
    /// lines that come to 0 units are dropped.
    public var lines: [OrderLine]
    /// Available stock, in any order: the plan does not depend on the order of these rows.
    public var stock: [StockLevel]
    /// Warehouses in priority order, best first; unlisted warehouses come after, by name. Names not in the stock
    /// are ignored; a repeated name keeps its first place.
    public var warehousePriority: [String]
    /// Warehouses that must not be used (a reallocation excludes the ones that failed).
    public var excludedWarehouses: Set<String>
    /// What to do when stock is short.
    public var backorder: Backorder
    /// Shipment ids are `<prefix>-<warehouse>`.
    public var shipmentIdPrefix: String

    /// Makes a request; by default no priorities, no exclusions, and short stock is rejected.
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
public enum SplitPlanningError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Stock is short and backorders are rejected; `short` lists the missing units per SKU, sorted by SKU.
    case insufficientStock(short: [OrderLine])
    /// The request itself is wrong (negative quantity, empty SKU, ...); retrying the same request cannot help.
    case invalidRequest(String)

    /// A stable, machine-readable kind of failure (`split.<snake_case>`), one per case.
    public typealias Code = ErrorCode<SplitPlanningErrorDomain>

    /// What kind of failure it is.
    public var code: Code {
        switch self {
        case .insufficientStock: .insufficientStock
        case .invalidRequest: .invalidRequest
        }
    }

    /// What went wrong and what to do, for people.
    public var message: String {
        switch self {
        case .insufficientStock(let short):
            let units = short.reduce(0) { saturatingAdd($0, $1.quantity) }
            return "insufficient stock: \(units) unit(s) of \(short.count) SKU(s) are missing "
                + "(restock, or allow backorders)"
        case .invalidRequest(let message):
            return "invalid split request: \(message)"
        }
    }

    /// `code: message`.
    public var description: String { "\(code): \(message)" }
}

/// The split planner's error family: the domain of ``SplitPlanningError/Code``, whose codes are
/// `split.<snake_case>`.
public enum SplitPlanningErrorDomain: ErrorDomain {}

/// The split planner's codes: the raw values (`split.<snake_case>`) are stable.
extension ErrorCode where Domain == SplitPlanningErrorDomain {
    /// ``SplitPlanningError/insufficientStock(short:)``.
    public static let insufficientStock = Self(rawValue: "split.insufficient_stock")
    /// ``SplitPlanningError/invalidRequest(_:)``.
    public static let invalidRequest = Self(rawValue: "split.invalid_request")
}

/// Plans shipments for an order across warehouses (docs/workflows.md, "The split step"). Deterministic: the same
/// request gives the same plan.
public enum SplitPlanner {
    /// Above this many candidate warehouses, `plan(_:)` picks warehouses greedily instead of exactly.
    public static let exactSearchLimit = WarehouseSetSearch.exactSearchLimit

    /// Plans with the `fewest-shipments` strategy.
    ///
    /// - Order: lines with the same SKU are merged into one at the first one's place, quantities summed; lines
    ///   that come to 0 units are dropped.
    /// - Candidates: warehouses not excluded that have stock (> 0, rows summed) of at least one ordered SKU.
    /// - Rank: warehouses listed in `warehousePriority` in that order (first mention counts), then the unlisted
    ///   ones by name, compared as Swift strings (code-point order: `"W10"` before `"W9"`, `"Z"` before `"a"`).
    /// - Warehouses: the fewest that together can ship the whole order (with `.allow`: everything the candidates
    ///   have of it). Among sets of that size the planner takes the one whose ranks, sorted best first, compare
    ///   smallest lexicographically: the best first warehouse, then among those the best second, and so on
    ///   (`{1st, 4th}` beats `{2nd, 3rd}`). Exact up to `exactSearchLimit` candidates; above, greedy: repeatedly
    ///   the warehouse covering the most still-missing units (ties: better rank), then warehouses the others make
    ///   redundant are dropped, worst rank first. Greedy may use more warehouses than necessary.
    /// - Lines: each goes whole to the best-ranked chosen warehouse that has all of it; only when none has, it is
    ///   split, taking as much as each chosen warehouse has in rank order.
    /// - Output: shipments in rank order with id `<shipmentIdPrefix>-<warehouse>`, their lines in order-line
    ///   order; backordered units per SKU sorted by SKU.
    ///
    /// Throws `.invalidRequest` for an empty SKU, a negative quantity, a stock row without a warehouse name, or
    /// quantities past `Int.max`; `.insufficientStock` when stock is short and `backorder` is `.reject`.
    public static func plan(_ request: SplitRequest) throws(SplitPlanningError) -> SplitPlan {
        let order = try OrderDemand(request.lines)
        let problem = try StockMatrix(request, demand: order)

        var target = order.quantities
        var short: [OrderLine] = []
        for sku in 0..<order.skuCount where target[sku] > 0 {
            let available = problem.total(of: sku)
            if available < target[sku] {
                short.append(OrderLine(sku: order.skus[sku], quantity: target[sku] - available))
                target[sku] = available
            }
        }
        short.sort { $0.sku < $1.sku }
        if !short.isEmpty && request.backorder == .reject {
            throw .insufficientStock(short: short)
        }

        let search = WarehouseSetSearch(
            stock: problem.stock, target: target, warehouseCount: problem.warehouseCount, skuCount: order.skuCount
        )
        let chosen = search.chooseWarehouses()

        var shipped = [[OrderLine]](repeating: [], count: chosen.count)
        for sku in 0..<order.skuCount where target[sku] > 0 {
            let quantity = target[sku]
            let name = order.skus[sku]
            if let whole = chosen.firstIndex(where: { problem.units(of: sku, at: $0) >= quantity }) {
                append(OrderLine(sku: name, quantity: quantity), to: &shipped[whole], skusLeft: order.skuCount - sku)
                continue
            }
            var missing = quantity
            for (position, rank) in chosen.enumerated() where missing > 0 {
                let taken = min(problem.units(of: sku, at: rank), missing)
                if taken > 0 {
                    append(
                        OrderLine(sku: name, quantity: taken), to: &shipped[position], skusLeft: order.skuCount - sku)
                    missing -= taken
                }
            }
        }

        var shipments: [PlannedShipment] = []
        shipments.reserveCapacity(chosen.count)
        for (position, rank) in chosen.enumerated() where !shipped[position].isEmpty {
            let warehouse = problem.warehouse(at: rank)
            shipments.append(
                PlannedShipment(
                    id: "\(request.shipmentIdPrefix)-\(warehouse)", warehouse: warehouse, lines: shipped[position])
            )
        }
        return SplitPlan(shipments: shipments, backordered: short)
    }

    /// Appends to a shipment's lines, sizing them once for the SKUs still to come (hot path: one allocation).
    @inline(__always)
    private static func append(_ line: OrderLine, to lines: inout [OrderLine], skusLeft: Int) {
        if lines.isEmpty {
            lines.reserveCapacity(skusLeft)
        }
        lines.append(line)
    }
}
