import CRabbitMQ
import Foundation
import Glibc
import Logging

/// The connection thread's state machine: the only code that calls rabbitmq-c.
///
/// One instance lives on one dedicated thread for the client's whole life and is never shared, so none
/// of its state needs a lock. The thread loops: run the commands callers queued in the ``Mailbox``, read
/// every frame rabbitmq-c can give without blocking and dispatch it, then poll() the socket and the
/// mailbox's eventfd together (bounded by a fraction of the heartbeat interval, so heartbeats are sent and
/// checked on time). Commands submitted from this thread itself (a receipt's handler acknowledging deliveries) do
/// not wake it: it runs them before it polls again.
///
/// Channels: 1 runs declarations and other synchronous operations, 2 publishes in confirm mode, and each
/// consumer has its own channel from 3 up, so a `multiple` ack covers only that consumer's deliveries.
///
/// The bookkeeping lives in pure values this class feeds and obeys: ``ConfirmTracker`` (publisher confirms),
/// ``ConsumerRegistry`` (consumers, their channels and generations) and ``DeclaredTopology`` (what to declare
/// again after a reconnect). This class does the I/O: commands, frames, channels and reconnects.
final class ConnectionDriver {
    private static let controlChannel: UInt16 = 1
    private static let publishChannel: UInt16 = 2
    private static let framesPerTurn = 512
    private static let framesPerRelease = 32

    private let configuration: AMQPConfiguration
    private let mailbox: Mailbox
    private let status: ConnectionStatus
    private let logger: Logger

    /// The open connection; `nil` while reconnecting. A lost connection moves to `retiredLinks` and is
    /// freed at the top of the loop, so no frame or call in progress touches freed library memory.
    private var link: BrokerLink?
    private var retiredLinks: [BrokerLink] = []
    private var controlChannelOpen = false
    private var publishChannelOpen = false
    /// Counts the openings of the publishing channel: a ``PublishSequence`` is bound to one of them.
    private var publishChannelIncarnation: UInt64 = 0
    private var finished = false
    /// Where in ``AMQPConfiguration/endpoints`` the next connection starts: a random node at first, so that a pool's
    /// connections spread over a cluster; the node that took the connection while it lasts; the one after it once
    /// that connection is lost.
    private var nextEndpoint: Int
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []

    private var topology = DeclaredTopology()
    private var consumers = ConsumerRegistry()
    private var confirms = ConfirmTracker<PublishWaiter>()

    /// Messages whose method frame arrived and whose header and body frames are still coming, by channel.
    private var partial: [UInt16: PartialContent] = [:]

    init(configuration: AMQPConfiguration, mailbox: Mailbox, status: ConnectionStatus, logger: Logger) {
        self.configuration = configuration
        self.mailbox = mailbox
        self.status = status
        nextEndpoint = Int.random(in: 0..<max(1, configuration.endpoints.count))
        var logger = logger
        logger[metadataKey: "amqp.connection"] = .string(configuration.connectionName)
        self.logger = logger
    }

    // MARK: - The thread's life

    /// Connects, reports the outcome of that first attempt, then serves until the client closes.
    func run(reportingFirstConnectionTo firstConnection: CheckedContinuation<Void, any Error>) {
        mailbox.adoptCurrentThread()
        do {
            try establish()
        } catch {
            // The caller of connect() gets the error; it decides what to log.
            logger.debug("AMQP first connection failed", metadata: ["error": "\(error)"])
            for command in mailbox.shutDown() {
                command.refuse(with: AMQPError(.notConnected, "the first connection to the broker failed: \(error)"))
            }
            status.enter(.idle)
            firstConnection.resume(throwing: error)
            return
        }
        logger.info(
            "AMQP connected",
            metadata: ["broker": "\(configuration)", "node": "\(configuration.endpoints[nextEndpoint])"])
        firstConnection.resume()
        while !finished {
            retiredLinks.removeAll()
            guard link != nil else {
                reconnect()
                continue
            }
            handle(mailbox.takeAll())
            if finished { break }
            pumpFrames()
            if let link, !finished { waitForActivity(on: link) }
        }
        shutDown()
    }

    private func waitForActivity(on link: BrokerLink) {
        if link.hasBufferedInput || mailbox.hasCommands { return }
        let heartbeat = configuration.heartbeatSeconds
        let timeout = Int32(heartbeat > 0 ? min(1000, max(100, heartbeat * 250)) : 1000)
        var descriptors = [
            pollfd(fd: link.socketDescriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: mailbox.wakeDescriptor, events: Int16(POLLIN), revents: 0),
        ]
        _ = poll(&descriptors, 2, timeout)
    }

    /// Sleeps for the backoff delay while still answering commands; returns early when asked to close.
    private func pause(for delay: Duration) {
        let deadline = ContinuousClock.now + delay
        while !finished {
            let remaining = ContinuousClock.now.duration(to: deadline)
            if remaining <= .zero { return }
            let milliseconds =
                remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000
            var descriptor = pollfd(fd: mailbox.wakeDescriptor, events: Int16(POLLIN), revents: 0)
            if !mailbox.hasCommands { _ = poll(&descriptor, 1, Int32(clamping: max(1, milliseconds))) }
            handle(mailbox.takeAll())
        }
    }

    private func reconnect() {
        var delay = configuration.reconnect.initialDelay
        var attempt = 0
        while !finished {
            // Jitter spreads the reconnects of many workers after a broker restart.
            pause(for: configuration.reconnect.jittered(delay))
            if finished { return }
            attempt += 1
            do {
                try establish()
                logger.notice(
                    "AMQP reconnected",
                    metadata: [
                        "attempt": "\(attempt)", "broker": "\(configuration)",
                        "node": "\(configuration.endpoints[nextEndpoint])",
                    ])
                return
            } catch {
                let next = configuration.reconnect.delay(after: delay)
                logger.warning(
                    "AMQP reconnect attempt failed",
                    metadata: ["attempt": "\(attempt)", "error": "\(error)", "retry_in": "\(next)"])
                delay = next
            }
        }
    }

    /// Connects to the first node, from ``nextEndpoint`` on in list order, that takes the connection, and restores
    /// everything the client registered there. Throws when every node failed: the error of a single node, or one
    /// naming each node's failure.
    private func establish() throws(AMQPError) {
        let endpoints = configuration.endpoints
        guard !endpoints.isEmpty else {
            throw AMQPError(.invalidConfiguration, "no broker address to connect to: the endpoint list is empty")
        }
        var failures: [AMQPError] = []
        for offset in 0..<endpoints.count {
            let index = (nextEndpoint + offset) % endpoints.count
            do {
                try establish(at: endpoints[index])
                nextEndpoint = index
                return
            } catch {
                if endpoints.count > 1 {
                    logger.info(
                        "AMQP node did not take the connection",
                        metadata: ["node": "\(endpoints[index])", "error": "\(error)"])
                }
                failures.append(error)
            }
        }
        guard failures.count > 1, let last = failures.last else { throw failures[0] }
        // A node that could not be reached outranks one that refused the login: the broker may come back (a caller
        // waiting for it must not depend on which node happened to be tried last).
        let code = failures.contains { $0.code == .connectionFailed } ? AMQPError.Code.connectionFailed : last.code
        throw AMQPError(
            code,
            "no node of the broker took the connection: "
                + failures.map(\.message).joined(separator: "; "),
            serverReply: last.serverReply, libraryStatus: last.libraryStatus)
    }

    /// Opens a connection to `endpoint` and restores everything the client registered: channels, confirm mode,
    /// declarations and consumers.
    private func establish(at endpoint: AMQPConfiguration.Endpoint) throws(AMQPError) {
        let link = try BrokerLink.open(configuration, at: endpoint)
        self.link = link
        do {
            try link.openChannel(Self.controlChannel)
            controlChannelOpen = true
            try openPublishChannel(on: link)
            for step in topology.steps {
                switch step {
                case .exchange(let declaration): try link.declare(declaration, channel: Self.controlChannel)
                case .queue(let declaration):
                    _ = try link.declare(declaration, passive: false, channel: Self.controlChannel)
                case .binding(let binding): try link.bind(binding, channel: Self.controlChannel)
                }
            }
            consumers.releaseChannels()
            for id in consumers.ids {
                guard consumers.assignChannel(to: id) != nil else { break }
                do {
                    try subscribe(id, on: link)
                } catch  where error.code == .channelClosed {
                    logger.error(
                        "AMQP consumer could not be restored",
                        metadata: ["queue": "\(consumers[id]?.request.queue ?? "")", "error": "\(error)"])
                    removeConsumer(id, finishingWith: error)
                }
            }
        } catch {
            self.link = nil
            controlChannelOpen = false
            publishChannelOpen = false
            link.destroy()
            throw error
        }
        status.setEndpoint(endpoint)
        status.enter(.connected)
    }

    /// Opens channel 2 in confirm mode. Its publishes number from 1: the confirm tracker restarted its
    /// numbering when the previous channel was lost.
    private func openPublishChannel(on link: BrokerLink) throws(AMQPError) {
        try link.openChannel(Self.publishChannel)
        try link.selectConfirms(Self.publishChannel)
        publishChannelOpen = true
        publishChannelIncarnation += 1
    }

    /// Forgets the connection after a failure. Unconfirmed publishes are reported as not sent, consumers
    /// wait for the reconnect, and the loop reconnects with backoff.
    private func connectionLost(_ error: AMQPError) {
        guard let link else { return }
        logger.warning(
            "AMQP connection lost; reconnecting",
            metadata: ["error": "\(error)", "node": "\(configuration.endpoints[nextEndpoint])"])
        // A cluster's next node first: the lost one may be down.
        nextEndpoint = (nextEndpoint + 1) % configuration.endpoints.count
        retiredLinks.append(link)
        self.link = nil
        controlChannelOpen = false
        publishChannelOpen = false
        partial.removeAll()
        resume(confirms.channelLost(reportingAs: .connectionLost))
        consumers.unsubscribeAll()
        status.enter(.reconnecting)
    }

    private func shutDown() {
        for command in mailbox.shutDown() {
            command.refuse(with: AMQPError(.clientClosed, "the AMQP client is closed"))
        }
        if let link {
            link.close()
            self.link = nil
        }
        retiredLinks.removeAll()
        resume(confirms.channelLost(reportingAs: .connectionLost))
        for id in consumers.ids { removeConsumer(id, finishingWith: nil) }
        status.enter(.closed)
        logger.info("AMQP client closed")
        for waiter in closeWaiters { waiter.resume() }
        closeWaiters.removeAll()
    }

    // MARK: - Commands

    private func handle(_ commands: [Command]) {
        for command in commands {
            switch command {
            case .publish(let batch, let receipt, let sequence):
                publish(batch, receipt, sequence)
            case .declareExchange(let declaration, let continuation):
                continuation.resume(
                    with: onControlChannel { link throws(AMQPError) in
                        try link.declare(declaration, channel: Self.controlChannel)
                        self.topology.remember(.exchange(declaration))
                    })
            case .declareQueue(let declaration, let continuation):
                continuation.resume(
                    with: onControlChannel { link throws(AMQPError) in
                        guard !declaration.name.isEmpty else {
                            throw AMQPError(
                                .invalidArgument,
                                "queue names must be chosen by the client, so the queue can be declared again after a reconnect"
                            )
                        }
                        let info = try link.declare(declaration, passive: false, channel: Self.controlChannel)
                        self.topology.remember(.queue(declaration))
                        return info
                    })
            case .inspectQueue(let name, let continuation):
                continuation.resume(
                    with: onControlChannel { link throws(AMQPError) in
                        try link.declare(QueueDeclaration(name: name), passive: true, channel: Self.controlChannel)
                    })
            case .bind(let binding, let continuation):
                continuation.resume(
                    with: onControlChannel { link throws(AMQPError) in
                        try link.bind(binding, channel: Self.controlChannel)
                        self.topology.remember(.binding(binding))
                    })
            case .deleteQueue(let name, let continuation):
                continuation.resume(
                    with: onControlChannel { link throws(AMQPError) in
                        let count = try link.deleteQueue(name, channel: Self.controlChannel)
                        self.topology.forgetQueue(name)
                        return count
                    })
            case .deleteExchange(let name, let continuation):
                continuation.resume(
                    with: onControlChannel { link throws(AMQPError) in
                        try link.deleteExchange(name, channel: Self.controlChannel)
                        self.topology.forgetExchange(name)
                    })
            case .consume(let request, let continuation):
                continuation.resume(with: startConsumer(request))
            case .cancelConsumer(let id, let continuation):
                cancelConsumer(id)
                continuation?.resume()
            case .settle(let tag, let settlement):
                settle(tag, settlement)
            case .close(let continuation):
                finished = true
                if let continuation { closeWaiters.append(continuation) }
            }
        }
    }

    /// Runs a synchronous operation on the control channel, reopening it first if the broker closed it.
    private func onControlChannel<T>(_ operation: (BrokerLink) throws(AMQPError) -> T) -> Result<T, any Error> {
        guard let link else {
            return .failure(
                AMQPError(.notConnected, "not connected to the broker (the client is reconnecting); try again later"))
        }
        do {
            if !controlChannelOpen {
                try link.openChannel(Self.controlChannel)
                controlChannelOpen = true
            }
            return .success(try operation(link))
        } catch {
            if error.code == .channelClosed {
                controlChannelOpen = false
            } else if [.connectionLost, .connectionClosed, .protocolError].contains(error.code) {
                connectionLost(error)
            }
            return .failure(error)
        }
    }

    // MARK: - Publishing

    private func publish(_ batch: [OutboundMessage], _ receipt: PublishWaiter, _ sequence: PublishSequence?) {
        guard !batch.isEmpty else { return receipt.settle(.success([])) }
        guard let link, publishChannelOpen else {
            // Nothing of this batch goes out, so no later batch of its sequence may either: bind the sequence to a
            // channel that never opens.
            sequence?.channel.withLock { $0 = .max }
            return receipt.settle(.success(Array(repeating: .connectionLost, count: batch.count)))
        }
        if let sequence {
            let current = publishChannelIncarnation
            let bound = sequence.channel.withLock { channel in
                if channel == nil { channel = current }
                return channel == current
            }
            guard bound else { return receipt.settle(.success(Array(repeating: .connectionLost, count: batch.count))) }
        }
        let batchID = confirms.beginBatch(of: batch.count, waiter: receipt)
        for (index, original) in batch.enumerated() {
            if let problem = Self.problem(with: original) {
                resume(confirms.settleUnpublished(index, of: batchID, as: .rejected(problem)))
                continue
            }
            var message = original
            if message.mandatory, message.properties.messageID == nil {
                message.properties.messageID = UUID().uuidString
            }
            let result = link.publish(message, channel: Self.publishChannel)
            guard result == AMQP_STATUS_OK.rawValue else {
                for unsent in index..<batch.count {
                    resume(confirms.settleUnpublished(unsent, of: batchID, as: .connectionLost))
                }
                connectionLost(
                    AMQPError(.connectionLost, "publishing failed", libraryStatus: Wire.libraryStatus(result)))
                return
            }
            confirms.published(index, of: batchID, returnKey: message.mandatory ? message.properties.messageID : nil)
        }
    }

    /// Why a message cannot be encoded, if it cannot: AMQP short strings hold at most 255 bytes.
    private static func problem(with message: OutboundMessage) -> AMQPError? {
        let properties = message.properties
        // Every message is checked before it is published: first without collecting anything, then, only when a
        // string is too long, again to name it.
        func fits(_ value: String?) -> Bool { (value?.utf8.count ?? 0) <= 255 }
        let allFit =
            fits(message.exchange) && fits(message.routingKey) && fits(properties.contentType)
            && fits(properties.contentEncoding) && fits(properties.correlationID) && fits(properties.replyTo)
            && fits(properties.expiration) && fits(properties.messageID) && fits(properties.type)
            && fits(properties.userID) && fits(properties.appID)
        if allFit, !properties.headers.keys.contains(where: { $0.utf8.count > 128 }) { return nil }
        let shortStrings: [(String, String?)] = [
            ("exchange", message.exchange), ("routing key", message.routingKey),
            ("content type", properties.contentType), ("content encoding", properties.contentEncoding),
            ("correlation id", properties.correlationID), ("reply-to", properties.replyTo),
            ("expiration", properties.expiration), ("message id", properties.messageID), ("type", properties.type),
            ("user id", properties.userID), ("app id", properties.appID),
        ]
        for (name, value) in shortStrings where (value?.utf8.count ?? 0) > 255 {
            return AMQPError(.invalidArgument, "the \(name) is longer than 255 bytes; AMQP cannot carry it")
        }
        if let key = properties.headers.keys.first(where: { $0.utf8.count > 128 }) {
            return AMQPError(.invalidArgument, "header name '\(key.prefix(40))...' is longer than 128 bytes")
        }
        return nil
    }

    /// Performs what the confirm tracker decided: each settled batch's caller gets its outcomes.
    private func resume(_ completions: [ConfirmTracker<PublishWaiter>.Completion]) {
        for completion in completions { resume(completion) }
    }

    private func resume(_ completion: ConfirmTracker<PublishWaiter>.Completion?) {
        guard let completion else { return }
        completion.waiter.settle(.success(completion.outcomes))
    }

    // MARK: - Consuming

    private func startConsumer(_ request: ConsumerRequest) -> Result<Void, any Error> {
        guard let link else {
            request.deliveries.abandon()
            return .failure(
                AMQPError(.notConnected, "not connected to the broker (the client is reconnecting); try again later"))
        }
        guard consumers.add(request) != nil else {
            request.deliveries.abandon()
            return .failure(AMQPError(.invalidArgument, "too many consumers on one connection"))
        }
        do {
            try subscribe(request.id, on: link)
            return .success(())
        } catch {
            removeConsumer(request.id, finishingWith: nil, started: false)
            if error.code != .channelClosed { connectionLost(error) }
            return .failure(error)
        }
    }

    /// Opens the consumer's channel, sets its prefetch and subscribes; the new channel incarnation gets a
    /// new generation.
    private func subscribe(_ id: Int, on link: BrokerLink) throws(AMQPError) {
        guard let consumer = consumers[id] else { return }
        let request = consumer.request
        try link.openChannel(consumer.channel)
        try link.setPrefetch(request.prefetch, channel: consumer.channel)
        try link.consume(
            queue: request.queue, consumerTag: request.consumerTag, exclusive: request.exclusive,
            arguments: request.arguments, channel: consumer.channel)
        consumers.subscribed(id)
    }

    private func cancelConsumer(_ id: Int) {
        guard let consumer = consumers[id] else { return }
        if let link, consumer.generation != nil {
            do {
                try link.cancel(consumerTag: consumer.request.consumerTag, channel: consumer.channel)
                try link.closeChannel(consumer.channel)
            } catch  where error.code == .channelClosed {
                // The channel is gone either way.
            } catch {
                connectionLost(error)
            }
        }
        removeConsumer(id, finishingWith: nil)
    }

    /// Forgets a consumer and ends its deliveries; one that never `started` (its `consume` fails) is abandoned.
    private func removeConsumer(_ id: Int, finishingWith error: AMQPError?, started: Bool = true) {
        guard let consumer = consumers.remove(id) else { return }
        partial[consumer.channel] = nil
        if started {
            consumer.request.deliveries.finish(throwing: error, consumerTag: consumer.request.consumerTag)
        } else {
            consumer.request.deliveries.abandon()
        }
    }

    private func settle(_ tag: DeliveryTag, _ settlement: Settlement) {
        guard let link, consumers.isCurrent(tag) else {
            logger.debug("AMQP settlement of a delivery from an earlier channel dropped", metadata: ["tag": "\(tag)"])
            return
        }
        let result =
            switch settlement {
            case .ack(let multiple): link.ack(tag.value, multiple: multiple, channel: tag.channel)
            case .nack(let multiple, let requeue):
                link.nack(tag.value, multiple: multiple, requeue: requeue, channel: tag.channel)
            case .reject(let requeue): link.reject(tag.value, requeue: requeue, channel: tag.channel)
            }
        if result != AMQP_STATUS_OK.rawValue {
            connectionLost(
                AMQPError(.connectionLost, "settling delivery \(tag) failed", libraryStatus: Wire.libraryStatus(result))
            )
        }
    }

    // MARK: - Frames

    private func pumpFrames() {
        var noWait = timeval(tv_sec: 0, tv_usec: 0)
        // Decoded frames live in rabbitmq-c's channel pools until released; releasing walks every pool, so it is done
        // every few frames rather than after each (at most `framesPerRelease` frames of up to frame_max bytes held).
        var held = 0
        defer { if held > 0, let link { amqp_maybe_release_buffers(link.state) } }
        for _ in 0..<Self.framesPerTurn {
            guard let link, !finished else { return }
            var frame = amqp_frame_t()
            let result = amqp_simple_wait_frame_noblock(link.state, &frame, &noWait)
            if result == AMQP_STATUS_TIMEOUT.rawValue { return }
            guard result == AMQP_STATUS_OK.rawValue else {
                connectionLost(
                    AMQPError(
                        .connectionLost, "reading from the broker failed", libraryStatus: Wire.libraryStatus(result)))
                return
            }
            dispatch(frame, on: link)
            held += 1
            if held == Self.framesPerRelease, self.link === link {
                amqp_maybe_release_buffers(link.state)
                held = 0
            }
        }
    }

    private func dispatch(_ frame: amqp_frame_t, on link: BrokerLink) {
        let channel = frame.channel
        switch Int32(frame.frame_type) {
        case AMQP_FRAME_METHOD:
            handleMethod(frame.payload.method, channel: channel, on: link)
        case AMQP_FRAME_HEADER:
            // Taken out of the dictionary while it grows, so appending does not copy the body.
            guard var content = partial.removeValue(forKey: channel) else { return }
            content.properties = Wire.properties(frame.payload.properties.decoded)
            content.bodySize = frame.payload.properties.body_size
            content.body.reserveCapacity(Int(min(content.bodySize, 16 << 20)))
            if content.bodySize == 0 {
                complete(content, channel: channel)
            } else {
                partial[channel] = content
            }
        case AMQP_FRAME_BODY:
            guard var content = partial.removeValue(forKey: channel) else { return }
            let fragment = frame.payload.body_fragment
            if fragment.len > 0, let bytes = fragment.bytes {
                content.body.append(bytes.assumingMemoryBound(to: UInt8.self), count: fragment.len)
            }
            if UInt64(content.body.count) >= content.bodySize {
                complete(content, channel: channel)
            } else {
                partial[channel] = content
            }
        default:
            break
        }
    }

    private func handleMethod(_ method: amqp_method_t, channel: UInt16, on link: BrokerLink) {
        guard let decoded = method.decoded else { return }
        switch method.id {
        case waybill_basic_deliver:
            let deliver = decoded.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            partial[channel] = PartialContent(
                kind: .delivery(
                    tag: deliver.delivery_tag, consumerTag: Wire.string(deliver.consumer_tag),
                    redelivered: deliver.redelivered != 0, exchange: Wire.string(deliver.exchange),
                    routingKey: Wire.string(deliver.routing_key)))
        case waybill_basic_ack where channel == Self.publishChannel:
            let ack = decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            resume(confirms.ack(ack.delivery_tag, multiple: ack.multiple != 0))
        case waybill_basic_nack where channel == Self.publishChannel:
            let nack = decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            resume(confirms.nack(nack.delivery_tag, multiple: nack.multiple != 0))
        case waybill_basic_return:
            let returned = decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            partial[channel] = PartialContent(
                kind: .returned(replyCode: returned.reply_code, replyText: Wire.string(returned.reply_text)))
        case waybill_basic_cancel:
            let cancel = decoded.assumingMemoryBound(to: amqp_basic_cancel_t.self).pointee
            let tag = Wire.string(cancel.consumer_tag)
            if cancel.nowait == 0 { link.sendCancelOK(consumerTag: tag, channel: channel) }
            guard let consumer = consumers.consumer(onChannel: channel) else { return }
            logger.warning(
                "AMQP broker cancelled a consumer (queue deleted or moved)",
                metadata: ["queue": "\(consumer.request.queue)"])
            removeConsumer(
                consumer.id,
                finishingWith: AMQPError(
                    .consumerCancelled, "the broker cancelled consumer '\(tag)' (its queue was deleted or moved)"))
        case waybill_channel_close:
            link.sendChannelCloseOK(channel)
            channelClosedByBroker(channel, reply: BrokerLink.serverReply(channelClose: decoded))
        case waybill_connection_close:
            let reply = BrokerLink.serverReply(connectionClose: decoded)
            link.sendConnectionCloseOK()
            connectionLost(AMQPError(.connectionClosed, "the broker closed the connection", serverReply: reply))
        case waybill_connection_blocked:
            status.setBlocked(true)
            logger.warning("AMQP broker blocked publishing (resource alarm); confirms wait until it unblocks")
        case waybill_connection_unblocked:
            status.setBlocked(false)
            logger.notice("AMQP broker unblocked publishing")
        default:
            logger.debug("AMQP ignored method", metadata: ["method": "\(method.id)", "channel": "\(channel)"])
        }
    }

    private func channelClosedByBroker(_ channel: UInt16, reply: AMQPError.ServerReply) {
        partial[channel] = nil
        let error = AMQPError(.channelClosed, "the broker closed channel \(channel)", serverReply: reply)
        logger.warning("AMQP channel closed by the broker", metadata: ["channel": "\(channel)", "reply": "\(reply)"])
        guard let link else { return }
        switch channel {
        case Self.controlChannel:
            controlChannelOpen = false
        case Self.publishChannel:
            publishChannelOpen = false
            resume(confirms.channelLost(reportingAs: .rejected(error)))
            do {
                try openPublishChannel(on: link)
            } catch {
                connectionLost(error)
            }
        default:
            guard let id = consumers.consumer(onChannel: channel)?.id else { return }
            consumers.unsubscribed(id)
            do {
                try subscribe(id, on: link)
            } catch  where error.code == .channelClosed {
                removeConsumer(id, finishingWith: error)
            } catch {
                connectionLost(error)
            }
        }
    }

    private func complete(_ content: PartialContent, channel: UInt16) {
        switch content.kind {
        case .returned(let replyCode, let replyText):
            let matched = confirms.returned(
                messageID: content.properties.messageID, replyCode: replyCode, replyText: replyText)
            if !matched {
                logger.warning(
                    "AMQP broker returned a message that matches no pending publish",
                    metadata: ["reply": "\(replyCode) \(replyText)"])
            }
        case .delivery(let tag, let consumerTag, let redelivered, let exchange, let routingKey):
            guard let consumer = consumers.consumer(onChannel: channel), let generation = consumer.generation
            else { return }
            let delivery = InboundDelivery(
                deliveryTag: DeliveryTag(value: tag, generation: generation, channel: channel),
                consumerTag: consumerTag, redelivered: redelivered, exchange: exchange, routingKey: routingKey,
                properties: content.properties, body: content.body)
            if !consumer.request.deliveries.yield(delivery) {
                cancelConsumer(consumer.id)
            }
        }
    }
}

// MARK: - Driver state

/// What a publish batch's caller waits on.
private typealias PublishWaiter = PublishReceipt

/// A message whose method frame arrived and whose header and body frames are still coming.
private struct PartialContent {
    enum Kind {
        case delivery(tag: UInt64, consumerTag: String, redelivered: Bool, exchange: String, routingKey: String)
        case returned(replyCode: UInt16, replyText: String)
    }

    var kind: Kind
    var properties = MessageProperties()
    var bodySize: UInt64 = 0
    var body = Data()
}
