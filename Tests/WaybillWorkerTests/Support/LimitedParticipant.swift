import AMQPTransport
import Foundation
import SagaEngine
import Synchronization
import WaybillDefinition
import WaybillTestSupport
import WaybillWire

@testable import WaybillWorker

/// A participant that enforces a real limit, as a cloud ERP does: at most `maxInFlight` commands being worked on
/// (each takes `latency`), at most `perSecond` accepted per second (a token bucket of `burst`), and a `rate_limited`
/// reply to any command beyond either. Accepted commands succeed with no output.
final class LimitedParticipant: Sendable {
    struct State {
        var received: [ReceivedCommand] = []
        var accepted: [ReceivedCommand] = []
        var refused: [ReceivedCommand] = []
        var inFlight = 0
        var maxInFlight = 0
        var tokens: Double
        var refilledAt: ContinuousClock.Instant
    }

    let client: AMQPClient
    let queue: String
    let maxInFlight: Int
    let perSecond: Double
    let burst: Double
    let latency: Duration
    /// Seconds a `rate_limited` reply asks for, if any.
    let retryAfter: Double?
    private let state: Mutex<State>
    private let clock = ContinuousClock()

    init(
        client: AMQPClient, queue: String, maxInFlight: Int, perSecond: Double, burst: Double,
        latency: Duration = .milliseconds(20), retryAfter: Double? = nil
    ) {
        self.client = client
        self.queue = queue
        self.maxInFlight = maxInFlight
        self.perSecond = perSecond
        self.burst = burst
        self.latency = latency
        self.retryAfter = retryAfter
        state = Mutex(State(tokens: burst, refilledAt: ContinuousClock().now))
    }

    var snapshot: State { state.withLock { $0 } }

    /// Declares the queue, binds it to `exchange` with `keys` and answers commands until the task is cancelled.
    func run(bindingTo exchange: String, keys: [String]) async throws {
        _ = try await client.declareQueue(QueueDeclaration(name: queue, durable: true))
        for key in keys {
            try await client.bind(QueueBinding(queue: queue, exchange: exchange, bindingKey: key))
        }
        let consumer = try await client.consume(queue: queue, prefetch: 1000)
        try await withThrowingDiscardingTaskGroup { group in
            for try await delivery in consumer {
                let command = Participant.read(delivery)
                let accepted = admit(command)
                client.ack(delivery.deliveryTag)
                group.addTask { [self] in
                    if accepted {
                        try await Task.sleep(for: latency)
                        // Done with it: the next command may come as soon as the reply is out.
                        state.withLock { $0.inFlight -= 1 }
                        try await reply(to: command, ["status": "ok"])
                    } else {
                        var refusal: [String: JSONValue] = [
                            "status": "error", "code": .string(StepError.rateLimitedCode),
                            "message": "over the limit", "retryable": true,
                        ]
                        if let retryAfter { refusal["retry_after"] = .number(retryAfter) }
                        try await reply(to: command, .object(refusal))
                    }
                }
            }
        }
    }

    /// Takes the command on, or refuses it when it would go over a limit.
    private func admit(_ command: ReceivedCommand) -> Bool {
        state.withLock { state in
            state.received.append(command)
            let now = clock.now
            let elapsed = now - state.refilledAt
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            state.tokens = min(burst, state.tokens + seconds * perSecond)
            state.refilledAt = now
            guard state.inFlight < maxInFlight, state.tokens >= 1 else {
                state.refused.append(command)
                return false
            }
            state.tokens -= 1
            state.inFlight += 1
            state.maxInFlight = max(state.maxInFlight, state.inFlight)
            state.accepted.append(command)
            return true
        }
    }

    private func reply(to command: ReceivedCommand, _ body: JSONValue) async throws {
        guard let replyTo = command.replyTo else { return }
        let outcomes = try await client.publish([
            OutboundMessage(
                exchange: "", routingKey: replyTo, body: Data(JSONText.encode(body).utf8), persistent: true,
                contentType: "application/json", messageID: UUID().uuidString, correlationID: command.correlationId)
        ])
        guard outcomes.allSatisfy(\.isConfirmed) else {
            throw ParticipantError(message: "reply not confirmed: \(outcomes)")
        }
    }
}
