import AMQPTransport
import Foundation
import Testing
import WaybillTestSupport

/// The next `count` deliveries of a consumer.
func take(_ count: Int, from consumer: AMQPConsumer, seconds: Double = 30) async throws -> [InboundDelivery] {
    try await within(seconds, "\(count) deliveries from \(consumer.queue)") {
        var received: [InboundDelivery] = []
        for try await delivery in consumer {
            received.append(delivery)
            if received.count == count { break }
        }
        return received
    }
}

/// What a subscription's handlers were called with.
enum SubscriptionEvent: Sendable {
    case delivery(InboundDelivery)
    /// `onEnd`: the consumer tag and the error, if any.
    case end(String, (any Error)?)
}

extension Data {
    init(_ text: String) { self = Data(text.utf8) }
}

/// A connected client and a new non-durable queue named after `name`, holding `count` confirmed messages whose bodies
/// are "m-0", "m-1", ...
func clientWithQueue(_ name: String, holding count: Int) async throws -> (AMQPClient, String) {
    let client = try await TestBroker.connectedClient(TestBroker.unique(name))
    let queue = TestBroker.unique("\(name).q")
    _ = try await client.declareQueue(QueueDeclaration(name: queue, durable: false))
    let sent = (0..<count).map { OutboundMessage(exchange: "", routingKey: queue, body: Data("m-\($0)")) }
    #expect(try await client.publish(sent) == Array(repeating: .confirmed, count: count))
    return (client, queue)
}
