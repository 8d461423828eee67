import Foundation
import Testing
import WaybillTestSupport
import WaybillWorker

/// The config file and the environment map onto WorkerConfiguration as docs/configuration.md says.
struct ConfigurationTests {
    /// Where this test's config files go; Swift Testing makes a suite value per test, so each test has its own.
    let directory: TemporaryDirectory

    init() throws { directory = try TemporaryDirectory() }

    /// Writes `text` to a new config file and returns its path.
    func configFile(_ text: String) throws -> String {
        let path = directory.file("waybill-\(UUID().uuidString).yaml")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func fileThenEnvironmentWhichWins() throws {
        let file = try configFile(
            "worker_id: w1\nbatch_size: 64\nsynchronous: normal\ninbox_retention_hours: 24\ndata_directory: /tmp/pool\n"
                + "partitions: 8\npool_name: shop\n")
        let configuration = try WorkerConfiguration.load(
            file: file, environment: ["WAYBILL_BATCH_SIZE": "128", "WAYBILL_AMQP_PASSWORD": "s3cret"])
        #expect(configuration.workerId == "w1")
        #expect(configuration.batchSize == 128)
        #expect(configuration.durability == .normal)
        #expect(configuration.inboxRetention == .seconds(24 * 3600))
        #expect(configuration.dataDirectory == "/tmp/pool")
        #expect(configuration.partitions == 8)
        #expect(configuration.partitionQueue(7) == "shop.p07")
        #expect(configuration.amqpPassword == "s3cret")
        #expect(!configuration.description.contains("s3cret"))
    }

    @Test(
        "bad values get a message that names the key and what it expects",
        arguments: [
            (
                ["WAYBILL_BATCH_SIZE": "lots"],
                "config.bad_value: batch_size: expected a whole number in 1...10000, got 'lots'"
            ),
            (
                ["WAYBILL_AMQP_URL": "amqp://guest:guest@localhost/"],
                "config.password_in_url: amqp_url: do not put the password in the URL; set WAYBILL_AMQP_PASSWORD or "
                    + "amqp_password_file"
            ),
            (
                ["WAYBILL_AMQP_URL": "amqp://w@rabbit-1/orders,amqp://w@rabbit-2/test"],
                "config.bad_value: amqp_url: the URLs of a broker list differ in more than host and port: "
                    + "amqp://w@rabbit-1/orders and amqp://w@rabbit-2/test (every node of a cluster takes the same "
                    + "user, vhost and parameters)"
            ),
            (
                ["WAYBILL_AMQP_URL": "http://rabbit/"],
                "config.bad_value: amqp_url: unsupported URL scheme 'http': use amqp:// or amqps://"
            ),
            (["WAYBILL_SYNCHRONOUS": "off"], "config.bad_value: synchronous: expected 'full' or 'normal', got 'off'"),
            (["WAYBILL_WORKER_ID": "w 1"], "config.bad_value: worker_id: use letters, digits, '-' and '_', got 'w 1'"),
            (
                ["WAYBILL_HTTP_ADDRESS": "9464"],
                "config.bad_value: http_address: expected host:port, e.g. 127.0.0.1:9464 or 0.0.0.0:9464, got '9464'"
            ),
            (
                ["WAYBILL_HTTP_ADDRESS": "localhost:70000"],
                "config.bad_value: http_address: expected host:port, e.g. 127.0.0.1:9464 or 0.0.0.0:9464, got "
                    + "'localhost:70000'"
            ),
        ])
    func badValues(environment: [String: String], message: String) {
        #expect(throws: ConfigurationError.self) { try WorkerConfiguration.load(file: nil, environment: environment) }
        do {
            _ = try WorkerConfiguration.load(file: nil, environment: environment)
        } catch {
            #expect(error.description == message)
            #expect(error.cause == nil)
        }
    }

    @Test("http_address: loopback by default, any host:port (IPv6 in brackets), or off")
    func httpAddress() throws {
        #expect(WorkerConfiguration().httpAddress == HTTPAddress(host: "127.0.0.1", port: 9464))
        let wildcard = try WorkerConfiguration.load(file: nil, environment: ["WAYBILL_HTTP_ADDRESS": "0.0.0.0:9500"])
        #expect(wildcard.httpAddress == HTTPAddress(host: "0.0.0.0", port: 9500))
        #expect(wildcard.httpAddress?.reachable == HTTPAddress(host: "127.0.0.1", port: 9500))
        let six = try WorkerConfiguration.load(file: nil, environment: ["WAYBILL_HTTP_ADDRESS": "[::1]:9464"])
        #expect(six.httpAddress == HTTPAddress(host: "::1", port: 9464))
        #expect(six.httpAddress?.description == "[::1]:9464")
        let off = try WorkerConfiguration.load(file: nil, environment: ["WAYBILL_HTTP_ADDRESS": "off"])
        #expect(off.httpAddress == nil)
    }

    @Test("archive_after: 30 days by default, any duration, or off; a bare off in a YAML file (read as false) too")
    func archiveAfter() throws {
        #expect(WorkerConfiguration().archiveAfter == .seconds(30 * 86_400))
        let hours = try WorkerConfiguration.load(file: nil, environment: ["WAYBILL_ARCHIVE_AFTER": "12h"])
        #expect(hours.archiveAfter == .seconds(12 * 3_600))
        let fromFile = try WorkerConfiguration.load(
            file: try configFile("archive_after: off\nhttp_address: off\n"), environment: [:])
        #expect(fromFile.archiveAfter == nil)
        #expect(fromFile.httpAddress == nil)
        #expect {
            try WorkerConfiguration.load(file: nil, environment: ["WAYBILL_ARCHIVE_AFTER": "30"])
        } throws: { error in
            (error as? ConfigurationError)?.description.hasPrefix("config.bad_value: archive_after: bad duration")
                == true
        }
    }

    @Test func unknownFileKeyIsRefused() throws {
        let file = try configFile("batch_sise: 10\n")
        do {
            _ = try WorkerConfiguration.load(file: file, environment: [:])
            Issue.record("an unknown key was accepted")
        } catch {
            #expect(error.code == .unknownKey)
            #expect(error.message.hasPrefix("\(file): unknown key 'batch_sise'; known keys: worker_id, "))
        }
    }

    @Test("a config file that cannot be read or parsed names the file and keeps the cause")
    func unreadableAndBadFiles() throws {
        let missing = "/nonexistent/waybill-\(UUID().uuidString).yaml"
        do {
            _ = try WorkerConfiguration.load(file: missing, environment: [:])
            Issue.record("a missing config file was accepted")
        } catch {
            #expect(error.code == .unreadableFile && error.code.rawValue == "config.unreadable_file")
            #expect(error.message == "\(missing): cannot read the config file; check the path and its permissions")
            #expect(error.cause != nil)
        }
        let list = try configFile("- worker_id\n- w1\n")
        do {
            _ = try WorkerConfiguration.load(file: list, environment: [:])
            Issue.record("a YAML list was accepted as a config file")
        } catch {
            #expect(error.description == "config.bad_file: \(list): expected a mapping of keys, e.g. 'worker_id: w1'")
        }
    }

    @Test func theParticipantsLimitsFileBesideTheWorkflowsIsNotAWorkflow() throws {
        let directory = try TemporaryDirectory()
        let workflow = try String(contentsOf: Repository.workflow("order-fulfillment.yaml"), encoding: .utf8)
        try workflow.write(toFile: directory.file("order-fulfillment.yaml"), atomically: true, encoding: .utf8)
        try "participants:\n  - commands: \"erp.#\"\n    max_in_flight: 10\n".write(
            toFile: directory.file("participants.yaml"), atomically: true, encoding: .utf8)
        let registry = try DefinitionRegistry(directory: directory.path)
        #expect(registry.current.keys.sorted() == ["order-fulfillment"])
    }
}
