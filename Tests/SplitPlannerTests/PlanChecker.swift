import SplitPlanner

/// A slow, obvious model of a split request, written independently of the planner, to judge its plans.
struct ReferenceModel {
    let request: SplitRequest
    /// Merged order quantities per SKU (> 0 only), and the SKUs in order of first appearance.
    let need: [String: Int]
    let skuOrder: [String]
    /// Usable units per warehouse and SKU: not excluded, rows > 0 summed, ordered SKUs only.
    let available: [String: [String: Int]]
    /// Warehouses with usable units of an ordered SKU, best rank first.
    let candidates: [String]
    /// What can ship per SKU: min(need, everything usable).
    let target: [String: Int]
    /// Missing units per SKU, sorted by SKU.
    let short: [OrderLine]

    init(_ request: SplitRequest) {
        self.request = request
        var need: [String: Int] = [:]
        var order: [String] = []
        for line in request.lines {
            if need[line.sku] == nil {
                order.append(line.sku)
            }
            need[line.sku, default: 0] += line.quantity
        }
        need = need.filter { $0.value > 0 }
        self.need = need
        self.skuOrder = order.filter { need[$0] != nil }

        var available: [String: [String: Int]] = [:]
        for row in request.stock
        where row.quantity > 0 && need[row.sku] != nil && !request.excludedWarehouses.contains(row.warehouse) {
            available[row.warehouse, default: [:]][row.sku, default: 0] += row.quantity
        }
        self.available = available

        func rankKey(_ warehouse: String) -> (Int, String) {
            (request.warehousePriority.firstIndex(of: warehouse) ?? Int.max, warehouse)
        }
        self.candidates = available.keys.sorted { rankKey($0) < rankKey($1) }

        var target: [String: Int] = [:]
        var short: [OrderLine] = []
        for (sku, quantity) in need {
            let total = available.values.reduce(0) { $0 + ($1[sku] ?? 0) }
            target[sku] = min(quantity, total)
            if total < quantity {
                short.append(OrderLine(sku: sku, quantity: quantity - total))
            }
        }
        self.target = target
        self.short = short.sorted { $0.sku < $1.sku }
    }

    func rank(of warehouse: String) -> Int? {
        candidates.firstIndex(of: warehouse)
    }

    func covers(_ warehouses: [String]) -> Bool {
        target.allSatisfy { sku, quantity in
            warehouses.reduce(0) { $0 + (available[$1]?[sku] ?? 0) } >= quantity
        }
    }

    /// The minimum number of warehouses that can ship `target`, and the preferred set of that size (ranks sorted
    /// ascending, lexicographically smallest), by trying every subset of the candidates.
    /// `ties` counts the sets of the minimum size.
    func bruteForceBest() -> (size: Int, best: [String], ties: Int) {
        var bestSize = Int.max
        var bestRanks: [Int] = []
        var ties = 0
        for mask in 0..<(1 << candidates.count) {
            let ranks = candidates.indices.filter { mask & (1 << $0) != 0 }
            guard ranks.count <= bestSize, covers(ranks.map { candidates[$0] }) else {
                continue
            }
            if ranks.count < bestSize {
                ties = 0
            }
            ties += 1
            if ranks.count < bestSize || ranks.lexicographicallyPrecedes(bestRanks) {
                bestSize = ranks.count
                bestRanks = ranks
            }
        }
        return (bestSize, bestRanks.map { candidates[$0] }, ties)
    }
}

/// Checks a planner outcome against the model and returns every violated property, in words.
enum PlanChecker {
    /// - Parameter exhaustive: also compare the chosen warehouses with the brute-force optimum (small inputs only);
    ///   otherwise only require that no chosen warehouse could be left out.
    static func violations(
        of outcome: Result<SplitPlan, SplitPlanningError>, for model: ReferenceModel, exhaustive: Bool
    ) -> [String] {
        let request = model.request
        if request.backorder == .reject && !model.short.isEmpty {
            if case .failure(.insufficientStock(let short)) = outcome, short == model.short {
                return []
            }
            return ["expected insufficientStock(short: \(model.short)), got \(outcome)"]
        }
        let plan: SplitPlan
        switch outcome {
        case .success(let planned):
            plan = planned
        case .failure(let error):
            return ["expected a plan, got error \(error)"]
        }

        var problems: [String] = []
        var shippedPerSKU: [String: Int] = [:]
        var chosen: [String] = []
        for shipment in plan.shipments {
            let warehouse = shipment.warehouse
            if shipment.id != "\(request.shipmentIdPrefix)-\(warehouse)" {
                problems.append("shipment id \(shipment.id) is not \(request.shipmentIdPrefix)-\(warehouse)")
            }
            if request.excludedWarehouses.contains(warehouse) {
                problems.append("excluded warehouse \(warehouse) ships")
            }
            if chosen.contains(warehouse) {
                problems.append("warehouse \(warehouse) has two shipments")
            }
            chosen.append(warehouse)
            if shipment.lines.isEmpty {
                problems.append("shipment from \(warehouse) is empty")
            }
            var seen: [String] = []
            for line in shipment.lines {
                if line.quantity <= 0 {
                    problems.append("\(warehouse) ships \(line.quantity) of \(line.sku)")
                }
                if seen.contains(line.sku) {
                    problems.append("\(warehouse) ships \(line.sku) on two lines")
                }
                seen.append(line.sku)
                let has = model.available[warehouse]?[line.sku] ?? 0
                if line.quantity > has {
                    problems.append("\(warehouse) ships \(line.quantity) of \(line.sku) but has \(has)")
                }
                shippedPerSKU[line.sku, default: 0] += line.quantity
            }
            let positions = seen.map { model.skuOrder.firstIndex(of: $0) ?? -1 }
            if positions != positions.sorted() || positions.contains(-1) {
                problems.append("lines of \(warehouse) are not in order-line order: \(seen)")
            }
        }

        // Every ordered unit is shipped or backordered exactly once, and the most that can ship does.
        var backorderedPerSKU: [String: Int] = [:]
        for line in plan.backordered {
            if line.quantity <= 0 || backorderedPerSKU[line.sku] != nil {
                problems.append("backordered line \(line) is empty or repeated")
            }
            backorderedPerSKU[line.sku, default: 0] += line.quantity
        }
        if plan.backordered.map(\.sku) != plan.backordered.map(\.sku).sorted() {
            problems.append("backordered is not sorted by SKU: \(plan.backordered)")
        }
        for sku in Set(model.need.keys).union(shippedPerSKU.keys).union(backorderedPerSKU.keys) {
            let shipped = shippedPerSKU[sku] ?? 0
            let backordered = backorderedPerSKU[sku] ?? 0
            let ordered = model.need[sku] ?? 0
            if shipped + backordered != ordered {
                problems.append("\(sku): ordered \(ordered), shipped \(shipped) + backordered \(backordered)")
            }
            if shipped != model.target[sku] ?? 0 {
                problems.append("\(sku): shipped \(shipped), but \(model.target[sku] ?? 0) can ship")
            }
        }
        if request.backorder == .reject && !plan.backordered.isEmpty {
            problems.append("backordered \(plan.backordered) although backorders are rejected")
        }

        // Shipments in rank order; the fewest warehouses, and the preferred set among equals.
        let ranks = chosen.map { model.rank(of: $0) ?? -1 }
        if ranks != ranks.sorted() {
            problems.append("shipments are not in rank order: \(chosen) (candidates by rank: \(model.candidates))")
        }
        if exhaustive {
            let optimum = model.bruteForceBest()
            if chosen.count != optimum.size {
                problems.append(
                    "uses \(chosen.count) warehouses \(chosen), but \(optimum.size) suffice: \(optimum.best)")
            } else if chosen != optimum.best {
                problems.append("chose \(chosen), but the tie-break prefers \(optimum.best)")
            }
        } else {
            for warehouse in chosen where model.covers(chosen.filter { $0 != warehouse }) {
                problems.append("\(warehouse) is not needed: the others in \(chosen) cover the order")
            }
        }

        // A line is split only when no chosen warehouse has all of it; whole lines go to the best such warehouse;
        // split lines take from chosen warehouses in rank order.
        for sku in model.skuOrder {
            let quantity = model.target[sku] ?? 0
            guard quantity > 0 else {
                continue
            }
            let carriers = chosen.filter { (model.available[$0]?[sku] ?? 0) >= quantity }
            let shippers = plan.shipments.filter { $0.lines.contains { $0.sku == sku } }.map(\.warehouse)
            if let best = carriers.first {
                if shippers != [best] {
                    problems.append("\(sku) ships from \(shippers), but \(best) has all \(quantity)")
                }
            } else {
                var missing = quantity
                var expected: [String] = []
                for warehouse in chosen where missing > 0 {
                    let taken = min(model.available[warehouse]?[sku] ?? 0, missing)
                    if taken > 0 {
                        expected.append(warehouse)
                        missing -= taken
                    }
                }
                if shippers != expected {
                    problems.append("\(sku) is split over \(shippers), rank order takes from \(expected)")
                }
            }
        }
        return problems
    }

    /// The request, written out for a failure message.
    static func describe(_ request: SplitRequest) -> String {
        let lines = request.lines.map { "\($0.sku)×\($0.quantity)" }.joined(separator: ", ")
        let stock = request.stock.map { "\($0.warehouse)/\($0.sku)×\($0.quantity)" }.joined(separator: ", ")
        return """
            lines: [\(lines)]
            stock: [\(stock)]
            priority: \(request.warehousePriority), excluded: \(request.excludedWarehouses.sorted()), \
            backorder: \(request.backorder)
            """
    }
}

extension SplitPlanner {
    /// `plan(_:)` as a value, so outcomes can be compared.
    static func outcome(_ request: SplitRequest) -> Result<SplitPlan, SplitPlanningError> {
        Result { () throws(SplitPlanningError) in try plan(request) }
    }
}
