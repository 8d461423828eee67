import AMQPTransport
import Foundation
import Testing
import WaybillDefinition
import WaybillSimulator
import WaybillTestSupport
import WaybillWire
import WaybillWorker

@testable import WaybillDemo

/// The demo's pure parts: names, the workflow rewrite, the wire mapping of the participants, the catalogue, the
/// figures.
struct DemoPartsTests {
    static let workflow = """
        name: order-fulfillment          # workflow name
        version: 1
        trigger:
          exchange: orders               # topic exchange
          routing_key: order.placed
          saga_id: ${input.orderId}
        steps:
          - id: accept
            command: erp.order.accept
            input: { orderId: "${input.orderId}" }
        """

    @Test func withoutANamespaceTheShippedNamesAreUsed() throws {
        let names = try DemoNames()
        #expect(names.workerId(1) == "demo-1")
        #expect(names.workerId(3) == "demo-3")
        #expect(names.commandsExchange == "waybill.commands")
        #expect(names.eventsExchange == "waybill.events")
        #expect(try names.rewrite(workflowText: Self.workflow, file: "f.yaml") == Self.workflow)
    }

    @Test func aNamespaceRenamesTheWorkflowTheTriggerAndEveryExchange() throws {
        let names = try DemoNames(namespace: "t1")
        let text = try names.rewrite(workflowText: Self.workflow, file: "f.yaml")
        let definition = try WorkflowLoader.load(yaml: text, file: "f.yaml")
        #expect(definition.name == "t1-order-fulfillment")
        #expect(definition.trigger.exchange == "t1.orders")
        #expect(definition.trigger.routingKey == "order.placed")
        #expect(text.contains("name: t1-order-fulfillment          # workflow name"))
        #expect(names.workerId(2) == "t1-demo-2")
        #expect(names.commandsExchange == "t1.waybill.commands")
        #expect(names.participantsQueue == "t1.waybill.demo.participants")
        let configuration = names.workerConfiguration(number: 2)
        #expect(configuration.workerId == "t1-demo-2")
        #expect(configuration.deadLetterQueue == "t1.waybill.dead-letter")
    }

    /// The stage starts the orders once the workers own every partition once, their counts at most one apart.
    @Test(arguments: [
        ([[0, 1, 2], [3, 4], [5, 6]], true),
        ([[0, 1, 2, 3, 4, 5, 6]], true),
        ([[0, 1, 2, 3, 4], [5, 6], []], false),
        ([[0, 1, 2], [3, 4], [5]], false),
        ([[0, 1, 2], [2, 3], [4, 5, 6]], false),
        ([[0, 1, 2], [3, 4, 5], [6, 6]], false),
        ([], false),
    ])
    func theWorkersShareFairlyWhenEveryPartitionIsOwnedOnceAndCountsDifferByOne(_ owned: [[Int]], _ fair: Bool) {
        #expect(DemoStage.isFairShare(owned, partitionCount: 7) == fair)
    }

    @Test(arguments: ["", "Upper", "a.b", "a b"])
    func namespacesAreRoutingKeyFriendly(_ namespace: String) {
        #expect(throws: DemoError.self) { try DemoNames(namespace: namespace) }
    }

    @Test func aWorkflowWithoutATriggerExchangeCannotBeNamespaced() throws {
        let names = try DemoNames(namespace: "t1")
        #expect(throws: DemoError.self) { try names.rewrite(workflowText: "name: x\nversion: 1\n", file: "f.yaml") }
    }

    static func delivery(headers: AMQPTable, body: String, replyTo: String? = "waybill.replies.w1") -> InboundDelivery {
        InboundDelivery(
            deliveryTag: DeliveryTag(value: 1, generation: 1, channel: 3), consumerTag: "c", redelivered: false,
            exchange: "waybill.commands", routingKey: "inventory.reserve",
            properties: MessageProperties(
                contentType: "application/json", headers: headers, persistent: true,
                correlationID: "order-fulfillment/o-1/m2", replyTo: replyTo, messageID: "order-fulfillment/o-1/m2"),
            body: Data(body.utf8))
    }

    @Test func aCommandDeliveryBecomesASimulatedCommand() {
        let delivery = Self.delivery(
            headers: [
                WireHeader.idempotencyKey: "o-1/reserve/compensate", WireHeader.sagaId: "o-1",
                WireHeader.action: "compensate", WireHeader.attempt: "3",
                WireHeader.step: "reserve", WireHeader.workflow: "order-fulfillment",
                WireHeader.compensates: "o-1/reserve",
            ],
            body: #"{"orderId":"o-1","lines":[]}"#)
        let command = ParticipantService.command(from: delivery)
        #expect(command.routingKey == "inventory.reserve")
        #expect(command.messageId == "order-fulfillment/o-1/m2")
        #expect(command.idempotencyKey == "o-1/reserve/compensate")
        #expect(command.compensates == "o-1/reserve")
        #expect(command.sagaId == "o-1")
        #expect(command.action == .compensate)
        #expect(command.attempt == 3)
        #expect(command.body == .json(["orderId": "o-1", "lines": []]))
    }

    @Test func missingHeadersAndABadBodyAreLeftForTheSimulatorToRefuse() {
        let command = ParticipantService.command(from: Self.delivery(headers: ["waybill-attempt": 2], body: "{oops"))
        #expect(command.idempotencyKey.isEmpty)
        #expect(command.compensates == nil)
        #expect(command.action == .do)
        #expect(command.attempt == 2)
        guard case .undecodable = command.body else {
            Issue.record("expected an undecodable body, got \(command.body)")
            return
        }
    }

    @Test func aReplyGoesToReplyToWithTheCorrelationIdAndAStableMessageId() throws {
        let delivery = Self.delivery(headers: [:], body: "{}")
        let reply = ParticipantService.reply(["status": "ok"], to: delivery, replyTo: "waybill.replies.w1")
        #expect(reply.exchange == "")
        #expect(reply.routingKey == "waybill.replies.w1")
        #expect(reply.properties.correlationID == "order-fulfillment/o-1/m2")
        #expect(reply.properties.messageID == "order-fulfillment/o-1/m2/reply")
        #expect(reply.properties.persistent)
        #expect(try JSONText.decode(reply.body) == ["status": "ok"])
    }

    @Test(arguments: [3, 4, 5])
    func theCatalogueStocksEverySKUAndKeepsTwoShort(_ warehouses: Int) {
        let catalogue = DemoRunner.catalogue(orders: 1000, warehouses: warehouses, seed: 2025)
        #expect(catalogue.warehouses.count == warehouses)
        var bySKU: [String: Int] = [:]
        for row in catalogue.stock { bySKU[row.sku, default: 0] += row.quantity }
        let demand = 1000.0 * 3.5 * 2.5 / 30
        for sku in catalogue.skus.dropLast(2) {
            #expect(Double(bySKU[sku] ?? 0) >= demand * 1.29, "\(sku) is stocked for its demand")
        }
        let restocked = bySKU[catalogue.skus[catalogue.skus.count - 2]] ?? 0
        #expect(restocked > 0 && Double(restocked) <= demand * 0.71, "the next to last SKU is short")
        let short = bySKU[catalogue.skus[catalogue.skus.count - 1]] ?? 0
        #expect(short > 0 && Double(short) <= demand * 0.51, "the last SKU is short")
        #expect(DemoRunner.discontinuedSKU(of: catalogue) == catalogue.skus.last, "and never comes back")
    }

    @Test func theDemoShortensTheBackorderDeadlineOfItsWorkflowCopyOnly() throws {
        let shipped = try String(contentsOf: Repository.workflow("order-fulfillment.yaml"), encoding: .utf8)
        let edited = try DemoRunner.backorderDeadline(in: shipped, to: .seconds(15))
        let definition = try WorkflowLoader.load(yaml: edited, file: "copy.yaml")
        let index = try #require(definition.stepIndex(of: "await-stock"))
        guard case .wait(let spec) = definition.steps[index].action else {
            Issue.record("await-stock is not a wait")
            return
        }
        #expect(spec.duration == .seconds(15))
        #expect(edited.components(separatedBy: "\n").count == shipped.components(separatedBy: "\n").count)
        let returns = try String(contentsOf: Repository.workflow("returns.yaml"), encoding: .utf8)
        #expect(try DemoRunner.backorderDeadline(in: returns, to: .seconds(15)) == returns)
    }

    @Test func behavioursStayValidUpToAFailureRateOfOne() throws {
        for rate in [0.0, 0.02, 0.5, 1.0] {
            let configuration = SimulationConfiguration(
                behaviours: DemoRunner.behaviours(failureRate: rate, latency: true))
            #expect(throws: Never.self) { try configuration.validate() }
        }
    }

    @Test func latencyPercentilesUseTheNearestRank() throws {
        let sample = (1...100).map { Duration.milliseconds($0) }
        let summary = try #require(LatencySummary(sample.shuffled()))
        #expect(summary.p50 == .milliseconds(50))
        #expect(summary.p95 == .milliseconds(95))
        #expect(summary.p99 == .milliseconds(99))
        #expect(summary.max == .milliseconds(100))
        #expect(LatencySummary([]) == nil)
    }

    @Test func progressLinesShowCountsRateAndETA() {
        let progress = DemoProgress(
            total: 1000, published: 600, completed: 400, compensated: 30, suspended: 2, cancelled: 0,
            elapsed: .seconds(3), rate: 143.6)
        #expect(progress.inFlight == 168)
        #expect(
            progress.bar(width: 10)
                == "[####......] 432/1000  done 400 · compensated 30 · suspended 2 · in flight 168 · 144/s · ETA 3.96 s"
        )
        #expect(progress.plainLine.hasPrefix("3.00 s: 432/1000 ended  done 400"))
    }

    @Test func brokerAddressesHideThePassword() {
        #expect(BrokerAddress(url: "amqp://u:secret@h:5672/v").description == "amqp://u:***@h:5672/v")
        #expect(
            PrivateBroker.address(port: 35672, virtualHost: "waybill-demo").url
                == "amqp://guest@127.0.0.1:35672/waybill-demo")
    }
}
