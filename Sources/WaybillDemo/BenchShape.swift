import SeededRandom
import WaybillDefinition
import WaybillSimulator

/// The orders `waybill bench` feeds, and so the messages of every saga: the simulated stock and the order lines are
/// chosen together, so that the workflow's `fewest-shipments` split plans the same number of shipments for every
/// order of a shape.
public enum BenchShape: String, Sendable, Hashable, CaseIterable {
    /// Every order ships from exactly two warehouses (its lines are stocked in two disjoint warehouses, with plenty
    /// of units): per saga 1 start, 7 commands (accept, reserve, release x2, ship x2, invoice), 7 replies and the
    /// workflow's 8 milestone events (one per shipment among them). The default: the same work as the reference pattern
    /// of docs/bench.md.
    case twoShipment = "two-shipment"
    /// Every warehouse stocks every SKU, so every order ships from one: 5 commands and 5 replies per saga.
    case oneShipment = "one-shipment"
    /// The demo's orders (1-6 random lines) over its partly stocked catalogue, without injected failures or latency:
    /// orders ship from one to several warehouses, and some find too little stock and backorder the rest (stock
    /// arrives every second). Its sagas differ, so its pattern ceiling replays the two-shipment pattern
    /// (docs/bench.md).
    case mixed

    /// The shape named `name`; an unknown name is an `invalidOption` error whose one-line message lists the shapes.
    public init(parsing name: String) throws(DemoError) {
        guard let shape = BenchShape(rawValue: name) else {
            throw DemoError(
                .invalidOption,
                "unknown shape '\(name)'; use " + Self.allCases.map(\.rawValue).joined(separator: ", ")
                    + " (docs/bench.md)")
        }
        self = shape
    }

    /// Shipments every saga of the shape plans; `nil` for ``mixed``, whose orders differ.
    public var shipments: Int? {
        switch self {
        case .twoShipment: 2
        case .oneShipment: 1
        case .mixed: nil
        }
    }

    /// The shape the pattern ceiling replays: the same one, except two-shipment for ``mixed``.
    public var replayed: BenchShape { self == .mixed ? .twoShipment : self }

    /// Simulated participants for the shape: they answer at once and inject no failures. `orders` sizes the partial
    /// stock of ``mixed`` (the demo's rule: 1.3-1.7 times what that many orders ask for, one SKU short); the other
    /// shapes hold far more units than any run takes.
    public func simulator(orders: Int) throws -> ParticipantSimulator {
        try ParticipantSimulator(configuration: catalogue(orders: orders).configuration())
    }

    /// The shape's warehouses and stock (see ``simulator(orders:)``).
    public func catalogue(orders: Int) -> DemoCatalogue {
        switch self {
        case .oneShipment:
            return DemoCatalogue(
                warehouses: 4, skus: 30, units: Self.plenty...Self.plenty, stockedShare: 1, seed: Self.seed)
        case .twoShipment:
            var catalogue = DemoCatalogue(
                warehouses: 4, skus: 32, units: Self.plenty...Self.plenty, stockedShare: 1, seed: Self.seed)
            let warehouseIndex = Dictionary(uniqueKeysWithValues: catalogue.warehouses.enumerated().map { ($1, $0) })
            let skuIndex = Dictionary(uniqueKeysWithValues: catalogue.skus.enumerated().map { ($1, $0) })
            for row in catalogue.stock.indices {
                let stock = catalogue.stock[row]
                if let warehouse = warehouseIndex[stock.warehouse], let sku = skuIndex[stock.sku],
                    sku % catalogue.warehouses.count != warehouse
                {
                    catalogue.stock[row].quantity = 0
                }
            }
            return catalogue
        case .mixed:
            return DemoRunner.catalogue(orders: max(1, orders), warehouses: 4, seed: Self.mixedSeed)
        }
    }

    /// `count` order bodies with ids `<prefix>-<n>`, `n` from `first`; the same arguments give the same orders.
    public func orders(_ count: Int, prefix: String, first: Int = 1) -> [(sagaId: String, body: [UInt8])] {
        let catalogue = catalogue(orders: 1)
        return (first..<(first + max(0, count))).map { index in
            let id = "\(prefix)-\(index)"
            return (id, JSONText.encodeBytes(order(id: id, catalogue: catalogue)))
        }
    }

    /// One order of the shape over `catalogue` (``catalogue(orders:)``).
    func order(id: String, catalogue: DemoCatalogue) -> JSONValue {
        switch self {
        case .oneShipment:
            return catalogue.order(id: id, lines: 1...6, quantity: 1...4, seed: Self.seed)
        case .mixed:
            return catalogue.order(id: id, lines: 1...6, quantity: 1...4, seed: Self.mixedSeed)
        case .twoShipment:
            // Two different warehouses, 1-3 lines of the SKUs only each of them stocks: no warehouse can ship the
            // whole order, and the two together can.
            var random = SplitMix64.keyed(seed: Self.seed, ["two-shipment", id])
            let warehouses = catalogue.warehouses.count
            let first = random.int(in: 0...(warehouses - 1))
            var second = random.int(in: 0...(warehouses - 2))
            if second >= first { second += 1 }
            var lines: [JSONValue] = []
            for warehouse in [first, second] {
                var pool = catalogue.skus.indices.filter { $0 % warehouses == warehouse }.map { catalogue.skus[$0] }
                for _ in 0..<random.int(in: 1...3) {
                    let sku = pool.remove(at: random.int(in: 0...(pool.count - 1)))
                    lines.append(["sku": .string(sku), "quantity": .number(Double(random.int(in: 1...4)))])
                }
            }
            return ["orderId": .string(id), "lines": .array(lines)]
        }
    }

    private static let plenty = 100_000_000
    private static let seed: UInt64 = 7
    /// The demo's default seed.
    private static let mixedSeed: UInt64 = 2025
}
