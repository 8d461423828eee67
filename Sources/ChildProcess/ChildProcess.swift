import CodedError
import Foundation
import Synchronization

/// A program started as a child of this process: `posix_spawn` starts it, a thread of its own reaps it with `waitid`
/// and `waitpid`, and async callers wait for its end through continuations.
///
/// This is the one way Waybill starts programs (the benchmark's worker, `scripts/rabbitmq`, the CLI and worker in
/// tests). Foundation's `Process` is not used: on Linux it was seen to miss a child's exit when the child left
/// daemons behind (the script stayed a zombie and the caller hung). Standard input is `/dev/null`; standard output and
/// standard error go to one file, never a pipe, because a daemon the child leaves behind inherits the descriptors and
/// a pipe would never reach its end. The child starts with every signal unblocked and at its default action, whatever
/// the spawning thread had. Waiting never blocks a thread of the concurrency pool.
///
/// The process is reaped when it ends even if nobody waits; keep the value while the process runs, or it cannot be
/// signalled any more.
public final class ChildProcess: Sendable {
    /// How a child ended.
    public enum Termination: Sendable, Hashable, CustomStringConvertible {
        /// It returned or called `exit` with this status.
        case exited(Int32)
        /// This signal ended it.
        case signaled(Int32)

        /// The status a shell would report: the exit status, or 128 + the signal number.
        public var shellStatus: Int32 {
            switch self {
            case .exited(let code): code
            case .signaled(let signal): 128 + signal
            }
        }

        /// `exit 3` or `signal 9`.
        public var description: String {
            switch self {
            case .exited(let code): "exit \(code)"
            case .signaled(let signal): "signal \(signal)"
            }
        }
    }

    /// The child's process id; it names this child only while ``ended`` is `nil`.
    public let pid: pid_t
    /// The program that was started, for messages.
    public let executable: String

    private let state = Mutex(State())

    private struct State {
        var termination: Termination?
        var waiters: [UInt64: CheckedContinuation<Termination?, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    /// Starts `executable` (a path; `PATH` is not searched) with `arguments` and exactly `environment`, in
    /// `workingDirectory` when given. Standard output and standard error are appended to the file `output`, which is
    /// created (mode 0644) when missing.
    public init(
        executable: String, arguments: [String] = [],
        environment: [String: String] = ProcessInfo.processInfo.environment, workingDirectory: String? = nil,
        output: String
    ) throws(ChildProcessError) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        if let workingDirectory {
            guard let addChdir = Self.addChdir else {
                throw ChildProcessError(
                    .cannotStart,
                    "cannot start \(executable) in \(workingDirectory): this C library has no "
                        + "posix_spawn_file_actions_addchdir_np (glibc 2.29 or later has it); start it without a "
                        + "working directory")
            }
            _ = addChdir(&actions, workingDirectory)
        }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv + envp { free(pointer) }
        }
        // The spawning thread may be one of the concurrency pool's, which block most signals: without this the
        // child would inherit that mask and ignore SIGTERM. Every signal starts unblocked and with its default action.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        posix_spawnattr_setsigmask(&attributes, &unblocked)
        var defaulted = sigset_t()
        sigfillset(&defaulted)
        posix_spawnattr_setsigdefault(&attributes, &defaulted)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        var result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        // ETXTBSY: the program was just written (a script a test made) and a child another thread is spawning at
        // this moment inherited the writer's descriptor until it execs. That child lets go within moments, so the
        // spawn is tried again a few times before it counts as a failure.
        var busyRetries = 0
        while result == ETXTBSY && busyRetries < 10 {
            busyRetries += 1
            usleep(useconds_t(5_000 * busyRetries))
            result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        }
        guard result == 0 else {
            throw ChildProcessError(
                .cannotStart,
                "cannot start \(executable); check that it exists, is "
                    + "executable, and that the output file \(output) and working directory can be opened",
                cause: POSIXError(result))
        }
        self.pid = pid
        self.executable = executable
        let reaper = Thread { [self] in reap() }
        reaper.name = "reaper-\(pid)"
        reaper.start()
    }

    /// glibc declares `posix_spawn_file_actions_addchdir_np` only for `_GNU_SOURCE`, which the Swift overlay does not
    /// define, so it is looked up at run time; `nil` when the C library lacks it.
    private static let addChdir:
        (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32)? = {
            guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addchdir_np") else { return nil }
            return unsafeBitCast(
                symbol,
                to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32)
                    .self)
        }()

    /// Runs on the reaper thread: waits for the end without reaping (so ``send(_:)`` cannot signal a reused pid), then
    /// reaps under the lock and resumes every waiter.
    private func reap() {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == -1 && errno == EINTR {}
        let waiters = state.withLock { state in
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            let signal = status & 0x7f
            let termination: Termination = signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
            state.termination = termination
            defer { state.waiters.removeAll() }
            return state.waiters.values.map { ($0, termination) }
        }
        for (waiter, termination) in waiters { waiter.resume(returning: termination) }
    }

    /// How the process ended, or `nil` while it runs.
    public var ended: Termination? { state.withLock { $0.termination } }

    /// Sends `signal` (`SIGTERM`, `SIGKILL`, ...) unless the process has already ended; does not wait for the end.
    public func send(_ signal: Int32) {
        state.withLock { state in
            if state.termination == nil { _ = kill(pid, signal) }
        }
    }

    /// Waits until the process has ended, however long that takes.
    ///
    /// Throws `CancellationError` when the waiting task is cancelled; the process keeps running.
    @discardableResult
    public func waitForExit() async throws -> Termination {
        guard let termination = await termination() else { throw CancellationError() }
        return termination
    }

    /// Waits until the process has ended or `timeout` has passed; `nil` means it still runs.
    ///
    /// Throws `CancellationError` when the waiting task is cancelled; the process keeps running either way.
    public func waitForExit(timeout: Duration) async throws -> Termination? {
        let first = await withTaskGroup(of: Termination?.self) { group in
            group.addTask { await self.termination() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            return await group.next() ?? nil
        }
        try Task.checkCancellation()
        return first ?? ended
    }

    /// The termination, or `nil` once the calling task is cancelled.
    private func termination() async -> Termination? {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let immediate: Termination?? = state.withLock { state in
                    if let termination = state.termination { return .some(termination) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiters[id] = continuation
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
        }
    }

    /// Runs a program to its end and returns how it ended and everything it printed (standard output and standard
    /// error interleaved).
    ///
    /// The output goes through a temporary file, so a program that leaves daemons behind (`scripts/rabbitmq start`)
    /// still returns. After `timeout`, or when the calling task is cancelled, the program gets `SIGKILL` and this
    /// throws: a ``ChildProcessError`` with code ``ChildProcessError/Code/timedOut``, or `CancellationError`.
    public static func run(
        _ executable: String, arguments: [String] = [],
        environment: [String: String] = ProcessInfo.processInfo.environment, workingDirectory: String? = nil,
        timeout: Duration? = nil
    ) async throws -> (termination: Termination, output: String) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent(
            "waybill-child-\(UUID().uuidString).log"
        ).path
        let descriptor = open(output, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard descriptor >= 0 else {
            let code = errno
            throw ChildProcessError(
                .cannotStart,
                "cannot create \(output) for the output of \(executable); check that the temporary directory "
                    + "is writable (TMPDIR)",
                cause: POSIXError(code))
        }
        close(descriptor)
        defer { unlink(output) }
        let child = try ChildProcess(
            executable: executable, arguments: arguments, environment: environment,
            workingDirectory: workingDirectory, output: output)
        let termination: Termination?
        do {
            if let timeout {
                termination = try await child.waitForExit(timeout: timeout)
            } else {
                termination = try await child.waitForExit()
            }
        } catch {
            child.send(SIGKILL)
            throw error
        }
        guard let termination else {
            child.send(SIGKILL)
            throw ChildProcessError(
                .timedOut,
                "\(executable) \(arguments.joined(separator: " ")) did not end within \(timeout ?? .zero) and was "
                    + "killed; it may be waiting for something that never comes")
        }
        return (termination, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }
}

/// Why a child process could not be started or did not end: a stable code, a message that says what went wrong and
/// how to fix it, and the C library's error number as a `POSIXError` cause when there is one.
///
/// Match on ``CodedError/code`` (`process.cannot_start`, `process.timed_out`), never on the message.
public typealias ChildProcessError = CodedError<ChildProcessErrorDomain>

/// The child processes' error family (``ChildProcessError``).
public enum ChildProcessErrorDomain: ErrorDomain {}

/// A stable code per kind of child process failure.
extension ErrorCode where Domain == ChildProcessErrorDomain {
    /// `posix_spawn` refused (missing or non-executable program, unopenable output file or working directory).
    public static let cannotStart = Self(rawValue: "process.cannot_start")
    /// ``ChildProcess/run(_:arguments:environment:workingDirectory:timeout:)`` gave up waiting and killed it.
    public static let timedOut = Self(rawValue: "process.timed_out")
}

extension POSIXError {
    /// The error for a C library error number.
    fileprivate init(_ number: Int32) {
        self.init(POSIXErrorCode(rawValue: number) ?? .EIO)
    }
}
