import AMQPTransport
import Foundation
import Synchronization
import Testing
import WaybillDefinition
import WaybillTestSupport

@testable import WaybillDemo

/// The options of `waybill-demo orders` and `participants`: what they refuse, with one-line messages naming the option.
struct OrderStreamOptionsTests {
    static func options(_ change: (inout OrderStreamOptions) -> Void = { _ in }) -> OrderStreamOptions {
        var options = OrderStreamOptions(broker: BrokerAddress(url: "amqp://guest@127.0.0.1:5672/"))
        change(&options)
        return options
    }

    @Test(arguments: [0, -1, Double.nan, Double.infinity, OrderStreamOptions.maximumRate + 1])
    func aRateOutsideTheRangeIsRefused(rate: Double) {
        let error = #expect(throws: DemoError.self) { try Self.options { $0.rate = rate }.validate() }
        #expect(error?.code == .invalidOption)
        #expect(error?.message.contains("--rate") == true, "\(String(describing: error))")
        #expect(error?.message.contains("\n") == false)
    }

    @Test(arguments: [0.05, 1, 2.5, OrderStreamOptions.maximumRate])
    func aRateInTheRangeIsAccepted(rate: Double) throws {
        try Self.options { $0.rate = rate }.validate()
    }

    @Test(arguments: ["", "Orders", "orders 1", "orders_1", "ördrar"])
    func aPrefixWithOtherThanLowercaseLettersDigitsAndDashesIsRefused(prefix: String) {
        let error = #expect(throws: DemoError.self) { try Self.options { $0.prefix = prefix }.validate() }
        #expect(error?.code == .invalidOption)
        #expect(error?.message.contains("--prefix '\(prefix)'") == true, "\(String(describing: error))")
    }

    @Test func theDefaultPrefixIsNewPerStreamAndValid() throws {
        let first = OrderStreamOptions.randomPrefix()
        let second = OrderStreamOptions.randomPrefix()
        #expect(first != second)
        for prefix in [first, second] {
            #expect(prefix.hasPrefix("orders-") && prefix.count == "orders-".count + 8, "\(prefix)")
            try Self.options { $0.prefix = prefix }.validate()
        }
    }

    @Test func theMixedShapeCannotFeedAStreamWithoutEnd() throws {
        let error = #expect(throws: DemoError.self) { try Self.options { $0.shape = .mixed }.validate() }
        #expect(error?.code == .invalidOption)
        #expect(error?.message.contains("--shape mixed") == true, "\(String(describing: error))")
        #expect(throws: DemoError.self) { try BenchShape.mixed.checkEndless() }
        try BenchShape.twoShipment.checkEndless()
        try BenchShape.oneShipment.checkEndless()
    }
}

/// ``OrderStream`` against the test broker: it publishes numbered orders of its shape to the workflow's trigger once
/// something consumes the start queue, and stops cleanly when it is told to.
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason), .timeLimit(.minutes(1)))
struct OrderStreamTests {
    @Test func ordersGoOutNumberedInSequenceOnceAWorkerConsumesAndTheStreamStopsCleanly() async throws {
        let text = try String(contentsOf: Repository.workflow("order-fulfillment.yaml"), encoding: .utf8)
        var trigger = try WorkflowLoader.load(yaml: text, file: "order-fulfillment.yaml").trigger
        trigger.exchange = TestBroker.unique("stream")
        let startQueue = TestBroker.unique("stream-starts")
        let client = try await TestBroker.connectedClient("order-stream-test")
        try await client.declareExchange(ExchangeDeclaration(name: trigger.exchange, kind: .topic))
        _ = try await client.declareQueue(QueueDeclaration(name: startQueue, durable: false, autoDelete: true))
        try await client.bind(
            QueueBinding(queue: startQueue, exchange: trigger.exchange, bindingKey: trigger.routingKey))

        var options = OrderStreamOptions(broker: BrokerAddress(url: try #require(TestBroker.url)))
        options.rate = 40
        options.shape = .oneShipment
        options.prefix = "stream-test"
        let ready = ReadySignal()
        let stream = OrderStream(
            options: options, client: client, trigger: trigger, startQueue: startQueue, say: { _ in },
            ready: { ready.fire() })
        let running = Task { try await stream.run() }

        // Nothing consumes the start queue yet: the stream waits and publishes nothing.
        try await Task.sleep(for: .milliseconds(700))
        #expect(!ready.fired)
        #expect(stream.published == 0)
        #expect(try await client.inspectQueue(startQueue).messageCount == 0)

        let consumer = try await client.consume(queue: startQueue, prefetch: 50)
        var received: [InboundDelivery] = []
        for try await delivery in consumer {
            client.ack(delivery.deliveryTag)
            received.append(delivery)
            if received.count == 12 { break }
        }
        #expect(ready.fired)
        running.cancel()
        try await running.value
        let published = stream.published
        await client.cancel(consumer)

        let ids = received.map { $0.properties.messageID ?? "" }
        #expect(ids == (1...12).map { "stream-test-\($0)" })
        let expected = BenchShape.oneShipment.orders(12, prefix: "stream-test")
        #expect(received.map { [UInt8]($0.body) } == expected.map(\.body))
        #expect(received.allSatisfy { $0.properties.persistent && $0.routingKey == trigger.routingKey })
        #expect(published >= 12)
        _ = try? await client.deleteQueue(startQueue)
        try? await client.deleteExchange(trigger.exchange)
        await client.close()
    }
}

/// Whether a callback ran, readable from the test.
private final class ReadySignal: Sendable {
    private let state = Mutex(false)

    func fire() { state.withLock { $0 = true } }

    var fired: Bool { state.withLock { $0 } }
}
