import AMQPTransport
import ChildProcess
import Foundation
import Logging

/// The project's private RabbitMQ node, driven through `scripts/rabbitmq` (node `waybill-test@localhost`, data in
/// `.rabbitmq/`, AMQP on 127.0.0.1:35672), so the demo never touches a system broker.
public struct PrivateBroker: Sendable {
    /// The `scripts/rabbitmq` path.
    public var script: String
    /// The AMQP port the script uses (`WAYBILL_RABBITMQ_PORT`, default 35672).
    public var port: Int

    /// The private broker's address for `virtualHost` as the guest user (only allowed from 127.0.0.1).
    public func address(virtualHost: String = "/") -> BrokerAddress {
        PrivateBroker.address(port: port, virtualHost: virtualHost)
    }

    /// The address of a private broker on `port`, whether or not the script is around.
    public static func address(port: Int, virtualHost: String = "/") -> BrokerAddress {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let path =
            virtualHost == "/"
            ? "/" : "/" + (virtualHost.addingPercentEncoding(withAllowedCharacters: allowed) ?? virtualHost)
        return BrokerAddress(url: "amqp://guest@127.0.0.1:\(port)\(path)", password: "guest")
    }

    /// The private broker's port from the environment (`WAYBILL_RABBITMQ_PORT`), default 35672.
    public static func port(environment: [String: String]) -> Int {
        environment["WAYBILL_RABBITMQ_PORT"].flatMap(Int.init) ?? 35672
    }

    /// Finds the script: `WAYBILL_RABBITMQ_SCRIPT`, else `scripts/rabbitmq` under the working directory; `nil` when
    /// neither exists (the demo then needs a broker that already runs).
    public static func locate(environment: [String: String]) -> PrivateBroker? {
        BrokerScript.locate(environment["WAYBILL_RABBITMQ_SCRIPT"], else: "scripts/rabbitmq").map {
            PrivateBroker(script: $0, port: port(environment: environment))
        }
    }

    /// `scripts/rabbitmq start`: starts the node (idempotent) and waits until it accepts connections. The script's
    /// output goes to `output`, line by line.
    public func start(output: @Sendable (String) -> Void) async throws {
        try await runner.run(["start"], output: output)
    }

    /// `scripts/rabbitmq stop`.
    public func stop(output: @Sendable (String) -> Void) async throws {
        try await runner.run(["stop"], output: output)
    }

    /// Creates `name` and gives `guest` every permission on it, through `scripts/rabbitmq ctl`; an existing vhost is
    /// kept.
    public func ensureVirtualHost(_ name: String, output: @Sendable (String) -> Void) async throws {
        let existing = try await runner.capture(["ctl", "-q", "list_vhosts", "--no-table-headers"])
        if !existing.split(separator: "\n").contains(where: { $0.trimmingCharacters(in: .whitespaces) == name }) {
            try await runner.run(["ctl", "-q", "add_vhost", name], output: output)
        }
        try await runner.run(["ctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"], output: output)
    }

    private var runner: BrokerScript { BrokerScript(path: script) }
}

/// A broker script (`scripts/rabbitmq`, `scripts/rabbitmq-cluster`) run as a child process.
struct BrokerScript: Sendable {
    var path: String

    /// The first of `configured` and `fallback` (relative to the working directory) that is an executable file, as an
    /// absolute path.
    static func locate(_ configured: String?, else fallback: String) -> String? {
        for candidate in [configured, fallback].compactMap({ $0 })
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate.hasPrefix("/")
                ? candidate
                : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(candidate)
        }
        return nil
    }

    /// Runs the script; its output goes to `output`, line by line.
    func run(_ arguments: [String], output: @Sendable (String) -> Void) async throws {
        let text = try await capture(arguments)
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) { output(String(line)) }
    }

    /// Runs the script and returns its output; ``ChildProcess`` spawns it with the output in a temporary file,
    /// because the script leaves daemons behind (the node, epmd) that inherit its descriptors.
    func capture(_ arguments: [String]) async throws -> String {
        let termination: ChildProcess.Termination
        let text: String
        do {
            (termination, text) = try await ChildProcess.run(path, arguments: arguments)
        } catch let error as ChildProcessError {
            throw DemoError(
                .brokerScriptFailed, "\(path) \(arguments.joined(separator: " ")) could not run", cause: error)
        }
        guard termination == .exited(0) else {
            throw DemoError(
                .brokerScriptFailed, "\(path) \(arguments.joined(separator: " ")) failed (\(termination)):\n\(text)")
        }
        return text
    }
}

/// The private three-node RabbitMQ cluster of `scripts/rabbitmq-cluster` (nodes `waybill-c1@localhost` to
/// `waybill-c3@localhost` on loopback), for the chaos run's cluster mode.
public struct PrivateCluster: Sendable {
    /// The `scripts/rabbitmq-cluster` path.
    public var script: String

    /// The cluster's node count.
    public static let nodeCount = 3

    /// Creates a handle on the script at `script`.
    public init(script: String) {
        self.script = script
    }

    /// Finds the script: `WAYBILL_CLUSTER_SCRIPT`, else `scripts/rabbitmq-cluster` under the working directory.
    public static func locate(environment: [String: String]) -> PrivateCluster? {
        BrokerScript.locate(environment["WAYBILL_CLUSTER_SCRIPT"], else: "scripts/rabbitmq-cluster").map {
            PrivateCluster(script: $0)
        }
    }

    private var runner: BrokerScript { BrokerScript(path: script) }

    /// Makes a fresh cluster (earlier cluster data is wiped), with `virtualHost` usable by `guest`, and returns its
    /// address: every node's URL, comma-separated.
    public func start(virtualHost: String, output: @Sendable (String) -> Void) async throws -> BrokerAddress {
        try await runner.run(["start"], output: output)
        try await runner.run(["node", "1", "ctl", "-q", "add_vhost", virtualHost], output: output)
        try await runner.run(
            ["node", "1", "ctl", "-q", "set_permissions", "-p", virtualHost, "guest", ".*", ".*", ".*"],
            output: output)
        let url = try await runner.capture(["url", virtualHost]).trimmingCharacters(in: .whitespacesAndNewlines)
        return BrokerAddress(url: url, password: "guest")
    }

    /// Stops every node.
    public func stop(output: @Sendable (String) -> Void) async throws {
        try await runner.run(["stop"], output: output)
    }

    /// SIGKILLs node `node` (1-based), as a crash would.
    func kill(node: Int, output: @Sendable (String) -> Void) async throws {
        try await runner.run(["kill", String(node)], output: output)
    }

    /// Starts node `node` again; it rejoins the cluster.
    func start(node: Int, output: @Sendable (String) -> Void) async throws {
        try await runner.run(["node", String(node), "start"], output: output)
    }

    /// Every client connection of the cluster: its client-provided name and the node (1-based) it is connected to.
    func connections() async throws -> [(name: String, node: Int)] {
        try await runner.capture(["connections"]).split(separator: "\n").compactMap { line in
            let fields = line.split(separator: "\t", maxSplits: 1)
            guard fields.count == 2, let node = Int(fields[0]) else { return nil }
            return (String(fields[1]), node)
        }
    }

    /// The node (1-based) leading each quorum queue of `virtualHost`, as a running node reports it.
    func leaders(virtualHost: String) async throws -> [String: Int] {
        let text = try await runner.capture(["leaders", virtualHost])
        var leaders: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: "\t")
            guard fields.count == 2, let node = Self.nodeNumber(String(fields[1])) else { continue }
            leaders[String(fields[0])] = node
        }
        return leaders
    }

    /// `waybill-c2@localhost` → 2.
    static func nodeNumber(_ name: String) -> Int? {
        guard name.hasPrefix("waybill-c"), let at = name.firstIndex(of: "@") else { return nil }
        return Int(name[name.index(name.startIndex, offsetBy: 9)..<at])
    }
}

extension BrokerAddress {
    /// Whether a connection to this address opens (and closes it again).
    public func isReachable(logger: Logger) async -> Bool {
        guard var configuration = try? amqpConfiguration(name: "waybill-demo-probe") else { return false }
        configuration.connectTimeout = .seconds(3)
        guard let client = try? AMQPClient(configuration: configuration, logger: logger) else { return false }
        do {
            try await client.connect()
            await client.close()
            return true
        } catch {
            await client.close()
            return false
        }
    }
}
