import Foundation
import Synchronization

/// A child process started with `posix_spawn` and reaped by `waitpid` on a thread of its own.
///
/// Foundation's `Process` is not used: on Linux its `waitUntilExit()` was seen to miss a child's exit (the child
/// stayed a zombie and the test hung), and a blocking wait must not take one of the few cooperative threads.
final class ChildProcess: Sendable {
    /// How a child ended.
    enum Termination: Sendable, Hashable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        var description: String {
            switch self {
            case .exited(let code): "exit \(code)"
            case .signaled(let signal): "signal \(signal)"
            }
        }
    }

    let pid: pid_t
    private let termination: Mutex<Termination?>

    /// Starts `executable` with `arguments` and exactly `environment`; stdin is `/dev/null`, stdout and stderr are
    /// appended to `output`.
    init(executable: String, arguments: [String], environment: [String: String], output: String) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv + envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard result == 0 else {
            throw ChildProcessError(message: "cannot start \(executable): \(String(cString: strerror(result)))")
        }
        self.pid = pid
        termination = Mutex(nil)
        let reaper = Thread { [self] in
            var status: Int32 = 0
            while waitpid(self.pid, &status, 0) == -1 && errno == EINTR {}
            let signal = status & 0x7f
            let ended: Termination = signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
            self.termination.withLock { $0 = ended }
        }
        reaper.name = "reaper-\(pid)"
        reaper.start()
    }

    /// How the process ended, or `nil` while it runs.
    var ended: Termination? { termination.withLock { $0 } }

    /// Waits until the process has ended.
    @discardableResult
    func waitForExit(seconds: Double = 60) async throws -> Termination {
        try await eventually("process \(pid) to exit", seconds: seconds) { [self] in ended != nil }
        return ended!
    }

    /// Sends `signal` unless the process has already ended.
    func send(_ signal: Int32) {
        if ended == nil { _ = kill(pid, signal) }
    }

    /// Runs a command to its end and returns how it ended and what it printed.
    static func run(
        _ executable: String, _ arguments: [String], seconds: Double = 300
    ) async throws -> (
        termination: Termination, output: String
    ) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-child-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: output) }
        let child = try ChildProcess(
            executable: executable, arguments: arguments, environment: ProcessInfo.processInfo.environment,
            output: output.path)
        let termination = try await child.waitForExit(seconds: seconds)
        return (termination, (try? String(contentsOf: output, encoding: .utf8)) ?? "")
    }
}

struct ChildProcessError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
