import AMQPTransport
import DequeModule
import Foundation
import Logging
import SagaEngine
import Synchronization
import WaybillDefinition

/// Watches the events exchange for the end milestones of a workflow, as any other system would, and keeps for each
/// saga the demo started how it ended and how long it took from the start message being published.
///
/// Bind it (``declare()``) before publishing anything: events published before the binding exists are lost.
final class SagaMonitor: Sendable {
    /// How the sagas stand.
    struct Tally: Sendable, Hashable {
        var published = 0
        var completed = 0
        var compensated = 0
        var suspended = 0
        var cancelled = 0

        /// Sagas in an end state (suspended counts: it waits for an operator).
        var ended: Int { completed + compensated + suspended + cancelled }
        /// Published and not ended yet.
        var inFlight: Int { max(0, published - ended) }
    }

    private struct State {
        var tally = Tally()
        var sentAt: [String: ContinuousClock.Instant] = [:]
        var endings: [String: SagaStatus] = [:]
        var latencies: [Duration] = []
        var firstSent: ContinuousClock.Instant?
        var lastEnded: ContinuousClock.Instant?
        /// End instants of the last rate window, oldest first: appended at the back, expired from the front.
        var recentEnds: Deque<ContinuousClock.Instant> = []
        /// Every end instant, in arrival order.
        var allEnds: [ContinuousClock.Instant] = []
    }

    private let client: AMQPClient
    private let eventsExchange: String
    private let queue: String
    private let milestones: [String: SagaStatus]
    private let logger: Logger
    private let state = Mutex(State())

    init(client: AMQPClient, eventsExchange: String, queue: String, milestones: EndMilestones, logger: Logger) {
        self.client = client
        self.eventsExchange = eventsExchange
        self.queue = queue
        var byName: [String: SagaStatus] = [:]
        if let name = milestones.completed { byName[name] = .completed }
        if let name = milestones.compensated { byName[name] = .compensated }
        if let name = milestones.failed { byName[name] = .suspended }
        if let name = milestones.cancelled { byName[name] = .cancelled }
        self.milestones = byName
        self.logger = logger
    }

    /// Declares the events exchange (as the worker does) and an exclusive queue bound to the end milestones.
    func declare() async throws {
        try await client.declareExchange(ExchangeDeclaration(name: eventsExchange, kind: .topic))
        _ = try await client.declareQueue(QueueDeclaration(name: queue, durable: false, exclusive: true))
        for name in milestones.keys.sorted() {
            try await client.bind(QueueBinding(queue: queue, exchange: eventsExchange, bindingKey: name))
        }
    }

    /// Consumes end milestones until the task is cancelled.
    func run() async {
        do {
            let consumer = try await client.consume(queue: queue, prefetch: 2000)
            for try await delivery in consumer {
                record(delivery)
                client.ack(delivery.deliveryTag, multiple: true)
            }
        } catch {
            if !Task.isCancelled { logger.error("the demo stopped watching \(eventsExchange): \(error)") }
        }
    }

    /// Notes that the start messages of `sagaIds` are being published now.
    func sending(_ sagaIds: some Sequence<String>) {
        let now = ContinuousClock.now
        state.withLock { state in
            if state.firstSent == nil { state.firstSent = now }
            for id in sagaIds where state.sentAt.updateValue(now, forKey: id) == nil {
                state.tally.published += 1
            }
        }
    }

    private func record(_ delivery: InboundDelivery) {
        let now = ContinuousClock.now
        guard let event = try? JSONText.decode(delivery.body), let sagaId = event["subject"]?.stringValue,
            let type = event["type"]?.stringValue
        else { return }
        let status =
            event["data"]?["status"]?.stringValue.flatMap(SagaStatus.init(rawValue:)).flatMap {
                $0 == .running || $0 == .compensating ? nil : $0
            } ?? milestones[type]
        guard let status else { return }
        state.withLock { state in
            guard let sent = state.sentAt[sagaId], state.endings[sagaId] == nil else { return }
            state.endings[sagaId] = status
            state.latencies.append(now - sent)
            state.lastEnded = now
            state.recentEnds.append(now)
            state.allEnds.append(now)
            switch status {
            case .completed: state.tally.completed += 1
            case .compensated: state.tally.compensated += 1
            case .suspended: state.tally.suspended += 1
            case .cancelled: state.tally.cancelled += 1
            case .running, .compensating: break
            }
        }
    }

    /// The counts so far.
    var tally: Tally { state.withLock { $0.tally } }

    /// Sagas ended per second over the last `window`.
    func recentRate(window: Duration = .seconds(3)) -> Double {
        let now = ContinuousClock.now
        return state.withLock { state in
            let cutoff = now - window
            while let oldest = state.recentEnds.first, oldest < cutoff { state.recentEnds.removeFirst() }
            guard let first = state.firstSent else { return 0 }
            let span = min(window, now - first)
            return span > .zero ? Double(state.recentEnds.count) / span.inSeconds : 0
        }
    }

    /// Every end latency observed, the first publish and the last end.
    var timings: (latencies: [Duration], firstSent: ContinuousClock.Instant?, lastEnded: ContinuousClock.Instant?) {
        state.withLock { ($0.latencies, $0.firstSent, $0.lastEnded) }
    }

    /// Sagas ended per second between the `from` and `to` fractions of the sagas ended so far, after the first
    /// `skipped` (e.g. 0.1 and 0.9: the steady state without ramp-up and tail); 0 when too few ended.
    func steadyRate(from: Double = 0.1, to: Double = 0.9, skipping skipped: Int = 0) -> Double {
        state.withLock { state in
            let ends = state.allEnds.dropFirst(skipped)
            let first = ends.startIndex + Int(Double(ends.count) * from)
            let last = min(ends.endIndex - 1, ends.startIndex + Int(Double(ends.count) * to))
            guard ends.count >= 10, last > first else { return 0 }
            let span = ends[last] - ends[first]
            return span > .zero ? Double(last - first) / span.inSeconds : 0
        }
    }

    /// How each saga ended, by saga id (only the ones that did).
    var endings: [String: SagaStatus] { state.withLock { $0.endings } }
}
