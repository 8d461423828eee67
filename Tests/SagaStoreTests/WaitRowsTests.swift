import Testing
import WaybillDefinition
import WaybillTestSupport

@testable import SagaEngine
@testable import SagaStore

/// Waits for a message in the store: written and forgotten by commits, found by a message's exchange, routing key and
/// key value.
@Suite("Waits for a message in the store")
struct WaitRowsTests {
    static func wait(_ id: String, match: String, routingKey: String = "payment.*.confirmed") -> AwaitedMessage {
        AwaitedMessage(id: id, exchange: "payments", routingKey: routingKey, key: "${message.orderId}", match: match)
    }

    @Test("a message finds the sagas whose wait it matches, by binding key and key value, until a commit forgets them")
    func findAndForget() async throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        var first = Fixtures.change("ord-1")
        first.awaitMessages = [Self.wait("t-1", match: "ord-1")]
        var second = Fixtures.change("ord-2")
        second.awaitMessages = [Self.wait("t-2", match: "ord-2")]
        var third = Fixtures.change("ord-3")
        third.awaitMessages = [
            Self.wait("t-3", match: "ord-1", routingKey: "payment.card.confirmed"),
            AwaitedMessage(id: "t-4", exchange: "payments", routingKey: "#", key: "${message.id}", match: "7"),
        ]
        try await store.commit([first, second, third])
        #expect(try store.awaitedMessages(of: Fixtures.key("ord-1")) == [Self.wait("t-1", match: "ord-1")])

        func found(_ routingKey: String, _ message: JSONValue) async throws -> [String] {
            try await store.waiters(exchange: "payments", routingKey: routingKey, message: message)
                .map { "\($0.key.id)/\($0.waitId)" }.sorted()
        }
        #expect(try await found("payment.card.confirmed", ["orderId": "ord-1"]) == ["ord-1/t-1", "ord-3/t-3"])
        #expect(try await found("payment.sepa.confirmed", ["orderId": "ord-1"]) == ["ord-1/t-1"])
        #expect(try await found("payment.sepa.refused", ["orderId": "ord-1"]).isEmpty)
        #expect(try await found("payment.card.confirmed", ["orderId": "ord-9", "id": 7]) == ["ord-3/t-4"])
        let array = try await found("anything", ["orderId": ["ord-1"]])
        #expect(array.isEmpty, "an array key correlates with nothing")
        let elsewhere = try await store.waiters(
            exchange: "other", routingKey: "payment.card.confirmed", message: ["orderId": "ord-1"])
        #expect(elsewhere.isEmpty)

        var done = Fixtures.change("ord-1")
        done.cancelAwaitIds = ["t-1"]
        try await store.commit([done])
        #expect(try await found("payment.card.confirmed", ["orderId": "ord-1"]) == ["ord-3/t-3"])
        #expect(try store.counts()["waits"] == 3)
    }
}
