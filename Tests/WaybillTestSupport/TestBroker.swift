import AMQPTransport
import ChildProcess
import Foundation
import Logging
import Testing

/// The private RabbitMQ that `scripts/test` starts, as every broker test finds it.
///
/// Suites that need it are enabled with `.enabled(if: TestBroker.isConfigured, TestBroker.skipReason)`: they are
/// skipped, with that reason, when `WAYBILL_TEST_AMQP_URL` is unset or empty; when it is set, an unreachable broker
/// fails them (nothing here checks reachability first).
public enum TestBroker {
    /// `WAYBILL_TEST_AMQP_URL` (credentials included), or `nil` when it is unset or empty.
    public static let url = ProcessInfo.processInfo.environment["WAYBILL_TEST_AMQP_URL"].flatMap {
        $0.isEmpty ? nil : $0
    }

    /// Whether broker tests should run.
    public static var isConfigured: Bool { url != nil }

    /// Why broker tests are skipped, and how to run them.
    public static let skipReason = Comment(
        rawValue: "WAYBILL_TEST_AMQP_URL is not set: run ./scripts/test (it starts a private RabbitMQ), or eval "
            + "\"$(scripts/rabbitmq env)\" first, to run broker tests")

    /// `scripts/rabbitmq` of this repository, or whatever a non-empty `WAYBILL_TEST_RABBITMQ_SCRIPT` names (the
    /// script of the checkout whose broker runs).
    public static let script =
        ProcessInfo.processInfo.environment["WAYBILL_TEST_RABBITMQ_SCRIPT"].flatMap { $0.isEmpty ? nil : $0 }
        ?? Repository.root.appendingPathComponent("scripts/rabbitmq").path

    /// A client configuration with a connection name of its own (so the broker CLI can close exactly this test's
    /// connections) and quick reconnects. Throws, failing the test, when the broker is not configured.
    public static func configuration(_ name: String) throws -> AMQPConfiguration {
        var configuration = try AMQPConfiguration(url: try #require(url))
        configuration.connectionName = name
        configuration.reconnect = .init(initialDelay: .milliseconds(50), maxDelay: .seconds(1))
        return configuration
    }

    /// Settings for a client named `name` that reaches the test broker through `link` (a relay to this broker).
    public static func configuration(_ name: String, through link: FaultyLink) throws -> AMQPConfiguration {
        var configuration = try configuration(name)
        configuration.endpoints = [AMQPConfiguration.Endpoint(host: "127.0.0.1", port: Int(link.port))]
        return configuration
    }

    /// A relay to the test broker, for faults the broker cannot be asked for (see ``FaultyLink``).
    public static func faultyLink() throws -> FaultyLink {
        try FaultyLink(brokerPort: UInt16(try configuration("unused").endpoints[0].port))
    }

    /// A connected client named `name`; the caller closes it.
    public static func connectedClient(_ name: String) async throws -> AMQPClient {
        let client = try AMQPClient(configuration: try configuration(name), logger: logger("amqp"))
        try await client.connect()
        return client
    }

    /// A logger labelled `waybill.test.<label>`: quiet unless `WAYBILL_TEST_LOG` is set (then everything).
    public static func logger(_ label: String) -> Logger {
        var logger = Logger(label: "waybill.test.\(label)")
        logger.logLevel = ProcessInfo.processInfo.environment["WAYBILL_TEST_LOG"] == nil ? .critical : .trace
        return logger
    }

    /// A queue or exchange name no other test run uses: `waybill.test.<prefix>.<8 hex digits>`.
    public static func unique(_ prefix: String) -> String {
        "waybill.test.\(prefix).\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// The test URL split into a URL without the password and the password, as `waybill` reads them
    /// (`WAYBILL_AMQP_URL`, `WAYBILL_AMQP_PASSWORD`).
    public static func urlAndPassword() throws -> (url: String, password: String?) {
        let url = try #require(url)
        guard let scheme = url.range(of: "://") else { return (url, nil) }
        let authority = url[scheme.upperBound...].prefix { $0 != "/" }
        guard let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") else {
            return (url, nil)
        }
        let password = String(authority[authority.index(after: colon)..<at]).removingPercentEncoding
        var stripped = url
        stripped.removeSubrange(colon..<at)
        return (stripped, password)
    }

    /// Runs ``script`` with `arguments` (killed after 5 minutes) and returns whether it exited 0 and what it printed.
    public static func runScript(_ arguments: [String]) async throws -> (succeeded: Bool, output: String) {
        let (termination, output) = try await ChildProcess.run(script, arguments: arguments, timeout: .seconds(300))
        return (termination == .exited(0), output)
    }

    /// Asks the broker to close every connection with this client-provided name, as an operator would; records an
    /// issue when the script fails.
    public static func forceClose(connectionName: String) async throws {
        let (succeeded, output) = try await runScript(["close-connections", connectionName, "closed by a test"])
        #expect(succeeded, "scripts/rabbitmq close-connections failed: \(output)")
    }
}
