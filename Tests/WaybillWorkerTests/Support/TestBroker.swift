import AMQPTransport
import Foundation
import Logging
import Synchronization
import Testing

/// The private RabbitMQ that `scripts/test` starts. Tests that need it are skipped, with a reason, when
/// `WAYBILL_TEST_AMQP_URL` is unset; when it is set, an unreachable broker fails them.
enum TestBroker {
    static let url = ProcessInfo.processInfo.environment["WAYBILL_TEST_AMQP_URL"].flatMap { $0.isEmpty ? nil : $0 }

    static var isConfigured: Bool { url != nil }

    static let skipReason: Comment =
        "WAYBILL_TEST_AMQP_URL is not set: run ./scripts/test (it starts a private RabbitMQ) to run worker tests"

    /// The repository root, from this file's path.
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// `scripts/rabbitmq`, or whatever `WAYBILL_TEST_RABBITMQ_SCRIPT` names.
    static let script =
        ProcessInfo.processInfo.environment["WAYBILL_TEST_RABBITMQ_SCRIPT"].flatMap { $0.isEmpty ? nil : $0 }
        ?? repository.appendingPathComponent("scripts/rabbitmq").path

    /// A client configuration with a connection name of its own and quick reconnects.
    static func configuration(_ name: String) throws -> AMQPConfiguration {
        var configuration = try AMQPConfiguration(url: try #require(url))
        configuration.connectionName = name
        configuration.reconnect = .init(initialDelay: .milliseconds(50), maxDelay: .seconds(1))
        return configuration
    }

    static func connectedClient(_ name: String) async throws -> AMQPClient {
        let client = try AMQPClient(configuration: try configuration(name), logger: logger("amqp"))
        try await client.connect()
        return client
    }

    /// Quiet unless `WAYBILL_TEST_LOG` is set (then everything down to `debug`).
    static func logger(_ label: String) -> Logger {
        var logger = Logger(label: "waybill.test.\(label)")
        logger.logLevel = ProcessInfo.processInfo.environment["WAYBILL_TEST_LOG"] == nil ? .critical : .debug
        return logger
    }

    /// The test URL split into a URL without the password and the password, as `waybill worker` wants them.
    static func urlAndPassword() throws -> (url: String, password: String?) {
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

    /// Runs `scripts/rabbitmq` with `arguments` and returns whether it succeeded and what it printed.
    static func runScript(_ arguments: [String]) async throws -> (succeeded: Bool, output: String) {
        let (termination, output) = try await ChildProcess.run(script, arguments)
        return (termination == .exited(0), output)
    }
}

/// A wait that did not see its condition before the deadline.
struct TimedOut: Error, CustomStringConvertible {
    let what: String
    let seconds: Double
    var description: String { "timed out after \(seconds)s waiting for \(what)" }
}

/// Runs `body`, failing with ``TimedOut`` if it has not finished after `seconds`. On a timeout `body` is cancelled
/// but not awaited, so a body that ignores cancellation cannot hang the test.
func within<T: Sendable>(
    _ seconds: Double, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = Race<T>()
    return try await withCheckedThrowingContinuation { continuation in
        race.continuation.withLock { $0 = continuation }
        let work = Task {
            let result: Result<T, any Error>
            do {
                result = .success(try await body())
            } catch {
                result = .failure(error)
            }
            race.finish(with: result)
        }
        race.work.withLock { $0 = work }
        Task {
            try? await Task.sleep(for: .seconds(seconds))
            race.work.withLock { $0 }?.cancel()
            race.finish(with: .failure(TimedOut(what: what, seconds: seconds)))
        }
    }
}

/// The state of one ``within(_:_:_:)``: whoever finishes first resumes the caller.
private final class Race<T: Sendable>: Sendable {
    let continuation = Mutex<CheckedContinuation<T, any Error>?>(nil)
    let work = Mutex<Task<Void, Never>?>(nil)

    func finish(with result: Result<T, any Error>) {
        continuation.withLock { $0.take() }?.resume(with: result)
    }
}

/// Checks `condition` until it holds, failing with ``TimedOut`` after `seconds`. For state that offers no
/// notification (a SQLite file, a queue's counters); the pause between checks is not a stand-in for the condition.
func eventually(
    _ what: String, seconds: Double = 30, _ condition: @escaping @Sendable () async throws -> Bool
) async throws {
    try await within(seconds, what) {
        while try await !condition() { try await Task.sleep(for: .milliseconds(20)) }
    }
}
