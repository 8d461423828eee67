import AMQPTransport
import Foundation
import Logging
import Testing

/// The private RabbitMQ that `scripts/test` starts. Tests that need it are skipped, with a reason, when
/// `WAYBILL_TEST_AMQP_URL` is unset; when it is set, an unreachable broker fails them.
enum TestBroker {
    static let url = ProcessInfo.processInfo.environment["WAYBILL_TEST_AMQP_URL"].flatMap { $0.isEmpty ? nil : $0 }

    static var isConfigured: Bool { url != nil }

    static let skipReason: Comment =
        "WAYBILL_TEST_AMQP_URL is not set: run ./scripts/test (it starts a private RabbitMQ) to run broker tests"

    /// The broker's configuration, with a connection name unique to the test so that the broker CLI can
    /// close exactly this test's connections.
    static func configuration(_ name: String) throws -> AMQPConfiguration {
        var configuration = try AMQPConfiguration(url: try #require(url))
        configuration.connectionName = name
        configuration.reconnect = .init(initialDelay: .milliseconds(50), maxDelay: .seconds(1))
        return configuration
    }

    static func connectedClient(_ name: String) async throws -> AMQPClient {
        let client = try AMQPClient(configuration: try configuration(name), logger: logger)
        try await client.connect()
        return client
    }

    static let logger: Logger = {
        var logger = Logger(label: "waybill.amqp.test")
        logger.logLevel = ProcessInfo.processInfo.environment["WAYBILL_TEST_LOG"] == nil ? .critical : .trace
        return logger
    }()

    /// A name no other test run uses.
    static func unique(_ prefix: String) -> String {
        "waybill.test.\(prefix).\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// Asks the broker to close every connection with this client-provided name (as an operator would).
    static func forceClose(connectionName: String) async throws {
        let script =
            ProcessInfo.processInfo.environment["WAYBILL_TEST_RABBITMQ_SCRIPT"]
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/rabbitmq").path
        let (status, output) = try await Task.detached {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: script)
            process.arguments = ["close-connections", connectionName, "closed by AMQPTransportTests"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: output, as: UTF8.self))
        }.value
        #expect(status == 0, "scripts/rabbitmq close-connections failed: \(output)")
    }
}

struct TimedOut: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Runs `body`, failing with ``TimedOut`` if it has not finished after `seconds`.
func within<T: Sendable>(
    _ seconds: Double = 30, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw TimedOut(what: what)
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// The next `count` deliveries of a consumer.
func take(_ count: Int, from consumer: AMQPConsumer, seconds: Double = 30) async throws -> [InboundDelivery] {
    try await within(seconds, "\(count) deliveries from \(consumer.queue)") {
        var received: [InboundDelivery] = []
        for try await delivery in consumer {
            received.append(delivery)
            if received.count == count { break }
        }
        return received
    }
}

/// Polls a condition on the broker until it holds (the broker offers no notification for these).
func eventually(
    _ what: String, seconds: Double = 30, _ condition: @escaping @Sendable () async throws -> Bool
) async throws {
    try await within(seconds, what) {
        while try await !condition() { try await Task.sleep(for: .milliseconds(20)) }
    }
}

extension Data {
    init(_ text: String) { self = Data(text.utf8) }
}
