import AMQPTransport
import Foundation
import SagaEngine
import SagaStore
import Testing
import WaybillDefinition
import WaybillTestSupport
import WaybillWire

@testable import WaybillWorker

/// At-least-once on the wire, exactly-once in intent: duplicates and late messages change nothing.
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
struct RedeliveryTests {
    static let forward = [
        "erp.order.accept", "inventory.reserve", "wms.w1.release", "tms.shipment.create", "billing.invoice.create",
    ]

    /// Every effect the participant applied was applied once, and no step was decided twice: each idempotency key
    /// came with one message id per attempt.
    static func expectEffectsOnce(_ participant: Participant, saga sagaId: String) {
        let snapshot = participant.snapshot
        let keys = snapshot.applied.filter { $0.hasPrefix("\(sagaId)/") }
        #expect(keys.count == Set(keys).count, "an effect was applied twice: \(keys)")
        let commands = snapshot.received.filter { $0.sagaId == sagaId }
        for (key, sent) in Dictionary(grouping: commands, by: \.idempotencyKey) {
            let attempts = Set(sent.map(\.attempt))
            #expect(
                Set(sent.compactMap(\.messageId)).count == attempts.count, "\(key) was sent as \(sent.count) commands")
        }
    }

    @Test("a duplicate start is absorbed: one saga, one set of commands")
    func duplicateStart() async throws {
        try await Scenario.run { scenario in
            let worker = try await scenario.startWorker()
            let body = Data(JSONText.encode(OrderJSON.order("o-d", lines: [("A", 1)])).utf8)
            try await scenario.publishStarts([body, body])
            try await scenario.waitForStatus("o-d", .completed, in: worker)
            try await scenario.waitForEvent("order.completed", of: "o-d")
            // The same order again, after it finished.
            try await scenario.publishStarts([body])
            try await eventually("the third start to be journaled") {
                try worker.store.journal(of: scenario.key("o-d")).count { $0.entry.kind == .ignored } == 2
            }
            let journal = try worker.store.journal(of: scenario.key("o-d"))
            #expect(journal.count { $0.entry.kind == .start } == 1)
            #expect(
                journal.filter { $0.entry.kind == .ignored }.allSatisfy { $0.entry.detail.contains("duplicate start") })
            #expect(scenario.participant.received(saga: "o-d").map(\.routingKey) == Self.forward)
            Self.expectEffectsOnce(scenario.participant, saga: "o-d")
            #expect(scenario.observer.types(of: "o-d") == HappyPathTests.milestones)
            #expect(try worker.store.saga(scenario.key("o-d"))?.instance.status == .completed)
        }
    }

    @Test("a participant that replies twice moves the saga once")
    func duplicateReply() async throws {
        try await Scenario.run(script: { _ in .twice(.standard) }) { scenario in
            let worker = try await scenario.startWorker()
            try await scenario.placeOrder("o-2", lines: [("A", 1)])
            try await scenario.waitForStatus("o-2", .completed, in: worker)
            try await scenario.waitForEvent("order.completed", of: "o-2")
            #expect(scenario.participant.received(saga: "o-2").map(\.routingKey) == Self.forward)
            // The second reply to the last command may still be on its way.
            try await eventually("every duplicate reply journaled") {
                try worker.store.journal(of: scenario.key("o-2")).count { $0.entry.kind == .ignored }
                    == Self.forward.count
            }
            let ignored = try worker.store.journal(of: scenario.key("o-2")).filter { $0.entry.kind == .ignored }
            #expect(ignored.allSatisfy { $0.entry.detail.contains("late or duplicate reply") })
            Self.expectEffectsOnce(scenario.participant, saga: "o-2")
            #expect(scenario.observer.types(of: "o-2") == HappyPathTests.milestones)
        }
    }

    @Test("a reply after the timeout is ignored; the retry's reply completes the saga")
    func lateReply() async throws {
        let edits = WorkflowEdits(stepKeys: [
            "accept": ["timeout: 3s", "retry: { max_attempts: 5, initial_interval: 50ms }"]
        ])
        let script: Participant.Script = { command in
            command.routingKey == "erp.order.accept" && command.attempt == 1 ? .silence : nil
        }
        try await Scenario.run(edits: edits, script: script) { scenario in
            let worker = try await scenario.startWorker()
            try await scenario.placeOrder("o-l", lines: [("A", 1)])
            try await scenario.participant.waitUntil("the second accept attempt") { received in
                received.contains { $0.routingKey == "erp.order.accept" && $0.attempt == 2 }
            }
            let accepts = scenario.participant.received(saga: "o-l").filter { $0.routingKey == "erp.order.accept" }
            let first = try #require(accepts.first { $0.attempt == 1 })
            try await scenario.participant.reply(to: first, .standard)
            try await scenario.waitForStatus("o-l", .completed, in: worker)
            try await scenario.waitForEvent("order.completed", of: "o-l")
            let lateId = try #require(first.messageId)
            try await eventually("the late reply journaled") {
                try worker.store.journal(of: scenario.key("o-l")).contains {
                    $0.entry.kind == .ignored && $0.entry.detail.contains(lateId)
                }
            }

            let commands = scenario.participant.received(saga: "o-l")
            #expect(commands.map(\.routingKey) == ["erp.order.accept"] + Self.forward)
            #expect(commands[0].idempotencyKey == commands[1].idempotencyKey)
            #expect(commands[0].messageId != commands[1].messageId)
            #expect(commands.map(\.attempt) == [1, 2, 1, 1, 1, 1])
            Self.expectEffectsOnce(scenario.participant, saga: "o-l")
            #expect(scenario.observer.types(of: "o-l") == HappyPathTests.milestones)
        }
    }

    @Test("malformed starts are dead-lettered with a reason, and the worker goes on")
    func malformedStartsAreDeadLettered() async throws {
        try await Scenario.run { scenario in
            let worker = try await scenario.startWorker()
            try await scenario.publishStarts([Data("this is not JSON".utf8), Data(#"{"lines": []}"#.utf8)])
            try await scenario.placeOrder("o-ok", lines: [("A", 1)])

            let dead = try await scenario.deadLetters(2)
            let byBody = Dictionary(uniqueKeysWithValues: dead.map { (String(decoding: $0.body, as: UTF8.self), $0) })
            let notJSON = try #require(byBody["this is not JSON"])
            let noId = try #require(byBody[#"{"lines": []}"#])
            let notJSONReason = try #require(notJSON.properties.headers[WireHeader.error]?.stringValue)
            let noIdReason = try #require(noId.properties.headers[WireHeader.error]?.stringValue)
            #expect(notJSONReason.hasPrefix("wire.not_json: "), "\(notJSONReason)")
            #expect(notJSONReason.contains("not JSON"), "\(notJSONReason)")
            #expect(noIdReason.hasPrefix("wire.no_saga_id: "), "\(noIdReason)")
            #expect(noIdReason.contains("no saga id"), "\(noIdReason)")
            #expect(notJSON.routingKey == "order.placed")
            guard case .timestamp(let stamped)? = notJSON.properties.headers[WireHeader.deadLetteredAt] else {
                Issue.record("no \(WireHeader.deadLetteredAt) timestamp: \(notJSON.properties.headers)")
                return
            }
            #expect(abs(stamped.timeIntervalSinceNow) < 120, "stamped when it was dead-lettered")

            try await scenario.waitForStatus("o-ok", .completed, in: worker)
            #expect(try await scenario.client.inspectQueue(scenario.names.deadLetterQueue).messageCount == 0)
        }
    }
}

extension RedeliveryTests {
    @Test(
        "a start whose saga id is too long for AMQP message ids is dead-lettered with a reason, and the worker goes on")
    func overlongSagaId() async throws {
        try await Scenario.run { scenario in
            let worker = try await scenario.startWorker()
            let long = String(repeating: "x", count: 300)
            try await scenario.placeOrder(long, lines: [("A", 1)])
            try await scenario.placeOrder("o-after", lines: [("A", 1)])
            try await scenario.waitForStatus("o-after", .completed, in: worker)
            let dead = try #require(try await scenario.deadLetters(1).first)
            let reason = try #require(
                dead.properties.headers[WireHeader.error]?.stringValue, "headers: \(dead.properties.headers)")
            #expect(reason.hasPrefix("wire.saga_id_too_long: "), "\(reason)")
            #expect(reason.contains("255"), "\(reason)")
        }
    }
}

extension RedeliveryTests {
    @Test("different orders published under the same message_id are different orders")
    func startsReusingMessageIds() async throws {
        try await Scenario.run { scenario in
            let worker = try await scenario.startWorker()
            // A publisher that numbers its messages from 1 again after a restart, or always sends the same id.
            try await scenario.placeOrder("o-a", lines: [("A", 1)], messageId: "1")
            try await scenario.waitForStatus("o-a", .completed, in: worker)
            try await scenario.placeOrder("o-b", lines: [("A", 1)], messageId: "1")
            try await scenario.waitForStatus("o-b", .completed, in: worker)
        }
    }

    @Test("replies from a participant that reuses one message_id for all its replies are all applied")
    func repliesReusingMessageIds() async throws {
        try await Scenario.run { scenario in
            scenario.participant.replyMessageIds.withLock { $0.make = { _ in "reply" } }
            let worker = try await scenario.startWorker()
            try await scenario.placeOrder("o-r", lines: [("A", 1)])
            try await scenario.waitForStatus("o-r", .completed, in: worker, seconds: 20)
            #expect(scenario.participant.received(saga: "o-r").map(\.routingKey) == Self.forward)
        }
    }
}

extension RedeliveryTests {
    @Test(
        "a readable reply for a saga its partition does not have, and an unusable repair without reply_to, are dead-lettered"
    )
    func strayRepliesAndRepairsAreDeadLettered() async throws {
        try await Scenario.run { scenario in
            let worker = try await scenario.startWorker()
            let ghost = "\(scenario.names.workflow)/o-ghost/m1"
            let queue = scenario.names.partitionQueues[
                PoolDirectory.partition(of: "o-ghost", count: TestNames.partitions)]
            let outcomes = try await scenario.client.publish([
                OutboundMessage(
                    exchange: "", routingKey: queue, body: Data(#"{"status":"ok"}"#.utf8), mandatory: true,
                    persistent: true, contentType: "application/json", correlationID: ghost),
                OutboundMessage(
                    exchange: "", routingKey: queue, body: Data("not a repair".utf8), mandatory: true,
                    properties: MessageProperties(
                        contentType: "application/json", headers: [WireHeader.input: "control"], persistent: true)),
            ])
            #expect(outcomes.allSatisfy { $0.isConfirmed }, "\(outcomes)")
            try await scenario.placeOrder("o-after", lines: [("A", 1)])
            try await scenario.waitForStatus("o-after", .completed, in: worker)

            let dead = try await scenario.deadLetters(2)
            let reasons = dead.compactMap { $0.properties.headers[WireHeader.error]?.stringValue }.sorted()
            #expect(reasons.count == 2)
            #expect(reasons.first?.hasPrefix("wire.bad_control: ") == true, "\(reasons)")
            #expect(reasons.last?.hasPrefix("wire.unknown_correlation_id: ") == true, "\(reasons)")
            #expect(reasons.last?.contains("o-ghost") == true, "\(reasons)")
        }
    }
}
