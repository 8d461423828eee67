import CRabbitMQ
import Foundation

/// One open AMQP connection through rabbitmq-c: the socket, the login and thin typed wrappers around the
/// library's calls. It holds no client state (channels, consumers, confirms): ``ConnectionDriver`` does.
///
/// Used only on the connection thread. Every synchronous call goes through ``check(_:channel:)``, which
/// answers a broker's channel.close or connection.close with close-ok (rabbitmq-c does not) and turns the
/// reply into an ``AMQPError``.
final class BrokerLink {
    let state: amqp_connection_state_t
    let arena = CArena()
    private var destroyed = false

    private init(state: amqp_connection_state_t) {
        self.state = state
    }

    deinit { destroy() }

    /// Opens the socket (TCP or TLS) to `endpoint`, one of the configuration's, and logs in.
    static func open(
        _ configuration: AMQPConfiguration, at endpoint: AMQPConfiguration.Endpoint
    ) throws(AMQPError) -> BrokerLink {
        guard let state = amqp_new_connection() else {
            throw AMQPError(.connectionFailed, "rabbitmq-c could not allocate a connection")
        }
        let link = BrokerLink(state: state)
        let socket: OpaquePointer?
        if let tls = configuration.tls {
            socket = amqp_ssl_socket_new(state)
            guard let socket else {
                throw AMQPError(.connectionFailed, "rabbitmq-c could not create a TLS socket for \(endpoint)")
            }
            if let ca = tls.caCertificatePath {
                let status = amqp_ssl_socket_set_cacert(socket, ca)
                guard status == AMQP_STATUS_OK.rawValue else {
                    throw AMQPError(
                        .invalidConfiguration, "cannot load the CA certificate file \(ca)",
                        libraryStatus: Wire.libraryStatus(status))
                }
            }
            switch (tls.clientCertificatePath, tls.clientKeyPath) {
            case (let certificate?, let key?):
                let status = amqp_ssl_socket_set_key(socket, certificate, key)
                guard status == AMQP_STATUS_OK.rawValue else {
                    throw AMQPError(
                        .invalidConfiguration, "cannot load the client certificate \(certificate) with key \(key)",
                        libraryStatus: Wire.libraryStatus(status))
                }
            case (nil, nil):
                break
            default:
                throw AMQPError(
                    .invalidConfiguration, "a TLS client certificate needs both a certificate file and a key file")
            }
            amqp_ssl_socket_set_verify_peer(socket, tls.verifyPeer ? 1 : 0)
            amqp_ssl_socket_set_verify_hostname(socket, tls.verifyHostname ? 1 : 0)
        } else {
            socket = amqp_tcp_socket_new(state)
            guard socket != nil else {
                throw AMQPError(.connectionFailed, "rabbitmq-c could not create a TCP socket for \(endpoint)")
            }
        }
        var connectTimeout = timeval(configuration.connectTimeout)
        let opened = amqp_socket_open_noblock(socket, endpoint.host, Int32(endpoint.port), &connectTimeout)
        guard opened == AMQP_STATUS_OK.rawValue else {
            throw AMQPError(
                .connectionFailed,
                "cannot connect to \(endpoint)\(configuration.tls == nil ? "" : " over TLS"); is the broker running?",
                libraryStatus: Wire.libraryStatus(opened))
        }
        var handshakeTimeout = timeval(configuration.connectTimeout)
        amqp_set_handshake_timeout(state, &handshakeTimeout)
        var rpcTimeout = timeval(configuration.rpcTimeout)
        amqp_set_rpc_timeout(state, &rpcTimeout)

        var properties = link.arena.table([
            "product": "waybill",
            "platform": "Swift",
            "connection_name": .string(configuration.connectionName),
            "capabilities": [
                "publisher_confirms": true,
                "consumer_cancel_notify": true,
                "connection.blocked": true,
                "basic.nack": true,
                "exchange_exchange_bindings": true,
                "authentication_failure_close": true,
            ],
        ])
        let reply = waybill_amqp_login_plain(
            state, configuration.virtualHost, 0, 131_072, Int32(clamping: configuration.heartbeatSeconds), &properties,
            configuration.user, configuration.password)
        link.arena.reset()
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return link
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            let serverReply = serverReply(reply)
            let code: AMQPError.Code =
                [403, 530].contains(serverReply?.code) ? .authenticationFailed : .connectionFailed
            throw AMQPError(
                code,
                "the broker at \(endpoint) refused the login of user '\(configuration.user)' to vhost '\(configuration.virtualHost)'",
                serverReply: serverReply)
        default:
            throw AMQPError(
                .connectionFailed,
                "the AMQP handshake with \(endpoint) failed (wrong port, TLS mismatch or refused credentials)",
                libraryStatus: Wire.libraryStatus(reply.library_error))
        }
    }

    var socketDescriptor: Int32 { amqp_get_sockfd(state) }

    /// Whether rabbitmq-c holds frames or bytes that poll() on the socket would not report.
    var hasBufferedInput: Bool { amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0 }

    /// Closes the connection politely (best effort, bounded by the RPC timeout) and frees it.
    func close() {
        guard !destroyed else { return }
        _ = amqp_connection_close(state, AMQP_REPLY_SUCCESS)
        destroy()
    }

    /// Frees the connection without talking to the broker.
    func destroy() {
        guard !destroyed else { return }
        destroyed = true
        amqp_destroy_connection(state)
    }

    // MARK: Synchronous operations

    /// Turns the reply of the last synchronous call into an error, answering a broker close with close-ok.
    func check(_ operation: @autoclosure () -> String, channel: UInt16) throws(AMQPError) {
        try check(amqp_get_rpc_reply(state), operation(), channel: channel)
    }

    func check(_ reply: amqp_rpc_reply_t, _ operation: @autoclosure () -> String, channel: UInt16) throws(AMQPError) {
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            let serverReply = Self.serverReply(reply)
            if reply.reply.id == waybill_connection_close {
                sendConnectionCloseOK()
                throw AMQPError(
                    .connectionClosed, "\(operation()): the broker closed the connection", serverReply: serverReply)
            }
            sendChannelCloseOK(channel)
            throw AMQPError(
                .channelClosed, "\(operation()): the broker closed channel \(channel)", serverReply: serverReply)
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            throw AMQPError(
                .connectionLost, "\(operation()) failed", libraryStatus: Wire.libraryStatus(reply.library_error))
        default:
            throw AMQPError(.connectionLost, "\(operation()): the connection ended before the broker replied")
        }
    }

    func openChannel(_ channel: UInt16) throws(AMQPError) {
        amqp_channel_open(state, channel)
        try check("opening channel \(channel)", channel: channel)
    }

    func closeChannel(_ channel: UInt16) throws(AMQPError) {
        try check(
            amqp_channel_close(state, channel, AMQP_REPLY_SUCCESS), "closing channel \(channel)", channel: channel)
    }

    func selectConfirms(_ channel: UInt16) throws(AMQPError) {
        amqp_confirm_select(state, channel)
        try check("enabling publisher confirms on channel \(channel)", channel: channel)
    }

    func declare(_ exchange: ExchangeDeclaration, channel: UInt16) throws(AMQPError) {
        defer { arena.reset() }
        amqp_exchange_declare(
            state, channel, arena.bytes(exchange.name), arena.bytes(exchange.kind.rawValue), 0,
            exchange.durable ? 1 : 0, exchange.autoDelete ? 1 : 0, exchange.internal ? 1 : 0,
            arena.table(exchange.arguments))
        try check("declaring exchange '\(exchange.name)'", channel: channel)
    }

    func declare(_ queue: QueueDeclaration, passive: Bool, channel: UInt16) throws(AMQPError) -> QueueInfo {
        defer { arena.reset() }
        let ok = amqp_queue_declare(
            state, channel, arena.bytes(queue.name), passive ? 1 : 0, queue.durable ? 1 : 0, queue.exclusive ? 1 : 0,
            queue.autoDelete ? 1 : 0, arena.table(queue.arguments))
        try check(passive ? "inspecting queue '\(queue.name)'" : "declaring queue '\(queue.name)'", channel: channel)
        guard let ok else { throw AMQPError(.protocolError, "queue.declare-ok for '\(queue.name)' had no body") }
        return QueueInfo(
            name: Wire.string(ok.pointee.queue), messageCount: ok.pointee.message_count,
            consumerCount: ok.pointee.consumer_count)
    }

    func bind(_ binding: QueueBinding, channel: UInt16) throws(AMQPError) {
        defer { arena.reset() }
        amqp_queue_bind(
            state, channel, arena.bytes(binding.queue), arena.bytes(binding.exchange), arena.bytes(binding.bindingKey),
            arena.table(binding.arguments))
        try check(
            "binding queue '\(binding.queue)' to exchange '\(binding.exchange)' with key '\(binding.bindingKey)'",
            channel: channel)
    }

    func deleteQueue(_ name: String, channel: UInt16) throws(AMQPError) -> UInt32 {
        defer { arena.reset() }
        let ok = amqp_queue_delete(state, channel, arena.bytes(name), 0, 0)
        try check("deleting queue '\(name)'", channel: channel)
        return ok?.pointee.message_count ?? 0
    }

    func deleteExchange(_ name: String, channel: UInt16) throws(AMQPError) {
        defer { arena.reset() }
        amqp_exchange_delete(state, channel, arena.bytes(name), 0)
        try check("deleting exchange '\(name)'", channel: channel)
    }

    func setPrefetch(_ count: UInt16, channel: UInt16) throws(AMQPError) {
        amqp_basic_qos(state, channel, 0, count, 0)
        try check("setting prefetch \(count) on channel \(channel)", channel: channel)
    }

    func consume(
        queue: String, consumerTag: String, exclusive: Bool, arguments: AMQPTable, channel: UInt16
    )
        throws(AMQPError)
    {
        defer { arena.reset() }
        amqp_basic_consume(
            state, channel, arena.bytes(queue), arena.bytes(consumerTag), 0, 0, exclusive ? 1 : 0,
            arena.table(arguments))
        try check("consuming from queue '\(queue)'", channel: channel)
    }

    func cancel(consumerTag: String, channel: UInt16) throws(AMQPError) {
        defer { arena.reset() }
        amqp_basic_cancel(state, channel, arena.bytes(consumerTag))
        try check("cancelling consumer '\(consumerTag)'", channel: channel)
    }

    // MARK: Asynchronous sends (no reply expected; failures mean the connection is gone)

    func publish(_ message: OutboundMessage, channel: UInt16) -> Int32 {
        defer { arena.reset() }
        var properties = arena.properties(message.properties)
        return message.body.withUnsafeBytes { body in
            amqp_basic_publish(
                state, channel, arena.bytes(message.exchange), arena.bytes(message.routingKey),
                message.mandatory ? 1 : 0, 0, &properties,
                amqp_bytes_t(len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress)))
        }
    }

    func ack(_ tag: UInt64, multiple: Bool, channel: UInt16) -> Int32 {
        amqp_basic_ack(state, channel, tag, multiple ? 1 : 0)
    }

    func nack(_ tag: UInt64, multiple: Bool, requeue: Bool, channel: UInt16) -> Int32 {
        amqp_basic_nack(state, channel, tag, multiple ? 1 : 0, requeue ? 1 : 0)
    }

    func reject(_ tag: UInt64, requeue: Bool, channel: UInt16) -> Int32 {
        amqp_basic_reject(state, channel, tag, requeue ? 1 : 0)
    }

    func sendChannelCloseOK(_ channel: UInt16) {
        var ok = amqp_channel_close_ok_t()
        _ = amqp_send_method(state, channel, waybill_channel_close_ok, &ok)
    }

    func sendConnectionCloseOK() {
        var ok = amqp_connection_close_ok_t()
        _ = amqp_send_method(state, 0, waybill_connection_close_ok, &ok)
    }

    func sendCancelOK(consumerTag: String, channel: UInt16) {
        defer { arena.reset() }
        var ok = amqp_basic_cancel_ok_t(consumer_tag: arena.bytes(consumerTag))
        _ = amqp_send_method(state, channel, waybill_basic_cancel_ok, &ok)
    }

    static func serverReply(_ reply: amqp_rpc_reply_t) -> AMQPError.ServerReply? {
        guard let decoded = reply.reply.decoded else { return nil }
        if reply.reply.id == waybill_connection_close {
            return serverReply(connectionClose: decoded)
        }
        if reply.reply.id == waybill_channel_close {
            return serverReply(channelClose: decoded)
        }
        return nil
    }

    static func serverReply(channelClose decoded: UnsafeMutableRawPointer) -> AMQPError.ServerReply {
        let close = decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
        return AMQPError.ServerReply(
            code: close.reply_code, text: Wire.string(close.reply_text), classID: close.class_id,
            methodID: close.method_id)
    }

    static func serverReply(connectionClose decoded: UnsafeMutableRawPointer) -> AMQPError.ServerReply {
        let close = decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
        return AMQPError.ServerReply(
            code: close.reply_code, text: Wire.string(close.reply_text), classID: close.class_id,
            methodID: close.method_id)
    }
}

extension timeval {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(tv_sec: Int(max(0, seconds)), tv_usec: Int(max(0, attoseconds) / 1_000_000_000_000))
    }
}
