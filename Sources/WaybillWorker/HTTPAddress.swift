import CodedError

/// A `host:port` to serve or reach HTTP on: `127.0.0.1:9464`, `0.0.0.0:9464`, `[::1]:9464`, `localhost:9464`.
public struct HTTPAddress: Sendable, Hashable, CustomStringConvertible {
    /// The host name or IP address, without brackets.
    public var host: String
    /// The TCP port; 0 asks the system for a free one when serving.
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Reads `host:port`; the error says what is wrong and shows the expected form.
    public init(parsing text: String) throws(ConfigurationError) {
        let hint = "expected host:port, e.g. 127.0.0.1:9464 or 0.0.0.0:9464, got '\(text)'"
        guard let colon = text.lastIndex(of: ":") else { throw ConfigurationError(.badValue, hint) }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains(where: \.isWhitespace),
            let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port)
        else { throw ConfigurationError(.badValue, hint) }
        self.init(host: host, port: port)
    }

    /// Where a client on this host reaches a server bound here: a wildcard address (`0.0.0.0`, `::`) is reached on
    /// loopback.
    public var reachable: HTTPAddress {
        switch host {
        case "0.0.0.0", "": HTTPAddress(host: "127.0.0.1", port: port)
        case "::": HTTPAddress(host: "::1", port: port)
        default: self
        }
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
