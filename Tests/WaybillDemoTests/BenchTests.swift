import AMQPTransport
import Foundation
import SagaStore
import SplitPlanner
import Testing
import WaybillDefinition
import WaybillSimulator
import WaybillTestSupport
import WaybillWire
import WaybillWorker

@testable import WaybillDemo

/// The benchmark's parts that need no broker and no clock: the shapes' orders and stock, the pattern replay's
/// script, option checks, and reading `/proc`.
struct BenchTests {
    /// The stock the simulated inventory reports for `order` (its `inventory.reserve` reply), as the split step sees
    /// it.
    static func reservedStock(_ simulator: ParticipantSimulator, order: JSONValue) throws -> [StockLevel] {
        let id = try #require(order["orderId"]?.stringValue)
        let response = simulator.handle(
            SimulatedCommand(
                routingKey: "inventory.reserve", messageId: "\(id)/m2", idempotencyKey: "\(id)/reserve", sagaId: id,
                json: ["orderId": .string(id), "lines": order["lines"] ?? .null]))
        let rows = try #require(response.output?["stock"]?.arrayValue)
        return try rows.map { row in
            StockLevel(
                warehouse: try #require(row["warehouse"]?.stringValue), sku: try #require(row["sku"]?.stringValue),
                quantity: try #require(row["quantity"]?.intValue))
        }
    }

    @Test(arguments: [BenchShape.twoShipment, .oneShipment])
    func everyOrderOfAShapePlansItsShipmentCountWithTheRealSplitPlanner(shape: BenchShape) throws {
        let expected = try #require(shape.shipments)
        let simulator = try shape.simulator(orders: 500)
        var warehousesUsed = Set<String>()
        for (id, body) in shape.orders(500, prefix: "split") {
            let order = try JSONText.decode(body)
            let lines = try #require(order["lines"]?.arrayValue).map { line in
                OrderLine(sku: line["sku"]?.stringValue ?? "", quantity: line["quantity"]?.intValue ?? 0)
            }
            let plan = try SplitPlanner.plan(
                SplitRequest(
                    lines: lines, stock: try Self.reservedStock(simulator, order: order), shipmentIdPrefix: id))
            #expect(plan.shipments.count == expected, "order \(id): \(plan.shipments.map(\.warehouse))")
            #expect(plan.backordered.isEmpty)
            warehousesUsed.formUnion(plan.shipments.map(\.warehouse))
        }
        // Two-shipment orders spread over every warehouse (every WMS gets work); one-shipment ones all take the
        // best-ranked warehouse, which stocks everything.
        #expect(warehousesUsed.count == (shape == .twoShipment ? 4 : 1))
    }

    @Test func theSameArgumentsGiveTheSameOrders() {
        for shape in BenchShape.allCases {
            let first = shape.orders(20, prefix: "same", first: 5)
            let again = shape.orders(20, prefix: "same", first: 5)
            #expect(first.map(\.sagaId) == (5..<25).map { "same-\($0)" })
            #expect(first.map(\.body) == again.map(\.body))
        }
    }

    @Test func mixedReplaysTheTwoShipmentPattern() {
        #expect(BenchShape.mixed.replayed == .twoShipment)
        #expect(BenchShape.mixed.shipments == nil)
        #expect(BenchShape.twoShipment.replayed == .twoShipment)
        #expect(BenchShape.oneShipment.replayed == .oneShipment)
    }

    @Test func shapesAreParsedByName() throws {
        for shape in BenchShape.allCases {
            #expect(try BenchShape(parsing: shape.rawValue) == shape)
        }
    }

    @Test func anUnknownShapeIsAOneLineErrorListingTheShapes() {
        let error = #expect(throws: DemoError.self) { try BenchShape(parsing: "three-shipment") }
        #expect(error?.code == .invalidOption)
        let message = error?.message ?? ""
        #expect(!message.contains("\n"))
        #expect(message.contains("'three-shipment'"))
        for shape in BenchShape.allCases {
            #expect(message.contains(shape.rawValue))
        }
    }

    @Test func workerProcessesNeedTheWaybillExecutable() throws {
        var options = BenchOptions(broker: BrokerAddress(url: "amqp://guest@127.0.0.1:5672/"), quick: true)
        try options.validate()
        options.workerProcesses = true
        let error = #expect(throws: DemoError.self) { try options.validate() }
        #expect(error?.code == .invalidOption)
        #expect(error?.message.contains("--worker-processes") == true)
        options.waybillExecutable = "/usr/local/bin/waybill"
        try options.validate()
    }

    @Test(arguments: [0, 17])
    func workersOutsideThePoolRangeAreRefused(workers: Int) {
        var options = BenchOptions(broker: BrokerAddress(url: "amqp://guest@127.0.0.1:5672/"), quick: true)
        options.workers = workers
        let error = #expect(throws: DemoError.self) { try options.validate() }
        #expect(error?.message.contains("--workers") == true)
    }

    // MARK: - The pattern replay's script

    /// What one run of the script moved, in all.
    struct ScriptRun {
        var consumed = 0
        var published = 0
        var commands: [OutboundMessage] = []
        var events: [String] = []
        var forwards = 0
        var completed = 0
        var abandoned = 0
    }

    /// Feeds `orders` through the script the way the broker would: each published message is consumed where it is
    /// routed (forwards by the partition, commands by the simulated participants, whose replies go back to the
    /// partition); events go nowhere. Every publish and every consumed delivery is counted.
    static func runScript(shape: BenchShape, orders: Int) throws -> ScriptRun {
        let text = try String(contentsOf: Repository.workflow("order-fulfillment.yaml"), encoding: .utf8)
        let workflow = try WorkflowLoader.load(yaml: text, file: "order-fulfillment.yaml")
        let configuration = WorkerConfiguration()
        var script = ScriptedSagas(workflow: workflow, configuration: configuration, partitionCount: 16)
        let simulator = try shape.simulator(orders: orders)
        var run = ScriptRun()
        var pending: [(ScriptedSagas.Queue, MessageProperties, Data)] = shape.orders(orders, prefix: "script").map {
            (.starts, MessageProperties(contentType: "application/json", messageID: $0.sagaId), Data($0.body))
        }
        var tag: UInt64 = 0
        while !pending.isEmpty {
            let (queue, properties, body) = pending.removeFirst()
            run.consumed += 1
            for message in script.receive(from: queue, properties: properties, body: body) {
                run.published += 1
                if message.exchange == configuration.eventsExchange {
                    run.events.append(message.routingKey)
                } else if message.exchange == configuration.commandsExchange {
                    run.commands.append(message)
                    tag += 1
                    let delivery = InboundDelivery(
                        deliveryTag: DeliveryTag(value: tag, generation: 1, channel: 1), consumerTag: "participants",
                        redelivered: false, exchange: message.exchange, routingKey: message.routingKey,
                        properties: message.properties, body: message.body)
                    let response = simulator.handle(ParticipantService.command(from: delivery))
                    let replyTo = try #require(message.properties.replyTo)
                    let reply = ParticipantService.reply(try #require(response.body), to: delivery, replyTo: replyTo)
                    let partition = try #require(PoolQueues.partition(ofQueue: replyTo, pool: configuration.poolName))
                    pending.append((.partition(partition), reply.properties, reply.body))
                } else {
                    run.forwards += 1
                    let partition = try #require(
                        PoolQueues.partition(ofQueue: message.routingKey, pool: configuration.poolName))
                    pending.append((.partition(partition), message.properties, message.body))
                }
            }
        }
        run.completed = script.completed
        run.abandoned = script.abandoned
        #expect(script.inFlight == 0)
        return run
    }

    @Test(arguments: [BenchShape.twoShipment, .oneShipment])
    func theScriptMovesTheWorkersMessagesPerSaga(shape: BenchShape) throws {
        let shipments = try #require(shape.shipments)
        let orders = 40
        let run = try Self.runScript(shape: shape, orders: orders)
        #expect(run.completed == orders)
        #expect(run.abandoned == 0)
        // Per saga: accept, reserve, release and ship per shipment, invoice; a milestone per step with one (split
        // has none), one per shipment as it ships (the ship step's branch_milestone) and the completed one; the start
        // forwarded once.
        let commands = 3 + 2 * shipments
        let events = 6 + shipments
        #expect(run.commands.count == orders * commands)
        #expect(run.events.count == orders * events)
        #expect(run.events.filter { $0 == "order.shipment.shipped" }.count == orders * shipments)
        #expect(run.forwards == orders)
        #expect(run.published == orders * (1 + commands + events))
        // The start from the start queue and from the partition, and a reply per command.
        #expect(run.consumed == orders * (2 + commands))
        let completions = run.events.filter { $0 == "order.completed" }
        #expect(completions.count == orders)
    }

    @Test func twoShipmentCommandsGoToTwoWarehousesWithTheWorkersHeaders() throws {
        let run = try Self.runScript(shape: .twoShipment, orders: 10)
        let bySaga = Dictionary(grouping: run.commands) { $0.properties.headers[WireHeader.sagaId]?.stringValue ?? "" }
        #expect(bySaga.count == 10)
        for (saga, commands) in bySaga {
            let releases = commands.filter { $0.routingKey.hasPrefix("wms.") }
            #expect(Set(releases.map(\.routingKey)).count == 2, "saga \(saga)")
            #expect(
                Set(releases.compactMap { $0.properties.headers[WireHeader.idempotencyKey]?.stringValue })
                    == ["\(saga)/release/0", "\(saga)/release/1"])
            #expect(commands.allSatisfy { $0.mandatory && $0.properties.persistent })
            let partition = WorkerConfiguration().partitionQueue(PoolDirectory.partition(of: saga, count: 16))
            #expect(commands.allSatisfy { $0.properties.replyTo == partition })
            #expect(Set(commands.compactMap(\.properties.messageID)).count == commands.count)
        }
    }

    // MARK: - /proc

    @Test func processTicksAreCountedAfterTheCommandName() {
        let stat =
            "4242 (a (strange) name) S 1 4242 4242 0 -1 4194560 1234 0 0 0 317 58 0 0 20 0 12 0 100 2000000 500 "
            + "18446744073709551615"
        #expect(ProcFS.processTicks(statText: stat) == 317 + 58)
        #expect(ProcFS.processTicks(statText: "garbage") == nil)
    }

    @Test func machineIdleIncludesIowaitAndTheTotalLeavesGuestOut() throws {
        let stat = """
            cpu  100 5 50 800 20 3 2 1 40 0
            cpu0 50 2 25 400 10 1 1 0 20 0
            intr 12345
            """
        let ticks = try #require(ProcFS.machineTicks(statText: stat))
        #expect(ticks.idle == 820)
        #expect(ticks.total == 100 + 5 + 50 + 800 + 20 + 3 + 2 + 1)
    }

    @Test func listeningSocketsAreFoundByPort() {
        let table = """
              sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
               0: 0100007F:8B58 00000000:0000 0A 00000000:00000000 00:00000000 00000000   103        0 795978 1 0 100 0 0 10 0
               1: 0100007F:8B58 0100007F:D2F4 01 00000000:00000000 00:00000000 00000000   103        0 795999 1 0 20 4 30 10 -1
               2: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 245 1 0 100 0 0 10 0
            """
        #expect(ProcFS.listeningInodes(tcpTable: table, port: 35672) == ["795978"])
        #expect(ProcFS.listeningInodes(tcpTable: table, port: 2024) == ["245"])
        #expect(ProcFS.listeningInodes(tcpTable: table, port: 5672).isEmpty)
    }

    @Test func usageSharesAreOfEveryCPUOverTheWallTime() throws {
        let usage = CPUUsage(
            wall: .seconds(2), bench: Int(ProcFS.ticksPerSecond), workers: nil, broker: Int(ProcFS.ticksPerSecond * 2),
            machineIdle: 25, machineTotal: 100)
        #expect(usage.machineShare(usage.bench, cores: 2) == 0.25)
        #expect(usage.machineShare(usage.broker, cores: 2) == 0.5)
        #expect(usage.machineShare(usage.workers, cores: 2) == nil)
        #expect(usage.idleShare == 0.25)
        #expect(usage.otherShare(cores: 2) == 0)
        var busier = usage
        busier.machineIdle = 10
        #expect(abs((busier.otherShare(cores: 2) ?? 0) - 0.15) < 1e-9)
        #expect(CPUUsage.millisecondsPerSaga(Int(ProcFS.ticksPerSecond), sagas: 500) == 2)
        let twice = usage + usage
        #expect(twice.wall == .seconds(4))
        #expect(twice.machineShare(twice.broker, cores: 2) == 0.5)
        #expect(usage.sharesText(cores: 2) == "broker 50 % · bench 25 % · idle 25 % · else 0 % of 2 CPUs")
    }

    @Test func theStepOverheadSaysWhatTheCPUsDidAndWhenTheyHadNoRoom() throws {
        let options = BenchOptions(broker: BrokerAddress(url: "amqp://guest@127.0.0.1:5672/"), quick: true)
        let latency = LatencySummary([.milliseconds(3), .milliseconds(9)])
        func report(idle: Int) -> BenchReport {
            var report = BenchReport(options: options)
            report.cores = 2
            report.record(
                OverheadRuns(
                    workers: StepOverhead(
                        latency: latency,
                        cpu: CPUUsage(
                            wall: .seconds(1), bench: Int(ProcFS.ticksPerSecond), workers: nil,
                            broker: Int(ProcFS.ticksPerSecond) * (100 - 2 * idle) / 100, machineIdle: idle,
                            machineTotal: 100)),
                    floor: nil))
            return report
        }
        let saturated = report(idle: 9)
        #expect(saturated.text.contains("  CPU meanwhile: broker 41 % · bench 50 % · idle 9 % · else 0 % of 2 CPUs"))
        #expect(saturated.notes.contains { $0.hasPrefix("the CPUs were 9 % idle during the step-overhead run") })
        let roomy = report(idle: 40)
        #expect(roomy.text.contains("  CPU meanwhile: broker 10 % · bench 50 % · idle 40 % · else 0 % of 2 CPUs"))
        #expect(!roomy.notes.contains { $0.contains("step-overhead run") })
        #expect(!roomy.text.contains("floor"), "no floor line without a floor run")
    }

    @Test func theStepOverheadFloorIsPrintedBelowTheWorkersFigures() throws {
        var report = BenchReport(
            options: BenchOptions(broker: BrokerAddress(url: "amqp://guest@127.0.0.1:5672/"), quick: true))
        report.cores = 2
        let ticks = Int(ProcFS.ticksPerSecond)
        func cpu(idle: Int) -> CPUUsage {
            CPUUsage(
                wall: .seconds(1), bench: ticks / 2, workers: nil, broker: ticks / 2, machineIdle: idle,
                machineTotal: 100)
        }
        let floor = try #require(LatencySummary([.milliseconds(4), .milliseconds(6)]))
        report.record(
            OverheadRuns(
                workers: StepOverhead(
                    latency: LatencySummary([.milliseconds(9), .milliseconds(11)]), cpu: cpu(idle: 50)),
                floor: StepOverhead(latency: floor, cpu: cpu(idle: 10))))
        let lines = report.text.split(separator: "\n").map(String.init)
        let target = try #require(lines.firstIndex { $0.hasPrefix("  target p50 <= 2.00 ms: MISSED") })
        #expect(
            lines[target + 1]
                == "  floor, the same orders through the pattern replay (raw AMQP, no engine, no SQLite): p50 "
                + "\(Format.milliseconds(floor.p50)) · p99 \(Format.milliseconds(floor.p99)) · max 6.00 ms over 2 replies"
        )
        #expect(lines[target + 2] == "  CPU meanwhile: broker 25 % · bench 25 % · idle 10 % · else 40 % of 2 CPUs")
        // Only the floor's run had no room: the note names it.
        #expect(report.notes.map { $0.prefix(48) } == ["the CPUs were 10 % idle during the floor's run: "])
    }
}
