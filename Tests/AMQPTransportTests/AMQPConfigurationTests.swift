import AMQPTransport
import Testing
import WaybillTestSupport

/// URL parsing and redaction; no broker needed.
struct AMQPConfigurationTests {
    @Test func parsesPlainURLWithDefaultVhost() throws {
        let configuration = try AMQPConfiguration(url: "amqp://guest:s3cret@127.0.0.1:35672/")
        #expect(configuration.endpoints == [AMQPConfiguration.Endpoint(host: "127.0.0.1", port: 35672)])
        #expect(configuration.user == "guest")
        #expect(configuration.password == "s3cret")
        #expect(configuration.virtualHost == "/")
        #expect(configuration.tls == nil)
    }

    @Test(arguments: [
        ("amqp://h", "/", 5672), ("amqp://h/%2F", "/", 5672), ("amqp://h/orders", "orders", 5672),
        ("amqps://h/a%2Fb", "a/b", 5671),
    ])
    func parsesVirtualHostsAndDefaultPorts(url: String, vhost: String, port: Int) throws {
        let configuration = try AMQPConfiguration(url: url)
        #expect(configuration.virtualHost == vhost)
        #expect(configuration.endpoints.map(\.port) == [port])
    }

    @Test func parsesTLSAndQueryParameters() throws {
        let configuration = try AMQPConfiguration(
            url:
                "amqps://w:p%40ss@mq.example:5671/prod?heartbeat=10&connection_name=worker-1&cacertfile=/etc/ca.pem&certfile=/etc/c.pem&keyfile=/etc/k.pem&verify=verify_peer&connection_timeout=2500"
        )
        #expect(configuration.password == "p@ss")
        #expect(configuration.heartbeatSeconds == 10)
        #expect(configuration.connectionName == "worker-1")
        #expect(configuration.connectTimeout == .milliseconds(2500))
        #expect(
            configuration.tls
                == AMQPConfiguration.TLS(
                    caCertificatePath: "/etc/ca.pem", clientCertificatePath: "/etc/c.pem",
                    clientKeyPath: "/etc/k.pem", verifyPeer: true, verifyHostname: true))
    }

    @Test(arguments: ["http://h/", "amqp://h/?heartbeat=soon", "amqp://h/?colour=blue", "amqps://h/?verify=maybe"])
    func rejectsInvalidURLs(url: String) {
        #expect(throws: AMQPError.self) { try AMQPConfiguration(url: url) }
    }

    @Test func aCommaSeparatedListNamesEveryNodeOfACluster() throws {
        let configuration = try AMQPConfiguration(
            url:
                "amqp://w@mq-1:5672/prod?heartbeat=7, amqp://w@mq-2/prod?heartbeat=7,amqp://w@[::1]:5673/prod?heartbeat=7"
        )
        #expect(
            configuration.endpoints == [
                .init(host: "mq-1", port: 5672), .init(host: "mq-2", port: 5672), .init(host: "::1", port: 5673),
            ])
        #expect(configuration.virtualHost == "prod")
        #expect(configuration.heartbeatSeconds == 7)
        #expect(configuration.description.contains("mq-1:5672,mq-2:5672,[::1]:5673"))
        // A comma inside a query value does not start another URL.
        #expect(AMQPConfiguration.splitList("amqp://h/?connection_name=a,b").count == 1)
    }

    @Test(arguments: [
        "amqp://w@mq-1/prod,amqp://w@mq-2/test", "amqp://w@mq-1/,amqps://w@mq-2/", "amqp://w@mq-1/,amqp://x@mq-2/",
        "amqp://w@mq-1/?heartbeat=5,amqp://w@mq-2/?heartbeat=9", "amqp://w@mq-1/,amqp://w@mq-1:5672/", " , ",
    ])
    func aListWhoseNodesDifferInMoreThanTheirAddressIsRefused(url: String) {
        let error = #expect(throws: AMQPError.self) { try AMQPConfiguration(url: url) }
        #expect(error?.code == .invalidConfiguration)
    }

    @Test func redactionCoversEveryURLOfAList() {
        let list = "amqp://a:one@h1/,amqp://a:two@h2/"
        #expect(AMQPConfiguration.hasPassword(list))
        #expect(!AMQPConfiguration.hasPassword("amqp://a@h1/,amqp://a@h2/"))
        #expect(AMQPConfiguration.hasPassword("amqp://a@h1/,amqp://a:two@h2/"))
        #expect(AMQPConfiguration.redacted(list) == "amqp://a:***@h1/,amqp://a:***@h2/")
    }

    @Test func descriptionNeverShowsThePassword() throws {
        let configuration = try AMQPConfiguration(url: "amqp://guest:hunter2@h/")
        #expect(!configuration.description.contains("hunter2"))
        #expect(!"\(configuration)".contains("hunter2"))
        let error = #expect(throws: AMQPError.self) { try AMQPConfiguration(url: "amqp://u:hunter2@h/a/b") }
        #expect(error?.description.contains("hunter2") == false)
    }

    @Test func unreachableBrokerFailsConnect() async throws {
        let client = try AMQPClient(
            configuration: AMQPConfiguration(host: "127.0.0.1", port: 1, connectTimeout: .seconds(2)),
            logger: TestBroker.logger("amqp"))
        let error = await #expect(throws: AMQPError.self) { try await client.connect() }
        #expect(error?.code == .connectionFailed)
        #expect(error?.libraryStatus != nil)
    }

    @Test func anEmptyEndpointListFailsConnectInsteadOfCrashing() async throws {
        var configuration = AMQPConfiguration()
        configuration.endpoints = []
        let client = try AMQPClient(configuration: configuration, logger: TestBroker.logger("amqp"))
        let error = await #expect(throws: AMQPError.self) { try await client.connect() }
        #expect(error?.code == .invalidConfiguration)
    }

    @Test func aClusterNoNodeOfWhichAnswersNamesEachFailure() async throws {
        var configuration = AMQPConfiguration(host: "127.0.0.1", port: 1, connectTimeout: .seconds(2))
        configuration.endpoints.append(.init(host: "127.0.0.1", port: 2))
        let client = try AMQPClient(configuration: configuration, logger: TestBroker.logger("amqp"))
        let error = await #expect(throws: AMQPError.self) { try await client.connect() }
        #expect(error?.code == .connectionFailed)
        #expect(error?.message.contains("127.0.0.1:1") == true && error?.message.contains("127.0.0.1:2") == true)
    }
}
