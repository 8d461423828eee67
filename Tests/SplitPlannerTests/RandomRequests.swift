import SeededRandom
import SplitPlanner

/// Choices and shuffles drawn from the seeded generator, so every random case can be rebuilt from its seed.
///
/// Shuffles are done here rather than with the standard library's `shuffle(using:)`, whose algorithm may change
/// between toolchains; a seed printed by a failing test then names the same case everywhere.
extension SplitMix64 {
    /// True `numerator` times out of `denominator`.
    mutating func chance(_ numerator: Int, in denominator: Int) -> Bool {
        int(in: 0...(denominator - 1)) < numerator
    }

    mutating func pick<T>(_ elements: [T]) -> T {
        elements[int(in: 0...(elements.count - 1))]
    }

    mutating func shuffle<T>(_ elements: inout [T]) {
        guard elements.count > 1 else {
            return
        }
        for index in stride(from: elements.count - 1, to: 0, by: -1) {
            elements.swapAt(index, int(in: 0...index))
        }
    }

    /// The seed of case `index` of a test run whose seed is `base`: each case can be replayed on its own.
    static func caseSeed(base: UInt64, index: Int) -> UInt64 {
        var generator = SplitMix64(seed: base &+ UInt64(index) &* 0xD1B5_4A32_D192_ED03)
        return generator.next()
    }
}

/// Random split requests, built from a seed.
enum RandomRequests {
    private static let warehouseNames = [
        "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P",
        "W10", "W9", "w1", "Zed", "dc-east", "dc-west", "Q", "R", "S", "T", "U", "V", "X", "Y",
    ]
    private static let skuNames = ["sku-a", "sku-b", "sku-c", "sku-d", "sku-e", "sku-f"]

    /// A request with between `warehouses.lowerBound` and `warehouses.upperBound` warehouses named in its stock.
    /// `density` is how many (warehouse, SKU) pairs out of 10 have stock rows.
    static func make(
        seed: UInt64, warehouses: ClosedRange<Int>, maxLineQuantity: Int = 6, density: ClosedRange<Int> = 2...7
    ) -> SplitRequest {
        var random = SplitMix64(seed: seed)
        var names = warehouseNames
        random.shuffle(&names)
        let used = Array(names.prefix(random.int(in: warehouses)))
        let skuCount = random.int(in: 1...5)
        let skus = Array(skuNames.prefix(skuCount))

        var lines: [OrderLine] = []
        for _ in 0..<(random.chance(1, in: 20) ? 0 : random.int(in: 1...7)) {
            let quantity = random.chance(1, in: 10) ? 0 : random.int(in: 1...maxLineQuantity)
            lines.append(OrderLine(sku: random.pick(skus), quantity: quantity))
        }

        // Sparse, lumpy stock so that minimum sets of 1 to several warehouses all occur.
        let stockedOutOfTen = random.int(in: density)
        var stock: [StockLevel] = []
        for warehouse in used {
            for sku in skus + ["not-ordered"] where random.chance(stockedOutOfTen, in: 10) {
                for _ in 0..<random.int(in: 1...2) {
                    let quantity = random.chance(1, in: 8) ? random.int(in: -3...0) : random.int(in: 1...6)
                    stock.append(StockLevel(warehouse: warehouse, sku: sku, quantity: quantity))
                }
            }
        }
        random.shuffle(&stock)

        var priority: [String] = used.filter { _ in random.chance(1, in: 2) }
        random.shuffle(&priority)
        if random.chance(1, in: 5) {
            priority.insert("ghost", at: random.int(in: 0...priority.count))
        }
        if let repeated = priority.first, random.chance(1, in: 5) {
            priority.append(repeated)
        }

        var excluded = Set(used.filter { _ in random.chance(1, in: 6) })
        if random.chance(1, in: 10) {
            excluded.insert("ghost")
        }

        return SplitRequest(
            lines: lines, stock: stock, warehousePriority: priority, excludedWarehouses: excluded,
            backorder: random.chance(1, in: 2) ? .reject : .allow, shipmentIdPrefix: "order-\(seed % 1000)"
        )
    }

    /// The same request with its stock rows in another order.
    static func shufflingStock(_ request: SplitRequest, seed: UInt64) -> SplitRequest {
        var random = SplitMix64(seed: seed ^ 0x5EED)
        var shuffled = request
        random.shuffle(&shuffled.stock)
        return shuffled
    }
}
