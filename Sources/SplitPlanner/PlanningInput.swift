/// The order after merging lines: one quantity per distinct SKU, in the order the SKUs first appear.
///
/// A SKU whose lines come to 0 units keeps its index with quantity 0; the planner skips it everywhere.
struct OrderDemand {
    let skus: [String]
    let quantities: [Int]
    let index: NameIndex

    var skuCount: Int { skus.count }

    init(_ lines: [OrderLine]) throws(SplitPlanningError) {
        var index = NameIndex(capacity: lines.count)
        var quantities: [Int] = []
        quantities.reserveCapacity(lines.count)
        for (position, line) in lines.enumerated() {
            guard !line.sku.isEmpty else {
                throw .invalidRequest("lines[\(position)] has an empty SKU; every order line needs a SKU")
            }
            guard line.quantity >= 0 else {
                throw .invalidRequest(
                    "lines[\(position)] has a negative quantity (\(line.quantity)); order 0 or more units"
                )
            }
            let sku = index.insert(line.sku)
            if sku == quantities.count {
                quantities.append(line.quantity)
            } else {
                let (sum, overflow) = quantities[sku].addingReportingOverflow(line.quantity)
                guard !overflow else {
                    throw .invalidRequest(
                        "lines[\(position)]: the lines for its SKU add up to more than \(Int.max) units"
                    )
                }
                quantities[sku] = sum
            }
        }
        self.skus = index.names
        self.quantities = quantities
        self.index = index
    }
}

/// The usable stock of the ordered SKUs: candidate warehouses best rank first, and a row-major matrix of units
/// (one row of `demand.skuCount` quantities per rank).
///
/// Candidates are the warehouses, not excluded, with more than 0 units of a SKU the order wants.
struct StockMatrix {
    /// Candidate warehouse names, in first-seen order.
    private let names: [String]
    /// `names` indices, best rank first.
    private let byRank: [Int]
    /// Units, one row of `skuCount` per rank.
    let stock: [Int]
    let skuCount: Int

    var warehouseCount: Int { byRank.count }

    init(_ request: SplitRequest, demand: OrderDemand) throws(SplitPlanningError) {
        let skus = demand.skuCount
        let excludes = !request.excludedWarehouses.isEmpty
        var warehouseIndex = NameIndex(capacity: 8)
        var units: [Int] = []
        units.reserveCapacity(skus * 8)
        // Stock lists usually come grouped by warehouse, often in order-line order: guess from the previous row.
        var lastWarehouse = -1
        var lastSKU = -1
        for (position, row) in request.stock.enumerated() {
            guard row.quantity > 0, let sku = demand.index.index(of: row.sku, hint: lastSKU + 1),
                demand.quantities[sku] > 0
            else {
                continue
            }
            lastSKU = sku
            if excludes && request.excludedWarehouses.contains(row.warehouse) {
                continue
            }
            guard !row.warehouse.isEmpty else {
                throw .invalidRequest("stock[\(position)] has no warehouse name; every stock row needs its warehouse")
            }
            let warehouse = warehouseIndex.insert(row.warehouse, hint: lastWarehouse)
            lastWarehouse = warehouse
            if warehouse * skus == units.count {
                units.append(contentsOf: repeatElement(0, count: skus))
            }
            let cell = warehouse * skus + sku
            let (sum, overflow) = units[cell].addingReportingOverflow(row.quantity)
            guard !overflow else {
                throw .invalidRequest(
                    "stock[\(position)]: the rows for its warehouse and SKU add up to more than \(Int.max) units"
                )
            }
            units[cell] = sum
        }

        let names = warehouseIndex.names
        // priority[w]: position of the first mention in warehousePriority, Int.max when unlisted.
        var priority = [Int](repeating: Int.max, count: names.count)
        for (position, name) in request.warehousePriority.enumerated() {
            if let warehouse = warehouseIndex.index(of: name), priority[warehouse] == Int.max {
                priority[warehouse] = position
            }
        }
        var byRank = Array(names.indices)
        byRank.sort { a, b in
            priority[a] != priority[b] ? priority[a] < priority[b] : names[a] < names[b]
        }

        var stock = [Int](repeating: 0, count: units.count)
        for (rank, warehouse) in byRank.enumerated() {
            for sku in 0..<skus {
                stock[rank * skus + sku] = units[warehouse * skus + sku]
            }
        }
        self.names = names
        self.byRank = byRank
        self.stock = stock
        self.skuCount = skus
    }

    /// The name of the warehouse ranked `rank`.
    func warehouse(at rank: Int) -> String {
        names[byRank[rank]]
    }

    /// Units of `sku` in the warehouse ranked `rank`.
    func units(of sku: Int, at rank: Int) -> Int {
        stock[rank * skuCount + sku]
    }

    /// Units of `sku` in all candidates together (saturating at `Int.max`).
    func total(of sku: Int) -> Int {
        var total = 0
        for rank in 0..<warehouseCount {
            total = saturatingAdd(total, stock[rank * skuCount + sku])
        }
        return total
    }
}
