import AMQPTransport
import Foundation
import WaybillDefinition

/// Publishes start messages to a workflow's trigger exchange: persistent, mandatory, confirmed, `message_id` = saga
/// id, and tells the monitor when each was sent.
struct OrderPublisher: Sendable {
    var client: AMQPClient
    var exchange: String
    var routingKey: String
    var monitor: SagaMonitor?

    /// Publishes to `trigger`'s exchange and routing key (a workflow's start messages).
    init(client: AMQPClient, trigger: Trigger, monitor: SagaMonitor?) {
        self.client = client
        self.exchange = trigger.exchange
        self.routingKey = trigger.routingKey
        self.monitor = monitor
    }

    /// Publishes `orders` in one confirmed batch; what the broker did not confirm is sent again (the saga id makes
    /// a repeated start harmless).
    func publish(_ orders: [(sagaId: String, body: [UInt8])]) async throws {
        var pending = orders
        var attempts = 0
        while !pending.isEmpty {
            monitor?.sending(pending.map(\.sagaId))
            let messages = pending.map { order in
                OutboundMessage(
                    exchange: exchange, routingKey: routingKey, body: Data(order.body), mandatory: true,
                    persistent: true, contentType: "application/json", messageID: order.sagaId)
            }
            let outcomes = try await client.publish(messages)
            pending = zip(pending, outcomes).filter { !$0.1.isConfirmed }.map(\.0)
            attempts += 1
            if !pending.isEmpty {
                if let returned = outcomes.first(where: { if case .returned = $0 { true } else { false } }) {
                    throw DemoError(
                        .stoppedEarly, "orders came back unroutable from \(exchange)/\(routingKey): \(returned)")
                }
                if attempts >= 20 {
                    throw DemoError(.stoppedEarly, "the broker did not take \(pending.count) orders after 20 attempts")
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}

/// Feeds orders at a rate and/or with a bound on sagas in flight, and waits until all of them ended.
struct OrderFeed: Sendable {
    /// How the wait for the sagas ended.
    enum Outcome: Sendable {
        /// Every saga reached an end state.
        case finished
        /// The timeout passed first.
        case timedOut
        /// The worker or the participants stopped (a signal, a failure).
        case interrupted
    }

    var publisher: OrderPublisher
    var monitor: SagaMonitor
    var isRunning: @Sendable () -> Bool
    /// Orders per second; `nil` publishes as fast as `maxInFlight` allows.
    var rate: Double?
    var maxInFlight: Int
    var timeout: Duration
    var progressInterval: Duration

    /// Publishes `orders` and waits for their ends; `progress` gets the monitor's tally and the elapsed time every
    /// `progressInterval` and once at the end. Counts are relative to what the monitor had seen before the call.
    func run(
        _ orders: [(sagaId: String, body: [UInt8])],
        progress: (SagaMonitor.Tally, Duration) -> Void = { _, _ in }
    ) async throws -> Outcome {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + timeout
        let before = monitor.tally.ended
        var next = 0
        var lastReport = start
        func report() { progress(monitor.tally, clock.now - start) }
        while true {
            guard isRunning() else {
                report()
                return .interrupted
            }
            let ended = monitor.tally.ended - before
            if next == orders.count && ended >= orders.count {
                report()
                return .finished
            }
            let now = clock.now
            if now >= deadline {
                report()
                return .timedOut
            }
            if next < orders.count {
                var due = orders.count
                if let rate { due = min(due, Int(rate * (now - start).inSeconds) + 1) }
                due = min(due, ended + maxInFlight, next + 500)
                if due > next {
                    try await publisher.publish(Array(orders[next..<due]))
                    next = due
                    continue
                }
            }
            if now - lastReport >= progressInterval {
                report()
                lastReport = now
            }
            try await Task.sleep(for: .milliseconds(rate == nil ? 5 : 2))
        }
    }
}

/// Empties a queue by consuming it, for clearing what an earlier run left without deleting the queue.
enum QueueDrain {
    /// Acknowledges every message `queue` holds now; returns how many. A queue that does not exist holds nothing.
    static func drain(_ queue: String, on client: AMQPClient) async -> Int {
        guard let info = try? await client.inspectQueue(queue), info.messageCount > 0 else { return 0 }
        guard let consumer = try? await client.consume(queue: queue, prefetch: 1000) else { return 0 }
        let wanted = Int(info.messageCount)
        let drained = await withTaskGroup(of: Int?.self) { group in
            group.addTask {
                var count = 0
                do {
                    for try await delivery in consumer {
                        client.ack(delivery.deliveryTag)
                        count += 1
                        if count >= wanted { break }
                    }
                } catch {}
                return count
            }
            group.addTask {
                // Messages can be unacknowledged elsewhere or redelivered; do not wait for them forever.
                try? await Task.sleep(for: .seconds(10))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? 0
        }
        await client.cancel(consumer)
        return drained
    }
}
