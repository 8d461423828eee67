import Foundation
import SagaEngine
import Testing
import WaybillDefinition
import WaybillTestSupport

/// The shipped order-fulfillment workflow with part of an order out of stock: it ships what is in stock, holds the
/// rest as a backorder, waits for it, and ships and invoices it when stock arrives, or cancels it at the deadline.
@Suite("Backorders in the shipped workflow")
struct BackorderSagaTests {
    let definition: WorkflowDefinition

    init() throws {
        let text = try String(contentsOf: Repository.workflow("order-fulfillment.yaml"), encoding: .utf8)
        definition = try WorkflowLoader.load(yaml: text, file: "order-fulfillment.yaml")
    }

    /// An order of 2 × sku-a (in stock at wh-1) and 3 × sku-b (none anywhere), shipped as far as it goes and now
    /// waiting for sku-b.
    private func backordered() throws -> SagaDriver {
        let order = OrderJSON.order("o-1", lines: [("sku-a", 2), ("sku-b", 3)])
        var saga = SagaDriver(definition, input: order, id: "o-1")
        saga.reply(saga.last.commands[0])
        saga.reply(saga.last.commands[0], ["stock": OrderJSON.stock([("wh-1", "sku-a", 5)])])
        #expect(saga.last.commands.map(\.routingKey) == ["wms.wh-1.release"])
        saga.reply(saga.last.commands[0])
        #expect(saga.last.commands.map(\.routingKey) == ["tms.shipment.create"])
        saga.reply(saga.last.commands[0], ["trackingId": "t-1", "shipmentId": "o-1-wh-1"])
        #expect(saga.last.commands.map(\.routingKey) == ["billing.invoice.create"])
        saga.reply(saga.last.commands[0])
        #expect(saga.last.commands.map(\.routingKey) == ["inventory.backorder.create"])
        #expect(saga.last.commands.first?.body["lines"] == [["sku": "sku-b", "quantity": 3]])
        saga.reply(saga.last.commands[0])
        #expect(saga.last.milestones == ["order.backordered"])
        #expect(saga.instance.currentStepId(in: definition) == "await-stock")
        return saga
    }

    private func wait(of saga: SagaDriver) throws -> AwaitedMessage {
        try #require(
            saga.last.actions.lazy.compactMap { if case .awaitMessage(let wait) = $0 { wait } else { nil } }.first)
    }

    @Test("stock arrives: the backorder's shipments are released, shipped and invoiced as a second delivery")
    func filled() throws {
        var saga = try backordered()
        let wait = try wait(of: saga)
        #expect(wait.exchange == "inventory.events" && wait.routingKey == "inventory.backorder.filled")
        #expect(wait.match == "o-1")
        let shipment: JSONValue = [
            "id": "o-1-bo-wh-2", "warehouse": "wh-2", "lines": [["sku": "sku-b", "quantity": 3]],
        ]
        saga.apply(.signal(waitId: wait.id, message: ["orderId": "o-1", "shipments": [shipment]]))
        #expect(saga.last.commands.map(\.routingKey) == ["wms.wh-2.release"])
        #expect(
            saga.last.commands.first?.body == [
                "shipmentId": "o-1-bo-wh-2", "lines": [["sku": "sku-b", "quantity": 3]],
            ])
        saga.reply(saga.last.commands[0])
        saga.reply(saga.last.commands[0], ["trackingId": "t-2", "shipmentId": "o-1-bo-wh-2"])
        #expect(saga.last.milestones == ["order.backorder.shipment.shipped", "order.backorder.shipped"])
        #expect(saga.last.commands.first?.body["shipments"] == [["trackingId": "t-2", "shipmentId": "o-1-bo-wh-2"]])
        saga.reply(saga.last.commands[0])
        #expect(saga.instance.status == .completed)
        #expect(saga.last.milestones == ["order.backorder.invoiced", "order.completed"])
        let cancel = try #require(definition.stepIndex(of: "cancel-backorder"))
        #expect(saga.instance.steps[cancel].status == .bypassed)
    }

    @Test("the deadline passes: the hold is cancelled in inventory and the lines in the ERP, and the order completes")
    func cancelledAtTheDeadline() throws {
        var saga = try backordered()
        let timer = try #require(saga.last.scheduledTimers.first)
        #expect(timer.dueAt == saga.now.adding(.seconds(7 * 86_400)))
        saga.fire(timer)
        #expect(saga.last.commands.map(\.routingKey) == ["inventory.backorder.cancel"])
        saga.reply(saga.last.commands[0])
        #expect(saga.last.milestones == ["order.backorder.cancelled"])
        #expect(saga.last.commands.map(\.routingKey) == ["erp.order.lines.cancel"])
        #expect(saga.last.commands.first?.body["lines"] == [["sku": "sku-b", "quantity": 3]])
        saga.reply(saga.last.commands[0])
        #expect(saga.instance.status == .completed)
        for step in ["release-backorder", "ship-backorder", "invoice-backorder"] {
            let index = try #require(definition.stepIndex(of: step))
            #expect(saga.instance.steps[index].status == .bypassed, "\(step)")
        }
    }

    @Test("an order with nothing in stock is refused before anything ships, and undone")
    func nothingInStock() throws {
        var saga = SagaDriver(definition, input: OrderJSON.order("o-2", lines: [("sku-b", 3)]), id: "o-2")
        saga.reply(saga.last.commands[0])
        saga.reply(saga.last.commands[0], ["stock": []])
        #expect(saga.instance.failure?.error.code == "out_of_stock")
        #expect(saga.last.commands.map(\.routingKey) == ["inventory.release"])
    }

    @Test("an order all in stock ends after its invoice, without a backorder")
    func allInStock() throws {
        var saga = SagaDriver(definition, input: OrderJSON.order("o-3", lines: [("sku-a", 1)]), id: "o-3")
        saga.reply(saga.last.commands[0])
        saga.reply(saga.last.commands[0], ["stock": OrderJSON.stock([("wh-1", "sku-a", 5)])])
        saga.reply(saga.last.commands[0])
        saga.reply(saga.last.commands[0], ["trackingId": "t-1"])
        saga.reply(saga.last.commands[0])
        #expect(saga.instance.status == .completed)
        #expect(saga.last.milestones == ["order.invoiced", "order.completed"])
    }
}
