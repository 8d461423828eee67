import AMQPTransport
import Foundation
import Synchronization
import WaybillDefinition
import WaybillTestSupport
import WaybillWire

@testable import WaybillWorker

/// A command as the participant received it, with everything docs/wire.md says it carries.
struct ReceivedCommand: Sendable {
    var routingKey: String
    var exchange: String
    var messageId: String?
    var correlationId: String?
    var replyTo: String?
    var contentType: String?
    var persistent: Bool
    var redelivered: Bool
    /// The application headers whose values are strings.
    var headers: [String: String]
    /// The body, or `nil` when it is not JSON.
    var body: JSONValue?

    var idempotencyKey: String { headers[WireHeader.idempotencyKey] ?? "" }
    var sagaId: String { headers[WireHeader.sagaId] ?? "" }
    var step: String { headers[WireHeader.step] ?? "" }
    var action: String { headers[WireHeader.action] ?? "" }
    var attempt: Int { Int(headers[WireHeader.attempt] ?? "") ?? 0 }
    var isCompensation: Bool { action == "compensate" }
    /// `routing key` for forward commands, `routing key (undo)` for compensations: short enough to compare lists.
    var summary: String { isCompensation ? "\(routingKey) (undo)" : routingKey }
}

/// How the participant answers one command.
indirect enum Answer: Sendable {
    /// The standard success for the routing key (what the script's `nil` means).
    case standard
    /// `{"status": "ok", "output": ...}`; `nil` leaves `output` out.
    case ok(JSONValue?)
    /// `{"status": "error", "code": ..., "retryable": ...}`.
    case error(String, retryable: Bool)
    /// No reply at all (the attempt times out).
    case silence
    /// This exact body (not necessarily JSON).
    case raw(String)
    /// The answer, sent twice (a participant that replies again after a crash).
    case twice(Answer)
    /// Accept the command now and answer it later, when the test calls ``Participant/answerHeld(_:)``.
    case hold
}

/// An order-fulfillment participant for tests: ERP, inventory, WMS, TMS and billing in one consumer of a queue bound
/// to the test's commands exchange with `#`.
///
/// It answers each command per a script (``Script``; `nil` from the script means the standard success), replies to
/// `reply_to` on the default exchange with the command's `correlation_id`, and is idempotent as docs/wire.md asks of
/// real participants: the first success for an `idempotency-key` applies the effect and is remembered, and any
/// later command with that key gets the same answer without applying anything again. Errors apply nothing, so a retry
/// asks the script again.
/// Everything it receives is recorded in arrival order.
final class Participant: Sendable {
    /// Decides the answer to a command; `nil` means the standard success for its routing key.
    typealias Script = @Sendable (ReceivedCommand) -> Answer?
    /// The stock `inventory.reserve` reports for an order's lines: `[{warehouse, sku, quantity}]`.
    typealias Stock = @Sendable (_ orderId: String, _ lines: [JSONValue]) -> JSONValue

    struct State {
        var received: [ReceivedCommand] = []
        /// Idempotency keys whose effect was applied, in the order they were applied.
        var applied: [String] = []
        /// Successes by idempotency key.
        var remembered: [String: Answer] = [:]
        /// Commands answered from memory instead of being applied again.
        var absorbed = 0
        var repliesSent = 0
        /// Commands accepted with ``Answer/hold`` and not answered yet.
        var held: [ReceivedCommand] = []
        /// The most commands held unanswered at once.
        var mostHeld = 0
        /// Forward keys a compensation named (`waybill-compensates`) and succeeded for.
        var undone: Set<String> = []
        /// Forward keys whose effect the test made vanish (``Participant/lose(_:)``).
        var lost: Set<String> = []
        /// Verify queries answered.
        var verifyQueries = 0
    }

    let client: AMQPClient
    let queue: String
    /// How a reply's `message_id` is chosen.
    struct ReplyMessageIds: Sendable {
        var make: @Sendable (ReceivedCommand) -> String?
    }

    /// The `message_id` of each reply; a fresh UUID unless a test sets another rule. (The closure sits in a struct:
    /// a function stored directly in a `Mutex` is re-wrapped in reabstraction thunks on every access.)
    let replyMessageIds = Mutex(ReplyMessageIds { _ in UUID().uuidString })
    private let script: Script
    private let stock: Stock
    private let state = Mutex(State())
    private let work = WorkQueue<InboundDelivery>()

    init(client: AMQPClient, queue: String, script: @escaping Script, stock: @escaping Stock) {
        self.client = client
        self.queue = queue
        self.script = script
        self.stock = stock
    }

    /// Every line from warehouse `w1`, in the quantity ordered.
    static let oneWarehouse: Stock = { _, lines in
        .array(
            lines.map { line in
                ["warehouse": "w1", "sku": line["sku"] ?? "?", "quantity": line["quantity"] ?? 0]
            })
    }

    /// Stock from a fixed table: `(warehouse, sku, quantity)`.
    static func table(_ rows: [(String, String, Int)]) -> Stock {
        let value = OrderJSON.stock(rows)
        return { _, _ in value }
    }

    /// Declares the participant's queue, binds it to `exchange` with `keys` and consumes it until the task is
    /// cancelled.
    func run(bindingTo exchange: String, keys: [String] = ["#"]) async throws {
        _ = try await client.declareQueue(QueueDeclaration(name: queue, durable: true))
        for key in keys {
            try await client.bind(QueueBinding(queue: queue, exchange: exchange, bindingKey: key))
        }
        let consumer = try await client.consume(queue: queue, prefetch: 2000)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [work] in
                do {
                    for try await delivery in consumer { work.push(delivery) }
                } catch {}
                work.finish()
            }
            group.addTask { [work] in
                await withTaskCancellationHandler {
                    while let batch = await work.nextBatch(max: 500, linger: .zero) {
                        await self.answer(batch)
                    }
                } onCancel: {
                    work.finish()
                }
            }
        }
    }

    /// A snapshot of what the participant saw and did.
    var snapshot: State { state.withLock { $0 } }

    /// Commands received so far, in arrival order.
    var received: [ReceivedCommand] { state.withLock { $0.received } }

    /// Commands received for one saga, in arrival order.
    func received(saga sagaId: String) -> [ReceivedCommand] {
        state.withLock { $0.received.filter { $0.sagaId == sagaId } }
    }

    /// Waits until the received commands satisfy `condition`.
    func waitUntil(
        _ what: String, seconds: Double = 30, _ condition: @escaping @Sendable ([ReceivedCommand]) -> Bool
    ) async throws {
        try await eventually("participant: \(what)", seconds: seconds) { [self] in
            state.withLock { condition($0.received) }
        }
    }

    /// Answers every held command with `answer` (applying its effect unless an earlier command with the same key
    /// already did), as a participant that works asynchronously would. Returns how many it answered; throws when the
    /// replies were not confirmed (the held commands stay held).
    @discardableResult
    func answerHeld(_ answer: Answer = .standard) async throws -> Int {
        let held = state.withLock { $0.held }
        var messages: [OutboundMessage] = []
        for command in held {
            let resolved = state.withLock { state in
                if let known = state.remembered[command.idempotencyKey] { return Self.once(known) }
                let resolved = resolve(answer, for: command)
                Self.remember(resolved, for: command, in: &state)
                return resolved
            }
            messages += replies(resolved, to: command)
        }
        let outcomes = try await client.publish(messages)
        guard outcomes.allSatisfy(\.isConfirmed) else {
            throw ParticipantError(message: "replies to held commands not confirmed: \(Set(outcomes.map { "\($0)" }))")
        }
        state.withLock { state in
            state.held.removeFirst(held.count)
            state.repliesSent += messages.count
        }
        return held.count
    }

    /// Sends `answer` to `command` now, outside the script (a late reply).
    func reply(to command: ReceivedCommand, _ answer: Answer) async throws {
        let messages = replies(resolve(answer, for: command), to: command)
        let outcomes = try await client.publish(messages)
        guard outcomes.allSatisfy(\.isConfirmed) else {
            throw ParticipantError(message: "late reply not confirmed: \(outcomes)")
        }
        state.withLock { $0.repliesSent += messages.count }
    }

    private func answer(_ batch: [InboundDelivery]) async {
        var messages: [OutboundMessage] = []
        var ranges: [Range<Int>] = []
        for delivery in batch {
            let command = Self.read(delivery)
            let answer: Answer = state.withLock { state in
                if command.action == VerifyQuery.action {
                    // Answered from the books, not the reply memory (the query carries the forward command's key).
                    state.verifyQueries += 1
                    let key = command.idempotencyKey
                    let applied =
                        state.applied.contains(key) && !state.lost.contains(key) && !state.undone.contains(key)
                    return .ok([
                        "state": .string(applied ? "applied" : state.undone.contains(key) ? "undone" : "absent")
                    ])
                }
                state.received.append(command)
                if let known = state.remembered[command.idempotencyKey] {
                    state.absorbed += 1
                    return Self.once(known)
                }
                let answer = resolve(script(command) ?? .standard, for: command)
                if case .hold = answer {
                    state.held.append(command)
                    state.mostHeld = max(state.mostHeld, state.held.count)
                    return .silence
                }
                Self.remember(answer, for: command, in: &state)
                return answer
            }
            let start = messages.count
            messages += replies(answer, to: command)
            ranges.append(start..<messages.count)
        }
        let outcomes: [PublishOutcome]
        do {
            outcomes = messages.isEmpty ? [] : try await client.publish(messages)
        } catch {
            return
        }
        state.withLock { $0.repliesSent += outcomes.filter(\.isConfirmed).count }
        for (delivery, range) in zip(batch, ranges) {
            if outcomes[range].allSatisfy(\.isConfirmed) {
                client.ack(delivery.deliveryTag)
            } else {
                // Not replied: take the command again (after a reconnect the broker redelivers it anyway).
                client.nack(delivery.deliveryTag, requeue: true)
            }
        }
    }

    private func resolve(_ answer: Answer, for command: ReceivedCommand) -> Answer {
        switch answer {
        case .standard: .ok(standardOutput(command))
        case .twice(let inner): .twice(resolve(inner, for: command))
        default: answer
        }
    }

    private static func remember(_ answer: Answer, for command: ReceivedCommand, in state: inout State) {
        guard let success = success(answer) else { return }
        state.remembered[command.idempotencyKey] = success
        state.applied.append(command.idempotencyKey)
        if let forward = command.headers[WireHeader.compensates] { state.undone.insert(forward) }
    }

    /// Makes the effect of the forward command keyed `key` vanish from the books, as drift: verify queries answer
    /// `absent` from now on.
    func lose(_ key: String) {
        state.withLock { _ = $0.lost.insert(key) }
    }

    /// Undoes the effect of the forward command keyed `key` in the books without anyone asking, as drift: verify
    /// queries answer `undone` from now on.
    func undoInBooks(_ key: String) {
        state.withLock { _ = $0.undone.insert(key) }
    }

    /// The answer to remember for a key: a success (the effect was applied).
    private static func success(_ answer: Answer) -> Answer? {
        switch answer {
        case .ok: answer
        case .error, .silence, .raw, .standard, .hold: nil
        case .twice(let inner): success(inner)
        }
    }

    private static func once(_ answer: Answer) -> Answer {
        if case .twice(let inner) = answer { return inner }
        return answer
    }

    private func replies(_ answer: Answer, to command: ReceivedCommand) -> [OutboundMessage] {
        let body: Data
        switch answer {
        case .silence, .standard, .hold:
            return []
        case .twice(let inner):
            return replies(inner, to: command) + replies(inner, to: command)
        case .raw(let text):
            body = Data(text.utf8)
        case .ok(let output):
            var reply: [String: JSONValue] = ["status": "ok"]
            if let output { reply["output"] = output }
            body = Data(JSONText.encode(.object(reply)).utf8)
        case .error(let code, let retryable):
            body = Data(
                JSONText.encode(
                    [
                        "status": "error", "code": .string(code), "message": "test participant",
                        "retryable": .bool(retryable),
                    ]
                ).utf8)
        }
        guard let replyTo = command.replyTo else { return [] }
        return [
            OutboundMessage(
                exchange: "", routingKey: replyTo, body: body, persistent: true, contentType: "application/json",
                messageID: replyMessageIds.withLock { $0.make }(command), correlationID: command.correlationId)
        ]
    }

    /// What a real participant would return for the command.
    private func standardOutput(_ command: ReceivedCommand) -> JSONValue? {
        let body = command.body ?? .null
        switch command.routingKey {
        case "inventory.reserve":
            let orderId = body["orderId"]?.stringValue ?? command.sagaId
            return [
                "reservationId": .string("res-\(orderId)"),
                "stock": stock(orderId, body["lines"]?.arrayValue ?? []),
            ]
        case "tms.shipment.create":
            return ["trackingId": .string("T-\(body["shipmentId"]?.stringValue ?? "?")")]
        case "billing.invoice.create":
            return ["invoiceId": .string("inv-\(command.sagaId)")]
        default:
            if command.routingKey.hasPrefix("wms."), command.routingKey.hasSuffix(".release") {
                return ["released": body["shipmentId"] ?? .null]
            }
            return nil
        }
    }

    static func read(_ delivery: InboundDelivery) -> ReceivedCommand {
        let properties = delivery.properties
        return ReceivedCommand(
            routingKey: delivery.routingKey, exchange: delivery.exchange, messageId: properties.messageID,
            correlationId: properties.correlationID, replyTo: properties.replyTo, contentType: properties.contentType,
            persistent: properties.persistent, redelivered: delivery.redelivered,
            headers: properties.headers.compactMapValues(\.stringValue), body: try? JSONText.decode(delivery.body))
    }
}

struct ParticipantError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
