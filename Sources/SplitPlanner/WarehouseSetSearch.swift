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
        // suffix[rank * skus + sku]: units of `sku` in warehouses ranked `rank` or worse (saturating).
        var suffix = [Int](repeating: 0, count: (warehouseCount + 1) * skus)
        var rank = warehouseCount - 1
        while rank >= 0 {
            for sku in 0..<skus {
                suffix[rank * skus + sku] = saturatingAdd(suffix[(rank + 1) * skus + sku], stock[rank * skus + sku])
            }
            rank -= 1
        }
        var state = ExactCoverState(
            deficits: [Int](repeating: 0, count: (warehouseCount + 1) * skus),
            picked: []
        )
        for sku in 0..<skus {
            state.deficits[sku] = target[sku]
        }
        if isCovered(state.deficits, row: 0) {
            return []
        }
        state.picked.reserveCapacity(warehouseCount)
        for size in 1...max(1, warehouseCount) {
            if extend(&state, suffix: suffix, depth: 0, from: 0, size: size) {
                return state.picked
            }
        }
        // Unreachable while the targets fit the stock (all warehouses cover them); kept total all the same.
        return Array(0..<warehouseCount)
    }

    private struct ExactCoverState {
        /// Row `depth`: units still missing per SKU after the first `depth` picks (clamped at 0).
        var deficits: [Int]
        var picked: [Int]
    }

    private func extend(
        _ state: inout ExactCoverState, suffix: [Int], depth: Int, from start: Int, size: Int
    ) -> Bool {
        let skus = skuCount
        let base = depth * skus
        if depth > 0 && isCovered(state.deficits, row: depth) {
            return true
        }
        if depth == size {
            return false
        }
        let last = warehouseCount - (size - depth)
        guard start <= last else {
            return false
        }
        for rank in start...last {
            // Even every warehouse from `rank` on cannot cover this SKU, and later ranks see less: give up here.
            for sku in 0..<skus where state.deficits[base + sku] > suffix[rank * skus + sku] {
                return false
            }
            let next = base + skus
            for sku in 0..<skus {
                state.deficits[next + sku] = max(0, state.deficits[base + sku] - stock[rank * skus + sku])
            }
            state.picked.append(rank)
            if extend(&state, suffix: suffix, depth: depth + 1, from: rank + 1, size: size) {
                return true
            }
            state.picked.removeLast()
        }
        return false
    }

    private func isCovered(_ deficits: [Int], row: Int) -> Bool {
        let base = row * skuCount
        for sku in 0..<skuCount where deficits[base + sku] > 0 {
            return false
        }
        return true
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
