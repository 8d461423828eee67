import Testing

@testable import AMQPTransport

/// What the client declares again after a reconnect, and in which order.
struct DeclaredTopologyTests {
    let orders = ExchangeDeclaration(name: "orders", kind: .topic)
    let commands = ExchangeDeclaration(name: "commands", kind: .direct)
    let placed = QueueDeclaration(name: "orders.placed")
    let replies = QueueDeclaration(name: "replies", durable: false, exclusive: true)

    @Test func redeclaringAnObjectReplacesItsStepWhereItStands() {
        var topology = DeclaredTopology()
        let binding = QueueBinding(queue: placed.name, exchange: orders.name, bindingKey: "order.placed")
        topology.remember(.exchange(orders))
        topology.remember(.queue(placed))
        topology.remember(.binding(binding))
        topology.remember(.binding(binding))
        let wider = ExchangeDeclaration(name: "orders", kind: .topic, durable: false)
        topology.remember(.exchange(wider))
        topology.remember(.queue(replies))

        #expect(topology.steps == [.exchange(wider), .queue(placed), .binding(binding), .queue(replies)])
    }

    @Test func deletingAQueueOrAnExchangeForgetsItsBindings() {
        var topology = DeclaredTopology()
        let placedToOrders = QueueBinding(queue: placed.name, exchange: orders.name, bindingKey: "order.*")
        let repliesToOrders = QueueBinding(queue: replies.name, exchange: orders.name, bindingKey: "#")
        let repliesToCommands = QueueBinding(queue: replies.name, exchange: commands.name, bindingKey: "r")
        for step: TopologyStep in [
            .exchange(orders), .exchange(commands), .queue(placed), .queue(replies), .binding(placedToOrders),
            .binding(repliesToOrders), .binding(repliesToCommands),
        ] {
            topology.remember(step)
        }

        topology.forgetQueue(replies.name)
        #expect(topology.steps == [.exchange(orders), .exchange(commands), .queue(placed), .binding(placedToOrders)])
        topology.forgetExchange(orders.name)
        #expect(topology.steps == [.exchange(commands), .queue(placed)])
        topology.forgetQueue("never-declared")
        #expect(topology.steps == [.exchange(commands), .queue(placed)])
    }
}
