import AMQPTransport
import Foundation
import SagaEngine
import ServiceLifecycle
import Testing
import WaybillTestSupport

@testable import WaybillWorker

/// A worker started before its broker answers waits for it instead of exiting. The broker's stand-in is a relay
/// (``FaultyLink``) that closes every connection at once until it is told to relay them to the real broker.
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
struct StartupTests {
    /// The test broker's URL, pointed at `link` instead.
    static func url(through link: FaultyLink) throws -> String {
        let url = try #require(TestBroker.url)
        let broker = try AMQPConfiguration(url: url)
        return url.replacingOccurrences(of: ":\(broker.endpoints[0].port)/", with: ":\(link.port)/")
    }

    static func refusingLink() throws -> FaultyLink {
        let broker = try AMQPConfiguration(url: try #require(TestBroker.url))
        return try FaultyLink(brokerPort: UInt16(broker.endpoints[0].port), refusing: true)
    }

    @Test("a worker started while the broker is down keeps trying, then runs sagas once the broker answers")
    func waitsForTheBroker() async throws {
        let link = try Self.refusingLink()
        defer { link.stop() }
        let url = try Self.url(through: link)
        try await Scenario.run { scenario in
            async let started = scenario.startWorker(adjust: { $0.amqpURL = url })
            try await eventually("the worker to try the broker three times") { link.refusedConnections >= 3 }
            #expect(link.acceptedConnections == 0)
            link.relayNewConnections()
            let worker = try await started
            #expect(link.acceptedConnections >= 1)
            try await scenario.placeOrder("o-1")
            let saga = try await scenario.waitForStatus("o-1", .completed, in: worker)
            #expect(saga.owner == worker.id)
        }
    }

    @Test("a worker waiting for the broker stops cleanly on a graceful shutdown, without ever connecting")
    func stopsWhileWaiting() async throws {
        let link = try Self.refusingLink()
        defer { link.stop() }
        let url = try Self.url(through: link)
        try await Scenario.run { scenario in
            var configuration = try scenario.configuration()
            configuration.amqpURL = url
            let logger = TestBroker.logger("worker.waiting")
            let worker = SagaWorker(configuration: configuration, logger: logger)
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(
                    services: [.init(service: worker)], gracefulShutdownSignals: [], logger: logger))
            let run = Task { try await group.run() }
            try await eventually("the worker to try the broker twice") { link.refusedConnections >= 2 }
            await group.triggerGracefulShutdown()
            try await within(10, "the waiting worker to stop") { try await run.value }
            #expect(link.acceptedConnections == 0)
        }
    }
}
