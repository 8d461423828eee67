/// Finds which warehouses ship an order: the smallest set whose stock covers every SKU's target quantity.
///
/// Warehouses are identified by rank (0 is the best) and `stock` is a row-major matrix, one row of `skuCount`
/// quantities per rank. A target of 0 needs nothing. Every quantity is >= 0, and the targets never exceed what all
/// warehouses together hold, so the set of all warehouses always covers them.
struct WarehouseSetSearch {
    /// Up to this many candidate warehouses the search is exact; above it, greedy.
    static let exactSearchLimit = 16

    let stock: [Int]
    let target: [Int]
    let warehouseCount: Int
    let skuCount: Int

    /// The chosen warehouse ranks, ascending.
    ///
    /// Up to `exactSearchLimit` warehouses: the minimum-size covering set; among several, the one whose ranks,
    /// ascending, are lexicographically smallest. Above: the greedy set of `greedyCover()`.
    func chooseWarehouses() -> [Int] {
        if warehouseCount <= Self.exactSearchLimit {
            return exactCover()
        }
        return greedyCover()
    }

    /// Tries sizes 1, 2, ... and, for each, the sets of that size in lexicographic order of their ascending ranks;
    /// the first set that covers the targets wins, which gives both the minimum size and the tie-break.
    func exactCover() -> [Int] {
        let skus = skuCount
        let rows = warehouseCount + 1
        // One scratch buffer (one allocation on the hot path), three regions:
        // suffix, `rows` x `skus`: row r holds the units per SKU in the warehouses ranked r or worse (saturating);
        // deficits, `rows` x `skus`: row d holds the units still missing per SKU after the first d picks (>= 0);
        // picked, `warehouseCount`: the ranks picked so far, ascending.
        var scratch = [Int](repeating: 0, count: 2 * rows * skus + warehouseCount)
        let size = scratch.withUnsafeMutableBufferPointer { scratch in
            stock.withUnsafeBufferPointer { stock in
                ExactCover(stock: stock, scratch: scratch, warehouseCount: warehouseCount, skuCount: skus)
                    .minimumSize(target: target)
            }
        }
        let pickedBase = 2 * rows * skus
        return Array(scratch[pickedBase..<(pickedBase + size)])
    }

    /// The exact search's working state. It only lives inside `exactCover()`'s `withUnsafe...BufferPointer`
    /// closures, which own the buffers: this is the planner's innermost loop, and array uniqueness checks showed in
    /// profiles. Every index stays within the regions documented in `exactCover()`.
    private struct ExactCover {
        let stock: UnsafeBufferPointer<Int>
        let scratch: UnsafeMutableBufferPointer<Int>
        let warehouseCount: Int
        let skuCount: Int
        var deficitBase: Int { (warehouseCount + 1) * skuCount }
        var pickedBase: Int { 2 * (warehouseCount + 1) * skuCount }

        /// Fills in the picked region and returns how many warehouses it holds.
        func minimumSize(target: [Int]) -> Int {
            let skus = skuCount
            var rank = warehouseCount - 1
            while rank >= 0 {
                for sku in 0..<skus {
                    scratch[rank * skus + sku] = saturatingAdd(
                        scratch[(rank + 1) * skus + sku], stock[rank * skus + sku])
                }
                rank -= 1
            }
            for sku in 0..<skus {
                scratch[deficitBase + sku] = target[sku]
            }
            if isCovered(depth: 0) {
                return 0
            }
            for size in 1...max(1, warehouseCount) {
                if extend(depth: 0, from: 0, size: size) {
                    return size
                }
            }
            // Unreachable while the targets fit the stock (all warehouses cover them); kept total all the same.
            for rank in 0..<warehouseCount {
                scratch[pickedBase + rank] = rank
            }
            return warehouseCount
        }

        /// Whether some `size - depth` warehouses ranked `start` or worse complete the `depth` picked so far.
        private func extend(depth: Int, from start: Int, size: Int) -> Bool {
            let skus = skuCount
            if depth > 0 && isCovered(depth: depth) {
                return true
            }
            if depth == size {
                return false
            }
            let last = warehouseCount - (size - depth)
            guard start <= last else {
                return false
            }
            let current = deficitBase + depth * skus
            let next = current + skus
            for rank in start...last {
                // Even every warehouse from `rank` on cannot cover this SKU, and later ranks see less: give up here.
                for sku in 0..<skus where scratch[current + sku] > scratch[rank * skus + sku] {
                    return false
                }
                for sku in 0..<skus {
                    scratch[next + sku] = max(0, scratch[current + sku] - stock[rank * skus + sku])
                }
                scratch[pickedBase + depth] = rank
                if extend(depth: depth + 1, from: rank + 1, size: size) {
                    return true
                }
            }
            return false
        }

        private func isCovered(depth: Int) -> Bool {
            let base = deficitBase + depth * skuCount
            for sku in 0..<skuCount where scratch[base + sku] > 0 {
                return false
            }
            return true
        }
    }

    /// Repeatedly adds the warehouse that covers the most still-missing units (ties: better rank), then drops
    /// warehouses the others make redundant, worst rank first. Not always minimal, but no warehouse in it can be
    /// left out.
    func greedyCover() -> [Int] {
        let skus = skuCount
        var deficit = target
        var isPicked = [Bool](repeating: false, count: warehouseCount)
        while deficit.contains(where: { $0 > 0 }) {
            var best = -1
            var bestCovered = 0
            for rank in 0..<warehouseCount where !isPicked[rank] {
                var covered = 0
                for sku in 0..<skus {
                    covered = saturatingAdd(covered, min(stock[rank * skus + sku], deficit[sku]))
                }
                if covered > bestCovered {
                    best = rank
                    bestCovered = covered
                }
            }
            guard best >= 0 else {
                break
            }
            isPicked[best] = true
            for sku in 0..<skus {
                deficit[sku] = max(0, deficit[sku] - stock[best * skus + sku])
            }
        }
        var rank = warehouseCount - 1
        while rank >= 0 {
            if isPicked[rank] {
                isPicked[rank] = false
                if !covers(isPicked) {
                    isPicked[rank] = true
                }
            }
            rank -= 1
        }
        return isPicked.indices.filter { isPicked[$0] }
    }

    private func covers(_ isPicked: [Bool]) -> Bool {
        for sku in 0..<skuCount where target[sku] > 0 {
            var available = 0
            for rank in 0..<warehouseCount where isPicked[rank] {
                available = saturatingAdd(available, stock[rank * skuCount + sku])
            }
            if available < target[sku] {
                return false
            }
        }
        return true
    }
}

/// `a + b`, or `Int.max` when that overflows; both are >= 0 here.
@inline(__always)
func saturatingAdd(_ a: Int, _ b: Int) -> Int {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? Int.max : sum
}
