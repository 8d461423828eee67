import AMQPTransport
import ChildProcess
import Foundation
import Logging
import Testing
import WaybillDefinition
import WaybillDemo
import WaybillSimulator
import WaybillTestSupport
import WaybillWire
import WaybillWorker

/// The demo against a real RabbitMQ (``TestBroker``): skipped, saying why, without `WAYBILL_TEST_AMQP_URL`; with it, an
/// unreachable broker fails the test.
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason), .timeLimit(.minutes(3)))
struct DemoRunnerTests {
    /// Options for a demo run in `directory`, under a namespace of its own on the test broker.
    static func options(orders: Int, failureRate: Double, in directory: TemporaryDirectory) throws -> DemoOptions {
        let url = try #require(TestBroker.url)
        let tag = String(UInt64.random(in: 0..<UInt64.max), radix: 16)
        var options = DemoOptions(broker: BrokerAddress(url: url))
        options.orders = orders
        options.failureRate = failureRate
        options.namespace = "demo-test-\(tag)"
        options.workflowFile = Repository.workflow("order-fulfillment.yaml").path
        options.returnsWorkflowFile = Repository.workflow("returns.yaml").path
        options.directory = directory.path
        options.timeout = .seconds(150)
        options.progressInterval = .seconds(1)
        return options
    }

    /// The Python with `jsonschema` that `scripts/test` prepares (the browser test's, `WAYBILL_TEST_BROWSER_PYTHON`).
    static let python = ProcessInfo.processInfo.environment["WAYBILL_TEST_BROWSER_PYTHON"].flatMap {
        $0.isEmpty ? nil : $0
    }

    /// Every milestone event of a demo run, with failures, backorders and returns, names its schema in `dataschema`
    /// and validates against the shipped file, checked by Python's `jsonschema`.
    @Test(.enabled(if: python != nil, "needs WAYBILL_TEST_BROWSER_PYTHON with jsonschema (scripts/test installs it)"))
    func everyEventValidatesAgainstItsShippedSchema() async throws {
        let directory = try TemporaryDirectory()
        var options = try Self.options(orders: 60, failureRate: 0.15, in: directory)
        options.returns = 10
        let namespace = try #require(options.namespace)
        let names = try DemoNames(namespace: namespace)
        let client = try await TestBroker.connectedClient("demo-schema-check")
        // A queue of our own on the events exchange sees every event the run publishes.
        let queue = "\(namespace).schema-check"
        try await client.declareExchange(ExchangeDeclaration(name: names.eventsExchange, kind: .topic))
        _ = try await client.declareQueue(QueueDeclaration(name: queue, durable: true))
        try await client.bind(QueueBinding(queue: queue, exchange: names.eventsExchange, bindingKey: "#"))
        let summary = try await DemoRunner.run(options, logger: TestBroker.logger("demo"), progress: { _ in })
        #expect(summary.everySagaEnded, "\(summary.text)")

        let waiting = Int(try await client.inspectQueue(queue).messageCount)
        try #require(waiting > 300, "\(waiting) events")
        let consumer = try await client.consume(queue: queue, prefetch: 1000)
        var lines: [String] = []
        for try await delivery in consumer {
            lines.append(String(decoding: delivery.body, as: UTF8.self))
            client.ack(delivery.deliveryTag)
            if lines.count == waiting { break }
        }
        await client.cancel(consumer)
        _ = try? await client.deleteQueue(queue)
        await client.close()
        let events = directory.file("events.jsonl")
        try lines.joined(separator: "\n").write(toFile: events, atomically: true, encoding: .utf8)
        let (termination, output) = try await ChildProcess.run(
            try #require(Self.python),
            arguments: [
                Repository.root.appendingPathComponent("Tests/EventSchemas/validate_events.py").path,
                Repository.root.appendingPathComponent("schemas/events").path, events,
            ],
            timeout: .seconds(120))
        #expect(termination.shellStatus == 0, "\(output)")
        #expect(output.contains("\(waiting) events valid"), "\(output)")
        print("event schemas: \(output.trimmingCharacters(in: .whitespacesAndNewlines))")
    }

    /// 50 orders with a high injected failure rate: busy replies (retries), rejected commands (compensations, and
    /// suspensions after the pivot) and lost replies (timeouts, then the remembered reply). Every saga ends, nothing is
    /// left reserved for a saga that compensated, and no effect is applied twice.
    @Test func fiftyOrdersAllEndWithNoLeakedReservationsAndNoDuplicateEffects() async throws {
        let directory = try TemporaryDirectory()
        let options = try Self.options(orders: 50, failureRate: 0.2, in: directory)
        let summary = try await DemoRunner.run(options, logger: TestBroker.logger("demo"), progress: { _ in })

        #expect(summary.outcome == "finished", "\(summary.text)")
        #expect(summary.published == 50)
        #expect(summary.everySagaEnded, "\(summary.text)")
        #expect(summary.leakedReservations == 0, "\(summary.text)")
        #expect(summary.otherLeaks.isEmpty, "\(summary.otherLeaks)")
        #expect(summary.duplicateEffects == 0, "\(summary.duplicateEffectDetails)")
        #expect(summary.stockImbalances == 0)
        let totals = summary.participants.reduce(SimulationLedger.CommandCounts()) { $0 + $1.counts }
        #expect(totals.injectedBusy + totals.injectedRejected + totals.lostReplies > 0, "failures were injected")
        #expect((summary.byStatus[.completed] ?? 0) > 0, "\(summary.text)")

        // Three workers (the default) shared the pool: together they own every partition once, and the sagas they
        // wrote add up to every saga.
        let names = try DemoNames(namespace: options.namespace)
        #expect(summary.workers.map(\.worker) == [names.workerId(1), names.workerId(2), names.workerId(3)])
        #expect(summary.partitionCount >= 3)
        let owned = summary.workers.flatMap(\.partitions)
        #expect(owned.sorted() == Array(0..<summary.partitionCount), "\(summary.workers)")
        #expect(summary.workers.allSatisfy { !$0.partitions.isEmpty }, "\(summary.workers)")
        #expect(summary.unknownOwnerSagas == 0)
        #expect(summary.workers.map(\.sagas).reduce(0, +) == 50, "\(summary.workers)")
        #expect(summary.workers.map(\.sagas).reduce(0, +) == summary.byStatus.values.reduce(0, +))
        // Then one in ten orders comes back: the returns run to an end, with nothing left held.
        let returns = try #require(summary.returns, "\(summary.text)")
        #expect(returns.published == min(5, summary.byStatus[.completed] ?? 0))
        #expect(returns.everyReturnEnded, "\(summary.text)")
        #expect(returns.leaks.isEmpty, "\(returns.leaks)")
        #expect(summary.text.contains("Returns (customers sending back"), "\(summary.text)")
        for share in summary.workers {
            #expect(
                summary.text.contains(
                    "\(share.worker) \(share.partitions.count) partition\(share.partitions.count == 1 ? "" : "s"), "
                        + "\(share.sagas) saga\(share.sagas == 1 ? "" : "s")"),
                "\(summary.text)")
        }
    }

    /// Returns end to end on the shipped returns workflow: authorized, received, inspected, restocked and credited;
    /// the tenth customer's account is closed, so billing refuses the credit and the return is undone (restocked units
    /// out again, authorization voided) and ends compensated.
    @Test func returnsAreCreditedOrUndoneWhenTheCreditIsRefused() async throws {
        let directory = try TemporaryDirectory()
        var options = try Self.options(orders: 30, failureRate: 0, in: directory)
        options.returns = 10
        let summary = try await DemoRunner.run(options, logger: TestBroker.logger("demo"), progress: { _ in })
        #expect(summary.everySagaEnded, "\(summary.text)")
        let returns = try #require(summary.returns, "\(summary.text)")
        #expect(returns.published == 10, "\(summary.text)")
        #expect(returns.everyReturnEnded, "\(summary.text)")
        #expect(returns.byStatus[.completed] == 9, "\(summary.text)")
        #expect(returns.byStatus[.compensated] == 1, "\(summary.text)")
        #expect(returns.reasons[.compensated] == ["account_closed": 1], "\(summary.text)")
        #expect(returns.credits == 9)
        #expect(returns.restockedUnits > 0)
        #expect(returns.leaks.isEmpty, "\(returns.leaks)")
        #expect(returns.duplicateEffects.isEmpty, "\(returns.duplicateEffects)")
    }

    /// Backorders end to end on the shipped workflow: orders placed a few at a time find the two short SKUs running
    /// out, ship what is in stock and wait for the rest; stock arrives for one of them (the backorders are filled,
    /// released, shipped and invoiced as a second delivery) and never for the discontinued one (cancelled at the
    /// deadline: the hold undone, the lines cancelled in the ERP). Nothing is left held, and the stock balances.
    @Test func backordersAreFilledWhenStockArrivesAndCancelledAtTheDeadline() async throws {
        let directory = try TemporaryDirectory()
        var options = try Self.options(orders: 150, failureRate: 0, in: directory)
        options.returns = 0
        options.maxInFlight = 5
        options.backorderDeadline = .seconds(3)
        options.arrivalInterval = .milliseconds(500)
        let summary = try await DemoRunner.run(options, logger: TestBroker.logger("demo"), progress: { _ in })
        #expect(summary.everySagaEnded, "\(summary.text)")
        let backorders = summary.backorders
        #expect(backorders.shipped > 0, "\(summary.text)")
        #expect(backorders.cancelled > 0, "\(summary.text)")
        #expect(backorders.open == 0 && backorders.filledNotShipped == 0, "\(summary.text)")
        #expect(backorders.backordered == backorders.shipped + backorders.cancelled)
        #expect(backorders.linesCancelled >= backorders.cancelled, "every cancelled backorder cancels its lines")
        #expect(backorders.unitsArrived > 0)
        #expect(summary.otherLeaks.isEmpty, "\(summary.otherLeaks)")
        #expect(summary.duplicateEffects == 0, "\(summary.duplicateEffectDetails)")
        #expect(summary.stockImbalances == 0)
        // Backordered orders complete either way; an order with no line in stock (or one that lost every race for
        // stock at the warehouses) is refused before anything ships.
        #expect(Set(summary.reasons[.compensated, default: [:]].keys).isSubset(of: ["out_of_stock"]), "\(summary.text)")
        #expect((summary.byStatus[.completed] ?? 0) >= 140 && summary.byStatus[.suspended, default: 0] == 0)
        #expect(summary.text.contains("Backorders (ship what is in stock"), "\(summary.text)")
    }

    /// The participants' AMQP binding on its own: a delayed reply does not hold up a quick one, replies carry the
    /// command's correlation id to its reply_to queue, and a silence is acknowledged without a reply.
    @Test func participantsReplyOnTheWireWithoutDelaysBlockingOtherCommands() async throws {
        let url = try #require(TestBroker.url)
        let tag = String(UInt64.random(in: 0..<UInt64.max), radix: 16)
        let logger = TestBroker.logger("participants")
        let client = try AMQPClient(
            configuration: try BrokerAddress(url: url).amqpConfiguration(name: "participants-test"), logger: logger)
        try await client.connect()
        var configuration = ParticipantConfiguration()
        configuration.commandsExchange = "pt-\(tag).commands"
        configuration.queue = "pt-\(tag).participants"
        let service = ParticipantService(client: client, configuration: configuration, logger: logger) { command in
            switch command.routingKey {
            case "slow": .reply(body: ["status": "ok", "output": "slow"], after: .milliseconds(400))
            case "fast": .reply(body: ["status": "ok", "output": "fast"], after: .zero)
            default: .silence
            }
        }
        try await service.declare()
        let replies = "pt-\(tag).replies"
        _ = try await client.declareQueue(QueueDeclaration(name: replies, durable: false, exclusive: true))
        let consumer = try await client.consume(queue: replies, prefetch: 10)

        let received = try await withThrowingTaskGroup(of: [(String, String)].self) { group in
            group.addTask {
                try await service.run()
                return []
            }
            for key in ["slow", "fast", "quiet"] {
                let outcome = try await client.publish(
                    OutboundMessage(
                        exchange: configuration.commandsExchange, routingKey: key, body: Data("{}".utf8),
                        mandatory: true, persistent: true, messageID: "m-\(key)", correlationID: "c-\(key)",
                        replyTo: replies, headers: [WireHeader.idempotencyKey: .string(key)]))
                #expect(outcome == .confirmed)
            }
            var received: [(String, String)] = []
            for try await delivery in consumer {
                let body = try JSONText.decode(delivery.body)
                received.append((delivery.properties.correlationID ?? "", body["output"]?.stringValue ?? ""))
                client.ack(delivery.deliveryTag)
                if received.count == 2 { break }
            }
            // A reply can arrive before its confirm reaches the participants, which acknowledge the command only
            // then: wait for that before stopping them, or the command goes back to its queue (and would be answered
            // again, from memory, by the next participant).
            try await eventually("the participants to acknowledge both answered commands", seconds: 5) {
                service.statistics.replies >= 2
            }
            group.cancelAll()
            return received
        }
        #expect(received.map { $0.0 } == ["c-fast", "c-slow"], "the quick reply is not held up by the delayed one")
        #expect(received.map { $0.1 } == ["fast", "slow"])
        let statistics = service.statistics
        #expect(statistics.commands == 3)
        #expect(statistics.replies == 2)
        #expect(statistics.silences == 1)
        let left = try await client.inspectQueue(configuration.queue)
        #expect(left.messageCount == 0)
        _ = try? await client.deleteQueue(configuration.queue)
        try? await client.deleteExchange(configuration.commandsExchange)
        await client.close()
    }
}
