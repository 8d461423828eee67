import AMQPTransport
import Foundation
import Synchronization
import Testing
import WaybillTestSupport

/// The transport against a real RabbitMQ (never a mock). Serialized: some tests force connections closed.
@Suite(.serialized, .enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
struct AMQPClientTests {
    @Test func publishBatchWithConfirmsThenConsumeAndAckMultiple() async throws {
        let client = try await TestBroker.connectedClient(TestBroker.unique("batch"))
        let exchange = TestBroker.unique("orders")
        let queue = TestBroker.unique("orders.q")
        try await client.declareExchange(ExchangeDeclaration(name: exchange, kind: .topic, durable: false))
        let declared = try await client.declareQueue(
            QueueDeclaration(name: queue, durable: true, arguments: ["x-queue-type": "quorum", "x-delivery-limit": 5]))
        #expect(declared == QueueInfo(name: queue, messageCount: 0, consumerCount: 0))
        try await client.bind(QueueBinding(queue: queue, exchange: exchange, bindingKey: "order.*"))

        let batch = (0..<20).map { index in
            OutboundMessage(
                exchange: exchange, routingKey: "order.placed", body: Data("order-\(index)"), mandatory: true,
                persistent: true, contentType: "application/json", messageID: "m-\(index)")
        }
        let outcomes = try await client.publish(batch)
        #expect(outcomes == Array(repeating: .confirmed, count: 20))
        #expect(try await client.inspectQueue(queue).messageCount == 20)

        let consumer = try await client.consume(queue: queue, prefetch: 50)
        let deliveries = try await take(20, from: consumer)
        #expect(deliveries.map { String(decoding: $0.body, as: UTF8.self) } == (0..<20).map { "order-\($0)" })
        #expect(deliveries.allSatisfy { !$0.redelivered && $0.routingKey == "order.placed" && $0.exchange == exchange })
        client.ack(try #require(deliveries.last).deliveryTag, multiple: true)
        // Cancelling closes the consumer's channel: anything not acknowledged would go back to the queue.
        await client.cancel(consumer)
        #expect(try await client.inspectQueue(queue) == QueueInfo(name: queue, messageCount: 0, consumerCount: 0))

        try await client.deleteQueue(queue)
        try await client.deleteExchange(exchange)
        await client.close()
    }

    @Test func propertiesAndHeadersRoundTrip() async throws {
        let client = try await TestBroker.connectedClient(TestBroker.unique("props"))
        let queue = TestBroker.unique("props.q")
        _ = try await client.declareQueue(QueueDeclaration(name: queue, durable: false, exclusive: true))
        let timestamp = Date(timeIntervalSince1970: 1_767_225_600)
        let headers: AMQPTable = [
            "idempotency-key": "saga-1/reserve", "waybill-attempt": 3, "waybill-retry": false,
            "raw": .bytes(Data([0, 1, 2, 255])), "nested": ["depth": 2, "name": "inner"],
            "list": ["a", 1, true], "sent-at": .timestamp(timestamp), "ratio": 0.25,
        ]
        let message = OutboundMessage(
            exchange: "", routingKey: queue, body: Data(#"{"orderId":"o-1"}"#), mandatory: true, persistent: true,
            contentType: "application/json", messageID: "attempt-7", correlationID: "attempt-7",
            replyTo: "waybill.replies.w1", type: "inventory.reserve", timestamp: timestamp, headers: headers)
        #expect(try await client.publish(message) == .confirmed)

        let consumer = try await client.consume(queue: queue, prefetch: 1)
        let delivery = try #require(try await take(1, from: consumer).first)
        let properties = delivery.properties
        #expect(delivery.body == message.body)
        #expect(delivery.routingKey == queue && delivery.exchange == "")
        #expect(properties.contentType == "application/json")
        #expect(properties.persistent)
        #expect(properties.messageID == "attempt-7")
        #expect(properties.correlationID == "attempt-7")
        #expect(properties.replyTo == "waybill.replies.w1")
        #expect(properties.type == "inventory.reserve")
        #expect(properties.timestamp == timestamp)
        #expect(properties.headers == headers)
        client.ack(delivery.deliveryTag)
        await client.close()
    }

    @Test func bodiesLargerThanAFrameArriveWhole() async throws {
        let client = try await TestBroker.connectedClient(TestBroker.unique("large"))
        let queue = TestBroker.unique("large.q")
        _ = try await client.declareQueue(QueueDeclaration(name: queue, durable: false, exclusive: true))
        let sizes = [0, 1, 131_064, 1_000_003]
        let bodies = sizes.map { size in Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }) }
        let outcomes = try await client.publish(
            bodies.map { OutboundMessage(exchange: "", routingKey: queue, body: $0) })
        #expect(outcomes == Array(repeating: .confirmed, count: sizes.count))
        let consumer = try await client.consume(queue: queue, prefetch: 10)
        let deliveries = try await take(sizes.count, from: consumer)
        #expect(deliveries.map(\.body) == bodies)
        client.ack(try #require(deliveries.last).deliveryTag, multiple: true)
        await client.close()
    }

    @Test func mandatoryPublishToUnroutableKeyComesBackReturned() async throws {
        let client = try await TestBroker.connectedClient(TestBroker.unique("returns"))
        let exchange = TestBroker.unique("commands")
        let queue = TestBroker.unique("commands.q")
        try await client.declareExchange(ExchangeDeclaration(name: exchange, kind: .topic, durable: false))
        _ = try await client.declareQueue(QueueDeclaration(name: queue, durable: false, exclusive: true))
        try await client.bind(QueueBinding(queue: queue, exchange: exchange, bindingKey: "erp.#"))

        let outcomes = try await client.publish([
            OutboundMessage(exchange: exchange, routingKey: "erp.order.accept", body: Data("1"), mandatory: true),
            OutboundMessage(
                exchange: exchange, routingKey: "nobody.listens", body: Data("2"), mandatory: true, messageID: "x-1"),
            OutboundMessage(exchange: exchange, routingKey: "nobody.listens", body: Data("3"), mandatory: true),
            OutboundMessage(exchange: exchange, routingKey: "nobody.listens", body: Data("4"), mandatory: false),
        ])
        #expect(
            outcomes == [
                .confirmed, .returned(replyCode: 312, replyText: "NO_ROUTE"),
                .returned(replyCode: 312, replyText: "NO_ROUTE"), .confirmed,
            ])
        try await client.deleteExchange(exchange)
        await client.close()
    }

    @Test func nackWithRequeueRedeliversWithRedeliveredFlag() async throws {
        let client = try await TestBroker.connectedClient(TestBroker.unique("nack"))
        let queue = TestBroker.unique("nack.q")
        _ = try await client.declareQueue(QueueDeclaration(name: queue, durable: false, exclusive: true))
        #expect(
            try await client.publish(OutboundMessage(exchange: "", routingKey: queue, body: Data("a"))) == .confirmed)
        let consumer = try await client.consume(queue: queue, prefetch: 1)

        let first = try #require(try await take(1, from: consumer).first)
        #expect(!first.redelivered)
        client.nack(first.deliveryTag, requeue: true)
        let second = try #require(try await take(1, from: consumer).first)
        #expect(second.redelivered)
        #expect(second.body == Data("a"))
        #expect(second.generation == first.generation)

        client.reject(second.deliveryTag, requeue: false)
        await client.cancel(consumer)
        #expect(try await client.inspectQueue(queue).messageCount == 0)
        await client.close()
    }

    @Test func prefetchBoundsUnacknowledgedDeliveries() async throws {
        let client = try await TestBroker.connectedClient(TestBroker.unique("prefetch"))
        let queue = TestBroker.unique("prefetch.q")
        _ = try await client.declareQueue(QueueDeclaration(name: queue, durable: false, exclusive: true))
        let batch = (0..<10).map { OutboundMessage(exchange: "", routingKey: queue, body: Data("\($0)")) }
        #expect(try await client.publish(batch).allSatisfy(\.isConfirmed))

        let consumer = try await client.consume(queue: queue, prefetch: 3)
        let firstThree = try await take(3, from: consumer)
        // The broker holds back the rest until something is acknowledged.
        #expect(try await client.inspectQueue(queue) == QueueInfo(name: queue, messageCount: 7, consumerCount: 1))
        client.ack(firstThree[0].deliveryTag)
        let fourth = try #require(try await take(1, from: consumer).first)
        #expect(fourth.body == Data("3"))
        #expect(try await client.inspectQueue(queue).messageCount == 6)
        await client.close()
    }

    @Test func channelErrorsAreReportedAndTheClientRecovers() async throws {
        let client = try await TestBroker.connectedClient(TestBroker.unique("channel-error"))
        let queue = TestBroker.unique("recover.q")
        _ = try await client.declareQueue(QueueDeclaration(name: queue, durable: false, exclusive: true))

        let missing = TestBroker.unique("missing-exchange")
        let outcome = try await client.publish(OutboundMessage(exchange: missing, routingKey: "k", body: Data("x")))
        guard case .rejected(let error) = outcome else {
            Issue.record("expected .rejected, got \(outcome)")
            return
        }
        #expect(error.code == .channelClosed)
        #expect(error.serverReply?.code == 404)
        #expect(error.serverReply?.text.contains(missing) == true)

        // The publishing channel was reopened.
        #expect(
            try await client.publish(OutboundMessage(exchange: "", routingKey: queue, body: Data("y"))) == .confirmed)

        // A declaration the broker refuses fails with the broker's reply; the next one works.
        let conflict = await #expect(throws: AMQPError.self) {
            _ = try await client.declareQueue(
                QueueDeclaration(name: queue, durable: false, exclusive: true, arguments: ["x-max-length": 1]))
        }
        #expect(conflict?.code == .channelClosed)
        #expect(conflict?.serverReply?.code == 406)
        let missingQueue = await #expect(throws: AMQPError.self) {
            _ = try await client.inspectQueue(TestBroker.unique("no-such-queue"))
        }
        #expect(missingQueue?.serverReply?.code == 404)
        #expect(try await client.inspectQueue(queue).messageCount == 1)
        #expect(client.isConnected)
        #expect(client.connectionCount == 1)
        await client.close()
    }

    @Test func brokerCancellingAConsumerEndsItsSequenceWithAnError() async throws {
        let client = try await TestBroker.connectedClient(TestBroker.unique("cancel"))
        let queue = TestBroker.unique("cancel.q")
        _ = try await client.declareQueue(QueueDeclaration(name: queue, durable: false))
        let consumer = try await client.consume(queue: queue, prefetch: 1)
        try await client.deleteQueue(queue)
        let error = await #expect(throws: AMQPError.self) {
            _ = try await take(1, from: consumer)
        }
        #expect(error?.code == .consumerCancelled)
        await client.close()
    }

    @Test(
        "a subscription hands deliveries to its handler in order and calls onEnd once: without an error when cancelled, with consumerCancelled when the broker cancels it"
    )
    func subscriptionHandlersGetDeliveriesAndTheEnd() async throws {
        let (client, queue) = try await clientWithQueue("subscribe", holding: 5)

        let (events, sink) = AsyncStream<SubscriptionEvent>.makeStream()
        let onEnd: @Sendable (String, (any Error)?) -> Void = { sink.yield(.end($0, $1)) }
        let onDelivery: @Sendable (InboundDelivery) -> Void = { sink.yield(.delivery($0)) }
        // One reader of the handlers' events for the whole test, each step driven from inside it.
        let seen = try await within(60, "the subscriptions' deliveries and ends") {
            var iterator = events.makeAsyncIterator()
            let first = try await client.subscribe(
                queue: queue, prefetch: 10, onEnd: onEnd, onDelivery: onDelivery)
            var received: [InboundDelivery] = []
            var early: SubscriptionEvent?
            while received.count < 5, let event = await iterator.next() {
                guard case .delivery(let delivery) = event else {
                    early = event
                    break
                }
                received.append(delivery)
            }
            if let last = received.last { client.ack(last.deliveryTag, multiple: true) }
            await client.cancel(first)
            let cancelledByUs = early == nil ? await iterator.next() : nil
            let afterCancel = try await client.inspectQueue(queue)
            // The broker cancels a subscription whose queue is deleted: onEnd gets the error.
            let second = try await client.subscribe(queue: queue, prefetch: 1, onEnd: onEnd, onDelivery: onDelivery)
            try await client.deleteQueue(queue)
            let cancelledByBroker = await iterator.next()
            // A subscription the broker refuses throws, and never calls its handlers.
            let refused = await #expect(throws: AMQPError.self) {
                _ = try await client.subscribe(
                    queue: TestBroker.unique("no-such-queue"), prefetch: 1, onEnd: onEnd, onDelivery: onDelivery)
            }
            // Closing calls nothing more: each subscription ended once.
            await client.close()
            sink.finish()
            var rest: [SubscriptionEvent] = []
            while let event = await iterator.next() { rest.append(event) }
            return (
                first: first, received: received, early: early, cancelledByUs: cancelledByUs, afterCancel: afterCancel,
                second: second, cancelledByBroker: cancelledByBroker, refused: refused?.code, rest: rest
            )
        }
        #expect(seen.early == nil, "an event before the 5 deliveries: \(String(describing: seen.early))")
        #expect(seen.received.map { String(decoding: $0.body, as: UTF8.self) } == (0..<5).map { "m-\($0)" })
        #expect(seen.received.allSatisfy { $0.consumerTag == seen.first.consumerTag })
        guard case .end(let tag, let error) = seen.cancelledByUs else {
            Issue.record("expected the subscription's end, got \(String(describing: seen.cancelledByUs))")
            return
        }
        #expect(tag == seen.first.consumerTag)
        #expect(error == nil)
        #expect(seen.afterCancel == QueueInfo(name: queue, messageCount: 0, consumerCount: 0))
        guard case .end(let brokerTag, let brokerError) = seen.cancelledByBroker else {
            Issue.record("expected the broker's cancel, got \(String(describing: seen.cancelledByBroker))")
            return
        }
        #expect(brokerTag == seen.second.consumerTag)
        #expect((brokerError as? AMQPError)?.code == .consumerCancelled)
        #expect(seen.refused == .channelClosed)
        #expect(seen.rest.isEmpty, "events after the ends: \(seen.rest)")
    }

    @Test(
        "a receipt's onSettled handler runs once with the outcomes, on the connection thread, and what it acknowledges there goes out; registered late, it runs at once"
    )
    func receiptHandlersRunOnTheConnectionThread() async throws {
        let (client, queue) = try await clientWithQueue("on-settled", holding: 3)
        let consumer = try await client.consume(queue: queue, prefetch: 10)
        let deliveries = try await take(3, from: consumer)
        let last = try #require(deliveries.last)

        // The handler acknowledges the deliveries from inside: the connection thread runs that ack before it polls.
        typealias Call = (outcomes: [PublishOutcome]?, thread: String?, inline: Bool)
        let (calls, sink) = AsyncStream<Call>.makeStream()
        let registered = Mutex(false)
        let receipt = client.send([OutboundMessage(exchange: "", routingKey: queue, body: Data("m-3"))])
        receipt.onSettled { result in
            if case .success = result { client.ack(last.deliveryTag, multiple: true) }
            // The name the system has for the thread, as top -H and perf show it.
            let name = try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)
            sink.yield((try? result.get(), name?.trimmingCharacters(in: .newlines), !registered.withLock { $0 }))
        }
        registered.withLock { $0 = true }
        let first = try await within(30, "the handler") {
            var iterator = calls.makeAsyncIterator()
            return await iterator.next()
        }
        #expect(first?.outcomes == [.confirmed])
        #expect(try await receipt.outcomes() == [.confirmed])
        // Settled already: a handler registered now runs before onSettled returns.
        let late = Mutex<[PublishOutcome]?>(nil)
        receipt.onSettled { result in late.withLock { $0 = try? result.get() } }
        #expect(late.withLock { $0 } == [.confirmed])
        // The fourth message came to the consumer; cancelling returns it (unacknowledged) but not the three the
        // handler acknowledged.
        let fourth = try await take(1, from: consumer)
        #expect(fourth.map { String(decoding: $0.body, as: UTF8.self) } == ["m-3"])
        await client.cancel(consumer)
        #expect(try await client.inspectQueue(queue).messageCount == 1)

        try await client.deleteQueue(queue)
        await client.close()
        sink.finish()
        // Once only, and on the connection thread (unless the confirm beat the registration: then it ran inline).
        var rest: [Call] = []
        for await call in calls { rest.append(call) }
        #expect(rest.isEmpty)
        #expect(first?.inline == true || first?.thread == "waybill-amqp", "\(String(describing: first))")
        let refused = client.send([OutboundMessage(exchange: "", routingKey: queue, body: Data())])
        let code = Mutex<AMQPError.Code?>(nil)
        refused.onSettled { result in
            if case .failure(let error) = result { code.withLock { $0 = error.code } }
        }
        #expect(code.withLock { $0 } == .clientClosed)
    }

    @Test func forcedCloseReconnectsRedeclaresAndKeepsConsuming() async throws {
        let name = TestBroker.unique("forced-close")
        let client = try await TestBroker.connectedClient(name)
        let exchange = TestBroker.unique("direct")
        let durableQueue = TestBroker.unique("durable.q")
        let exclusiveQueue = TestBroker.unique("exclusive.q")
        try await client.declareExchange(ExchangeDeclaration(name: exchange, kind: .direct, durable: false))
        _ = try await client.declareQueue(QueueDeclaration(name: durableQueue, durable: true))
        // Exclusive queues die with their connection: after the reconnect only a redeclaration brings it back.
        _ = try await client.declareQueue(QueueDeclaration(name: exclusiveQueue, durable: false, exclusive: true))
        try await client.bind(QueueBinding(queue: durableQueue, exchange: exchange, bindingKey: "k1"))
        try await client.bind(QueueBinding(queue: exclusiveQueue, exchange: exchange, bindingKey: "k2"))
        let durableConsumer = try await client.consume(queue: durableQueue, prefetch: 10)
        let exclusiveConsumer = try await client.consume(queue: exclusiveQueue, prefetch: 10)

        let m1 = OutboundMessage(exchange: exchange, routingKey: "k1", body: Data("m1"), mandatory: true)
        #expect(try await client.publish(m1) == .confirmed)
        let before = try #require(try await take(1, from: durableConsumer).first)
        #expect(!before.redelivered)

        try await TestBroker.forceClose(connectionName: name)

        // The unacknowledged message comes again, on the new connection's channel.
        let after = try #require(try await take(1, from: durableConsumer).first)
        #expect(after.body == Data("m1"))
        #expect(after.redelivered)
        #expect(after.generation != before.generation)
        #expect(client.connectionCount == 2)

        // Settling the old tag is dropped; settling the new one works (a double ack would close the channel
        // and bring m1 a third time instead of m3 below).
        client.ack(before.deliveryTag)
        client.ack(after.deliveryTag)
        let m3 = OutboundMessage(exchange: exchange, routingKey: "k1", body: Data("m3"), mandatory: true)
        #expect(try await client.publish(m3) == .confirmed)
        let third = try #require(try await take(1, from: durableConsumer).first)
        #expect(third.body == Data("m3") && !third.redelivered)
        client.ack(third.deliveryTag)

        // The exclusive queue and its binding were declared again and its consumer resumed.
        let m2 = OutboundMessage(exchange: exchange, routingKey: "k2", body: Data("m2"), mandatory: true)
        #expect(try await client.publish(m2) == .confirmed)
        let routed = try #require(try await take(1, from: exclusiveConsumer).first)
        #expect(routed.body == Data("m2"))
        client.ack(routed.deliveryTag)

        try await client.deleteQueue(durableQueue)
        try await client.deleteExchange(exchange)
        await client.close()
    }

    @Test func unconfirmedPublishesAreReportedNotSentWhenTheConnectionDies() async throws {
        let direct = try await TestBroker.connectedClient(TestBroker.unique("observer"))
        let link = try TestBroker.faultyLink()
        defer { link.stop() }
        let configuration = try TestBroker.configuration(TestBroker.unique("cut"), through: link)
        let client = try AMQPClient(configuration: configuration, logger: TestBroker.logger("amqp"))
        try await client.connect()
        let queue = TestBroker.unique("cut.q")
        _ = try await client.declareQueue(QueueDeclaration(name: queue, durable: true))

        link.holdBrokerBytes()
        let batch = (0..<3).map {
            OutboundMessage(exchange: "", routingKey: queue, body: Data("\($0)"), persistent: true)
        }
        let publishing = Task { try await client.publish(batch) }
        // The broker has the messages, but its confirms are stuck in the relay.
        try await eventually("the broker to enqueue the batch") {
            try await direct.inspectQueue(queue).messageCount == 3
        }
        link.cut()
        let outcomes = try await within(30, "the publish outcomes") { try await publishing.value }
        #expect(outcomes == Array(repeating: .connectionLost, count: 3))

        // The client reconnects through the relay and publishes again.
        try await eventually("the reconnect") { client.connectionCount == 2 && client.isConnected }
        #expect(try await client.publish(batch[0]) == .confirmed)
        // Usually exactly one new connection; on a loaded machine a 1 s heartbeat may also drop a reconnect attempt.
        #expect(link.acceptedConnections >= 2)

        _ = try await direct.deleteQueue(queue)
        await client.close()
        await direct.close()
    }

    @Test("a batch sent in a sequence whose channel is gone is reported lost, unsent; a new sequence publishes")
    func sequenceDoesNotOutliveItsChannel() async throws {
        let name = TestBroker.unique("sequence")
        let client = try await TestBroker.connectedClient(name)
        let queue = TestBroker.unique("sequence.q")
        _ = try await client.declareQueue(QueueDeclaration(name: queue, durable: true))
        func message(_ body: String) -> OutboundMessage {
            OutboundMessage(exchange: "", routingKey: queue, body: Data(body), persistent: true)
        }
        let sequence = PublishSequence()
        // Sent back to back without waiting: both are in flight at once, and both are confirmed.
        let first = client.send([message("1"), message("2")], in: sequence)
        let second = client.send([message("3")], in: sequence)
        #expect(try await first.outcomes() == [.confirmed, .confirmed])
        #expect(try await second.outcomes() == [.confirmed])
        #expect(first.isSettled && second.isSettled)

        try await TestBroker.forceClose(connectionName: name)
        try await eventually("the reconnect") { client.connectionCount == 2 && client.isConnected }
        let late = client.send([message("4")], in: sequence)
        #expect(try await late.outcomes() == [.connectionLost])
        #expect(try await client.inspectQueue(queue).messageCount == 3, "the late batch was not sent")

        let renewed = client.send([message("4")], in: PublishSequence())
        #expect(try await renewed.outcomes() == [.confirmed])
        #expect(try await client.send([]).outcomes() == [])
        _ = try await client.deleteQueue(queue)
        await client.close()
    }

    @Test("a batch refused while disconnected ends its sequence: a later batch of it is not sent after the reconnect")
    func sequenceRefusedWhileDisconnected() async throws {
        let direct = try await TestBroker.connectedClient(TestBroker.unique("observer"))
        let link = try TestBroker.faultyLink()
        defer { link.stop() }
        let configuration = try TestBroker.configuration(TestBroker.unique("refused"), through: link)
        let client = try AMQPClient(configuration: configuration, logger: TestBroker.logger("amqp"))
        try await client.connect()
        let queue = TestBroker.unique("refused.q")
        _ = try await direct.declareQueue(QueueDeclaration(name: queue, durable: true))
        let message = OutboundMessage(exchange: "", routingKey: queue, body: Data("m"), persistent: true)

        link.refuseNewConnections()
        link.cut()
        try await eventually("the client to notice the cut") { !client.isConnected }
        let sequence = PublishSequence()
        #expect(try await client.send([message], in: sequence).outcomes() == [.connectionLost])

        link.relayNewConnections()
        try await eventually("the reconnect") { client.isConnected }
        #expect(try await client.send([message], in: sequence).outcomes() == [.connectionLost])
        #expect(try await direct.inspectQueue(queue).messageCount == 0, "nothing of the old sequence went out")
        #expect(try await client.send([message], in: PublishSequence()).outcomes() == [.confirmed])

        _ = try await direct.deleteQueue(queue)
        await client.close()
        await direct.close()
    }

    @Test func silentBrokerIsDetectedByHeartbeatsAndTheClientReconnects() async throws {
        let link = try TestBroker.faultyLink()
        defer { link.stop() }
        var configuration = try TestBroker.configuration(TestBroker.unique("heartbeat"), through: link)
        configuration.heartbeatSeconds = 1
        let client = try AMQPClient(configuration: configuration, logger: TestBroker.logger("amqp"))
        try await client.connect()
        let queue = TestBroker.unique("heartbeat.q")
        _ = try await client.declareQueue(QueueDeclaration(name: queue, durable: false, exclusive: true))

        // The TCP connection stays open but the broker falls silent: only missed heartbeats tell.
        link.holdBrokerBytes()
        try await eventually("the client to notice missed heartbeats and reconnect") {
            client.connectionCount == 2 && client.isConnected
        }
        // Usually exactly one new connection; on a loaded machine a 1 s heartbeat may also drop a reconnect attempt.
        #expect(link.acceptedConnections >= 2)
        #expect(
            try await client.publish(OutboundMessage(exchange: "", routingKey: queue, body: Data("z"))) == .confirmed)
        link.cut()
        await client.close()
    }

    @Test("a client given several nodes fails over to the next when its node goes away, and keeps consuming")
    func failsOverToTheNextNode() async throws {
        // Two relays to the one test broker stand in for two nodes of a cluster.
        let nodes = [try TestBroker.faultyLink(), try TestBroker.faultyLink()]
        defer { for node in nodes { node.stop() } }
        var configuration = try TestBroker.configuration(TestBroker.unique("failover"))
        configuration.endpoints = nodes.map { AMQPConfiguration.Endpoint(host: "127.0.0.1", port: Int($0.port)) }
        let client = try AMQPClient(configuration: configuration, logger: TestBroker.logger("amqp"))
        try await client.connect()
        let first = try #require(client.connectedEndpoint)
        let dead = try #require(nodes.firstIndex { Int($0.port) == first.port })
        let other = nodes[1 - dead]
        #expect(other.acceptedConnections == 0, "the first connection went to one node only")
        let queue = TestBroker.unique("failover.q")
        _ = try await client.declareQueue(QueueDeclaration(name: queue, durable: true))
        let consumer = try await client.consume(queue: queue, prefetch: 10)

        // The node dies: its connection breaks and it refuses new ones.
        nodes[dead].refuseNewConnections()
        nodes[dead].cut()
        try await eventually("the client to reconnect") { client.connectionCount == 2 && client.isConnected }
        #expect(client.connectedEndpoint?.port == Int(other.port))
        #expect(nodes[dead].refusedConnections == 0, "the next node is tried first after a loss")
        let message = OutboundMessage(exchange: "", routingKey: queue, body: Data("after"), persistent: true)
        #expect(try await client.publish(message) == .confirmed)
        let delivery = try #require(try await take(1, from: consumer).first)
        #expect(delivery.body == Data("after"))
        client.ack(delivery.deliveryTag)

        // Both nodes down, then the first back: the client goes round the list until one takes it.
        other.refuseNewConnections()
        nodes[dead].relayNewConnections()
        other.cut()
        try await eventually("the client to come back through the first node") {
            client.connectionCount == 3 && client.isConnected
        }
        #expect(client.connectedEndpoint?.port == first.port)
        #expect(try await client.publish(message) == .confirmed)

        _ = try await client.deleteQueue(queue)
        await client.close()
    }

    @Test func wrongPasswordFailsConnectWithAuthenticationError() async throws {
        var configuration = try TestBroker.configuration(TestBroker.unique("bad-password"))
        configuration.password = "definitely-wrong"
        let client = try AMQPClient(configuration: configuration, logger: TestBroker.logger("amqp"))
        let error = await #expect(throws: AMQPError.self) { try await client.connect() }
        #expect(error?.code == .authenticationFailed)
        #expect(error?.description.contains("definitely-wrong") == false)
    }

    @Test func closedClientRefusesWork() async throws {
        let client = try await TestBroker.connectedClient(TestBroker.unique("closed"))
        await client.close()
        #expect(!client.isConnected)
        let error = await #expect(throws: AMQPError.self) {
            _ = try await client.publish(OutboundMessage(exchange: "", routingKey: "q", body: Data()))
        }
        #expect(error?.code == .clientClosed)
    }
}
