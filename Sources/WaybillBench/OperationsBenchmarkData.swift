import Foundation
import SagaEngine
import SagaStore
import SeededRandom
import WaybillDefinition

/// Generates the operations benchmark's file: sagas cloned from engine-made templates (one per state), their times
/// shifted so each lands in the stuck class it stands for, with timers and four journal lines each.
enum BenchmarkData {
    static let workflowYAML = """
        name: order-fulfillment
        version: 1
        trigger: { exchange: orders, routing_key: order.placed, saga_id: "${input.orderId}" }
        defaults:
          timeout: 30s
          retry: { max_attempts: 5, initial_interval: 30s, backoff: 2.0, max_interval: 10m, jitter: none }
        steps:
          - id: accept
            command: erp.order.accept
            input: { orderId: "${input.orderId}", lines: "${input.lines}" }
            compensate: { command: erp.order.cancel, input: { orderId: "${input.orderId}" } }
            milestone: order.accepted
          - id: reserve
            command: inventory.reserve
            input: { orderId: "${input.orderId}", lines: "${input.lines}" }
            compensate: { command: inventory.release, input: { reservationId: "${steps.reserve.output.reservationId}" } }
            milestone: order.reserved
          - id: split
            split: { lines: "${input.lines}", stock: "${steps.reserve.output.stock}" }
          - id: release
            for_each: ${steps.split.output.shipments}
            as: shipment
            command: wms.${shipment.warehouse}.release
            input: { shipmentId: "${shipment.id}", lines: "${shipment.lines}" }
            compensate: { command: "wms.${shipment.warehouse}.cancel", input: { shipmentId: "${shipment.id}" } }
            milestone: order.released
          - id: ship
            for_each: ${steps.split.output.shipments}
            as: shipment
            command: tms.shipment.create
            input: { shipmentId: "${shipment.id}", warehouse: "${shipment.warehouse}" }
            pivot: true
            milestone: order.shipped
          - id: invoice
            command: billing.invoice.create
            input: { orderId: "${input.orderId}", shipments: "${steps.ship.output}" }
            timeout: 1h
            retry: { max_attempts: unlimited }
            milestone: order.invoiced
        milestones: { completed: order.completed, compensated: order.cancelled, failed: order.failed }
        """

    static let returnsYAML = """
        name: returns
        version: 1
        trigger: { exchange: returns, routing_key: return.requested, saga_id: "${input.returnId}" }
        steps:
          - id: authorize
            command: erp.return.authorize
        """

    /// One kind of saga: a template state, its share of the file, and where its last progress may fall.
    struct Kind {
        var name: String
        var template: SagaInstance
        var currentStep: String?
        var perMillion: Int
        /// Last progress between `now - oldest` and `now - newest` (milliseconds).
        var oldest: Int64
        var newest: Int64
    }

    static func build(path: String, sagas: Int, now: Timestamp) throws -> String {
        let store = try SagaStore(configuration: SagaStore.Configuration(path: path, durability: .normal))
        return try build(stores: [store], place: { _ in 0 }, sagas: sagas, now: now)
    }

    /// The same sagas spread over the partition files of a new pool in `directory`, as its workers would hold them.
    static func buildPool(directory: String, partitions: Int, sagas: Int, now: Timestamp) throws -> String {
        let pool = try PoolDirectory.create(directory, partitions: partitions)
        let stores = try pool.partitions.map { partition in
            try SagaStore(
                configuration: SagaStore.Configuration(
                    path: pool.databasePath(partition: partition), durability: .normal))
        }
        return try build(stores: stores, place: { pool.partition(of: $0) }, sagas: sagas, now: now)
    }

    /// Writes the sagas into `stores`, each saga into `stores[place(id)]`, and closes them.
    private static func build(
        stores: [SagaStore], place: (String) -> Int, sagas: Int, now: Timestamp
    ) throws -> String {
        let definition = try WorkflowLoader.load(yaml: workflowYAML, file: "bench.yaml")
        var hash = ""
        for store in stores {
            hash = try store.saveDefinition(
                name: "order-fulfillment", version: 1, source: workflowYAML,
                at: now.adding(milliseconds: -40 * 86_400_000))
            _ = try store.saveDefinition(
                name: "returns", version: 1, source: returnsYAML, at: now.adding(milliseconds: -40 * 86_400_000))
        }
        let kinds = try templates(definition: definition, hash: hash)

        var generator = SplitMix64(seed: 42)
        var counts: [String: Int] = [:]
        // A worker inserts a saga's row when it starts: write rows in start order, as a real file has them.
        var plan: [(number: Int, kind: Int, updatedAt: Int64, startedAt: Int64)] = []
        plan.reserveCapacity(sagas)
        for number in 0..<sagas {
            let kindIndex = pick(kinds, number: number, total: sagas)
            let kind = kinds[kindIndex]
            let span = max(1, kind.oldest - kind.newest)
            let target = now.milliseconds - kind.newest - Int64(generator.next() % UInt64(span))
            let age = kind.template.updatedAt.milliseconds - kind.template.startedAt.milliseconds
            plan.append((number, kindIndex, target, target - age))
        }
        plan.sort { ($0.startedAt, $0.number) < ($1.startedAt, $1.number) }
        // Written through the store's own commit, in large batches, so the file is exactly what a worker writes.
        var pending = Array(repeating: [SagaChange](), count: stores.count)
        for entry in plan {
            let kind = kinds[entry.kind]
            let number = entry.number
            counts[kind.name, default: 0] += 1
            var instance = kind.template
            let id = "o-\(number + 1)"
            instance.key = SagaKey(workflow: "order-fulfillment", id: id)
            instance.shift(by: entry.updatedAt - instance.updatedAt.milliseconds)
            let started = instance.startedAt
            let journal = [
                JournalEntry(
                    at: started, kind: .start,
                    detail: "started order-fulfillment v1 (definition \(hash.prefix(12))) → running; sent 1 command"),
                JournalEntry(
                    at: started.adding(milliseconds: 800), kind: .reply, step: "accept",
                    detail: "reply ok for accept → running; sent 1 command, published order.accepted"),
                JournalEntry(
                    at: started.adding(milliseconds: 1_600), kind: .reply, step: "reserve",
                    detail: "reply ok for reserve → running; sent 2 commands"),
                JournalEntry(
                    at: instance.updatedAt, kind: .reply, step: kind.currentStep,
                    detail: "reply for \(kind.currentStep ?? "invoice") → \(instance.status.rawValue)"),
            ]
            let timers = instance.steps.flatMap { step in step.branches.compactMap(\.timer) }
            let target = place(id)
            pending[target].append(
                SagaChange(
                    key: instance.key, at: instance.updatedAt, instance: instance, currentStep: kind.currentStep,
                    owner: "w\(number % 4 + 1)", journal: journal, scheduleTimers: timers))
            if pending[target].count == 10_000 {
                try stores[target].commit(pending[target])
                pending[target].removeAll(keepingCapacity: true)
            }
        }
        for (store, changes) in zip(stores, pending) {
            try store.commit(changes)
            try store.close()
        }
        return kinds.map { "\($0.name) \(counts[$0.name] ?? 0)" }.joined(separator: ", ")
    }

    /// Deterministic spread of kinds over saga numbers, in proportion to `perMillion`.
    private static func pick(_ kinds: [Kind], number: Int, total: Int) -> Int {
        let slot = Int((UInt64(number) &* 0x9E37_79B9_7F4A_7C15) % 1_000_000)
        var cumulative = 0
        for (index, kind) in kinds.enumerated() {
            cumulative += kind.perMillion
            if slot < cumulative { return index }
        }
        return 0
    }

    // MARK: - Templates

    private static func templates(definition: WorkflowDefinition, hash: String) throws -> [Kind] {
        let minute: Int64 = 60_000
        let day = 1_440 * minute
        func run(_ body: (inout Driver) -> Void) -> SagaInstance {
            var driver = Driver(definition: definition, hash: hash)
            driver.start()
            body(&driver)
            return driver.instance
        }
        let reservation: JSONValue = [
            "reservationId": "r-1",
            "stock": [
                ["warehouse": "w1", "sku": "A", "quantity": 5], ["warehouse": "w2", "sku": "B", "quantity": 5],
            ],
        ]
        func toShip(_ d: inout Driver) {
            d.reply("erp.order.accept")
            d.reply("inventory.reserve", output: reservation)
            d.reply("wms.w1.release")
            d.reply("wms.w2.release")
        }
        func toInvoice(_ d: inout Driver) {
            toShip(&d)
            d.reply("tms.shipment.create", output: ["trackingId": "T-1"])
            d.reply("tms.shipment.create", output: ["trackingId": "T-2"])
        }
        let completed = run { d in
            toInvoice(&d)
            d.reply("billing.invoice.create")
        }
        let compensated = run { d in
            d.reply("erp.order.accept")
            d.fail("inventory.reserve", code: "out_of_stock", retryable: false)
            d.reply("erp.order.cancel")
        }
        let cancelled = run { d in d.cancel() }
        let atAccept = run { _ in }
        let atReserve = run { d in d.reply("erp.order.accept") }
        let atRelease = run { d in
            d.reply("erp.order.accept")
            d.reply("inventory.reserve", output: reservation)
        }
        let atShip = run { d in toShip(&d) }
        let atInvoice = run { d in toInvoice(&d) }
        let retrying = run { d in
            d.reply("erp.order.accept")
            d.reply("inventory.reserve", output: reservation)
            d.fail("wms.w2.release", code: "wms_busy", retryable: true)
        }
        let timerOverdue = run { d in d.fail("erp.order.accept", code: "erp_down", retryable: true) }
        let compensating = run { d in
            d.reply("erp.order.accept")
            d.fail("inventory.reserve", code: "out_of_stock", retryable: false)
        }
        let compensationFailing = run { d in
            d.reply("erp.order.accept")
            d.fail("inventory.reserve", code: "out_of_stock", retryable: false)
            d.fail("erp.order.cancel", code: "erp_down", retryable: true)
        }
        let suspended = run { d in
            toShip(&d)
            d.reply("tms.shipment.create", output: ["trackingId": "T-1"])
            d.fail("tms.shipment.create", code: "address_invalid", retryable: false)
        }
        return [
            Kind(
                name: "completed", template: completed, currentStep: nil, perMillion: 905_000, oldest: 30 * day,
                newest: minute),
            Kind(
                name: "compensated", template: compensated, currentStep: "reserve", perMillion: 30_000,
                oldest: 30 * day, newest: minute),
            Kind(
                name: "cancelled", template: cancelled, currentStep: "accept", perMillion: 5_000, oldest: 30 * day,
                newest: minute),
            Kind(
                name: "on schedule at accept", template: atAccept, currentStep: "accept", perMillion: 8_000,
                oldest: 25_000, newest: 0),
            Kind(
                name: "on schedule at reserve", template: atReserve, currentStep: "reserve", perMillion: 8_000,
                oldest: 25_000, newest: 0),
            Kind(
                name: "on schedule at release", template: atRelease, currentStep: "release", perMillion: 8_000,
                oldest: 25_000, newest: 0),
            Kind(
                name: "on schedule at ship", template: atShip, currentStep: "ship", perMillion: 8_000, oldest: 25_000,
                newest: 0),
            Kind(
                name: "on schedule at invoice", template: atInvoice, currentStep: "invoice", perMillion: 8_000,
                oldest: 14 * minute, newest: 0),
            Kind(
                name: "retrying", template: retrying, currentStep: "release", perMillion: 5_000, oldest: 25_000,
                newest: 0),
            Kind(
                name: "reply overdue", template: atShip, currentStep: "ship", perMillion: 2_000, oldest: 120 * minute,
                newest: 2 * minute),
            Kind(
                name: "timer overdue", template: timerOverdue, currentStep: "accept", perMillion: 1_000,
                oldest: 120 * minute, newest: 5 * minute),
            Kind(
                name: "no progress", template: atInvoice, currentStep: "invoice", perMillion: 2_000,
                oldest: 55 * minute, newest: 16 * minute),
            Kind(
                name: "compensating", template: compensating, currentStep: "reserve", perMillion: 2_500, oldest: 25_000,
                newest: 0),
            Kind(
                name: "compensation failing", template: compensationFailing, currentStep: "reserve", perMillion: 2_500,
                oldest: 25_000, newest: 0),
            Kind(
                name: "suspended", template: suspended, currentStep: "ship", perMillion: 5_000, oldest: 7 * day,
                newest: minute),
        ]
    }

    /// Drives one template saga through the engine, a second per event.
    struct Driver {
        let definition: WorkflowDefinition
        let hash: String
        let engine = SagaEngine(jitterSeed: 7)
        var instance: SagaInstance
        var clock = Timestamp(milliseconds: 0)

        init(definition: WorkflowDefinition, hash: String) {
            self.definition = definition
            self.hash = hash
            let input: JSONValue = [
                "orderId": "o-template", "lines": [["sku": "A", "quantity": 2], ["sku": "B", "quantity": 1]],
            ]
            instance =
                SagaEngine(jitterSeed: 7).start(
                    definition: definition, definitionHash: hash, sagaId: "o-template", input: input, now: clock
                ).instance
        }

        mutating func start() {}

        mutating func reply(_ routingKey: String, output: JSONValue? = nil) {
            answer(routingKey, .ok(output: output))
        }

        mutating func fail(_ routingKey: String, code: String, retryable: Bool) {
            answer(
                routingKey, .error(StepError(code: code, message: "\(code) from the participant", retryable: retryable))
            )
        }

        mutating func cancel() {
            apply(.operatorCommand(OperatorCommand(action: .cancel, by: "ops", reason: "duplicate order")))
        }

        private mutating func answer(_ routingKey: String, _ outcome: ReplyOutcome) {
            let pending = instance.steps.flatMap { $0.branches.compactMap(\.pending) }.filter {
                $0.routingKey == routingKey
            }
            guard let command = pending.min(by: { $0.sentAt < $1.sentAt }) else { return }
            apply(.reply(correlationId: command.messageId, outcome: outcome))
        }

        private mutating func apply(_ event: SagaEvent) {
            clock = clock.adding(milliseconds: 1_000)
            let transition = engine.apply(event, to: instance, definition: definition, now: clock)
            if transition.outcome == .applied { instance = transition.instance }
        }
    }
}

extension SagaInstance {
    /// Moves every time in the saga by `delta` milliseconds.
    fileprivate mutating func shift(by delta: Int64) {
        func move(_ time: inout Timestamp) { time = time.adding(milliseconds: delta) }
        func move(_ time: inout Timestamp?) { if let value = time { time = value.adding(milliseconds: delta) } }
        move(&startedAt)
        move(&updatedAt)
        if var failure {
            move(&failure.at)
            self.failure = failure
        }
        for stepIndex in steps.indices {
            move(&steps[stepIndex].startedAt)
            move(&steps[stepIndex].finishedAt)
            for branchIndex in steps[stepIndex].branches.indices {
                var branch = steps[stepIndex].branches[branchIndex]
                move(&branch.startedAt)
                move(&branch.finishedAt)
                if var pending = branch.pending {
                    move(&pending.sentAt)
                    branch.pending = pending
                }
                if var timer = branch.timer {
                    move(&timer.dueAt)
                    branch.timer = timer
                }
                steps[stepIndex].branches[branchIndex] = branch
            }
        }
    }
}
