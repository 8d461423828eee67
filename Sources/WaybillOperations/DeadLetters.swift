import AMQPTransport
import Foundation
import Logging
import SagaEngine
import WaybillDefinition
import WaybillWire

/// A message in the dead-letter queue, with why it is there and where it came from.
///
/// Two kinds end up there: messages a worker refused (headers `x-waybill-error`, `x-waybill-source`,
/// `x-waybill-exchange`, `x-waybill-routing-key`), and messages the broker dead-lettered after too many deliveries
/// (`x-death`, `x-first-death-*`).
public struct DeadLetter: Sendable, Hashable {
    /// A stable handle for `dlq show` and `dlq replay`: the `message_id`, or `sha:` and 12 hex digits of the body and
    /// reason when the message has none.
    public var id: String
    /// Its place in the queue when browsed (1 = head).
    public var position: Int
    /// Why it was dead-lettered.
    public var reason: String
    /// Which worker input refused it (`starts/<workflow>`, `partition/<workflow>`, `replies`) or which queue the
    /// broker dead-lettered it from.
    public var source: String?
    /// The exchange it was first published to (`""` is the default exchange) — where a replay sends it.
    public var exchange: String?
    /// The routing key it was first published with.
    public var routingKey: String?
    /// When it was dead-lettered: by a worker (`x-waybill-dead-lettered-at`), by the broker (`x-death`), or else the
    /// message's own timestamp.
    public var at: Date?
    /// Its properties as received.
    public var properties: MessageProperties
    /// The body.
    public var body: [UInt8]

    /// Reads a delivery from the dead-letter queue.
    public init(_ delivery: InboundDelivery, position: Int) {
        let headers = delivery.properties.headers
        properties = delivery.properties
        body = [UInt8](delivery.body)
        self.position = position
        let death = headers["x-death"].flatMap { value -> AMQPTable? in
            if case .array(let entries) = value, let first = entries.first { return first.tableValue }
            return nil
        }
        if let error = headers["x-waybill-error"]?.stringValue {
            reason = error
            source = headers[WireHeader.deadLetterSource]?.stringValue
            exchange = headers[WireHeader.deadLetterExchange]?.stringValue
            routingKey = headers[WireHeader.deadLetterRoutingKey]?.stringValue
        } else if let death {
            let why = death["reason"]?.stringValue ?? headers["x-first-death-reason"]?.stringValue ?? "unknown"
            let count = death["count"]?.intValue.map { " after \($0) deaths" } ?? ""
            reason = "broker dead-lettered it: \(why)\(count)"
            source = death["queue"]?.stringValue ?? headers["x-first-death-queue"]?.stringValue
            exchange = death["exchange"]?.stringValue ?? headers["x-first-death-exchange"]?.stringValue
            if case .array(let keys)? = death["routing-keys"] { routingKey = keys.first?.stringValue }
        } else {
            reason = "no reason recorded"
            source = nil
            exchange = nil
            routingKey = nil
        }
        if case .timestamp(let time)? = headers[WireHeader.deadLetteredAt] {
            at = time
        } else if case .timestamp(let time)? = death?["time"] {
            at = time
        } else {
            at = delivery.properties.timestamp
        }
        if let messageId = delivery.properties.messageID, !messageId.isEmpty {
            id = messageId
        } else {
            let hash = WaybillDefinition.ContentHash.sha256Hex(body + Array(reason.utf8))
            id = "sha:" + hash.prefix(12)
        }
    }

    /// The message to publish for a replay: the same body and properties, minus the dead-letter headers, plus
    /// `x-waybill-replayed-by`, `-reason`, `-at` and the previous error under `x-waybill-replayed-error`.
    ///
    /// `nil` when the origin is unknown (nothing says where to send it).
    ///
    /// With `body`, the replay carries that body instead (`waybill dlq edit`)
    /// and `x-waybill-edited-by`.
    public func replay(
        by: String, reason replayReason: String, at now: Date, body newBody: [UInt8]? = nil
    )
        -> OutboundMessage?
    {
        guard let exchange, let routingKey else { return nil }
        var properties = properties
        properties.persistent = true
        for key in properties.headers.keys
        where key.hasPrefix("x-death") || key.hasPrefix("x-first-death") || key.hasPrefix("x-last-death")
            || WireHeader.deadLetterHeaders.contains(key)
        {
            properties.headers[key] = nil
        }
        properties.headers["x-waybill-replayed-by"] = .string(by)
        properties.headers["x-waybill-replay-reason"] = .string(replayReason)
        properties.headers["x-waybill-replayed-at"] = .timestamp(now)
        properties.headers["x-waybill-replayed-error"] = .string(reason)
        if newBody != nil { properties.headers["x-waybill-edited-by"] = .string(by) }
        return OutboundMessage(
            exchange: exchange, routingKey: routingKey, body: Data(newBody ?? body), mandatory: true,
            properties: properties)
    }

    /// The message that keeps this one, exactly as it was dead-lettered (body, properties, every header), in `queue`
    /// when an edited copy replaces it, with `x-waybill-edited-by`, `-edit-reason` and `-edited-at` added.
    public func original(keptIn queue: String, by: String, reason editReason: String, at now: Date) -> OutboundMessage {
        var properties = properties
        properties.persistent = true
        properties.headers["x-waybill-edited-by"] = .string(by)
        properties.headers["x-waybill-edit-reason"] = .string(editReason)
        properties.headers["x-waybill-edited-at"] = .timestamp(now)
        return OutboundMessage(
            exchange: "", routingKey: queue, body: Data(body), mandatory: true, properties: properties)
    }
}

/// Browses and replays a dead-letter queue. Browsing takes the messages without acknowledging them and cancels
/// the consumer, so they go back to the queue; replaying publishes each chosen message to where it first went
/// (with publisher confirms and `mandatory`) and acknowledges the dead-letter copy only once the broker confirmed
/// the replay.
///
/// Caveat: each browse counts as a delivery. A quorum dead-letter queue with a delivery limit (RabbitMQ 4 sets
/// 20 by default) would drop messages after that many browses; declare it with `x-delivery-limit: -1` there.
public struct DeadLetterQueue: Sendable {
    /// The queue (`waybill.dead-letter` by default).
    public var queue: String
    /// How long to wait for more messages once none arrive.
    public var idle: Duration

    /// Describes the queue.
    public init(queue: String, idle: Duration = .seconds(2)) {
        self.queue = queue
        self.idle = idle
    }

    /// Up to `limit` messages from the head of the queue; they stay in the queue.
    public func browse(broker: BrokerSettings, limit: Int) async throws(OperationsError) -> [DeadLetter] {
        let client = try await broker.connect(logger: BrokerSettings.quietLogger)
        do {
            let letters = try await browse(client, limit: limit)
            await client.close()
            return letters
        } catch {
            await client.close()
            throw error
        }
    }

    /// Up to `limit` messages from the head of the queue, on a connected client; they stay in the queue.
    public func browse(_ client: AMQPClient, limit: Int) async throws(OperationsError) -> [DeadLetter] {
        try await take(client, limit: limit) { _, _ in false }.letters
    }

    /// Replays the chosen messages among the first `limit`; see ``replay(_:limit:dryRun:by:reason:select:)``.
    public func replay(
        broker: BrokerSettings, limit: Int, dryRun: Bool, by: String, reason: String,
        select: @escaping @Sendable (DeadLetter) -> Bool
    ) async throws(OperationsError) -> [(DeadLetter, ReplayOutcome)] {
        let client = try await broker.connect(logger: BrokerSettings.quietLogger)
        do {
            let results = try await replay(
                client, limit: limit, dryRun: dryRun, by: by, reason: reason, select: select)
            await client.close()
            return results
        } catch {
            await client.close()
            throw error
        }
    }

    /// What a replay did with one message.
    public enum ReplayOutcome: Sendable, Hashable {
        /// Published and confirmed; removed from the dead-letter queue.
        case replayed
        /// Would be replayed (`--dry-run`).
        case wouldReplay
        /// Not replayed: the reason.
        case kept(String)
    }

    /// Replays the messages among the first `limit` that `select` picks; the rest stay untouched.
    public func replay(
        _ client: AMQPClient, limit: Int, dryRun: Bool, by: String, reason: String,
        select: @escaping @Sendable (DeadLetter) -> Bool
    ) async throws(OperationsError) -> [(DeadLetter, ReplayOutcome)] {
        var results: [(DeadLetter, ReplayOutcome)] = []
        _ = try await take(client, limit: limit) { letter, delivery async -> Bool in
            guard select(letter) else { return false }
            guard let message = letter.replay(by: by, reason: reason, at: Date()) else {
                results.append((letter, .kept("its origin is unknown (no x-waybill-exchange or x-death header)")))
                return false
            }
            if dryRun {
                results.append((letter, .wouldReplay))
                return false
            }
            if let problem = await client.publishConfirmed(message) {
                results.append((letter, .kept(problem)))
                return false
            }
            results.append((letter, .replayed))
            return true
        }
        return results
    }

    /// ``edit(_:id:body:keepOriginalIn:limit:dryRun:by:reason:)`` on a connection of its own.
    public func edit(
        broker: BrokerSettings, id: String, body: [UInt8], keepOriginalIn archive: String? = nil, limit: Int,
        dryRun: Bool, by: String, reason: String, check: @escaping @Sendable (DeadLetter) -> String? = { _ in nil }
    ) async throws(OperationsError) -> (DeadLetter, ReplayOutcome)? {
        let client = try await broker.connect(logger: BrokerSettings.quietLogger)
        do {
            let result = try await edit(
                client, id: id, body: body, keepOriginalIn: archive, limit: limit, dryRun: dryRun, by: by,
                reason: reason, check: check)
            await client.close()
            return result
        } catch {
            await client.close()
            throw error
        }
    }

    /// Where `dlq edit` keeps the originals of the messages it replaced: `<queue>.originals`.
    public var originalsQueue: String { queue + ".originals" }

    /// Replaces the message `id` (among the first `limit`) by one with `body`, sent where the message first went,
    /// without ever losing the original: the original, exactly as it was dead-lettered, is first published to
    /// `keepOriginalIn` (a durable quorum queue, declared when missing; ``originalsQueue`` by default) and
    /// confirmed, then the edited copy is published and confirmed, and only then is the dead-letter copy
    /// acknowledged. If the edited copy is refused, the message stays in the dead-letter queue (and its copy among
    /// the originals says it was tried). `check` sees the message first and may refuse the edit (its answer is the
    /// reason). `nil` when no message has that id.
    public func edit(
        _ client: AMQPClient, id: String, body: [UInt8], keepOriginalIn archive: String? = nil, limit: Int = 1000,
        dryRun: Bool, by: String, reason: String, check: @escaping @Sendable (DeadLetter) -> String? = { _ in nil }
    ) async throws(OperationsError) -> (DeadLetter, ReplayOutcome)? {
        let archive = archive ?? originalsQueue
        if !dryRun {
            do {
                _ = try await client.declareQueue(
                    QueueDeclaration(name: archive, arguments: ["x-queue-type": "quorum"]))
            } catch {
                throw OperationsError(.broker, "cannot declare \(archive) to keep the original in", cause: error)
            }
        }
        var result: (DeadLetter, ReplayOutcome)?
        _ = try await take(client, limit: limit) { letter, _ async -> Bool in
            guard result == nil, letter.id == id else { return false }
            if let refusal = check(letter) {
                result = (letter, .kept(refusal))
                return false
            }
            let now = Date()
            guard let edited = letter.replay(by: by, reason: reason, at: now, body: body) else {
                result = (letter, .kept("its origin is unknown (no x-waybill-exchange or x-death header)"))
                return false
            }
            if dryRun {
                result = (letter, .wouldReplay)
                return false
            }
            let kept = await client.publishConfirmed(letter.original(keptIn: archive, by: by, reason: reason, at: now))
            guard kept == nil else {
                result = (
                    letter, .kept("the original could not be kept in \(archive) (\(kept ?? "")); nothing was sent")
                )
                return false
            }
            if let problem = await client.publishConfirmed(edited) {
                result = (letter, .kept("\(problem); the original stays here (a copy is in \(archive))"))
                return false
            }
            result = (letter, .replayed)
            return true
        }
        return result
    }

    /// Takes up to `limit` deliveries; `handle` returns `true` to acknowledge one (it was dealt with). The rest go
    /// back to the queue when the consumer is cancelled.
    private func take(
        _ client: AMQPClient, limit: Int, handle: (DeadLetter, InboundDelivery) async -> Bool
    ) async throws(OperationsError) -> (letters: [DeadLetter], acked: Int) {
        let available: Int
        do {
            available = Int(try await client.inspectQueue(queue).messageCount)
        } catch {
            throw OperationsError(.broker, "cannot read queue \(queue); check --queue and the broker", cause: error)
        }
        let wanted = min(limit, available)
        guard wanted > 0 else { return ([], 0) }
        let consumer: AMQPConsumer
        do {
            consumer = try await client.consume(queue: queue, prefetch: UInt16(min(wanted, 65_535)))
        } catch {
            throw OperationsError(.broker, "cannot consume from \(queue); check the broker", cause: error)
        }
        var letters: [DeadLetter] = []
        var acked = 0
        let stream = Collector(consumer: consumer, idle: idle)
        while letters.count < wanted, let delivery = await stream.next() {
            let letter = DeadLetter(delivery, position: letters.count + 1)
            letters.append(letter)
            if await handle(letter, delivery) {
                client.ack(delivery.deliveryTag)
                acked += 1
            }
        }
        await client.cancel(consumer)
        return (letters, acked)
    }
}

/// Pulls deliveries one at a time, giving up after `idle` without one.
private struct Collector {
    let consumer: AMQPConsumer
    let idle: Duration
    let iterator: IteratorBox

    /// Holds the consumer's async iterator, which is not `Sendable` but must be driven from a child task so that an
    /// idle timeout can race it.
    // Safe without the compiler's check: only `Collector.next()` touches `iterator`, from the one reading child of its
    // task group. `withTaskGroup` awaits every child, cancelled or not, before it returns, so that child has finished
    // before `next()` returns; and the collector's caller awaits each `next()` before the next one. So at most one
    // task uses the iterator at any time, and each use happens after the previous one ended.
    final class IteratorBox: @unchecked Sendable {
        var iterator: AsyncThrowingStream<InboundDelivery, any Error>.AsyncIterator
        init(_ iterator: AsyncThrowingStream<InboundDelivery, any Error>.AsyncIterator) { self.iterator = iterator }
    }

    init(consumer: AMQPConsumer, idle: Duration) {
        self.consumer = consumer
        self.idle = idle
        iterator = IteratorBox(consumer.makeAsyncIterator())
    }

    func next() async -> InboundDelivery? {
        let box = iterator
        return await withTaskGroup(of: InboundDelivery?.self) { group in
            group.addTask { try? await box.iterator.next() }
            group.addTask { [idle] in
                try? await Task.sleep(for: idle)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }
}
