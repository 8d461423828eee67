import AMQPTransport
import Foundation
import Testing
import WaybillTestSupport

/// `amqps://` against the private broker's TLS listener, which `scripts/rabbitmq` sets up with its own CA.
@Suite(.serialized, .enabled(if: TLSBroker.url != nil, TLSBroker.skipReason))
struct AMQPTLSTests {
    @Test func verifiedTLSConnectionWithClientCertificateCarriesMessages() async throws {
        var configuration = try AMQPConfiguration(url: try #require(TLSBroker.url))
        configuration.connectionName = TestBroker.unique("tls")
        #expect(configuration.tls?.verifyPeer == true && configuration.tls?.verifyHostname == true)
        #expect(configuration.tls?.clientCertificatePath != nil)
        let client = try AMQPClient(configuration: configuration, logger: TestBroker.logger("amqp"))
        try await client.connect()
        let queue = TestBroker.unique("tls.q")
        _ = try await client.declareQueue(QueueDeclaration(name: queue, durable: false, exclusive: true))
        #expect(
            try await client.publish(OutboundMessage(exchange: "", routingKey: queue, body: Data("sealed")))
                == .confirmed)
        let consumer = try await client.consume(queue: queue, prefetch: 1)
        let delivery = try #require(try await take(1, from: consumer).first)
        #expect(delivery.body == Data("sealed"))
        client.ack(delivery.deliveryTag)
        await client.close()
    }

    @Test func brokerCertificateFromAnotherCAIsRefused() async throws {
        var configuration = try AMQPConfiguration(url: try #require(TLSBroker.url))
        configuration.tls?.caCertificatePath = try #require(TLSBroker.directory) + "/other-ca.pem"
        configuration.connectTimeout = .seconds(5)
        let client = try AMQPClient(configuration: configuration, logger: TestBroker.logger("amqp"))
        let error = await #expect(throws: AMQPError.self) { try await client.connect() }
        #expect(error?.code == .connectionFailed)
    }

    @Test func plainAMQPAgainstTheTLSPortFailsCleanly() async throws {
        var configuration = try AMQPConfiguration(url: try #require(TLSBroker.url))
        configuration.tls = nil
        configuration.connectTimeout = .seconds(5)
        let client = try AMQPClient(configuration: configuration, logger: TestBroker.logger("amqp"))
        let error = await #expect(throws: AMQPError.self) { try await client.connect() }
        #expect(error?.code == .connectionFailed)
    }
}

enum TLSBroker {
    static let url = ProcessInfo.processInfo.environment["WAYBILL_TEST_AMQPS_URL"].flatMap { $0.isEmpty ? nil : $0 }
    static let directory = ProcessInfo.processInfo.environment["WAYBILL_TEST_TLS_DIR"]
    static let skipReason: Comment =
        "WAYBILL_TEST_AMQPS_URL is not set: run ./scripts/test (it gives the private RabbitMQ a TLS listener)"
}
