import Testing

@testable import AMQPTransport

/// Consumer channels and generations, as the connection thread keeps them across reconnects.
struct ConsumerRegistryTests {
    @Test func consumersGetTheirOwnChannelsAndANewGenerationPerSubscription() {
        var registry = ConsumerRegistry()
        #expect(registry.add(request(7)) == 3)
        #expect(registry.add(request(8)) == 4)
        registry.subscribed(7)
        registry.subscribed(8)
        let first = DeliveryTag(value: 1, generation: 1, channel: 3)
        #expect(registry.isCurrent(first))
        #expect(registry.consumer(onChannel: 4)?.id == 8)

        // The broker closed consumer 7's channel; it is subscribed again on a new incarnation.
        registry.unsubscribed(7)
        #expect(!registry.isCurrent(first))
        registry.subscribed(7)
        #expect(!registry.isCurrent(first))
        #expect(registry.isCurrent(DeliveryTag(value: 1, generation: 3, channel: 3)))
        #expect(!registry.isCurrent(DeliveryTag(value: 1, generation: 3, channel: 4)))
    }

    @Test func afterAReconnectChannelsAreHandedOutAgainAndOldTagsAreStale() {
        var registry = ConsumerRegistry()
        for id in [1, 2, 3] {
            _ = registry.add(request(id))
            registry.subscribed(id)
        }
        #expect(registry.remove(1)?.channel == 3)
        #expect(registry.consumer(onChannel: 3) == nil)
        let beforeLoss = DeliveryTag(value: 5, generation: 2, channel: 4)
        #expect(registry.isCurrent(beforeLoss))

        registry.unsubscribeAll()
        #expect(!registry.isCurrent(beforeLoss))
        registry.releaseChannels()
        #expect(registry.ids == [2, 3])
        #expect(registry.assignChannel(to: 2) == 3)
        #expect(registry.assignChannel(to: 3) == 4)
        registry.subscribed(2)
        registry.subscribed(3)
        #expect(registry.consumer(onChannel: 3)?.id == 2)
        #expect(!registry.isCurrent(beforeLoss))
        #expect(registry.isCurrent(DeliveryTag(value: 1, generation: 5, channel: 4)))
    }

    @Test func whenEveryChannelIsTakenAFreedOneIsReused() {
        var registry = ConsumerRegistry()
        for id in 0..<ConsumerRegistry.channels.count { #expect(registry.add(request(id)) != nil) }
        #expect(registry.add(request(-1)) == nil)
        #expect(registry.remove(10)?.channel == 13)
        #expect(registry.add(request(-2)) == 13)
    }

    private func request(_ id: Int) -> ConsumerRequest {
        ConsumerRequest(
            id: id, queue: "q\(id)", prefetch: 10, exclusive: false, arguments: [:], consumerTag: "tag-\(id)",
            deliveries: .stream(AsyncThrowingStream<InboundDelivery, any Error>.makeStream().continuation))
    }
}
