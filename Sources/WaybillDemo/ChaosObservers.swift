import AMQPTransport
import Foundation
import Logging
import SagaEngine
import SeededRandom
import Synchronization
import WaybillDefinition
import WaybillSimulator
import WaybillWire

/// Every milestone event of the chaos run, as another system would see them: a durable queue bound to the whole
/// events exchange (so broker restarts lose nothing), recorded per saga in arrival order with the event ids. The
/// per-branch events of a `for_each` step (`branch_milestone`, docs/events.md) are counted in ``received`` but not
/// recorded: the checks compare the step and end milestones with the workflow's steps.
final class ChaosMilestones: Sendable {
    /// One event as it arrived.
    struct Event: Sendable, Hashable {
        var id: String
        var type: String
        /// Whether the broker marked the delivery redelivered (it had delivered it before, and took it back).
        var redelivered = false

        /// The saga's message counter in the event id (`order-fulfillment/o-1/e6` → 6): the order Waybill produced
        /// its messages in; `nil` for an id of another shape.
        var sequence: Int? {
            guard let marker = id.range(of: "/e", options: .backwards) else { return nil }
            return Int(id[marker.upperBound...])
        }
    }

    private struct State {
        var events: [String: [Event]] = [:]
        var ended: Set<String> = []
        /// Sagas whose end milestone says nothing can change them any more (completed, compensated, cancelled).
        var final: [String] = []
        var received = 0
    }

    private let queue: String
    private let eventsExchange: String
    private let endMilestones: [String: SagaStatus]
    private let state = Mutex(State())

    /// A recorder of the events on `eventsExchange`, through the durable `queue`, for a workflow with these end
    /// milestones.
    init(queue: String, eventsExchange: String, milestones: EndMilestones) {
        self.queue = queue
        self.eventsExchange = eventsExchange
        endMilestones = ChaosMilestones.statuses(of: milestones)
    }

    /// The status each end milestone of `milestones` stands for (`failed` is a suspended saga).
    static func statuses(of milestones: EndMilestones) -> [String: SagaStatus] {
        var statuses: [String: SagaStatus] = [:]
        if let name = milestones.completed { statuses[name] = .completed }
        if let name = milestones.compensated { statuses[name] = .compensated }
        if let name = milestones.failed { statuses[name] = .suspended }
        if let name = milestones.cancelled { statuses[name] = .cancelled }
        return statuses
    }

    /// The durable queue the recorder consumes.
    var queueName: String { queue }

    /// Declares the events exchange (as the workers do) and the durable queue bound to every routing key. Declare it
    /// before the first saga starts: events published before the binding exists are lost.
    func declare(on client: AMQPClient) async throws {
        try await client.declareExchange(ExchangeDeclaration(name: eventsExchange, kind: .topic))
        _ = try await client.declareQueue(QueueDeclaration(name: queue, arguments: ["x-queue-type": "quorum"]))
        try await client.bind(QueueBinding(queue: queue, exchange: eventsExchange, bindingKey: "#"))
    }

    /// Consumes until the task is cancelled.
    func run(on client: AMQPClient, logger: Logger) async {
        do {
            let consumer = try await client.consume(queue: queue, prefetch: 2000)
            for try await delivery in consumer {
                record(delivery.body, redelivered: delivery.redelivered)
                client.ack(delivery.deliveryTag, multiple: true)
            }
        } catch {
            if !Task.isCancelled { logger.error("the chaos run stopped watching \(eventsExchange): \(error)") }
        }
    }

    /// Notes one event body as it arrived; a body that is not a CloudEvent with a subject and a type is left out.
    func record(_ body: Data, redelivered: Bool = false) {
        guard let event = try? JSONText.decode(body), let sagaId = event["subject"]?.stringValue,
            let type = event["type"]?.stringValue
        else { return }
        let id = event["id"]?.stringValue ?? ""
        let perBranch = event["data"]?["branch"] != nil
        state.withLock { state in
            state.received += 1
            if perBranch { return }
            state.events[sagaId, default: []].append(Event(id: id, type: type, redelivered: redelivered))
            guard let status = endMilestones[type], state.ended.insert(sagaId).inserted else { return }
            if status.isTerminal { state.final.append(sagaId) }
        }
    }

    /// How many of `sagaIds` published an end milestone.
    func endedCount(of sagaIds: Set<String>) -> Int {
        state.withLock { $0.ended.intersection(sagaIds).count }
    }

    /// A saga that can no longer change (completed, compensated or cancelled), picked at random, or `nil`.
    func randomFinishedSaga() -> String? {
        state.withLock { $0.final.randomElement() }
    }

    /// Events received, copies included.
    var received: Int { state.withLock { $0.received } }

    /// Every saga's events in arrival order, copies included.
    var events: [String: [Event]] { state.withLock { $0.events } }
}

/// The participants' side of the chaos: wraps the simulator to remember the replies it gave (the hostile inputs
/// send some of them again, late) and the commands whose reply it withheld (a lost reply), and sends a share of its
/// replies twice, as a participant does after a redelivery (same message id: the worker's inbox drops the copy).
final class ChaosReplies: Sendable {
    /// A reply the simulator gave.
    struct Reply: Sendable, Hashable {
        /// The command's message id, which is the reply's `correlation_id`.
        var commandId: String
        var sagaId: String
        var routingKey: String
        var body: JSONValue
        var at: ContinuousClock.Instant
    }

    /// A command whose reply the simulator withheld (an injected lost reply).
    struct LostReply: Sendable, Hashable {
        var routingKey: String
        var sagaId: String
        var idempotencyKey: String
    }

    private struct State {
        /// A bounded sample of replies for the hostile inputs, each handed out once.
        var sample: [Reply] = []
        var seen = 0
        var random: SplitMix64
        var echoes: [(due: ContinuousClock.Instant, reply: Reply)] = []
        var echoed = 0
        var lost: [LostReply] = []
        /// The message ids each (idempotency key, attempt) came with: more than one means the attempt was decided
        /// twice.
        var decisions: [String: Set<String>] = [:]
    }

    private static let sampleSize = 4000
    private let simulator: ParticipantSimulator
    private let duplicateShare: Double
    private let replyQueue: @Sendable (String) -> String
    private let state: Mutex<State>

    /// Replies of `simulator`; `duplicateShare` of them are sent a second time, 50 ms to 2 s later, to the queue
    /// `replyQueue(sagaId)` names.
    init(
        simulator: ParticipantSimulator, duplicateShare: Double, seed: UInt64,
        replyQueue: @escaping @Sendable (String) -> String
    ) {
        self.simulator = simulator
        self.duplicateShare = duplicateShare
        self.replyQueue = replyQueue
        state = Mutex(State(random: SplitMix64.keyed(seed: seed, ["chaos-replies"])))
    }

    /// The responder for ``ParticipantService``.
    func respond(_ command: SimulatedCommand) -> SimulatedResponse {
        let response = simulator.handle(command)
        let now = ContinuousClock.now
        state.withLock { state in
            state.decisions["\(command.idempotencyKey) #\(command.attempt)", default: []].insert(command.messageId)
            switch response {
            case .silence:
                // The chaos behaviours inject no plain silences: a silence is a reply lost after the command ran.
                state.lost.append(
                    LostReply(
                        routingKey: command.routingKey, sagaId: command.sagaId,
                        idempotencyKey: command.idempotencyKey))
            case .reply(let body, let delay):
                guard !command.messageId.isEmpty else { return }
                let reply = Reply(
                    commandId: command.messageId, sagaId: command.sagaId, routingKey: command.routingKey, body: body,
                    at: now)
                state.seen += 1
                if state.sample.count < Self.sampleSize {
                    state.sample.append(reply)
                } else {
                    state.sample[state.random.int(in: 0...(Self.sampleSize - 1))] = reply
                }
                if state.random.unit() < duplicateShare {
                    let extra = Duration.milliseconds(state.random.int(in: 50...2000))
                    state.echoes.append((now + delay + extra, reply))
                }
            }
        }
        return response
    }

    /// A reply at least `age` old that was not handed out before (removed from the sample), or `nil`.
    func takeReply(olderThan age: Duration) -> Reply? {
        let cutoff = ContinuousClock.now - age
        return state.withLock { state in
            guard let index = state.sample.firstIndex(where: { $0.at <= cutoff }) else { return nil }
            return state.sample.remove(at: index)
        }
    }

    /// The newest reply not handed out before (removed from the sample), or `nil`.
    func takeNewestReply() -> Reply? {
        state.withLock { state in
            guard let index = state.sample.indices.max(by: { state.sample[$0].at < state.sample[$1].at }) else {
                return nil
            }
            return state.sample.remove(at: index)
        }
    }

    /// The commands whose reply was lost so far.
    var lostReplies: [LostReply] { state.withLock { $0.lost } }

    /// The attempts (`<idempotency key> #<attempt>`) whose commands came with more than one message id: each was
    /// decided more than once, which only a second owner (or a decision lost and made again) does.
    var attemptsDecidedTwice: [String: Set<String>] {
        state.withLock { $0.decisions.filter { $0.value.count > 1 } }
    }

    /// Replies sent twice so far.
    var echoed: Int { state.withLock { $0.echoed } }

    /// Sends the due second copies until the task is cancelled: the same message as the participants' reply
    /// (``ParticipantService/reply(_:to:replyTo:)``), best effort.
    func runEchoes(on client: AMQPClient) async {
        while !Task.isCancelled {
            let now = ContinuousClock.now
            let due = state.withLock { state in
                let due = state.echoes.filter { $0.due <= now }.map(\.reply)
                state.echoes.removeAll { $0.due <= now }
                return due
            }
            if !due.isEmpty {
                let messages = due.map { reply in
                    OutboundMessage(
                        exchange: "", routingKey: replyQueue(reply.sagaId),
                        body: Data(JSONText.encodeBytes(reply.body)), persistent: true,
                        contentType: WireContentType.json, messageID: "\(reply.commandId)/reply",
                        correlationID: reply.commandId)
                }
                let outcomes = (try? await client.publish(messages)) ?? []
                let confirmed = outcomes.count { $0.isConfirmed }
                state.withLock { $0.echoed += confirmed }
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// The answers the workers send to the hostile control messages: a durable queue the control messages name as
/// `reply_to`, consumed as they come (the answers are not persistent).
final class ChaosAnswers: Sendable {
    private let queue: String
    private let answers = Mutex<[String: [String]]>([:])

    init(queue: String) {
        self.queue = queue
    }

    /// The queue the control messages name as `reply_to`.
    var queueName: String { queue }

    func declare(on client: AMQPClient) async throws {
        _ = try await client.declareQueue(QueueDeclaration(name: queue, arguments: ["x-queue-type": "quorum"]))
    }

    /// Consumes until the task is cancelled.
    func run(on client: AMQPClient, logger: Logger) async {
        do {
            let consumer = try await client.consume(queue: queue, prefetch: 500)
            for try await delivery in consumer {
                let status =
                    (try? JSONText.decode(delivery.body))?["status"]?.stringValue ?? "unreadable"
                let correlation = delivery.properties.correlationID ?? ""
                answers.withLock { $0[correlation, default: []].append(status) }
                client.ack(delivery.deliveryTag, multiple: true)
            }
        } catch {
            if !Task.isCancelled { logger.error("the chaos run stopped reading control answers: \(error)") }
        }
    }

    /// The statuses answered per correlation id.
    var all: [String: [String]] { answers.withLock { $0 } }
}
