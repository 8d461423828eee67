import SplitPlanner
import Testing

/// One hand-made request and the outcome it must give.
struct Example: Sendable, CustomTestStringConvertible {
    enum Expected: Sendable {
        /// Shipments as (warehouse, [(sku, quantity)]) best rank first, then backordered (sku, quantity).
        case plan([(String, [(String, Int)])], backordered: [(String, Int)] = [])
        case insufficientStock([(String, Int)])
        /// `.invalidRequest` whose message contains this text.
        case invalid(containing: String)
    }

    let name: String
    let request: SplitRequest
    let expected: Expected

    var testDescription: String { name }

    init(
        _ name: String, lines: [(String, Int)], stock: [(String, String, Int)], priority: [String] = [],
        excluded: Set<String> = [], backorder: SplitRequest.Backorder = .reject, expect expected: Expected
    ) {
        self.name = name
        self.request = SplitRequest(
            lines: lines.map { OrderLine(sku: $0.0, quantity: $0.1) },
            stock: stock.map { StockLevel(warehouse: $0.0, sku: $0.1, quantity: $0.2) },
            warehousePriority: priority, excludedWarehouses: excluded, backorder: backorder,
            shipmentIdPrefix: "o-17"
        )
        self.expected = expected
    }

    func check() {
        let outcome = SplitPlanner.outcome(request)
        switch expected {
        case .plan(let shipments, let backordered):
            let plan = SplitPlan(
                shipments: shipments.map { warehouse, lines in
                    PlannedShipment(
                        id: "o-17-\(warehouse)", warehouse: warehouse,
                        lines: lines.map { OrderLine(sku: $0.0, quantity: $0.1) }
                    )
                },
                backordered: backordered.map { OrderLine(sku: $0.0, quantity: $0.1) }
            )
            #expect(outcome == .success(plan))
        case .insufficientStock(let short):
            #expect(outcome == .failure(.insufficientStock(short: short.map { OrderLine(sku: $0.0, quantity: $0.1) })))
        case .invalid(let text):
            guard case .failure(.invalidRequest(let message)) = outcome else {
                Issue.record("expected invalidRequest containing \"\(text)\", got \(outcome)")
                return
            }
            #expect(message.contains(text), "message: \(message)")
        }
    }
}

@Suite("Split planner examples")
struct SplitPlannerExampleTests {
    static let singleWarehouseExamples: [Example] = [
        Example(
            "one warehouse has everything", lines: [("x", 2), ("y", 1)],
            stock: [("B", "x", 5), ("A", "x", 2), ("A", "y", 1)],
            expect: .plan([("A", [("x", 2), ("y", 1)])])
        ),
        Example(
            "a complete warehouse beats two better-ranked partial ones", lines: [("x", 2), ("y", 1)],
            stock: [("A", "x", 2), ("B", "y", 1), ("C", "x", 9), ("C", "y", 9)], priority: ["A", "B", "C"],
            expect: .plan([("C", [("x", 2), ("y", 1)])])
        ),
        Example(
            "stock of SKUs not ordered does not matter", lines: [("x", 1)],
            stock: [("A", "other", 50), ("B", "x", 1)], priority: ["A"],
            expect: .plan([("B", [("x", 1)])])
        ),
        Example("an empty order ships nothing", lines: [], stock: [("A", "x", 1)], expect: .plan([])),
        Example(
            "lines of 0 units are dropped", lines: [("x", 0), ("y", 1)], stock: [("A", "y", 1)],
            expect: .plan([("A", [("y", 1)])])
        ),
        Example(
            "an order of only 0-unit lines ships nothing, even without stock", lines: [("x", 0)], stock: [],
            expect: .plan([])
        ),
    ]

    static let priorityTiesExamples: [Example] = [
        Example(
            "the better-priority of two complete warehouses", lines: [("x", 1)],
            stock: [("A", "x", 1), ("B", "x", 1)], priority: ["B", "A"],
            expect: .plan([("B", [("x", 1)])])
        ),
        Example(
            "a listed warehouse beats an unlisted one", lines: [("x", 1)],
            stock: [("A", "x", 1), ("Z", "x", 1)], priority: ["Z"],
            expect: .plan([("Z", [("x", 1)])])
        ),
        Example(
            "{1st, 4th} beats {2nd, 3rd}", lines: [("x", 1), ("y", 2)],
            stock: [("A", "x", 1), ("B", "x", 1), ("B", "y", 1), ("C", "y", 1), ("D", "y", 2)],
            priority: ["A", "B", "C", "D"],
            expect: .plan([("A", [("x", 1)]), ("D", [("y", 2)])])
        ),
        Example(
            "the same stock with B and C ranked first", lines: [("x", 1), ("y", 2)],
            stock: [("A", "x", 1), ("B", "x", 1), ("B", "y", 1), ("C", "y", 1), ("D", "y", 2)],
            priority: ["B", "C", "A", "D"],
            expect: .plan([("B", [("x", 1), ("y", 1)]), ("C", [("y", 1)])])
        ),
        Example(
            "the first mention in the priority list counts; unknown names are ignored", lines: [("x", 1)],
            stock: [("A", "x", 1), ("B", "x", 1)], priority: ["ghost", "B", "A", "B"],
            expect: .plan([("B", [("x", 1)])])
        ),
    ]

    static let nameTiesExamples: [Example] = [
        Example(
            "without priorities the first name wins", lines: [("x", 1)],
            stock: [("B", "x", 1), ("A", "x", 1)],
            expect: .plan([("A", [("x", 1)])])
        ),
        Example(
            "names compare as strings, not numbers", lines: [("x", 1)],
            stock: [("W9", "x", 1), ("W10", "x", 1)],
            expect: .plan([("W10", [("x", 1)])])
        ),
        Example(
            "unlisted warehouses come after listed ones, by name", lines: [("x", 1), ("y", 1)],
            stock: [("C", "x", 1), ("B", "y", 1), ("A", "y", 1)], priority: ["C"],
            expect: .plan([("C", [("x", 1)]), ("A", [("y", 1)])])
        ),
    ]

    static let splittingExamples: [Example] = [
        Example(
            "a line is split when no warehouse has all of it", lines: [("x", 5)],
            stock: [("A", "x", 3), ("B", "x", 3)],
            expect: .plan([("A", [("x", 3)]), ("B", [("x", 2)])])
        ),
        Example(
            "a split takes from warehouses in rank order", lines: [("x", 5)],
            stock: [("A", "x", 3), ("B", "x", 3)], priority: ["B"],
            expect: .plan([("B", [("x", 3)]), ("A", [("x", 2)])])
        ),
        Example(
            "a line is not split when a chosen warehouse has all of it", lines: [("x", 2), ("y", 3)],
            stock: [("A", "x", 2), ("A", "y", 1), ("B", "y", 3)],
            expect: .plan([("A", [("x", 2)]), ("B", [("y", 3)])])
        ),
        Example(
            "a whole line goes to the best-ranked chosen warehouse that has it", lines: [("x", 1), ("y", 2), ("z", 1)],
            stock: [("A", "x", 1), ("A", "y", 2), ("B", "y", 2), ("B", "z", 1)],
            expect: .plan([("A", [("x", 1), ("y", 2)]), ("B", [("z", 1)])])
        ),
        Example(
            "three warehouses when two cannot hold enough", lines: [("x", 6)],
            stock: [("A", "x", 2), ("B", "x", 2), ("C", "x", 2), ("D", "x", 1)],
            expect: .plan([("A", [("x", 2)]), ("B", [("x", 2)]), ("C", [("x", 2)])])
        ),
        Example(
            "two big warehouses beat three better-ranked small ones", lines: [("x", 6)],
            stock: [("A", "x", 2), ("B", "x", 2), ("C", "x", 2), ("D", "x", 3), ("E", "x", 3)],
            expect: .plan([("D", [("x", 3)]), ("E", [("x", 3)])])
        ),
        Example(
            "lines keep order-line order inside a shipment", lines: [("z", 1), ("a", 1), ("m", 1)],
            stock: [("A", "a", 1), ("A", "m", 1), ("A", "z", 1)],
            expect: .plan([("A", [("z", 1), ("a", 1), ("m", 1)])])
        ),
    ]

    static let exclusionExamples: [Example] = [
        Example(
            "an excluded warehouse is never used", lines: [("x", 1)],
            stock: [("A", "x", 1), ("B", "x", 1)], priority: ["A", "B"], excluded: ["A"],
            expect: .plan([("B", [("x", 1)])])
        ),
        Example(
            "excluding the only holder makes stock short", lines: [("x", 2)],
            stock: [("A", "x", 5), ("B", "x", 1)], excluded: ["A"],
            expect: .insufficientStock([("x", 1)])
        ),
        Example(
            "excluding the only holder with backorders allowed", lines: [("x", 2)],
            stock: [("A", "x", 5), ("B", "x", 1)], excluded: ["A"], backorder: .allow,
            expect: .plan([("B", [("x", 1)])], backordered: [("x", 1)])
        ),
        Example(
            "exclusion forces a split", lines: [("x", 4)],
            stock: [("A", "x", 4), ("B", "x", 2), ("C", "x", 2)], excluded: ["A", "nowhere"],
            expect: .plan([("B", [("x", 2)]), ("C", [("x", 2)])])
        ),
    ]

    static let backordersExamples: [Example] = [
        Example(
            "reject: short stock fails with the missing units", lines: [("x", 3), ("y", 2)],
            stock: [("A", "x", 1), ("A", "y", 2)],
            expect: .insufficientStock([("x", 2)])
        ),
        Example(
            "allow: ship what exists, backorder the rest", lines: [("x", 3), ("y", 2)],
            stock: [("A", "x", 1), ("A", "y", 2)], backorder: .allow,
            expect: .plan([("A", [("x", 1), ("y", 2)])], backordered: [("x", 2)])
        ),
        Example(
            "reject: missing units are listed by SKU", lines: [("z", 5), ("a", 4), ("m", 1)],
            stock: [("A", "m", 1)],
            expect: .insufficientStock([("a", 4), ("z", 5)])
        ),
        Example(
            "allow: backordered lines are sorted by SKU", lines: [("z", 5), ("a", 4), ("m", 1)],
            stock: [("A", "m", 1), ("A", "z", 2)], backorder: .allow,
            expect: .plan([("A", [("z", 2), ("m", 1)])], backordered: [("a", 4), ("z", 3)])
        ),
        Example(
            "allow: every unit that exists ships, from as few warehouses as that takes", lines: [("x", 9), ("y", 1)],
            stock: [("A", "x", 1), ("A", "y", 1), ("B", "x", 2), ("C", "y", 5)], backorder: .allow,
            expect: .plan([("A", [("x", 1), ("y", 1)]), ("B", [("x", 2)])], backordered: [("x", 6)])
        ),
        Example(
            "allow: nothing in stock backorders everything", lines: [("x", 2)], stock: [], backorder: .allow,
            expect: .plan([], backordered: [("x", 2)])
        ),
        Example(
            "reject with exactly enough stock", lines: [("x", 3)],
            stock: [("A", "x", 1), ("B", "x", 2)],
            expect: .plan([("A", [("x", 1)]), ("B", [("x", 2)])])
        ),
    ]

    static let invalidRequestsExamples: [Example] = [
        Example(
            "a negative quantity", lines: [("x", 1), ("y", -2)], stock: [("A", "x", 1)],
            expect: .invalid(containing: "lines[1] has a negative quantity (-2)")
        ),
        Example(
            "an empty SKU", lines: [("", 1)], stock: [("A", "x", 1)],
            expect: .invalid(containing: "lines[0] has an empty SKU")
        ),
        Example(
            "a negative quantity is invalid even with backorders allowed", lines: [("x", -1)], stock: [],
            backorder: .allow, expect: .invalid(containing: "lines[0] has a negative quantity")
        ),
        Example(
            "a stock row without a warehouse", lines: [("x", 1)], stock: [("A", "y", 1), ("", "x", 1)],
            expect: .invalid(containing: "stock[1] has no warehouse name")
        ),
        Example(
            "order lines that add up past Int.max", lines: [("x", Int.max), ("x", 1)], stock: [],
            expect: .invalid(containing: "lines[1]")
        ),
        Example(
            "stock rows that add up past Int.max", lines: [("x", 1)],
            stock: [("A", "x", Int.max), ("A", "x", 1)],
            expect: .invalid(containing: "stock[1]")
        ),
    ]

    static let duplicatesExamples: [Example] = [
        Example(
            "duplicate stock rows add up", lines: [("x", 4)],
            stock: [("A", "x", 2), ("B", "x", 4), ("A", "x", 2)], priority: ["A", "B"],
            expect: .plan([("A", [("x", 4)])])
        ),
        Example(
            "stock rows of 0 or less are ignored, not subtracted", lines: [("x", 5)],
            stock: [("A", "x", 5), ("A", "x", -3), ("A", "x", 0)],
            expect: .plan([("A", [("x", 5)])])
        ),
        Example(
            "a warehouse with only empty rows is not used", lines: [("x", 1)],
            stock: [("A", "x", 0), ("B", "x", -1), ("C", "x", 1)],
            expect: .plan([("C", [("x", 1)])])
        ),
        Example(
            "duplicate order lines merge at the first one's place", lines: [("x", 1), ("y", 1), ("x", 2)],
            stock: [("A", "y", 5), ("A", "x", 5)],
            expect: .plan([("A", [("x", 3), ("y", 1)])])
        ),
        Example(
            "merged lines are short as a whole", lines: [("x", 2), ("x", 2)], stock: [("A", "x", 3)],
            expect: .insufficientStock([("x", 1)])
        ),
    ]

    /// Above `SplitPlanner.exactSearchLimit` candidates (here 18) the planner is greedy.
    static let greedyExamples: [Example] = [
        Example(
            "greedy: equal covers go to the better rank", lines: [("x", 1)],
            stock: (1...18).map { ("F\($0 < 10 ? "0" : "")\($0)", "x", 1) }.reversed(),
            expect: .plan([("F01", [("x", 1)])])
        ),
        Example(
            "greedy: the most-covering warehouse comes first, and is dropped once the others make it redundant",
            lines: [("a", 1), ("b", 1), ("c", 1), ("d", 1), ("e", 1), ("f", 1)],
            stock: [
                ("G", "a", 1), ("G", "b", 1), ("G", "d", 1), ("G", "e", 1),
                ("P", "a", 1), ("P", "b", 1), ("P", "c", 1),
                ("Q", "d", 1), ("Q", "e", 1), ("Q", "f", 1),
            ] + (1...15).map { ("F\($0)", "a", 1) },
            priority: ["G", "P", "Q"],
            expect: .plan([("P", [("a", 1), ("b", 1), ("c", 1)]), ("Q", [("d", 1), ("e", 1), ("f", 1)])])
        ),
    ]

    @Test("a single warehouse suffices", arguments: singleWarehouseExamples)
    func singleWarehouse(_ example: Example) { example.check() }

    @Test("priority breaks ties", arguments: priorityTiesExamples)
    func priorityBreaksTies(_ example: Example) { example.check() }

    @Test("name breaks ties", arguments: nameTiesExamples)
    func nameBreaksTies(_ example: Example) { example.check() }

    @Test("a line is split only when needed", arguments: splittingExamples)
    func splitting(_ example: Example) { example.check() }

    @Test("excluded warehouses", arguments: exclusionExamples)
    func exclusion(_ example: Example) { example.check() }

    @Test("reject versus allow", arguments: backordersExamples)
    func backorders(_ example: Example) { example.check() }

    @Test("invalid requests", arguments: invalidRequestsExamples)
    func invalidRequests(_ example: Example) { example.check() }

    @Test("duplicate stock rows and order lines", arguments: duplicatesExamples)
    func duplicates(_ example: Example) { example.check() }

    @Test("more than 16 candidate warehouses", arguments: greedyExamples)
    func greedy(_ example: Example) { example.check() }

    @Test("shipment ids are <prefix>-<warehouse>")
    func shipmentIds() throws {
        let request = SplitRequest(
            lines: [OrderLine(sku: "x", quantity: 3)],
            stock: [
                StockLevel(warehouse: "dc-east", sku: "x", quantity: 2), .init(warehouse: "B", sku: "x", quantity: 1),
            ],
            warehousePriority: ["dc-east"], shipmentIdPrefix: "ord-42"
        )
        let plan = try SplitPlanner.plan(request)
        #expect(plan.shipments.map(\.id) == ["ord-42-dc-east", "ord-42-B"])
    }

    @Test("errors carry a stable code and a readable description")
    func errorDescriptions() {
        let short = SplitPlanningError.insufficientStock(short: [OrderLine(sku: "x", quantity: 2)])
        #expect(short.code == .insufficientStock && short.code.rawValue == "split.insufficient_stock")
        #expect(
            short.description
                == "split.insufficient_stock: insufficient stock: 2 unit(s) of 1 SKU(s) are missing (restock, or allow "
                + "backorders)")
        let invalid = SplitPlanningError.invalidRequest("lines[0] has an empty SKU")
        #expect(invalid.code == .invalidRequest && invalid.code.rawValue == "split.invalid_request")
        #expect(invalid.message == "invalid split request: lines[0] has an empty SKU")
        #expect(invalid.description == "split.invalid_request: invalid split request: lines[0] has an empty SKU")
    }
}
