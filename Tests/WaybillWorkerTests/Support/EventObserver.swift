import AMQPTransport
import Foundation
import Synchronization
import WaybillDefinition
import WaybillTestSupport

/// A milestone event as an observer received it.
struct ObservedEvent: Sendable {
    var routingKey: String
    var messageId: String?
    var contentType: String?
    var persistent: Bool
    /// The application headers whose values are strings.
    var headers: [String: String]
    /// The CloudEvents body, or `nil` when it was not JSON.
    var body: JSONValue?

    var type: String? { body?["type"]?.stringValue }
    var subject: String? { body?["subject"]?.stringValue }
    var id: String? { body?["id"]?.stringValue }
    /// The CloudEvents `data`: the saga, the step, its output, the branch or the failure.
    var data: JSONValue? { body?["data"] }
}

/// Everyone else in the company: a queue bound to the test's events exchange with `#`, recording milestone events in
/// the order they arrive.
final class EventObserver: Sendable {
    let client: AMQPClient
    let queue: String
    private let events = Mutex<[ObservedEvent]>([])

    init(client: AMQPClient, queue: String) {
        self.client = client
        self.queue = queue
    }

    /// Declares the queue, binds it to `exchange` with `#` and records deliveries until the task is cancelled.
    func run(bindingTo exchange: String) async throws {
        _ = try await client.declareQueue(QueueDeclaration(name: queue, durable: true))
        try await client.bind(QueueBinding(queue: queue, exchange: exchange, bindingKey: "#"))
        let consumer = try await client.consume(queue: queue, prefetch: 2000)
        do {
            for try await delivery in consumer {
                let event = ObservedEvent(
                    routingKey: delivery.routingKey, messageId: delivery.properties.messageID,
                    contentType: delivery.properties.contentType, persistent: delivery.properties.persistent,
                    headers: delivery.properties.headers.compactMapValues(\.stringValue),
                    body: try? JSONText.decode(delivery.body))
                events.withLock { $0.append(event) }
                client.ack(delivery.deliveryTag)
            }
        } catch {}
    }

    /// Every event so far, in arrival order.
    var all: [ObservedEvent] { events.withLock { $0 } }

    /// The events of one saga, in arrival order.
    func events(of sagaId: String) -> [ObservedEvent] {
        events.withLock { $0.filter { $0.subject == sagaId } }
    }

    /// The milestone names of one saga, in arrival order.
    func types(of sagaId: String) -> [String] {
        events(of: sagaId).compactMap(\.type)
    }

    /// How many events of `type` arrived (for any saga).
    func count(_ type: String) -> Int {
        events.withLock { $0.count { $0.type == type } }
    }

    /// Waits for the event `type` of saga `sagaId` and returns it.
    @discardableResult
    func waitFor(_ type: String, of sagaId: String, seconds: Double = 30) async throws -> ObservedEvent {
        try await eventually("event \(type) of \(sagaId)", seconds: seconds) { [self] in
            events.withLock { $0.contains { $0.subject == sagaId && $0.type == type } }
        }
        return events(of: sagaId).first { $0.type == type }!
    }
}
