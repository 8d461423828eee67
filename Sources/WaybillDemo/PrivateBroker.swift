import AMQPTransport
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

    /// Runs the script and returns its output.
    ///
    /// The script leaves daemons behind (the node, epmd) that inherit its descriptors, so the output goes through a
    /// temporary file (a pipe would never reach its end), and the script is spawned and reaped with `posix_spawn` and
    /// `waitpid` on a thread of its own (Foundation's `Process` missed its exit when it left daemons behind).
    private func capture(_ arguments: [String]) async throws -> String {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent(
            "waybill-rabbitmq-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
        ).path
        defer { unlink(output) }
        let script = script
        let status = try await withCheckedThrowingContinuation { continuation in
            // waitpid blocks: it gets a thread of its own rather than one of the concurrency pool's.
            let thread = Thread {
                continuation.resume(with: Result { try ChildProcess.run(script, arguments: arguments, output: output) })
            }
            thread.name = "waybill-rabbitmq-script"
            thread.start()
        }
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw DemoError(
                .brokerScriptFailed, "\(script) \(arguments.joined(separator: " ")) failed (exit \(status)):\n\(text)")
        }
        return text
    }
}

/// Spawning a program and waiting for it with the C library, independent of Foundation's child monitoring.
enum ChildProcess {
    /// Runs `path` with `arguments`, stdin from /dev/null and stdout and stderr appended to the file `output`;
    /// returns its exit status (128 + signal when a signal ended it).
    static func run(_ path: String, arguments: [String], output: String) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard spawned == 0 else {
            throw DemoError(.brokerScriptFailed, "cannot run \(path): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else {
                throw DemoError(.brokerScriptFailed, "lost track of \(path): \(String(cString: strerror(errno)))")
            }
        }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
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
