import SeededRandom
import SplitPlanner
import Testing

/// Random orders and stock from a seeded generator, judged against `ReferenceModel`. A failure prints the case's
/// seed; `RandomRequests.make(seed:warehouses:...)` with that seed rebuilds the request.
@Suite("Split planner properties")
struct SplitPlannerPropertyTests {
    /// How many random cases exercised each interesting situation, so a generator that drifts into trivial
    /// cases fails the test instead of passing it vacuously.
    struct Coverage {
        var cases = 0
        var plans = 0
        var multiWarehousePlans = 0
        var splitLines = 0
        var ties = 0
        var rejected = 0
        var backordered = 0
        var greedy = 0
        /// Cases that broke a property; the run stops after three, so the counts above are then partial.
        var failures = 0
    }

    /// Runs `count` random cases, records at most three failing ones, and counts what they covered.
    private func run(
        base: UInt64, count: Int, warehouses: ClosedRange<Int>, maxLineQuantity: Int = 6,
        density: ClosedRange<Int> = 2...7, exhaustive: Bool
    ) -> Coverage {
        var coverage = Coverage()
        for index in 0..<count where coverage.failures < 3 {
            let seed = SplitMix64.caseSeed(base: base, index: index)
            let request = RandomRequests.make(
                seed: seed, warehouses: warehouses, maxLineQuantity: maxLineQuantity, density: density
            )
            let model = ReferenceModel(request)
            let outcome = SplitPlanner.outcome(request)
            var problems = PlanChecker.violations(of: outcome, for: model, exhaustive: exhaustive)

            // Deterministic: the same request, again and with its stock rows reordered, plans the same.
            if SplitPlanner.outcome(request) != outcome {
                problems.append("planning the same request twice gave different outcomes")
            }
            let shuffled = SplitPlanner.outcome(RandomRequests.shufflingStock(request, seed: seed))
            if shuffled != outcome {
                problems.append("reordering the stock rows changed the outcome to \(shuffled)")
            }

            if !problems.isEmpty {
                coverage.failures += 1
                Issue.record(
                    """
                    case \(index), seed 0x\(String(seed, radix: 16)) (warehouses \(warehouses)); rebuild it with \
                    RandomRequests.make(seed: 0x\(String(seed, radix: 16)), warehouses: \(warehouses), \
                    maxLineQuantity: \(maxLineQuantity), density: \(density)):
                    \(PlanChecker.describe(request))
                    outcome: \(outcome)
                    - \(problems.joined(separator: "\n- "))
                    """
                )
            }

            coverage.cases += 1
            if model.candidates.count > SplitPlanner.exactSearchLimit {
                coverage.greedy += 1
            }
            guard case .success(let plan) = outcome else {
                coverage.rejected += 1
                continue
            }
            coverage.plans += 1
            coverage.multiWarehousePlans += plan.shipments.count > 1 ? 1 : 0
            coverage.backordered += plan.backordered.isEmpty ? 0 : 1
            let skus = plan.shipments.flatMap { $0.lines.map(\.sku) }
            coverage.splitLines += Set(skus).count < skus.count ? 1 : 0
            if exhaustive && !plan.shipments.isEmpty && model.bruteForceBest().ties > 1 {
                coverage.ties += 1
            }
        }
        return coverage
    }

    @Test("up to 6 warehouses: plans match the brute-force optimum and tie-break")
    func smallOrdersAreOptimal() {
        let coverage = run(base: 0x5EED_0001, count: 4000, warehouses: 1...6, exhaustive: true)
        guard coverage.failures == 0 else {
            return
        }
        #expect(coverage.multiWarehousePlans >= 400, "\(coverage)")
        #expect(coverage.splitLines >= 200, "\(coverage)")
        #expect(coverage.ties >= 300, "\(coverage)")
        #expect(coverage.rejected >= 200 && coverage.backordered >= 200, "\(coverage)")
    }

    @Test("7 to 12 warehouses: exact search still matches brute force")
    func mediumOrdersAreOptimal() {
        let coverage = run(base: 0x5EED_0002, count: 300, warehouses: 7...12, density: 4...8, exhaustive: true)
        guard coverage.failures == 0 else {
            return
        }
        #expect(coverage.multiWarehousePlans >= 60 && coverage.ties >= 60, "\(coverage)")
    }

    @Test("around the exact-search limit: sound, deterministic, no redundant warehouse")
    func aroundTheExactSearchLimit() {
        let limit = SplitPlanner.exactSearchLimit
        let coverage = run(
            base: 0x5EED_0003, count: 300, warehouses: (limit - 1)...(limit + 6), density: 8...9, exhaustive: false
        )
        guard coverage.failures == 0 else {
            return
        }
        #expect(coverage.greedy >= 40 && coverage.cases - coverage.greedy >= 40, "\(coverage)")
    }

    @Test("more than 16 warehouses (greedy): sound, deterministic, no redundant warehouse")
    func largeOrdersAreSound() {
        let coverage = run(
            base: 0x5EED_0005, count: 400, warehouses: 20...30, maxLineQuantity: 15, density: 7...9, exhaustive: false
        )
        guard coverage.failures == 0 else {
            return
        }
        #expect(coverage.greedy >= 200 && coverage.multiWarehousePlans >= 100, "\(coverage)")
    }

    @Test("with .reject and enough stock nothing is backordered")
    func rejectWithEnoughStockShipsEverything() {
        var checked = 0
        var index = 0
        while checked < 1000 && index < 50_000 {
            let seed = SplitMix64.caseSeed(base: 0x5EED_0006, index: index)
            index += 1
            var request = RandomRequests.make(seed: seed, warehouses: 1...6)
            request.backorder = .reject
            guard ReferenceModel(request).short.isEmpty else {
                continue
            }
            checked += 1
            let outcome = SplitPlanner.outcome(request)
            guard case .success(let plan) = outcome, plan.backordered.isEmpty else {
                Issue.record(
                    "seed 0x\(String(seed, radix: 16)):\n\(PlanChecker.describe(request))\noutcome: \(outcome)")
                return
            }
        }
        #expect(checked == 1000, "only \(checked) random requests had enough stock")
    }
}
