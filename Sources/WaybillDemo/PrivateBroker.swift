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
        let candidates = [environment["WAYBILL_RABBITMQ_SCRIPT"], "scripts/rabbitmq"].compactMap { $0 }
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate) {
            let absolute =
                candidate.hasPrefix("/")
                ? candidate
                : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(candidate)
            return PrivateBroker(script: absolute, port: port(environment: environment))
        }
        return nil
    }

    /// `scripts/rabbitmq start`: starts the node (idempotent) and waits until it accepts connections. The script's
    /// output goes to `output`, line by line.
    public func start(output: @Sendable (String) -> Void) async throws {
        try await run(["start"], output: output)
    }

    /// `scripts/rabbitmq stop`.
    public func stop(output: @Sendable (String) -> Void) async throws {
        try await run(["stop"], output: output)
    }

    /// Creates `name` and gives `guest` every permission on it, through `scripts/rabbitmq ctl`; an existing vhost is
    /// kept.
    public func ensureVirtualHost(_ name: String, output: @Sendable (String) -> Void) async throws {
        let existing = try await capture(["ctl", "-q", "list_vhosts", "--no-table-headers"])
        if !existing.split(separator: "\n").contains(where: { $0.trimmingCharacters(in: .whitespaces) == name }) {
            try await run(["ctl", "-q", "add_vhost", name], output: output)
        }
        try await run(["ctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"], output: output)
    }

    private func run(_ arguments: [String], output: @Sendable (String) -> Void) async throws {
        let text = try await capture(arguments)
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) { output(String(line)) }
    }

    /// Runs the script and returns its output; ``ChildProcess`` spawns it with the output in a temporary file,
    /// because the script leaves daemons behind (the node, epmd) that inherit its descriptors.
    private func capture(_ arguments: [String]) async throws -> String {
        let termination: ChildProcess.Termination
        let text: String
        do {
            (termination, text) = try await ChildProcess.run(script, arguments: arguments)
        } catch let error as ChildProcessError {
            throw DemoError(
                .brokerScriptFailed, "\(script) \(arguments.joined(separator: " ")) could not run", cause: error)
        }
        guard termination == .exited(0) else {
            throw DemoError(
                .brokerScriptFailed, "\(script) \(arguments.joined(separator: " ")) failed (\(termination)):\n\(text)")
        }
        return text
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
