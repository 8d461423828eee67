import Foundation

/// Where and how to connect to RabbitMQ.
///
/// The password is never logged: ``description`` redacts it. Mapping environment variables or a password
/// file onto this struct is the worker's job; ``init(url:)`` parses `amqp://` and `amqps://` URLs, one or a
/// comma-separated list of a cluster's nodes.
public struct AMQPConfiguration: Sendable, CustomStringConvertible {
    /// One broker node: a host and a port.
    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        /// Host name or address.
        public var host: String
        /// Port (5672 for AMQP, 5671 for AMQPS by convention).
        public var port: Int

        /// Creates an endpoint.
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// `host:port`, with an IPv6 address in brackets.
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// TLS settings for `amqps://` connections.
    public struct TLS: Sendable, Hashable {
        /// PEM file of the certificate authorities that signed the broker's certificate; `nil` uses none,
        /// which only works with ``verifyPeer`` off.
        public var caCertificatePath: String?
        /// PEM client certificate for mutual TLS (needs ``clientKeyPath``).
        public var clientCertificatePath: String?
        /// PEM private key of the client certificate.
        public var clientKeyPath: String?
        /// Check the broker's certificate chain against the CA. Turn off only for local tests.
        public var verifyPeer: Bool
        /// Check that the broker's certificate names ``AMQPConfiguration/host``.
        public var verifyHostname: Bool

        /// Creates TLS settings; verification is on by default.
        public init(
            caCertificatePath: String? = nil, clientCertificatePath: String? = nil, clientKeyPath: String? = nil,
            verifyPeer: Bool = true, verifyHostname: Bool = true
        ) {
            self.caCertificatePath = caCertificatePath
            self.clientCertificatePath = clientCertificatePath
            self.clientKeyPath = clientKeyPath
            self.verifyPeer = verifyPeer
            self.verifyHostname = verifyHostname
        }
    }

    /// How the client waits between reconnect attempts: exponential backoff from ``initialDelay``,
    /// multiplied by ``multiplier`` after each failure, capped at ``maxDelay``; each wait is randomly
    /// shortened by up to half so that many workers do not reconnect in lockstep.
    public struct ReconnectPolicy: Sendable, Hashable {
        /// Wait before the first attempt after a connection is lost.
        public var initialDelay: Duration
        /// The longest wait between attempts.
        public var maxDelay: Duration
        /// Growth factor per failed attempt (at least 1).
        public var multiplier: Double

        /// Creates a policy: 100 ms, doubling, at most 30 s by default.
        public init(
            initialDelay: Duration = .milliseconds(100), maxDelay: Duration = .seconds(30), multiplier: Double = 2
        ) {
            self.initialDelay = initialDelay
            self.maxDelay = maxDelay
            self.multiplier = multiplier
        }

        /// The wait after `delay` failed again: `delay` times ``multiplier``, at most ``maxDelay``.
        public func delay(after delay: Duration) -> Duration {
            min(delay * max(1, multiplier), maxDelay)
        }

        /// `delay` shortened by a random share of up to half, so that many clients do not retry in lockstep.
        public func jittered(_ delay: Duration) -> Duration {
            delay * Double.random(in: 0.5...1)
        }
    }

    /// The broker's nodes (never empty): one for a single broker, several for a cluster. The client connects to one
    /// of them, the first time at a random one so that a pool's connections spread over the cluster; when a connection
    /// is lost or cannot be made it tries the next, in list order, before it backs off. Every node must serve the same
    /// vhost with the same user, as a cluster's nodes do.
    public var endpoints: [Endpoint]
    /// Virtual host, e.g. `/`.
    public var virtualHost: String
    /// User name.
    public var user: String
    /// Password. Never logged; ``description`` shows `***`.
    public var password: String
    /// Heartbeat interval in seconds proposed to the broker (5 by default, so a pool notices a vanished worker or
    /// broker within about 10 s); 0 disables heartbeats. Dead connections are noticed after about two intervals.
    public var heartbeatSeconds: Int
    /// Name shown in the broker's management UI and `rabbitmqctl list_connections`.
    public var connectionName: String
    /// TLS settings; `nil` means plain TCP.
    public var tls: TLS?
    /// Limit for opening the socket and the AMQP handshake.
    public var connectTimeout: Duration
    /// Limit for one synchronous operation (declare, bind, consume, close). Exceeding it counts as a lost
    /// connection.
    public var rpcTimeout: Duration
    /// Backoff between reconnect attempts.
    public var reconnect: ReconnectPolicy

    /// Creates a configuration; the defaults reach a local broker as `guest`.
    public init(
        host: String = "127.0.0.1", port: Int = 5672, virtualHost: String = "/", user: String = "guest",
        password: String = "guest", heartbeatSeconds: Int = 5, connectionName: String = "waybill", tls: TLS? = nil,
        connectTimeout: Duration = .seconds(10), rpcTimeout: Duration = .seconds(30),
        reconnect: ReconnectPolicy = ReconnectPolicy()
    ) {
        self.endpoints = [Endpoint(host: host, port: port)]
        self.virtualHost = virtualHost
        self.user = user
        self.password = password
        self.heartbeatSeconds = heartbeatSeconds
        self.connectionName = connectionName
        self.tls = tls
        self.connectTimeout = connectTimeout
        self.rpcTimeout = rpcTimeout
        self.reconnect = reconnect
    }

    /// Parses an AMQP URI as RabbitMQ documents it, or a comma-separated list of them, one per node of a cluster:
    /// `amqp://w@mq-1:5672/prod,amqp://w@mq-2:5672/prod`. The nodes of a list differ only in host and port: every
    /// URL must name the same scheme, user, password, vhost and parameters (a list that does not is refused, since
    /// the client would otherwise log in differently depending on the node it reached).
    public init(url: String) throws(AMQPError) {
        let urls = Self.splitList(url)
        guard let first = urls.first else {
            throw AMQPError(.invalidConfiguration, "no broker URL given: expected amqp://host:port/vhost")
        }
        try self.init(singleURL: first)
        for other in urls.dropFirst() {
            let node = try AMQPConfiguration(singleURL: other)
            guard node.sameLogin(as: self) else {
                throw AMQPError(
                    .invalidConfiguration,
                    "the URLs of a broker list differ in more than host and port: \(Self.redact(first)) and "
                        + "\(Self.redact(other)) (every node of a cluster takes the same user, vhost and parameters)")
            }
            guard !endpoints.contains(node.endpoints[0]) else {
                throw AMQPError(.invalidConfiguration, "the broker list names \(node.endpoints[0]) twice")
            }
            endpoints.append(node.endpoints[0])
        }
    }

    /// The URLs of a list: split at commas that begin another `amqp://` or `amqps://` URL (a comma elsewhere, say in
    /// a query value, stays), trimmed; empty parts are dropped.
    public static func splitList(_ text: String) -> [String] {
        var parts: [Substring] = []
        var start = text.startIndex
        var index = text.startIndex
        while let comma = text[index...].firstIndex(of: ",") {
            let rest = text[text.index(after: comma)...].drop { $0 == " " }.lowercased()
            if rest.hasPrefix("amqp://") || rest.hasPrefix("amqps://") {
                parts.append(text[start..<comma])
                start = text.index(after: comma)
            }
            index = text.index(after: comma)
        }
        parts.append(text[start...])
        return parts.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// Whether `other` logs in the same way (everything but the endpoints).
    private func sameLogin(as other: AMQPConfiguration) -> Bool {
        tls == other.tls && virtualHost == other.virtualHost
            && user == other.user && password == other.password && heartbeatSeconds == other.heartbeatSeconds
            && connectionName == other.connectionName && connectTimeout == other.connectTimeout
    }

    /// Parses one AMQP URI as RabbitMQ documents it:
    /// `amqp[s]://user:password@host:port/vhost?heartbeat=10&connection_name=w1`.
    ///
    /// The vhost is the percent-decoded path without its leading `/` (an empty path means `/`, so the
    /// default vhost is `amqp://host` or `amqp://host/%2F`). For `amqps` the query may name `cacertfile`,
    /// `certfile`, `keyfile` and `verify` (`verify_peer` or `verify_none`) and `verify_hostname`
    /// (`true`/`false`); `connection_timeout` is in milliseconds.
    private init(singleURL url: String) throws(AMQPError) {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            throw AMQPError(.invalidConfiguration, "not a URL: \(Self.redact(url))")
        }
        let secure: Bool
        switch scheme {
        case "amqp": secure = false
        case "amqps": secure = true
        default:
            throw AMQPError(
                .invalidConfiguration, "unsupported URL scheme '\(scheme)': use amqp:// or amqps://")
        }
        self.init()
        var host = components.host ?? ""
        if host.hasPrefix("["), host.hasSuffix("]") {
            // An IPv6 literal: the resolver takes it without the URL's brackets.
            host = String(host.dropFirst().dropLast())
        }
        endpoints = [
            Endpoint(host: host.isEmpty ? endpoints[0].host : host, port: components.port ?? (secure ? 5671 : 5672))
        ]
        if let user = components.user { self.user = user }
        if let password = components.password { self.password = password }
        let path = components.percentEncodedPath
        if path.isEmpty || path == "/" {
            virtualHost = "/"
        } else {
            let encoded = path.dropFirst()
            guard !encoded.contains("/"), let decoded = String(encoded).removingPercentEncoding else {
                throw AMQPError(
                    .invalidConfiguration,
                    "invalid vhost in URL \(Self.redact(url)): percent-encode '/' in a vhost as %2F")
            }
            virtualHost = decoded
        }
        var tls = secure ? TLS() : nil
        for item in components.queryItems ?? [] {
            let value = item.value ?? ""
            switch item.name {
            case "heartbeat":
                guard let seconds = Int(value), seconds >= 0 else {
                    throw AMQPError(.invalidConfiguration, "heartbeat must be whole seconds, got '\(value)'")
                }
                heartbeatSeconds = seconds
            case "connection_timeout":
                guard let milliseconds = Int(value), milliseconds > 0 else {
                    throw AMQPError(
                        .invalidConfiguration, "connection_timeout must be milliseconds, got '\(value)'")
                }
                connectTimeout = .milliseconds(milliseconds)
            case "connection_name", "name":
                connectionName = value
            case "cacertfile": tls?.caCertificatePath = value
            case "certfile": tls?.clientCertificatePath = value
            case "keyfile": tls?.clientKeyPath = value
            case "verify":
                switch value {
                case "verify_peer": tls?.verifyPeer = true
                case "verify_none":
                    tls?.verifyPeer = false
                    tls?.verifyHostname = false
                default:
                    throw AMQPError(
                        .invalidConfiguration, "verify must be verify_peer or verify_none, got '\(value)'")
                }
            case "verify_hostname":
                tls?.verifyHostname = value != "false"
            default:
                throw AMQPError(.invalidConfiguration, "unknown AMQP URL parameter '\(item.name)'")
            }
        }
        self.tls = tls
    }

    /// The settings without the password, for logs.
    public var description: String {
        let scheme = tls == nil ? "amqp" : "amqps"
        return
            "\(scheme)://\(user):***@\(endpoints.map(\.description).joined(separator: ","))/ vhost=\(virtualHost) heartbeat=\(heartbeatSeconds)s name=\(connectionName)"
    }

    /// A URL with any password replaced by `***`.
    static func redact(_ url: String) -> String {
        guard var components = URLComponents(string: url) else { return "<unparseable URL>" }
        if components.password != nil { components.password = "***" }
        return components.string ?? "<unparseable URL>"
    }

    /// Whether a URL, or any URL of a list, carries a password. Read without a URL parser, like ``redacted(_:)``.
    public static func hasPassword(_ text: String) -> Bool {
        splitList(text).contains { userInfo(of: $0)?.contains(":") ?? false }
    }

    /// A URL, or a list of them, with every password replaced by `***`, for logs and messages. Read without a URL
    /// parser, so a URL that one would reject (user info with characters it refuses) is still redacted.
    public static func redacted(_ text: String) -> String {
        splitList(text).map { url in
            guard let info = userInfo(of: url), let colon = info.firstIndex(of: ":") else { return url }
            return url.replacingCharacters(in: info.index(after: colon)..<info.endIndex, with: "***")
        }.joined(separator: ",")
    }

    /// The user info of a URL: between `://` and the last `@` of the authority.
    private static func userInfo(of url: String) -> Substring? {
        guard let scheme = url.range(of: "://") else { return nil }
        let authority = url[scheme.upperBound...].prefix { $0 != "/" }
        guard let at = authority.lastIndex(of: "@") else { return nil }
        return authority[..<at]
    }
}
