import Foundation
import SagaEngine
import SagaStore
import WaybillDefinition
import WaybillOperations
import WaybillTestSupport

/// The fixture: two workflows and a saga in every status and every stuck class, built by driving the real engine
/// and committing its changes (with their journal lines and timers) through `SagaStore.commit`.
///
/// All times are relative to ``now`` (2025-01-15T12:00:00Z), which the tests pass to every query and view.
enum Fixture {
    static let now = Timestamp(milliseconds: 1_736_942_400_000)

    /// `now` moved by `seconds` (negative = earlier).
    static func at(_ seconds: Int64) -> Timestamp { now.adding(milliseconds: seconds * 1000) }

    static let orderYAML = """
        name: order-fulfillment
        version: 1
        trigger:
          exchange: orders
          routing_key: order.placed
          saga_id: ${input.orderId}
        defaults:
          timeout: 30s
          retry: { max_attempts: 5, initial_interval: 10s, backoff: 2.0, max_interval: 1m, jitter: none }
        steps:
          - id: accept
            command: erp.order.accept
            input: { orderId: "${input.orderId}" }
            compensate: { command: erp.order.cancel, input: { orderId: "${input.orderId}" } }
            milestone: order.accepted
          - id: reserve
            command: inventory.reserve
            input: { orderId: "${input.orderId}", lines: "${input.lines}" }
            compensate: { command: inventory.release, input: { reservationId: "${steps.reserve.output.reservationId}" } }
            milestone: order.reserved
          - id: split
            split:
              lines: ${input.lines}
              stock: ${steps.reserve.output.stock}
          - id: release
            for_each: ${steps.split.output.shipments}
            as: shipment
            command: wms.${shipment.warehouse}.release
            input: { shipmentId: "${shipment.id}" }
            compensate: { command: "wms.${shipment.warehouse}.cancel", input: { shipmentId: "${shipment.id}" } }
          - id: ship
            for_each: ${steps.split.output.shipments}
            as: shipment
            command: tms.shipment.create
            input: { shipmentId: "${shipment.id}" }
            pivot: true
            milestone: order.shipped
          - id: invoice
            command: billing.invoice.create
            input: { orderId: "${input.orderId}", lastTracking: "${steps.ship.output[1].trackingId}" }
            timeout: 2h
            retry: { max_attempts: unlimited }
        milestones:
          completed: order.completed
          compensated: order.cancelled
          failed: order.failed
          cancelled: order.cancelled
        """

    static let returnsYAML = """
        name: returns
        version: 1
        trigger:
          exchange: returns
          routing_key: return.requested
          saga_id: ${input.returnId}
        steps:
          - id: authorize
            command: erp.return.authorize
            input: { returnId: "${input.returnId}" }
            timeout: 1m
        """

    /// Builds the fixture file in `directory` and returns its path.
    static func build(in directory: TemporaryDirectory) throws -> String {
        let path = directory.file("worker-a.sqlite")
        let store = try SagaStore(configuration: SagaStore.Configuration(path: path, durability: .normal))
        try store.commit(try changes(saveDefinitionsIn: store))
        try store.close()
        return path
    }

    /// Builds the same sagas as a pool of `partitions` partitions in `directory/pool`: each saga's changes are
    /// committed to the file of its partition, as the partition's owner would, with both definitions stored in every
    /// file that has sagas; a partition without sagas gets no file.
    static func buildPool(in directory: TemporaryDirectory, partitions: Int = 8) throws -> PoolDirectory {
        let pool = try PoolDirectory.create(directory.file("pool"), partitions: partitions)
        let scratch = try SagaStore(
            configuration: SagaStore.Configuration(path: directory.file("scratch.sqlite"), durability: .normal))
        let all = try changes(saveDefinitionsIn: scratch)
        try scratch.close()
        for (partition, mine) in Dictionary(grouping: all, by: { pool.partition(of: $0.key.id) }) {
            let store = try SagaStore(
                configuration: SagaStore.Configuration(
                    path: pool.databasePath(partition: partition), durability: .normal))
            _ = try changes(saveDefinitionsIn: store)
            try store.commit(mine)
            try store.close()
        }
        return pool
    }

    /// Stores both definitions in `store` and returns every saga's changes, in the order a worker commits them.
    static func changes(saveDefinitionsIn store: SagaStore) throws -> [SagaChange] {
        let order = try WorkflowLoader.load(yaml: orderYAML, file: "order-fulfillment.yaml")
        let returns = try WorkflowLoader.load(yaml: returnsYAML, file: "returns.yaml")
        let orderHash = try store.saveDefinition(
            name: "order-fulfillment", version: 1, source: orderYAML, at: at(-86_400))
        let returnsHash = try store.saveDefinition(name: "returns", version: 1, source: returnsYAML, at: at(-86_400))
        var changes: [SagaChange] = []
        func script(_ id: String, owner: String = "worker-a", _ body: (inout SagaScript) -> Void) {
            var script = SagaScript(definition: order, hash: orderHash, id: id, owner: owner)
            body(&script)
            changes += script.changes
        }

        // Completed two hours ago.
        script("o-1001") { s in
            s.start(at: at(-7_500))
            s.reply("erp.order.accept", at: at(-7_499))
            s.reply("inventory.reserve", output: reservation, at: at(-7_498))
            s.reply("wms.w1.release", at: at(-7_497))
            s.reply("wms.w2.release", at: at(-7_496))
            s.reply("tms.shipment.create", output: ["trackingId": "T-1"], at: at(-7_300))
            s.reply("tms.shipment.create", output: ["trackingId": "T-2"], at: at(-7_250))
            s.reply("billing.invoice.create", at: at(-7_200))
        }
        // Compensated: reservation refused, acceptance undone.
        script("o-1002") { s in
            s.start(at: at(-5_400))
            s.reply("erp.order.accept", at: at(-5_399))
            s.fail(
                "inventory.reserve", code: "out_of_stock", message: "SKU B short by 1", retryable: false, at: at(-5_398)
            )
            s.reply("erp.order.cancel", at: at(-5_397))
        }
        // Cancelled by an operator while waiting for the ERP.
        script("o-1003") { s in
            s.start(at: at(-4_000))
            s.operatorCommand(.cancel, by: "alice", reason: "duplicate of o-1001", at: at(-3_900))
        }
        // Suspended after the pivot: ship[1] refused by the carrier.
        script("o-1004", owner: "worker-b") { s in
            s.start(at: at(-3_600))
            s.reply("erp.order.accept", at: at(-3_599))
            s.reply("inventory.reserve", output: reservation, at: at(-3_598))
            s.reply("wms.w1.release", at: at(-3_597))
            s.reply("wms.w2.release", at: at(-3_596))
            s.reply("tms.shipment.create", output: ["trackingId": "T-7"], at: at(-3_500))
            s.fail(
                "tms.shipment.create", code: "address_invalid", message: "street missing", retryable: false,
                at: at(-3_000))
        }
        // Compensation failing: the ERP refuses to cancel, retry timer ahead.
        script("o-1005") { s in
            s.start(at: at(-1_200))
            s.reply("erp.order.accept", at: at(-1_199))
            s.fail(
                "inventory.reserve", code: "out_of_stock", message: "SKU A short by 2", retryable: false, at: at(-1_198)
            )
            s.fail("erp.order.cancel", code: "erp_down", message: "503 from ERP", retryable: true, at: at(-5))
        }
        // Waiting for a reply past its timeout: the timeout timer never fired (worker down).
        script("o-1006") { s in
            s.start(at: at(-600))
            s.reply("erp.order.accept", at: at(-599))
        }
        // Timer overdue: a retry was due five minutes ago.
        script("o-1007") { s in
            s.start(at: at(-700))
            s.fail("erp.order.accept", code: "erp_down", message: "503 from ERP", retryable: true, at: at(-310))
        }
        // Retrying: attempt 2 failed, attempt 3 due in 20 seconds.
        script("o-1008") { s in
            s.start(at: at(-120))
            s.fail("erp.order.accept", code: "timeout", message: "no reply within 30s", retryable: true, at: at(-90))
            s.fireTimer(at: at(-80))
            s.fail("erp.order.accept", code: "erp_down", message: "503 from ERP", retryable: true, at: at(-5))
        }
        // No progress for 50 minutes: waiting for billing within its 2h timeout.
        script("o-1009") { s in
            s.start(at: at(-3_300))
            s.reply("erp.order.accept", at: at(-3_299))
            s.reply("inventory.reserve", output: reservation, at: at(-3_298))
            s.reply("wms.w1.release", at: at(-3_297))
            s.reply("wms.w2.release", at: at(-3_296))
            s.reply("tms.shipment.create", output: ["trackingId": "T-3"], at: at(-3_010))
            s.reply("tms.shipment.create", output: ["trackingId": "T-4"], at: at(-3_000))
        }
        // On schedule: accepted, reservation sent ten seconds ago.
        script("o-1010") { s in
            s.start(at: at(-15))
            s.reply("erp.order.accept", at: at(-10))
        }
        changes += returnsSaga(returns, hash: returnsHash)
        // A worker commits changes as they happen: keep that order, so row ids follow start order as in a real file.
        let ordered = changes.enumerated().sorted { ($0.element.at, $0.offset) < ($1.element.at, $1.offset) }
        return ordered.map(\.element)
    }

    static let reservation: JSONValue = [
        "reservationId": "r-1",
        "stock": [
            ["warehouse": "w1", "sku": "A", "quantity": 5],
            ["warehouse": "w2", "sku": "B", "quantity": 5],
        ],
    ]

    /// `o-1010` also exists in `returns`, so a bare `o-1010` is ambiguous.
    private static func returnsSaga(_ definition: WorkflowDefinition, hash: String) -> [SagaChange] {
        var script = SagaScript(definition: definition, hash: hash, id: "o-1010", owner: "worker-a")
        script.start(at: at(-30), input: ["returnId": "o-1010"])
        return script.changes
    }
}

/// Drives one saga through the real engine and keeps the store changes each step makes.
struct SagaScript {
    let definition: WorkflowDefinition
    let hash: String
    let id: String
    let owner: String
    let engine = SagaEngine(jitterSeed: 1)
    var instance: SagaInstance?
    var changes: [SagaChange] = []

    init(definition: WorkflowDefinition, hash: String, id: String, owner: String) {
        self.definition = definition
        self.hash = hash
        self.id = id
        self.owner = owner
    }

    mutating func start(at now: Timestamp, input: JSONValue? = nil) {
        let input =
            input ?? [
                "orderId": .string(id),
                "lines": [["sku": "A", "quantity": 2], ["sku": "B", "quantity": 1]],
            ]
        let transition = engine.start(definition: definition, definitionHash: hash, sagaId: id, input: input, now: now)
        record(.start(input: input), transition: transition, at: now, message: "start-\(definition.name)-\(id)")
    }

    /// Answers the oldest pending command whose routing key is `routingKey`.
    mutating func reply(_ routingKey: String, output: JSONValue? = nil, at now: Timestamp) {
        answer(routingKey, outcome: .ok(output: output), at: now)
    }

    mutating func fail(_ routingKey: String, code: String, message: String, retryable: Bool, at now: Timestamp) {
        answer(routingKey, outcome: .error(StepError(code: code, message: message, retryable: retryable)), at: now)
    }

    /// Fires the earliest live timer.
    mutating func fireTimer(at now: Timestamp) {
        guard let instance else { return }
        let timers = instance.steps.flatMap { $0.branches.compactMap(\.timer) }.sorted { $0.dueAt < $1.dueAt }
        guard let timer = timers.first else { return }
        apply(.timerFired(timerId: timer.id), at: now, message: "timer:\(timer.id)")
    }

    mutating func operatorCommand(_ action: OperatorCommand.Action, by: String, reason: String, at now: Timestamp) {
        apply(.operatorCommand(OperatorCommand(action: action, by: by, reason: reason)), at: now, message: nil)
    }

    private mutating func answer(_ routingKey: String, outcome: ReplyOutcome, at now: Timestamp) {
        guard let instance else { return }
        let pending = instance.steps.flatMap { $0.branches.compactMap(\.pending) }
            .filter { $0.routingKey == routingKey }
        guard let command = pending.min(by: { $0.sentAt < $1.sentAt }) else {
            preconditionFailure("\(id): no pending \(routingKey)")
        }
        apply(
            .reply(correlationId: command.messageId, outcome: outcome), at: now, message: "reply-\(command.messageId)")
    }

    private mutating func apply(_ event: SagaEvent, at now: Timestamp, message: String?) {
        guard let instance else { return }
        let transition = engine.apply(event, to: instance, definition: definition, now: now)
        record(event, transition: transition, at: now, message: message)
    }

    private mutating func record(_ event: SagaEvent, transition: Transition, at now: Timestamp, message: String?) {
        changes.append(
            SagaChange(
                event: event, before: instance, transition: transition, definition: definition, at: now, owner: owner,
                inboxMessageId: message))
        if transition.outcome == .applied { instance = transition.instance }
    }
}
