import AMQPTransport
import Foundation
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
