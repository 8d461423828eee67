import AMQPTransport
import Foundation
import SagaEngine
import SagaStore
import Testing
import WaybillDefinition
import WaybillTestSupport
import WaybillWire

@testable import WaybillWorker

/// The order-fulfillment saga through a real worker, broker and SQLite file: what goes on the wire and in what order.
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
struct HappyPathTests {
    /// The milestones of a one-shipment order: one `order.shipment.shipped` per shipment before the joined
    /// `order.shipped`.
    static let milestones = [
        "order.accepted", "order.reserved", "order.released", "order.shipment.shipped", "order.shipped",
        "order.invoiced", "order.completed",
    ]

    @Test("the happy path publishes every milestone in order as versioned CloudEvents; commands carry their headers")
    func happyPath() async throws {
        try await Scenario.run { scenario in
            let worker = try await scenario.startWorker()
            try await scenario.placeOrder("o-1", lines: [("sku-1", 2), ("sku-2", 1)])
            let saga = try await scenario.waitForStatus("o-1", .completed, in: worker)
            try await scenario.waitForEvent("order.completed", of: "o-1")
            #expect(saga.owner == worker.id)
            #expect(saga.currentStep == nil)

            let events = scenario.observer.events(of: "o-1")
            #expect(events.compactMap(\.type) == Self.milestones)
            #expect(Set(events.compactMap(\.id)).count == events.count, "event ids are unique")
            let steps: [String: String] = [
                "order.accepted": "accept", "order.reserved": "reserve", "order.released": "release",
                "order.shipment.shipped": "ship", "order.shipped": "ship", "order.invoiced": "invoice",
            ]
            for event in events {
                let body = try #require(event.body, "event \(event.routingKey) is JSON")
                let type = try #require(event.type)
                #expect(event.routingKey == type)
                #expect(event.contentType == "application/cloudevents+json")
                #expect(event.persistent)
                #expect(event.messageId == event.id)
                #expect(body["specversion"] == "1.0")
                #expect(event.id?.isEmpty == false)
                #expect(body["source"] == .string("waybill/\(scenario.names.workflow)"))
                #expect(body["subject"] == "o-1")
                #expect(body["datacontenttype"] == "application/json")
                let time = try #require(body["time"]?.stringValue)
                #expect(time.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/) != nil, "RFC 3339 time: \(time)")
                let data = try #require(body["data"])
                #expect(data["sagaId"] == "o-1")
                #expect(data["workflow"] == .string(scenario.names.workflow))
                #expect(data["version"] == 2)
                #expect(data["step"]?.stringValue == steps[type], "step of \(type)")
                #expect(data["schemaVersion"] == .number(Double(EventSchema.version)))
                #expect(data["status"] == (type == "order.completed" ? "completed" : "running"))
                #expect(data["failure"] == nil, "\(type) of a saga that did not fail")
                #expect(event.headers[WireHeader.eventType] == type)
                #expect(event.headers[WireHeader.eventSchema] == String(EventSchema.version))
                #expect((data["branch"] != nil) == (type == "order.shipment.shipped"), "only the per-branch event")
            }
            let reserved = try #require(events.first { $0.type == "order.reserved" })
            #expect(reserved.body?["data"]?["output"]?["reservationId"] == "res-o-1")
            let shipped = try #require(events.first { $0.type == "order.shipped" })
            #expect(shipped.body?["data"]?["output"] == [["trackingId": "T-o-1-w1"]])
            let lines: JSONValue = [["sku": "sku-1", "quantity": 2], ["sku": "sku-2", "quantity": 1]]
            let shipment = try #require(events.first { $0.type == "order.shipment.shipped" })
            #expect(shipment.data?["output"] == ["trackingId": "T-o-1-w1"], "the branch's own output")
            #expect(
                shipment.data?["branch"] == ["index": 0, "item": ["id": "o-1-w1", "warehouse": "w1", "lines": lines]])

            let commands = scenario.participant.received(saga: "o-1")
            #expect(
                commands.map(\.routingKey) == [
                    "erp.order.accept", "inventory.reserve", "wms.w1.release", "tms.shipment.create",
                    "billing.invoice.create",
                ])
            #expect(
                commands.map(\.idempotencyKey) == [
                    "o-1/accept", "o-1/reserve", "o-1/release/0", "o-1/ship/0", "o-1/invoice",
                ])
            #expect(commands.map(\.step) == ["accept", "reserve", "release", "ship", "invoice"])
            #expect(Set(commands.compactMap(\.messageId)).count == commands.count, "message ids are unique per attempt")
            for command in commands {
                #expect(command.exchange == scenario.names.commandsExchange)
                #expect(command.persistent)
                #expect(command.contentType == "application/json")
                #expect(command.messageId != nil)
                #expect(command.correlationId == command.messageId)
                // Replies go to the saga's partition queue, whichever worker owns it when they come.
                #expect(
                    command.replyTo
                        == PoolQueues.partition(
                            PoolDirectory.partition(of: "o-1", count: TestNames.partitions),
                            pool: scenario.names.poolName))
                #expect(command.sagaId == "o-1")
                #expect(command.headers[WireHeader.workflow] == scenario.names.workflow)
                #expect(command.action == "do")
                #expect(command.attempt == 1)
                #expect(!command.redelivered)
            }
            #expect(commands[0].body == ["orderId": "o-1", "lines": lines])
            #expect(commands[2].body == ["shipmentId": "o-1-w1", "lines": lines])
            #expect(commands[3].body == ["shipmentId": "o-1-w1", "warehouse": "w1"])
            #expect(commands[4].body == ["orderId": "o-1", "shipments": [["trackingId": "T-o-1-w1"]]])
        }
    }

    @Test("a three-warehouse order fans out to three releases and three shipments, one per warehouse")
    func threeWarehouseFanOut() async throws {
        let stock = Participant.table([("w1", "A", 5), ("w2", "B", 5), ("w3", "C", 5)])
        try await Scenario.run(stock: stock) { scenario in
            let worker = try await scenario.startWorker()
            try await scenario.placeOrder("o-3", lines: [("A", 1), ("B", 2), ("C", 3)])
            try await scenario.waitForStatus("o-3", .completed, in: worker)
            try await scenario.waitForEvent("order.completed", of: "o-3")

            let commands = scenario.participant.received(saga: "o-3")
            let releases = commands.filter { $0.step == "release" }
            let ships = commands.filter { $0.step == "ship" }
            #expect(releases.map(\.routingKey).sorted() == ["wms.w1.release", "wms.w2.release", "wms.w3.release"])
            #expect(releases.map(\.idempotencyKey).sorted() == ["o-3/release/0", "o-3/release/1", "o-3/release/2"])
            #expect(ships.count == 3)
            #expect(Set(ships.compactMap { $0.body?["warehouse"]?.stringValue }) == ["w1", "w2", "w3"])
            #expect(ships.map(\.idempotencyKey).sorted() == ["o-3/ship/0", "o-3/ship/1", "o-3/ship/2"])
            let release2 = try #require(releases.first { $0.routingKey == "wms.w2.release" })
            #expect(release2.body?["lines"] == [["sku": "B", "quantity": 2]])
            let invoice = try #require(commands.first { $0.step == "invoice" })
            #expect(invoice.body?["shipments"]?.arrayValue?.count == 3)
            // Every release is sent before any shipment: the step waits for all its branches.
            let lastRelease = try #require(commands.lastIndex { $0.step == "release" })
            let firstShip = try #require(commands.firstIndex { $0.step == "ship" })
            #expect(lastRelease < firstShip)

            // One shipment event per warehouse as its branch succeeds, then the joined order.shipped.
            #expect(
                scenario.observer.types(of: "o-3") == [
                    "order.accepted", "order.reserved", "order.released", "order.shipment.shipped",
                    "order.shipment.shipped", "order.shipment.shipped", "order.shipped", "order.invoiced",
                    "order.completed",
                ])
            let shipments = scenario.observer.events(of: "o-3").filter { $0.type == "order.shipment.shipped" }
            let items = shipments.compactMap { $0.data?["branch"]?["item"] }
            #expect(Set(items.compactMap { $0["id"]?.stringValue }) == ["o-3-w1", "o-3-w2", "o-3-w3"])
            #expect(Set(shipments.compactMap { $0.data?["branch"]?["index"] }) == [0, 1, 2])
            for shipment in shipments {
                let id = shipment.data?["branch"]?["item"]?["id"]?.stringValue ?? "?"
                #expect(shipment.data?["output"] == ["trackingId": .string("T-\(id)")], "the output of \(id)")
            }
            let shipped = try #require(scenario.observer.events(of: "o-3").first { $0.type == "order.shipped" })
            #expect(
                shipped.data?["output"] == [
                    ["trackingId": "T-o-3-w1"], ["trackingId": "T-o-3-w2"], ["trackingId": "T-o-3-w3"],
                ])
        }
    }

    @Test("out_of_stock at a warehouse re-plans without it, and the order completes from another warehouse")
    func reallocation() async throws {
        let stock = Participant.table([("w1", "A", 2), ("w2", "A", 2)])
        let script: Participant.Script = { command in
            command.routingKey == "wms.w1.release" ? .error("out_of_stock", retryable: false) : nil
        }
        try await Scenario.run(stock: stock, script: script) { scenario in
            let worker = try await scenario.startWorker()
            try await scenario.placeOrder("o-r", lines: [("A", 2)])
            let saga = try await scenario.waitForStatus("o-r", .completed, in: worker)
            try await scenario.waitForEvent("order.completed", of: "o-r")

            let commands = scenario.participant.received(saga: "o-r")
            #expect(
                commands.map(\.summary) == [
                    "erp.order.accept", "inventory.reserve", "wms.w1.release", "wms.w2.release",
                    "tms.shipment.create", "billing.invoice.create",
                ])
            let release = commands[3]
            #expect(release.idempotencyKey == "o-r/release/0/r1")
            #expect(release.body?["shipmentId"] == "o-r-r1-w2")
            #expect(commands[4].body?["warehouse"] == "w2")
            #expect(saga.instance.steps[2].excludedWarehouses == ["w1"])
            #expect(scenario.observer.types(of: "o-r") == Self.milestones)
            let shipment = scenario.observer.events(of: "o-r").first { $0.type == "order.shipment.shipped" }
            #expect(shipment?.data?["branch"]?["item"]?["id"] == "o-r-r1-w2", "the re-planned shipment")
        }
    }
}
