import Testing
import WaybillDefinition
import WaybillSimulator

/// The demo catalogue and orders: deterministic, well formed, usable by the simulator.
@Suite struct DemoCatalogueTests {
    @Test func theSameSeedGivesTheSameCatalogueAndAnotherSeedAnother() {
        let catalogue = DemoCatalogue(warehouses: 5, skus: 12, units: 1...30, stockedShare: 0.6, seed: 42)
        #expect(DemoCatalogue(warehouses: 5, skus: 12, units: 1...30, stockedShare: 0.6, seed: 42) == catalogue)
        #expect(DemoCatalogue(warehouses: 5, skus: 12, units: 1...30, stockedShare: 0.6, seed: 43) != catalogue)
        #expect(catalogue.warehouses == ["wh-01", "wh-02", "wh-03", "wh-04", "wh-05"])
        #expect(catalogue.skus.first == "sku-0001" && catalogue.skus.last == "sku-0012")
        #expect(catalogue.stock.count == 60)
        #expect(catalogue.stock.allSatisfy { $0.quantity == 0 || (1...30).contains($0.quantity) })
        let stocked = catalogue.stock.filter { $0.quantity > 0 }.count
        #expect(stocked > 20 && stocked < 55, "\(stocked) of 60 pairs stocked at a 0.6 share")
    }

    @Test func catalogueStockRunsInTheSimulator() throws {
        let catalogue = DemoCatalogue(warehouses: 12, skus: 3, seed: 9)
        let participants = try ParticipantSimulator(configuration: catalogue.configuration())
        #expect(participants.routingKeys.contains("wms.wh-12.release"))
        let total = catalogue.stock.reduce(0) { $0 + $1.quantity }
        #expect(participants.ledger().stock.values.flatMap(\.values).reduce(0, +) == total)
    }

    @Test func ordersAreDeterministicWithDistinctKnownSKUs() throws {
        let catalogue = DemoCatalogue(warehouses: 3, skus: 6, seed: 3)
        for index in 0..<50 {
            let order = catalogue.order(id: "o-\(index)", lines: 1...4, quantity: 2...3, seed: 1)
            #expect(order == catalogue.order(id: "o-\(index)", lines: 1...4, quantity: 2...3, seed: 1))
            #expect(order["orderId"] == .string("o-\(index)"))
            let lines = try #require(order["lines"]?.arrayValue)
            #expect((1...4).contains(lines.count))
            let skus = lines.compactMap { $0["sku"]?.stringValue }
            #expect(Set(skus).count == lines.count)
            #expect(skus.allSatisfy(catalogue.skus.contains))
            #expect(lines.allSatisfy { (2...3).contains($0["quantity"]?.intValue ?? 0) })
        }
        let orders = (0..<20).map { catalogue.order(id: "o-\($0)", seed: 1) }
        #expect(Set(orders.map { $0["lines"] }).count > 10, "orders should vary")
        // Never more lines than SKUs.
        #expect(catalogue.order(id: "big", lines: 10...20).arrayLines?.count == 6)
    }
}

extension JSONValue {
    fileprivate var arrayLines: [JSONValue]? { self["lines"]?.arrayValue }
}
