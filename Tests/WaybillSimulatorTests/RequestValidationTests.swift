import Testing
import WaybillDefinition
import WaybillSimulator
import WaybillTestSupport

/// Unknown routing keys, malformed bodies and invalid configurations.
@Suite struct RequestValidationTests {
    @Test(arguments: ["erp.order.ship", "wms.ghost.release", "wms.east.pick", "wms.east", "inventory", ""])
    func unknownRoutingKeysGetANonRetryableUnknownCommand(_ routingKey: String) throws {
        let participants = try simulator(behaviours: [CommandBehaviour(pattern: "*", silenceRate: 1)])
        let command = SimulatedCommand(
            routingKey: routingKey, messageId: "m-1", idempotencyKey: "u/1", sagaId: "u", json: ["orderId": "u"])
        let response = participants.handle(command)
        #expect(response.errorCode == "unknown_command")
        #expect(response.isRetryable == false)
        #expect(response.body?["message"]?.stringValue?.contains("'\(routingKey)'") == true)
        // Answered before any behaviour: the catch-all silence does not apply.
        let ledger = participants.ledger()
        #expect(ledger.counts(routingKey).unknownCommands == 1)
        #expect(ledger.totals.effectsApplied == 0)
    }

    /// A malformed body and the words the `bad_request` message must contain.
    struct BadBody: Sendable, CustomTestStringConvertible {
        var routingKey: String
        var body: JSONValue
        var reason: String

        init(_ routingKey: String, _ body: JSONValue, _ reason: String) {
            self.routingKey = routingKey
            self.body = body
            self.reason = reason
        }

        var testDescription: String { "\(routingKey): \(reason)" }
    }

    static let badBodies: [BadBody] = [
        BadBody("erp.order.accept", .array([]), "must be a JSON object"),
        BadBody("erp.order.accept", ["lines": []], "'orderId' is missing"),
        BadBody("erp.order.accept", ["orderId": 7, "lines": []], "'orderId' must be a non-empty string, got number"),
        BadBody("erp.order.accept", ["orderId": "", "lines": []], "'orderId' must be a non-empty string"),
        BadBody("erp.order.accept", ["orderId": "b"], "'lines' must be an array"),
        BadBody("inventory.reserve", ["orderId": "b", "lines": [["sku": "sku-a"]]], "line 0 needs"),
        BadBody("inventory.reserve", ["orderId": "b", "lines": [["sku": "sku-a", "quantity": -1]]], "line 0 needs"),
        BadBody("inventory.reserve", ["orderId": "b", "lines": [["sku": "sku-a", "quantity": 1.5]]], "line 0 needs"),
        BadBody("inventory.release", [:], "'reservationId' is missing"),
        BadBody("wms.east.release", ["shipmentId": "s", "lines": "sku-a"], "'lines' must be an array"),
        BadBody("wms.east.cancel", ["id": "s"], "'shipmentId' is missing"),
        BadBody("tms.shipment.create", ["shipmentId": "s"], "'warehouse' is missing"),
        BadBody("billing.invoice.create", ["orderId": "b", "shipments": [:]], "'shipments' must be an array"),
    ]

    @Test(arguments: badBodies)
    func malformedBodiesGetANonRetryableBadRequestAndChangeNothing(_ bad: BadBody) throws {
        let routingKey = bad.routingKey
        let participants = try simulator()
        let command = SimulatedCommand(
            routingKey: routingKey, messageId: "m-1", idempotencyKey: "b/1", sagaId: "b", json: bad.body)
        let response = participants.handle(command)
        #expect(response.errorCode == "bad_request")
        #expect(response.isRetryable == false)
        let message = try #require(response.body?["message"]?.stringValue)
        #expect(message.contains(bad.reason), "\(message)")
        let ledger = participants.ledger()
        #expect(ledger.counts(routingKey).badRequests == 1)
        #expect(ledger.stock == twoWarehouses)
        #expect(ledger.orders.isEmpty && ledger.reservations.isEmpty && ledger.trackingIds.isEmpty)
        // Not remembered: the same command is checked again, not replayed.
        #expect(participants.handle(command) == response)
        #expect(participants.ledger().counts(routingKey).duplicatesAbsorbed == 0)
    }

    @Test func bodiesThatAreNotJSONAndMissingIdempotencyKeysAreBadRequests() throws {
        let participants = try simulator()
        let undecodable = SimulatedCommand(
            routingKey: "erp.order.accept", messageId: "m-1", idempotencyKey: "x/accept", sagaId: "x",
            body: .undecodable(reason: "unexpected byte 0x7B at offset 3"))
        let response = participants.handle(undecodable)
        #expect(response.errorCode == "bad_request")
        #expect(response.body?["message"]?.stringValue?.contains("not JSON: unexpected byte 0x7B at offset 3") == true)

        var unkeyed = SagaCommands(sagaId: "x").accept(OrderJSON.lines(["sku-a": 1]))
        unkeyed.idempotencyKey = ""
        #expect(participants.handle(unkeyed).errorCode == "bad_request")
        #expect(participants.ledger().counts("erp.order.accept").badRequests == 2)
        #expect(participants.ledger().orders.isEmpty)
    }

    @Test func duplicateSKUsInLinesAreMerged() throws {
        let participants = try simulator()
        let saga = SagaCommands(sagaId: "m")
        #expect(
            participants.handle(saga.release(branch: 0, warehouse: "west", OrderJSON.lines(["sku-a": 2, "sku-a": 3])))
                .isOK)
        let ledger = participants.ledger()
        #expect(ledger.shipments["west"]?["m-west"]?.lines == [ItemQuantity(sku: "sku-a", quantity: 5)])
        #expect(ledger.stock["west"]?["sku-a"] == 5)
    }

    static let invalidConfigurations: [(SimulationConfiguration, String)] = [
        (
            SimulationConfiguration(stock: [StockRecord(warehouse: "east.1", sku: "a", quantity: 1)]),
            "simulator.invalid_warehouse_name"
        ),
        (
            SimulationConfiguration(stock: [StockRecord(warehouse: "", sku: "a", quantity: 1)]),
            "simulator.invalid_warehouse_name"
        ),
        (
            SimulationConfiguration(stock: [StockRecord(warehouse: "east", sku: "", quantity: 1)]),
            "simulator.invalid_stock"
        ),
        (
            SimulationConfiguration(stock: [StockRecord(warehouse: "east", sku: "a", quantity: -1)]),
            "simulator.invalid_stock"
        ),
        (SimulationConfiguration(behaviours: [CommandBehaviour(pattern: "")]), "simulator.invalid_pattern"),
        (
            SimulationConfiguration(behaviours: [CommandBehaviour(pattern: "*", actions: [])]),
            "simulator.invalid_pattern"
        ),
        (
            SimulationConfiguration(behaviours: [CommandBehaviour(pattern: "*", busyRate: 1.5)]),
            "simulator.invalid_rate"
        ),
        (
            SimulationConfiguration(behaviours: [CommandBehaviour(pattern: "*", silenceRate: -0.1)]),
            "simulator.invalid_rate"
        ),
        (
            SimulationConfiguration(behaviours: [CommandBehaviour(pattern: "*", busyRate: 0.6, rejectRate: 0.6)]),
            "simulator.invalid_rate"
        ),
        (
            SimulationConfiguration(behaviours: [CommandBehaviour(pattern: "*", latency: .fixed(.milliseconds(-1)))]),
            "simulator.invalid_latency"
        ),
    ]

    @Test(arguments: invalidConfigurations)
    func invalidConfigurationsAreRefused(configuration: SimulationConfiguration, code: String) {
        #expect(throws: SimulationConfigurationError.self) { try ParticipantSimulator(configuration: configuration) }
        do {
            _ = try ParticipantSimulator(configuration: configuration)
        } catch {
            #expect(error.code.rawValue == code, "\(error)")
        }
    }

    @Test func anInvalidBehaviourUpdateKeepsTheOldBehaviours() throws {
        let participants = try simulator(behaviours: [CommandBehaviour(pattern: "*", busyRate: 1)])
        #expect(throws: SimulationConfigurationError.self) {
            try participants.setBehaviours([CommandBehaviour(pattern: "*", busyRate: 2)])
        }
        #expect(
            participants.handle(SagaCommands(sagaId: "k").accept(OrderJSON.lines(["sku-a": 1]))).errorCode == "busy")
    }

    @Test func routingKeysListEveryParticipantAndEachWarehouse() throws {
        #expect(
            try simulator().routingKeys == [
                "billing.credit.issue", "billing.invoice.create", "erp.order.accept", "erp.order.cancel",
                "erp.order.lines.cancel", "erp.return.authorize", "erp.return.void", "inventory.backorder.cancel",
                "inventory.backorder.create", "inventory.release", "inventory.reserve",
                "inventory.restock", "inventory.unstock", "qa.return.inspect", "tms.shipment.create",
                "wms.east.cancel", "wms.east.release", "wms.return.receive", "wms.west.cancel", "wms.west.release",
            ])
    }
}
