import SagaEngine
import SagaStore
import Testing
import WaybillDefinition
import WaybillTestSupport
import WaybillWire
import WaybillWorker

/// Milestone events as the worker writes them (docs/events.md), without a broker: the shipped order-fulfillment
/// workflow run through the engine, each transition's actions turned into outbox messages by ``WireFormat``.
struct MilestoneWireTests {
    static let format = WireFormat(
        commandsExchange: "waybill.commands", eventsExchange: "waybill.events", replyQueue: "waybill.p00")

    /// One saga of the shipped workflow, collecting the events the worker would publish.
    struct Run {
        let engine = SagaEngine(jitterSeed: 7)
        let definition: WorkflowDefinition
        var instance: SagaInstance
        var now = Timestamp(milliseconds: 1_764_000_000_000)
        /// Every event message so far, in order.
        var events: [OutboxMessage] = []
        /// The commands of the last transition.
        var commands: [CommandMessage] = []

        init(order: JSONValue) throws {
            let source = try WorkflowSource.read(file: Repository.workflow("order-fulfillment.yaml").path)
            definition = try WorkflowLoader.load(source)
            let sagaId = try engine.sagaId(for: order, in: definition)
            let transition = engine.start(
                definition: definition, definitionHash: source.hash, sagaId: sagaId, input: order, now: now)
            instance = transition.instance
            note(transition)
        }

        mutating func note(_ transition: Transition) {
            instance = transition.instance
            let outbox = MilestoneWireTests.format.outbox(for: transition.actions, of: transition.instance)
            events += outbox.filter { $0.exchange == "waybill.events" }
            commands = transition.actions.compactMap { if case .sendCommand(let command) = $0 { command } else { nil } }
        }

        mutating func answer(_ command: CommandMessage, _ outcome: ReplyOutcome) {
            now = now.adding(milliseconds: 5)
            note(
                engine.apply(
                    .reply(correlationId: command.messageId, outcome: outcome), to: instance, definition: definition,
                    now: now))
        }

        /// Accept and reserve answered ok, with stock for A at w1 and B at w2: two release branches in flight.
        static func twoWarehouses() throws -> Run {
            var run = try Run(order: OrderJSON.order("o-1", lines: [("A", 1), ("B", 2)]))
            run.answer(run.commands[0], .ok(output: ["orderId": "o-1"]))
            run.answer(
                run.commands[0],
                .ok(output: ["reservationId": "r-1", "stock": OrderJSON.stock([("w1", "A", 5), ("w2", "B", 5)])]))
            return run
        }

        /// Whether every event's body is in canonical form: the bytes ``JSONText/encodeBytes(_:)`` gives its value
        /// (sorted keys, no whitespace), as stored events and their replays have always been written.
        func bodiesAreCanonical() throws -> Bool {
            try events.allSatisfy { JSONText.encodeBytes(try JSONText.decode($0.body)) == $0.body }
        }

        /// The routing keys of the events so far.
        var types: [String] { events.map(\.routingKey) }

        /// The CloudEvents `data` of event `index`.
        func data(_ index: Int) throws -> JSONValue {
            let body = try JSONText.decode(events[index].body)
            return try #require(body["data"])
        }
    }

    static func shipment(_ warehouse: String, _ sku: String, _ quantity: Int) -> JSONValue {
        [
            "id": .string("o-1-\(warehouse)"), "warehouse": .string(warehouse),
            "lines": OrderJSON.lines([(sku, quantity)]),
        ]
    }

    @Test("a two-warehouse order: one order.shipment.shipped per warehouse with its shipment id, then order.shipped")
    func perBranchShipmentEvents() throws {
        var run = try Run.twoWarehouses()
        for release in run.commands { run.answer(release, .ok(output: nil)) }
        let ships = run.commands
        #expect(ships.map { $0.body["shipmentId"] } == ["o-1-w1", "o-1-w2"])
        run.answer(ships[1], .ok(output: ["trackingId": "T-2"]))
        run.answer(ships[0], .ok(output: ["trackingId": "T-1"]))
        run.answer(run.commands[0], .ok(output: ["invoiceId": "i-1"]))

        #expect(
            run.types == [
                "order.accepted", "order.reserved", "order.released", "order.shipment.shipped",
                "order.shipment.shipped", "order.shipped", "order.invoiced", "order.completed",
            ])
        let second = try run.data(3)
        #expect(second["step"] == "ship")
        #expect(second["status"] == "running")
        #expect(second["branch"] == ["index": 1, "item": Self.shipment("w2", "B", 2)])
        #expect(second["output"] == ["trackingId": "T-2"])
        let first = try run.data(4)
        #expect(first["branch"] == ["index": 0, "item": Self.shipment("w1", "A", 1)])
        #expect(first["output"] == ["trackingId": "T-1"])
        let joined = try run.data(5)
        #expect(joined["branch"] == nil)
        #expect(joined["output"] == [["trackingId": "T-1"], ["trackingId": "T-2"]])

        for (index, event) in run.events.enumerated() {
            let body = try JSONText.decode(event.body)
            #expect(body["type"] == .string(event.routingKey))
            #expect(event.headers[WireHeader.eventType] == event.routingKey)
            #expect(event.headers[WireHeader.eventSchema] == "1")
            #expect(try run.data(index)["schemaVersion"] == 1)
            #expect(try run.data(index)["failure"] == nil)
            #expect(event.contentType == WireContentType.cloudEvents)
        }
        #expect(try run.bodiesAreCanonical())
    }

    @Test("order.failed carries the failure's code, message, step and branch, and keeps the fields it had")
    func failedEventSaysWhy() throws {
        var run = try Run.twoWarehouses()
        for release in run.commands { run.answer(release, .ok(output: nil)) }
        let ships = run.commands
        run.answer(ships[0], .ok(output: ["trackingId": "T-1"]))
        run.answer(
            ships[1], .error(StepError(code: "no_carrier", message: "no truck for w2 today", retryable: false)))

        #expect(run.types.suffix(2) == ["order.shipment.shipped", "order.failed"])
        let data = try run.data(run.events.count - 1)
        #expect(
            data == [
                "sagaId": "o-1", "workflow": "order-fulfillment", "version": 2, "status": "suspended",
                "schemaVersion": 1,
                "failure": [
                    "code": "no_carrier", "message": "no truck for w2 today", "step": "ship",
                    "branch": ["index": 1, "item": Self.shipment("w2", "B", 2)],
                ],
            ])
        #expect(try run.bodiesAreCanonical())
        // The CloudEvents envelope around it.
        let failed = try #require(run.events.last)
        guard case .object(var envelope) = try JSONText.decode(failed.body) else {
            Issue.record("the event's body is not an object")
            return
        }
        envelope["data"] = nil
        #expect(
            envelope == [
                "specversion": "1.0", "id": .string(failed.messageId), "source": "waybill/order-fulfillment",
                "type": "order.failed", "subject": "o-1", "time": "2025-11-24T16:00:00.030Z",
                "datacontenttype": "application/json",
                "dataschema": .string(EventSchema.identifier(of: "order.failed")),
            ])
    }

    @Test("order.cancelled of a plain step's failure has no branch")
    func cancelledEventOfAPlainStep() throws {
        var run = try Run(order: OrderJSON.order("o-1", lines: [("A", 1)]))
        run.answer(run.commands[0], .error(StepError(code: "blocked", message: "customer blocked", retryable: false)))

        #expect(run.types == ["order.cancelled"])
        let data = try run.data(0)
        #expect(data["status"] == "compensated")
        #expect(data["failure"] == ["code": "blocked", "message": "customer blocked", "step": "accept"])
        #expect(data["step"] == nil, "an end milestone names the failing step under failure only")
        #expect(try run.bodiesAreCanonical())
    }
}
