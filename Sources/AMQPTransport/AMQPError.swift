import CodedError

/// An error of the AMQP transport: a stable ``Code`` to branch on, a message for people, and the cause
/// (``serverReply``, the broker's reply, or ``libraryStatus``, rabbitmq-c's status) when there is one.
///
/// Credentials never appear in ``message`` or ``description``.
public struct AMQPError: Error, Sendable, CustomStringConvertible {
    /// A stable, machine-readable kind of failure (`amqp.<snake_case>`), declared in
    /// `extension ErrorCode where Domain == AMQPErrorDomain`. Compare codes, not messages.
    public typealias Code = ErrorCode<AMQPErrorDomain>

    /// The broker's reply when it closed a channel or the connection.
    public struct ServerReply: Sendable, Equatable, CustomStringConvertible {
        /// AMQP reply code, e.g. 404 (not found), 406 (precondition failed), 320 (connection forced).
        public var code: UInt16
        /// The broker's explanation, e.g. `NOT_FOUND - no exchange 'x' in vhost '/'`.
        public var text: String
        /// The AMQP class of the method that failed (0 when not method-specific).
        public var classID: UInt16
        /// The AMQP method that failed (0 when not method-specific).
        public var methodID: UInt16

        /// Creates a server reply.
        public init(code: UInt16, text: String, classID: UInt16 = 0, methodID: UInt16 = 0) {
            self.code = code
            self.text = text
            self.classID = classID
            self.methodID = methodID
        }

        /// `404 NOT_FOUND - ...`.
        public var description: String { "\(code) \(text)" }
    }

    /// A status code of rabbitmq-c and its text (from `amqp_error_string2`).
    public struct LibraryStatus: Sendable, Equatable, CustomStringConvertible {
        /// The (negative) `amqp_status_enum` value.
        public var code: Int32
        /// rabbitmq-c's description of the status.
        public var text: String

        /// Creates a library status.
        public init(code: Int32, text: String) {
            self.code = code
            self.text = text
        }

        /// `a socket error occurred (-9)`.
        public var description: String { "\(text) (\(code))" }
    }

    /// What kind of failure this is.
    public var code: Code
    /// What went wrong and, where it helps, how to fix it.
    public var message: String
    /// The broker's reply, when the broker closed a channel or the connection.
    public var serverReply: ServerReply?
    /// rabbitmq-c's status, when the library reported the failure.
    public var libraryStatus: LibraryStatus?

    /// Creates an error.
    public init(
        _ code: Code, _ message: String, serverReply: ServerReply? = nil, libraryStatus: LibraryStatus? = nil
    ) {
        self.code = code
        self.message = message
        self.serverReply = serverReply
        self.libraryStatus = libraryStatus
    }

    /// One line: code, message and cause.
    public var description: String {
        var text = "\(code): \(message)"
        if let serverReply { text += " (broker: \(serverReply))" }
        if let libraryStatus { text += " (rabbitmq-c: \(libraryStatus))" }
        return text
    }
}

extension AMQPError: Hashable {
    /// Errors are equal when code, message and causes are equal.
    public static func == (lhs: AMQPError, rhs: AMQPError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message && lhs.serverReply == rhs.serverReply
            && lhs.libraryStatus == rhs.libraryStatus
    }

    /// Hashes the code and message.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(message)
    }
}

/// The AMQP transport's error family: the domain of ``AMQPError/Code``, whose codes are `amqp.<snake_case>`.
public enum AMQPErrorDomain: ErrorDomain {}

/// The transport's codes: the raw values (`amqp.<snake_case>`) are stable and may appear in logs.
extension ErrorCode where Domain == AMQPErrorDomain {
    /// The TCP or TLS connection to the broker could not be opened.
    public static let connectionFailed = Self(rawValue: "amqp.connection_failed")
    /// The broker refused the user name or password, or the user may not use the virtual host.
    public static let authenticationFailed = Self(rawValue: "amqp.authentication_failed")
    /// The broker closed the connection (connection.close), e.g. an operator forced it or the node stops.
    public static let connectionClosed = Self(rawValue: "amqp.connection_closed")
    /// The connection broke (socket error, missed heartbeats, RPC timeout).
    public static let connectionLost = Self(rawValue: "amqp.connection_lost")
    /// The broker closed a channel because of an error in an operation (e.g. 404 for a missing exchange,
    /// 406 for a queue redeclared with other arguments). The client has reopened the channel.
    public static let channelClosed = Self(rawValue: "amqp.channel_closed")
    /// The operation needs a live connection and the client is reconnecting.
    public static let notConnected = Self(rawValue: "amqp.not_connected")
    /// The client was closed; it accepts no more work.
    public static let clientClosed = Self(rawValue: "amqp.client_closed")
    /// A configuration value or URL is invalid.
    public static let invalidConfiguration = Self(rawValue: "amqp.invalid_configuration")
    /// An argument cannot be sent over AMQP (e.g. a name longer than 255 bytes).
    public static let invalidArgument = Self(rawValue: "amqp.invalid_argument")
    /// The broker cancelled a consumer (its queue was deleted or failed over).
    public static let consumerCancelled = Self(rawValue: "amqp.consumer_cancelled")
    /// The broker or the library sent something this client does not understand.
    public static let protocolError = Self(rawValue: "amqp.protocol_error")
}
