import AMQPTransport
import Foundation
import SagaEngine
import SagaStore
import Testing
import WaybillDefinition
import WaybillOperations
import WaybillTestSupport
import WaybillWire

/// `waybill events replay` against a real worker and broker: a consumer whose queue was gone for a while gets exactly
/// the events of that window again, in order, with their original ids, and a consumer that dedupes by id sees nothing
/// new from a second replay.
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
struct EventReplayTests {
    /// A consumer that dedupes by CloudEvents id, as the docs tell consumers to.
    struct DedupingConsumer {
        var seen: Set<String> = []
        /// Ids in the order they were first seen.
        var applied: [String] = []

        mutating func take(_ events: [ObservedEvent]) {
            for event in events {
                guard let id = event.id, seen.insert(id).inserted else { continue }
                applied.append(id)
            }
        }
    }

    /// Takes exactly `count` messages off `queue` (waiting up to 30 s), acknowledging them, then waits until the queue
    /// is empty: call it once everything meant for the queue was published, so a copy too many fails the wait.
    static func take(_ count: Int, from queue: String, client: AMQPClient) async throws -> [ObservedEvent] {
        guard count > 0 else { return [] }
        let consumer = try await client.consume(queue: queue, prefetch: UInt16(min(count, 1000)))
        let events = try await within(30, "\(count) events on \(queue)") {
            var received: [ObservedEvent] = []
            for try await delivery in consumer {
                received.append(
                    ObservedEvent(
                        routingKey: delivery.routingKey, messageId: delivery.properties.messageID,
                        contentType: delivery.properties.contentType, persistent: delivery.properties.persistent,
                        headers: delivery.properties.headers.compactMapValues(\.stringValue),
                        body: try? JSONText.decode(delivery.body)))
                client.ack(delivery.deliveryTag)
                if received.count == count { break }
            }
            return received
        }
        await client.cancel(consumer)
        try await eventually("\(queue) acknowledged") {
            try await client.inspectQueue(queue).messageCount == 0
        }
        return events
    }

    static func bindConsumer(_ queue: String, to exchange: String, client: AMQPClient) async throws {
        _ = try await client.declareQueue(QueueDeclaration(name: queue, durable: true))
        try await client.bind(QueueBinding(queue: queue, exchange: exchange, bindingKey: "order.#"))
    }

    @Test("a consumer that missed a window gets exactly that window's events, in order, with their original ids")
    func missedWindowIsReplayed() async throws {
        try await Scenario.run { scenario in
            let worker = try await scenario.startWorker()
            let client = scenario.client
            let billing = "billing-\(scenario.names.tag)"
            let exchange = scenario.names.eventsExchange
            func complete(_ ids: [String]) async throws {
                for id in ids { try await scenario.placeOrder(id, lines: [("sku-1", 1), ("sku-2", 2)]) }
                for id in ids {
                    try await scenario.waitForStatus(id, .completed, in: worker)
                    try await scenario.waitForEvent("order.completed", of: id)
                }
            }
            func observed(_ ids: [String]) -> [ObservedEvent] {
                scenario.observer.all.filter { ids.contains($0.subject ?? "") }
            }

            // Before the window: billing is up and applies everything.
            try await Self.bindConsumer(billing, to: exchange, client: client)
            let before = (1...4).map { "o-a\($0)" }
            try await complete(before)
            var consumer = DedupingConsumer()
            consumer.take(try await Self.take(observed(before).count, from: billing, client: client))

            // The window: billing's queue is gone, its events go nowhere.
            _ = try await client.deleteQueue(billing)
            let windowStart = Timestamp.now()
            let missed = (1...6).map { "o-b\($0)" }
            try await complete(missed)
            let windowEnd = Timestamp.now()

            // After the window: billing is back and applies what comes.
            try await Self.bindConsumer(billing, to: exchange, client: client)
            let after = (1...3).map { "o-c\($0)" }
            try await complete(after)
            consumer.take(try await Self.take(observed(after).count, from: billing, client: client))
            let original = observed(missed)
            #expect(original.count == 6 * HappyPathTests.milestones.count)
            #expect(Set(consumer.applied).isDisjoint(with: original.compactMap(\.id)), "billing missed them")

            // The replay of the window, to billing alone.
            let inspector = try SagaInspector(dataDirectory: scenario.dataDirectory)
            let selection = EventSelection(from: windowStart, until: windowEnd)
            #expect(
                try await inspector.storedEventCounts(selection).values.reduce(0, +) == original.count,
                "the window holds exactly the missed sagas' events")
            let replay = EventReplay(target: .queue(billing), rate: nil, replayId: "replay-test-1")
            var reported: [Int] = []
            let run = try await replay.run(selection, from: inspector, client: client) { reported.append($0) }
            #expect(run.stopped == nil)
            #expect(run.total == original.count)
            #expect(reported == Array(1...original.count), "progress after each event")
            let replayed = try await Self.take(original.count, from: billing, client: client)

            // Exactly the missed events: their ids, bodies (but for the replay mark) and types; nothing else.
            #expect(replayed.compactMap(\.id).sorted() == original.compactMap(\.id).sorted())
            let originals = Dictionary(uniqueKeysWithValues: original.map { ($0.id ?? "", $0) })
            for event in replayed {
                let first = try #require(originals[event.id ?? ""])
                #expect(event.messageId == first.messageId, "the AMQP message id is the original")
                #expect(event.body?[EventReplay.attribute] == "replay-test-1")
                #expect(event.headers[WireHeader.replay] == "replay-test-1")
                #expect(event.headers[WireHeader.eventType] == first.type)
                #expect(event.persistent && event.contentType == WireContentType.cloudEvents)
                var body = event.body
                if case .object(var fields)? = body {
                    fields[EventReplay.attribute] = nil
                    body = .object(fields)
                }
                #expect(body == first.body, "the event itself is unchanged")
            }
            // In order: each saga's events as first published, and the window oldest first.
            for id in missed {
                #expect(
                    replayed.filter { $0.subject == id }.compactMap(\.id)
                        == original.filter { $0.subject == id }.compactMap(\.id), "the events of \(id) in order")
            }
            let times = replayed.compactMap { $0.body?["time"]?.stringValue }
            #expect(times == times.sorted(), "oldest first")

            consumer.take(replayed)
            let caughtUp = consumer.applied
            #expect(Set(caughtUp) == Set((observed(before) + original + observed(after)).compactMap(\.id)))

            // A replay of the replay: the same copies again, which a consumer that dedupes by id ignores.
            let again = try await EventReplay(target: .queue(billing), rate: 2_000, replayId: "replay-test-2").run(
                selection, from: inspector, client: client)
            #expect(again.total == original.count)
            let duplicates = try await Self.take(original.count, from: billing, client: client)
            #expect(duplicates.compactMap(\.id) == replayed.compactMap(\.id), "the same events in the same order")
            consumer.take(duplicates)
            #expect(consumer.applied == caughtUp, "nothing new for a consumer that dedupes by id")

            // One saga's events, through the command line: a dry run counts, a replay to the queue sends them.
            let dry = try await OperatorRepairTests.waybill(
                ["events", "replay", "--data-dir", scenario.dataDirectory, "--saga", "o-b2", "--dry-run"], in: scenario)
            #expect(dry.status == 0, "\(dry.output)")
            #expect(dry.output.contains("would replay \(HappyPathTests.milestones.count) events"), "\(dry.output)")
            let sent = try await OperatorRepairTests.waybill(
                [
                    "events", "replay", "--data-dir", scenario.dataDirectory, "--saga", "o-b2", "--to-queue", billing,
                    "--json",
                ], in: scenario)
            #expect(sent.status == 0, "\(sent.output)")
            let one = try await Self.take(HappyPathTests.milestones.count, from: billing, client: client)
            #expect(one.compactMap(\.type) == HappyPathTests.milestones)
            #expect(one.compactMap(\.id) == original.filter { $0.subject == "o-b2" }.compactMap(\.id))

            // To the events exchange, a replay asks for --yes first.
            let unconfirmed = try await OperatorRepairTests.waybill(
                ["events", "replay", "--data-dir", scenario.dataDirectory, "--since", "1h"], in: scenario)
            #expect(unconfirmed.status == 2, "\(unconfirmed.output)")
            #expect(unconfirmed.output.contains("then add --yes"), "\(unconfirmed.output)")
            _ = try await client.deleteQueue(billing)
        }
    }
}
