import PlainText
import SeededRandom
import WaybillDefinition

/// A generated catalogue for the demo: warehouses, SKUs, lumpy initial stock, and orders over those SKUs.
///
/// Everything is derived from the seed, so the same arguments always give the same catalogue and orders.
public struct DemoCatalogue: Sendable, Hashable {
    /// Warehouse names, `wh-01`, `wh-02`, ... (valid routing key words).
    public var warehouses: [String]
    /// SKU names, `sku-0001`, `sku-0002`, ...
    public var skus: [String]
    /// The initial stock: for each warehouse and SKU, a row with a quantity drawn from the units range, or 0 for
    /// the pairs left unstocked. Every warehouse has a row for every SKU, so every warehouse has a WMS.
    public var stock: [StockRecord]
    /// The seed the catalogue was drawn from; orders mix it with their own.
    public var seed: UInt64

    /// A catalogue of `warehouses` warehouses and `skus` SKUs (negative counts are taken as 0).
    ///
    /// - Parameters:
    ///   - units: the quantity range of a stocked (warehouse, SKU) pair; negative bounds are taken as 0.
    ///   - stockedShare: the share of (warehouse, SKU) pairs that have stock at all (clamped to 0...1). Below 1,
    ///     some orders need several warehouses, which is what the split step is for.
    public init(
        warehouses: Int = 4, skus: Int = 20, units: ClosedRange<Int> = 5...40, stockedShare: Double = 0.7,
        seed: UInt64 = 1
    ) {
        self.warehouses = Self.names("wh", count: max(0, warehouses), minimumDigits: 2)
        self.skus = Self.names("sku", count: max(0, skus), minimumDigits: 4)
        self.seed = seed
        let share = stockedShare.isNaN ? 0 : min(1, max(0, stockedShare))
        let low = max(0, units.lowerBound)
        let high = max(low, units.upperBound)
        var random = SplitMix64(seed: seed)
        var stock: [StockRecord] = []
        for warehouse in self.warehouses {
            for sku in self.skus {
                let stocked = random.unit() < share
                let quantity = random.int(in: low...high)
                stock.append(StockRecord(warehouse: warehouse, sku: sku, quantity: stocked ? quantity : 0))
            }
        }
        self.stock = stock
    }

    /// A configuration with this catalogue's stock; `discontinued` SKUs never arrive again.
    public func configuration(
        behaviours: [CommandBehaviour] = [], seed: UInt64? = nil, discontinued: [String] = []
    ) -> SimulationConfiguration {
        SimulationConfiguration(
            stock: stock, behaviours: behaviours, seed: seed ?? self.seed, discontinued: discontinued)
    }

    /// An order body for the trigger exchange: `{"orderId": id, "lines": [{"sku", "quantity"}]}` with distinct SKUs.
    ///
    /// - Parameters:
    ///   - lines: how many lines (at most the number of SKUs; negative bounds are taken as 0).
    ///   - quantity: units per line (negative bounds are taken as 0).
    ///   - seed: picks the order; the same id, seed and ranges always give the same order.
    public func order(
        id: String, lines: ClosedRange<Int> = 1...4, quantity: ClosedRange<Int> = 1...5, seed: UInt64 = 0
    ) -> JSONValue {
        var random = SplitMix64.keyed(seed: self.seed ^ seed, ["order", id])
        let lineLow = min(max(0, lines.lowerBound), skus.count)
        let lineCount = random.int(in: lineLow...min(max(lineLow, lines.upperBound), skus.count))
        let quantityLow = max(0, quantity.lowerBound)
        let quantityHigh = max(quantityLow, quantity.upperBound)
        var pool = skus
        var body: [JSONValue] = []
        for _ in 0..<lineCount {
            let sku = pool.remove(at: random.int(in: 0...(pool.count - 1)))
            let units = random.int(in: quantityLow...quantityHigh)
            body.append(["sku": .string(sku), "quantity": .number(Double(units))])
        }
        return ["orderId": .string(id), "lines": .array(body)]
    }

    private static func names(_ prefix: String, count: Int, minimumDigits: Int) -> [String] {
        let width = max(minimumDigits, String(count).count)
        return (0..<count).map { prefix + "-" + String($0 + 1).padded(to: width, .right, fill: "0") }
    }
}
