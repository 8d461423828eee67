/// The client's live consumers, the channel each one uses and the generation of its current subscription.
///
/// Every consumer has a channel of its own (3 to 2047), so a `multiple` ack covers only its deliveries. Each time
/// a consumer is subscribed on a freshly opened channel it gets a new generation; a delivery tag is valid only
/// for the generation that delivered it (see ``DeliveryTag``). The registry outlives connections: after a
/// reconnect the driver hands out channels again and subscribes every consumer anew.
struct ConsumerRegistry {
    /// The channel numbers consumers may use.
    static let channels: ClosedRange<UInt16> = 3...2047

    /// One consumer as the registry keeps it.
    struct Consumer {
        var request: ConsumerRequest
        var channel: UInt16
        /// The generation of the current channel incarnation; `nil` while not subscribed.
        var generation: UInt64?

        var id: Int { request.id }
    }

    private var consumers: [Int: Consumer] = [:]
    private var idByChannel: [UInt16: Int] = [:]
    private var nextChannel = Self.channels.lowerBound
    private var nextGeneration: UInt64 = 1

    /// Every consumer's id, oldest first.
    var ids: [Int] { consumers.keys.sorted() }

    /// The consumer with this id, if it is still registered.
    subscript(id: Int) -> Consumer? { consumers[id] }

    /// The consumer that currently owns `channel`.
    func consumer(onChannel channel: UInt16) -> Consumer? {
        idByChannel[channel].flatMap { consumers[$0] }
    }

    /// Whether `tag` was delivered on the current subscription of its channel's consumer, so settling it reaches
    /// the delivery it names. Tags of earlier generations are stale: the broker requeued those messages.
    func isCurrent(_ tag: DeliveryTag) -> Bool {
        guard let generation = consumer(onChannel: tag.channel)?.generation else { return false }
        return generation == tag.generation
    }

    /// Registers a consumer on a free channel and returns the channel; `nil` (nothing registered) when every
    /// consumer channel is taken. The consumer is not subscribed until ``subscribed(_:)``.
    mutating func add(_ request: ConsumerRequest) -> UInt16? {
        guard let channel = allocateChannel() else { return nil }
        consumers[request.id] = Consumer(request: request, channel: channel)
        idByChannel[channel] = request.id
        return channel
    }

    /// Forgets a consumer and frees its channel. Returns it, so the caller can end its deliveries.
    mutating func remove(_ id: Int) -> Consumer? {
        guard let consumer = consumers.removeValue(forKey: id) else { return nil }
        if idByChannel[consumer.channel] == id { idByChannel[consumer.channel] = nil }
        return consumer
    }

    /// Records that the consumer was subscribed on a newly opened incarnation of its channel: it gets a new
    /// generation.
    mutating func subscribed(_ id: Int) {
        guard consumers[id] != nil else { return }
        consumers[id]?.generation = nextGeneration
        nextGeneration += 1
    }

    /// Records that the consumer's channel closed; its deliveries' tags are stale from now on.
    mutating func unsubscribed(_ id: Int) {
        consumers[id]?.generation = nil
    }

    /// Records that the connection is gone: no consumer is subscribed until the next connection.
    mutating func unsubscribeAll() {
        for id in consumers.keys { consumers[id]?.generation = nil }
    }

    /// On a new connection, before ``assignChannel(to:)`` for each consumer: every channel is free again.
    mutating func releaseChannels() {
        idByChannel.removeAll()
        nextChannel = Self.channels.lowerBound
    }

    /// Gives an existing consumer a free channel (after ``releaseChannels()``) and returns it; `nil` when none
    /// is free.
    mutating func assignChannel(to id: Int) -> UInt16? {
        guard consumers[id] != nil, let channel = allocateChannel() else { return nil }
        consumers[id]?.channel = channel
        idByChannel[channel] = id
        return channel
    }

    /// The next never-used channel, or else the lowest free one.
    private mutating func allocateChannel() -> UInt16? {
        if nextChannel <= Self.channels.upperBound {
            defer { nextChannel += 1 }
            return nextChannel
        }
        return Self.channels.first { idByChannel[$0] == nil }
    }
}
