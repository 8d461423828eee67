import AMQPTransport
import Foundation
import SagaEngine
import SagaStore
import Testing
import WaybillDefinition
import WaybillOperations
import WaybillTestSupport
import WaybillWire

/// The `waybill` binary itself: which pool its options select, the one-line errors and exit statuses of the pool
/// rules, and a repair through the broker to the owner of the saga's partition.
@Suite("The waybill command line and the pool")
struct CommandLineTests {
    let directory: TemporaryDirectory
    let pool: PoolDirectory

    init() throws {
        directory = try TemporaryDirectory()
        pool = try Fixture.buildPool(in: directory)
    }

    /// The saga ids `waybill sagas list --json` printed, in order.
    func listedIds(_ output: String) throws -> [String] {
        try #require(try JSONText.decode(output)["sagas"]?.arrayValue).compactMap {
            guard let workflow = $0["workflow"]?.stringValue, let id = $0["id"]?.stringValue else { return nil }
            return "\(workflow)/\(id)"
        }
    }

    @Test("reads select the pool with --data-dir, else WAYBILL_DATA_DIRECTORY, else data_directory in --config")
    func poolSelection() async throws {
        let expected = try SagaInspector(pool: pool).list(FixtureFile.filter(), now: Timestamp.now()).rows.map(
            \.key.description)
        #expect(expected.count == 11)
        let flag = try await WaybillBinary.run(["sagas", "list", "--data-dir", pool.path, "--json"])
        #expect(flag.status == 0, "\(flag.output)")
        #expect(try listedIds(flag.output) == expected)
        let environment = try await WaybillBinary.run(
            ["sagas", "list", "--json"], environment: ["WAYBILL_DATA_DIRECTORY": pool.path])
        #expect(try listedIds(environment.output) == expected)
        let config = directory.file("worker.yaml")
        try Data("data_directory: \(pool.path)\n".utf8).write(to: URL(fileURLWithPath: config))
        let stats = try await WaybillBinary.run(["sagas", "stats", "--config", config, "--json"])
        #expect(stats.status == 0, "\(stats.output)")
        #expect(try JSONText.decode(stats.output)["total"] == 11)
    }

    @Test(
        "a repeated option, or --db with --data-dir, is one line and exit status 2",
        arguments: [
            (
                ["sagas", "list", "--db", "a.sqlite", "--db", "b.sqlite"],
                "waybill sagas list: operations.bad_argument: --db is given 2 times (a.sqlite, b.sqlite); give it "
                    + "once (a repeated option does not add up: only the last one would count); to read every "
                    + "partition file of a pool, give its directory with --data-dir\n"
            ),
            (
                ["sagas", "stats", "--data-dir", "x", "--data-dir", "y"],
                "waybill sagas stats: operations.bad_argument: --data-dir is given 2 times (x, y); give it once (a "
                    + "repeated option does not add up: only the last one would count)\n"
            ),
            (
                ["sagas", "stuck", "--data-dir", "pool", "--class", "suspended", "--group-by", "code"],
                "waybill sagas stuck: operations.bad_argument: --class and --group-by do not go together: give one\n"
            ),
            (
                ["sagas", "stuck", "--data-dir", "pool", "--code", "erp_down"],
                "waybill sagas stuck: operations.bad_argument: --code and --since narrow a list: add --group-by code "
                    + "or --class suspended\n"
            ),
            (
                ["sagas", "stuck", "--data-dir", "pool", "--group-by", "owner"],
                "waybill sagas stuck: operations.bad_argument: --group-by 'owner': expected one of code, step, "
                    + "workflow\n"
            ),
            (
                ["workflows", "list", "--db", "a.sqlite", "--data-dir", "pool"],
                "waybill workflows list: operations.bad_argument: --db a.sqlite reads one file and --data-dir pool a "
                    + "whole pool; give one of them\n"
            ),
        ])
    func optionErrors(arguments: [String], output: String) async throws {
        let result = try await WaybillBinary.run(arguments)
        #expect(result.status == 2)
        #expect(result.output == output)
    }

    @Test("a repair to a partition nobody owns is refused with exit status 6, before the broker is contacted")
    func repairWithoutOwner() async throws {
        let partition = PoolDirectory.name(ofPartition: pool.partition(of: "o-1007"))
        // Nothing listens on port 9: a repair that went to the broker would fail with operations.broker (5).
        let result = try await WaybillBinary.run([
            "sagas", "retry", "o-1007", "--reason", "ERP is back", "--data-dir", pool.path, "--amqp-url",
            "amqp://nobody@127.0.0.1:9/",
        ])
        #expect(result.status == 6, "\(result.output)")
        #expect(
            result.output
                == "waybill sagas retry: operations.no_owner: no live worker owns partition \(partition) of "
                + "\(pool.path) (checked for 2s); start a worker (waybill worker) and try again; nothing was sent\n")
    }

    @Test("waybill ui refuses a bad address, a short token and a single file with one line and exit status 2")
    func uiArguments() async throws {
        let address = try await WaybillBinary.run(["ui", "--address", "nowhere", "--data-dir", pool.path])
        #expect(address.status == 2)
        #expect(
            address.output.hasPrefix(
                "waybill ui: operations.bad_argument: --address 'nowhere': expected host:port, e.g. 127.0.0.1:8080"))
        #expect(address.output.filter { $0 == "\n" }.count == 1, "\(address.output)")

        let tokenFile = directory.file("token")
        try "short".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let token = try await WaybillBinary.run(["ui", "--token-file", tokenFile, "--data-dir", pool.path])
        #expect(token.status == 2)
        #expect(
            token.output
                == "waybill ui: operations.bad_argument: the operator token is 5 characters: use at least 16 (e.g. "
                + "openssl rand -hex 16)\n")
        let fromEnvironment = try await WaybillBinary.run(
            ["ui", "--data-dir", pool.path], environment: ["WAYBILL_UI_TOKEN": "0123456789"])
        #expect(fromEnvironment.status == 2 && fromEnvironment.output.contains("the operator token is 10 characters"))

        let file = pool.databasePath(partition: 0)
        let single = try await WaybillBinary.run(["ui", "--db", file])
        #expect(single.status == 2)
        #expect(
            single.output
                == "waybill ui: operations.bad_argument: waybill ui serves a pool: give its data directory with "
                + "--data-dir instead of --db\n")
    }

    @Test("a repair of a single file is refused: it needs the pool's live owner; its dry run works")
    func repairOfAFile() async throws {
        let file = pool.databasePath(partition: pool.partition(of: "o-1007"))
        let refused = try await WaybillBinary.run(["sagas", "retry", "o-1007", "--reason", "r", "--db", file])
        #expect(refused.status == 2)
        #expect(
            refused.output
                == "waybill sagas retry: operations.bad_argument: a repair acts through the live worker that owns the "
                + "saga's partition, so it needs the pool: give its data directory with --data-dir instead of --db "
                + "\(file) (--dry-run works with either)\n")
        let dryRun = try await WaybillBinary.run(
            ["sagas", "retry", "o-1007", "--reason", "r", "--db", file, "--dry-run"])
        #expect(dryRun.status == 0, "\(dryRun.output)")
        #expect(dryRun.output.hasPrefix("Dry run: retry by "))
    }

    @Test("pool init, status --json and repartition from the command line")
    func poolCommands() async throws {
        let fresh = directory.file("fresh")
        let created = try await WaybillBinary.run(["pool", "init", "--data-dir", fresh, "--partitions", "4"])
        #expect(created.output == "Created the pool \(fresh) with 4 partitions.\n")
        let status = try await WaybillBinary.run(["pool", "status", "--data-dir", pool.path, "--json"])
        #expect(status.status == 0, "\(status.output)")
        let json = try JSONText.decode(status.output)
        #expect(json["schemaVersion"] == 1 && json["partitionCount"] == 8)
        #expect(json["unowned"] == .array((0..<8).map { .number(Double($0)) }))

        let repartitioned = try await WaybillBinary.run(
            ["pool", "repartition", "--data-dir", pool.path, "--partitions", "3", "--pool-name", "eu"])
        #expect(repartitioned.status == 0, "\(repartitioned.output)")
        #expect(repartitioned.output.hasPrefix("Repartitioned \(pool.path) from 8 to 3 partitions: 11 sagas"))
        #expect(
            repartitioned.output.hasSuffix(
                "The queues eu.p03 to eu.p07 belong to no partition now: the workers keep forwarding what "
                    + "arrives there (replies to commands sent before) to the right partitions; leave them.\n"))
        let list = try await WaybillBinary.run(["sagas", "list", "--data-dir", pool.path, "--json"])
        #expect(try listedIds(list.output).count == 11)

        let member = try PoolDirectory.open(pool.path).join(as: "w9")
        defer { member.release() }
        let refused = try await WaybillBinary.run(["pool", "repartition", "--data-dir", pool.path, "--partitions", "4"])
        #expect(refused.status == 4)
        #expect(refused.output.hasPrefix("waybill pool repartition: operations.refused: worker w9 is running in "))
    }

    @Test(
        "a repair goes to the saga's partition queue with waybill-input: control, and the owner's answer is printed",
        .enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
    func repairThroughTheBroker() async throws {
        let poolName = TestBroker.unique("pool")
        let partition = pool.partition(of: "o-1009")
        let queue = PoolQueues.partition(partition, pool: poolName)
        // Stand in for the partition's owner: hold its lock and consume its queue.
        let lock = try #require(try FileLock.tryLock(pool.lockPath(partition: partition)))
        defer { lock.release() }
        let owner = try await TestBroker.connectedClient("pool-owner")
        _ = try await owner.declareQueue(
            QueueDeclaration(name: queue, durable: false, exclusive: false, autoDelete: true))
        let deliveries = try await owner.consume(queue: queue, prefetch: 1)
        let (url, password) = try TestBroker.urlAndPassword()
        async let command = WaybillBinary.run(
            [
                "sagas", "cancel", "o-1009", "--reason", "duplicate order", "--by", "alice", "--data-dir", pool.path,
                "--pool-name", poolName, "--timeout", "30s",
            ],
            environment: ["WAYBILL_AMQP_URL": url, "WAYBILL_AMQP_PASSWORD": password ?? ""])
        var received: InboundDelivery?
        for try await delivery in deliveries {
            received = delivery
            owner.ack(delivery.deliveryTag)
            let reply = ControlReply(
                status: .applied, message: "operator cancel by alice → cancelled", sagaStatus: "cancelled")
            _ = try await owner.publish(
                OutboundMessage(
                    exchange: "", routingKey: try #require(delivery.properties.replyTo), body: Data(reply.encoded()),
                    properties: MessageProperties(
                        contentType: ControlMessage.contentType, correlationID: delivery.properties.correlationID)))
            break
        }
        let result = try await command
        await owner.close()
        let delivery = try #require(received)
        #expect(delivery.properties.headers[WireHeader.input] == .string(PartitionInput.control.rawValue))
        #expect(delivery.routingKey == queue)
        #expect(delivery.properties.replyTo?.hasPrefix("waybill.cli.") == true)
        let message = try ControlMessage.decode(delivery.body)
        #expect(message.action == .cancel && message.sagaId == "o-1009" && message.by == "alice")
        #expect(result.status == 0, "\(result.output)")
        #expect(
            result.output.contains(
                "applied (partition \(PoolDirectory.name(ofPartition: partition))): operator cancel by alice → cancelled"
            ))
    }
}
