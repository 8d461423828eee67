import AMQPTransport
import Foundation
import Testing
import WaybillOperations
import WaybillTestSupport

/// `waybill dlq edit` and `replay` against the real broker: a corrected copy goes where the message first went, the
/// original is kept, and nothing leaves the dead-letter queue unless every publish was confirmed.
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
struct DeadLetterEditTests {
    /// A dead-letter queue holding one refused start, and the queue it first went to (by the default exchange).
    struct Queues {
        let client: AMQPClient
        let deadLetters: DeadLetterQueue
        let target: String

        /// Runs `body` on fresh queues and deletes them afterwards, whether it passed or threw.
        static func with(_ body: (Queues) async throws -> Void) async throws {
            let queues = try await make()
            do {
                try await body(queues)
            } catch {
                await queues.remove()
                throw error
            }
            await queues.remove()
        }

        static func make() async throws -> Queues {
            let tag = TestBroker.unique("dlq-edit")
            let client = try await TestBroker.connectedClient(tag)
            let queues = Queues(
                client: client, deadLetters: DeadLetterQueue(queue: tag, idle: .milliseconds(300)),
                target: tag + ".starts")
            for queue in [queues.deadLetters.queue, queues.target] {
                _ = try await client.declareQueue(QueueDeclaration(name: queue, arguments: ["x-queue-type": "quorum"]))
            }
            return queues
        }

        func refuse(_ body: String, messageId: String, origin: String? = nil) async throws {
            let outcome = try await client.publish(
                OutboundMessage(
                    exchange: "", routingKey: deadLetters.queue, body: Data(body.utf8), mandatory: true,
                    properties: MessageProperties(
                        contentType: "application/json",
                        headers: [
                            "x-waybill-error": "wire.not_json: start message is not JSON",
                            "x-waybill-source": "starts/order-fulfillment", "x-waybill-exchange": "",
                            "x-waybill-routing-key": .string(origin ?? target),
                        ], persistent: true, messageID: messageId)))
            #expect(outcome.isConfirmed)
        }

        func count(_ queue: String) async throws -> UInt32 { try await client.inspectQueue(queue).messageCount }

        /// Waits until the one dead letter is back in its queue: a browse hands the messages back when it cancels
        /// its consumer, and the queue counts them again shortly after.
        func settled() async throws {
            try await eventually("the browsed message back in the dead-letter queue") {
                try await count(deadLetters.queue) == 1
            }
        }

        func bodies(_ queue: String) async throws -> [(String, MessageProperties)] {
            try await DeadLetterQueue(queue: queue, idle: .milliseconds(300)).browse(client, limit: 10).map {
                (String(decoding: $0.body, as: UTF8.self), $0.properties)
            }
        }

        func remove() async {
            for queue in [deadLetters.queue, target, deadLetters.originalsQueue] {
                _ = try? await client.deleteQueue(queue)
            }
            await client.close()
        }
    }

    @Test("edit sends the corrected body where the message first went and keeps the original, untouched")
    func editKeepsTheOriginal() async throws {
        try await Queues.with { queues in
            try await queues.refuse(#"{"orderId": 12345,"#, messageId: "start-7")

            let dry = try await queues.deadLetters.edit(
                queues.client, id: "start-7", body: Array(#"{"orderId":"12345"}"#.utf8), dryRun: true, by: "alice",
                reason: "orderId must be a string")
            #expect(dry?.1 == .wouldReplay)
            try await queues.settled()
            #expect(try await queues.count(queues.target) == 0)

            let missing = try await queues.deadLetters.edit(
                queues.client, id: "start-8", body: Array("{}".utf8), dryRun: false, by: "alice", reason: "x")
            #expect(missing == nil)
            try await queues.settled()
            let refused = try await queues.deadLetters.edit(
                queues.client, id: "start-7", body: Array("{}".utf8), dryRun: false, by: "alice", reason: "x"
            ) { _ in "not today" }
            #expect(refused?.1 == .kept("not today"))
            #expect(try await queues.count(queues.deadLetters.originalsQueue) == 0, "a refused edit keeps nothing")
            try await queues.settled()

            let edited = try await queues.deadLetters.edit(
                queues.client, id: "start-7", body: Array(#"{"orderId":"12345"}"#.utf8), dryRun: false, by: "alice",
                reason: "orderId must be a string")
            #expect(edited?.1 == .replayed)
            try await eventually("the dead-letter copy to be acknowledged") {
                try await queues.count(queues.deadLetters.queue) == 0
            }
            let sent = try await queues.bodies(queues.target)
            #expect(sent.map(\.0) == [#"{"orderId":"12345"}"#])
            #expect(sent.first?.1.messageID == "start-7")
            #expect(sent.first?.1.headers["x-waybill-edited-by"]?.stringValue == "alice")
            #expect(sent.first?.1.headers["x-waybill-error"] == nil, "the replay loses the dead-letter headers")
            let kept = try await queues.bodies(queues.deadLetters.originalsQueue)
            #expect(kept.map(\.0) == [#"{"orderId": 12345,"#])
            #expect(kept.first?.1.headers["x-waybill-error"]?.stringValue == "wire.not_json: start message is not JSON")
            #expect(kept.first?.1.headers["x-waybill-edit-reason"]?.stringValue == "orderId must be a string")
        }
    }

    @Test("an edit the broker cannot route leaves the message in the dead-letter queue")
    func unroutableEditKeepsTheMessage() async throws {
        try await Queues.with { queues in
            try await queues.refuse("broken", messageId: "start-9", origin: queues.target + ".gone")
            let result = try await queues.deadLetters.edit(
                queues.client, id: "start-9", body: Array("{}".utf8), dryRun: false, by: "bob", reason: "fixed")
            guard case .kept(let why)? = result?.1 else {
                Issue.record("expected the edit to be kept back: \(String(describing: result))")
                return
            }
            #expect(why.contains("unroutable"), "\(why)")
            try await eventually("the message back in the dead-letter queue") {
                try await queues.count(queues.deadLetters.queue) == 1
            }
            #expect(try await queues.bodies(queues.deadLetters.queue).map(\.0) == ["broken"])
        }
    }
}
