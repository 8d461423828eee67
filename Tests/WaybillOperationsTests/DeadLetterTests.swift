import AMQPTransport
import Foundation
import Testing
import WaybillDefinition
import WaybillOperations
import WaybillWire

@Suite("Dead letters")
struct DeadLetterTests {
    static let when = Date(timeIntervalSince1970: 1_736_942_100)

    func delivery(headers: AMQPTable, messageId: String?, body: String) -> InboundDelivery {
        InboundDelivery(
            deliveryTag: DeliveryTag(value: 1, generation: 1, channel: 1), consumerTag: "c", redelivered: false,
            exchange: "waybill.dead-letter", routingKey: "order.placed",
            properties: MessageProperties(
                contentType: "application/json", headers: headers, persistent: true, messageID: messageId,
                timestamp: Self.when),
            body: Data(body.utf8))
    }

    @Test("a message the worker refused carries its reason and origin, and replays to that origin")
    func workerRefusal() throws {
        let letter = DeadLetter(
            delivery(
                headers: [
                    "x-waybill-error":
                        "wire.no_saga_id: start message has an empty saga id; publish the order with its id",
                    "x-waybill-source": "starts/order-fulfillment", "x-waybill-exchange": "orders",
                    "x-waybill-routing-key": "order.placed", "tenant": "eu",
                ], messageId: "start-42", body: #"{"order":42}"#),
            position: 1)
        #expect(letter.id == "start-42")
        #expect(letter.reason == "wire.no_saga_id: start message has an empty saga id; publish the order with its id")
        #expect(letter.source == "starts/order-fulfillment")
        #expect(letter.exchange == "orders" && letter.routingKey == "order.placed")
        let replay = try #require(letter.replay(by: "alice", reason: "producer fixed", at: Self.when))
        #expect(replay.exchange == "orders" && replay.routingKey == "order.placed" && replay.mandatory)
        #expect(replay.properties.persistent && replay.properties.messageID == "start-42")
        #expect(
            replay.properties.headers == [
                "tenant": "eu", "x-waybill-replayed-by": "alice", "x-waybill-replay-reason": "producer fixed",
                "x-waybill-replayed-at": .timestamp(Self.when),
                "x-waybill-replayed-error":
                    "wire.no_saga_id: start message has an empty saga id; publish the order with its id",
            ])
        #expect(
            DeadLetterView.listText([letter], queue: "waybill.dead-letter", now: Self.when.addingTimeInterval(300))
                == """
                #  ID        WHEN       SOURCE                    ORIGIN               BYTES  REASON
                1  start-42  11:55:00Z  starts/order-fulfillment  orders order.placed     12  wire.no_saga_id: start message has an empty saga id; publish the order with its id
                1 message shown from the head of waybill.dead-letter; they stay in the queue.

                """)
        #expect(
            DeadLetterView.showText(letter, now: Self.when) == """
                id              start-42
                position        1
                reason          wire.no_saga_id: start message has an empty saga id; publish the order with its id
                source          starts/order-fulfillment
                origin          orders order.placed
                when            11:55:00Z
                content type    application/json
                correlation id  -
                reply to        -

                Headers
                  tenant: eu
                  x-waybill-error: wire.no_saga_id: start message has an empty saga id; publish the order with its id
                  x-waybill-exchange: orders
                  x-waybill-routing-key: order.placed
                  x-waybill-source: starts/order-fulfillment

                Body (12 bytes)
                {
                  "order": 42
                }

                Replay it: waybill dlq replay start-42 --reason '<why>' [--dry-run]

                """)
    }

    @Test("the time a worker stamped on a dead letter wins over the broker's and the message's own")
    func workerStampedTime() throws {
        let stamped = Self.when.addingTimeInterval(60)
        let death: AMQPFieldValue = [
            "reason": "rejected", "queue": "q", "exchange": "orders", "routing-keys": ["order.placed"],
            "time": .timestamp(Self.when),
        ]
        let letter = DeadLetter(
            delivery(
                headers: [WireHeader.deadLetteredAt: .timestamp(stamped), "x-death": [death]], messageId: "m",
                body: "{}"),
            position: 1)
        #expect(letter.at == stamped)
        let replay = try #require(letter.replay(by: "bob", reason: "r", at: Self.when))
        #expect(replay.properties.headers[WireHeader.deadLetteredAt] == nil, "a replay strips the worker's headers")
    }

    @Test("a message the broker dead-lettered is read from x-death, and gets a stable handle without a message id")
    func brokerDeath() throws {
        let death: AMQPFieldValue = [
            "reason": "delivery_limit", "queue": "waybill.replies.w1", "exchange": "", "count": 5,
            "routing-keys": ["waybill.replies.w1"], "time": .timestamp(Self.when),
        ]
        let letter = DeadLetter(delivery(headers: ["x-death": [death]], messageId: nil, body: "garbage"), position: 3)
        #expect(letter.reason == "broker dead-lettered it: delivery_limit after 5 deaths")
        #expect(letter.source == "waybill.replies.w1")
        #expect(letter.exchange == "" && letter.routingKey == "waybill.replies.w1")
        #expect(letter.at == Self.when)
        #expect(letter.id.hasPrefix("sha:") && letter.id.count == 16)
        let again = DeadLetter(delivery(headers: ["x-death": [death]], messageId: nil, body: "garbage"), position: 1)
        #expect(again.id == letter.id)
        let replay = try #require(letter.replay(by: "bob", reason: "r", at: Self.when))
        #expect(replay.properties.headers["x-death"] == nil)
        #expect(DeadLetterView.origin(letter) == "(default) waybill.replies.w1")
    }

    @Test("a message without an origin cannot be replayed")
    func unknownOrigin() {
        let letter = DeadLetter(delivery(headers: [:], messageId: "m", body: "{}"), position: 1)
        #expect(letter.reason == "no reason recorded")
        #expect(letter.replay(by: "a", reason: "r", at: Self.when) == nil)
    }
}
