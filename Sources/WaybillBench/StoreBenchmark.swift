import Foundation
import PlainText
import SagaEngine
import SagaStore
import WaybillDefinition
import WaybillWire

/// Saga transitions committed per second by ``SagaStore/commit(_:)``, on real files in a temporary directory.
///
/// Each transition is what a reply to an order saga writes: the new state of a six-step saga with three shipments,
/// one journal line, one inbox mark, one or two ~300-byte commands in the outbox, one timer upsert and one timer
/// delete. Batches of 1, 64 and 256 transitions per transaction, under `synchronous=FULL` (the default) and
/// `NORMAL`. Also prints what encoding the saga state costs, against Foundation's JSON coders.
enum StoreBenchmark {
    /// Runs every configuration over `sagas` distinct sagas and returns the report.
    ///
    /// `transitions` is how many transitions each batched run commits; the batch-1 runs commit at most
    /// `batchOneTransitions` (an fsync each under FULL).
    static func run(sagas: Int = 1_000, transitions: Int = 20_000, batchOneTransitions: Int = 2_000) throws -> String {
        let template = try BenchFixture.instance()
        var lines: [String] = []
        lines.append(contentsOf: try codecReport(template))
        lines.append("")
        lines.append(
            "store commit: one transition = saga upsert + 1 journal + 1 inbox + 1-2 outbox + timer upsert/delete")
        lines.append("  synchronous  batch  transitions  seconds  transitions/s  CPU µs/transition")
        for durability in [SagaStore.Configuration.Durability.full, .normal] {
            var batchOneRate = 0.0
            for batchSize in [1, 64, 256] {
                let count = batchSize == 1 ? min(transitions, batchOneTransitions) : transitions
                let result = try measure(
                    template: template, sagas: sagas, transitions: count, batchSize: batchSize, durability: durability)
                let rate = Double(count) / result.wallSeconds
                if batchSize == 1 { batchOneRate = rate }
                let name = durability == .full ? "FULL" : "NORMAL"
                var line =
                    "  \(name.padded(to: 11, .right))  \(String(batchSize).padded(to: 5, .right))  "
                    + "\(String(count).padded(to: 11, .right))  "
                    + "\(String(format: "%.3f", result.wallSeconds).padded(to: 7, .right))  "
                    + "\(String(format: "%.0f", rate).padded(to: 13, .right))  "
                    + String(format: "%.1f", result.cpuSeconds * 1e6 / Double(count)).padded(to: 17, .right)
                if batchSize > 1 { line += String(format: "  (%.1fx batch 1)", rate / batchOneRate) }
                lines.append(line)
            }
        }
        lines.append(
            "  (CPU = the committing thread's CPU time: encoding, SQLite and the kernel's write path, without waits; "
                + "wall-clock rates drop when other processes share the cores or the disk)")
        return lines.joined(separator: "\n")
    }

    /// Encode/decode cost and size of one saga state, compact format versus Foundation JSON.
    static func codecReport(_ instance: SagaInstance) throws -> [String] {
        let clock = ContinuousClock()
        let rounds = 2_000
        let compact = SagaStateFormat.encode(instance)
        let json = try JSONEncoder().encode(instance)
        var sink = 0
        let compactEncode = clock.measure { for _ in 0..<rounds { sink &+= SagaStateFormat.encode(instance).count } }
        let compactDecode = try clock.measure {
            for _ in 0..<rounds { sink &+= try SagaStateFormat.decode(compact).sequence }
        }
        let encoder = JSONEncoder()
        let decoder = JSONDecoder()
        let jsonRounds = 200
        let jsonEncode = try clock.measure { for _ in 0..<jsonRounds { sink &+= try encoder.encode(instance).count } }
        let jsonDecode = try clock.measure {
            for _ in 0..<jsonRounds { sink &+= try decoder.decode(SagaInstance.self, from: json).sequence }
        }
        func micros(_ duration: Duration, _ count: Int) -> String {
            String(format: "%.1f µs", seconds(duration) * 1e6 / Double(count))
        }
        blackHole(sink)
        return [
            "saga state (6 steps, 3 shipments, mid-flight): compact \(compact.count) B, JSON \(json.count) B",
            "  compact format: encode \(micros(compactEncode, rounds)), decode \(micros(compactDecode, rounds))",
            "  Foundation JSONEncoder/JSONDecoder: encode \(micros(jsonEncode, jsonRounds)), "
                + "decode \(micros(jsonDecode, jsonRounds))",
        ]
    }

    /// Seconds to commit `transitions` transitions in batches of `batchSize` (the sagas exist beforehand).
    static func measure(
        template: SagaInstance, sagas: Int, transitions: Int, batchSize: Int,
        durability: SagaStore.Configuration.Durability
    ) throws -> Measurement {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-bench-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SagaStore(
            configuration: .init(path: directory.appendingPathComponent("store.sqlite").path, durability: durability))
        defer { try? store.close() }

        // The in-flight branches of the fixture carry a reply-timeout timer to copy.
        guard let timerTemplate = template.steps.lazy.flatMap(\.branches).compactMap(\.timer).first else {
            throw CocoaError(.featureUnsupported)
        }
        var instances = (0..<sagas).map { index in
            var instance = template
            instance.key.id = "ord-\(100_000 + index)"
            return instance
        }
        let start = Timestamp(milliseconds: 1_700_000_000_000)
        // Create the sagas first (not timed), so the timed runs update existing rows as a worker does.
        for chunk in stride(from: 0, to: sagas, by: 256) {
            try store.commit(
                instances[chunk..<min(chunk + 256, sagas)].map { instance in
                    SagaChange(
                        key: instance.key, at: start, instance: instance, currentStep: "ship", owner: "bench",
                        journal: [JournalEntry(at: start, kind: .start, detail: "started")],
                        inboxMessageId: "start-\(instance.key.id)",
                        scheduleTimers: [timer(timerTemplate, instance.key.id, sequence: 0, due: start)])
                })
        }

        let clock = ContinuousClock()
        var elapsed = Duration.zero
        var cpu = 0.0
        var done = 0
        while done < transitions {
            let count = min(batchSize, transitions - done)
            var batch: [SagaChange] = []
            batch.reserveCapacity(count)
            for offset in 0..<count {
                let number = done + offset
                let index = number % sagas
                instances[index].sequence += 1
                instances[index].updatedAt = start.adding(milliseconds: Int64(number))
                batch.append(
                    change(for: instances[index], timer: timerTemplate, number: number, at: instances[index].updatedAt))
            }
            // Only the commit is timed: building changes is the engine's and the worker's cost.
            let cpuBefore = threadCPUSeconds()
            elapsed += try clock.measure { try store.commit(batch) }
            cpu += threadCPUSeconds() - cpuBefore
            done += count
        }
        return Measurement(wallSeconds: seconds(elapsed), cpuSeconds: cpu)
    }

    /// Wall-clock and committing-thread CPU time of one run.
    struct Measurement {
        var wallSeconds: Double
        var cpuSeconds: Double
    }

    /// CPU time this thread has used. Commits run on the calling thread (GRDB's writer queue runs `sync` blocks
    /// there), so this is the store's own cost, without time spent waiting for the disk or for other processes.
    static func threadCPUSeconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// Keeps the optimizer from deleting measured work.
    @inline(never)
    static func blackHole(_ value: Int) {
        if value == .min { print("") }
    }

    static func timer(_ template: SagaTimer, _ sagaId: String, sequence: Int, due: Timestamp) -> SagaTimer {
        var timer = template
        timer.id = "\(sagaId)/t\(sequence)"
        timer.dueAt = due.adding(milliseconds: 30_000)
        return timer
    }

    static func change(
        for instance: SagaInstance, timer template: SagaTimer, number: Int, at now: Timestamp
    )
        -> SagaChange
    {
        let sagaId = instance.key.id
        let messages = number % 2 == 0 ? 1 : 2
        let outbox = (0..<messages).map { branch in
            OutboxMessage(
                messageId: "\(sagaId)/m\(instance.sequence)-\(branch)", exchange: "waybill.commands",
                routingKey: "tms.shipment.create", contentType: WireContentType.json,
                correlationId: "\(sagaId)/m\(instance.sequence)-\(branch)",
                replyTo: PoolQueues.partition(0, pool: "waybill"),
                headers: [
                    WireHeader.idempotencyKey: "\(sagaId)/ship/\(branch)", WireHeader.sagaId: sagaId,
                    WireHeader.workflow: "order-fulfillment", WireHeader.step: "ship", WireHeader.action: "do",
                    WireHeader.attempt: "1",
                ],
                body: BenchFixture.commandBody(sagaId: sagaId, branch: branch), mandatory: true)
        }
        return SagaChange(
            key: instance.key, at: now, instance: instance, currentStep: "ship", owner: "worker-1",
            journal: [
                JournalEntry(
                    at: now, kind: .reply, step: "ship[\(number % 3)]",
                    detail: "reply ok for ship[\(number % 3)] output {\"trackingId\":\"T\(number)\"} → running; "
                        + "sent \(messages) command\(messages == 1 ? "" : "s")")
            ],
            inboxMessageId: "reply-\(sagaId)-\(instance.sequence)", outbox: outbox,
            scheduleTimers: [timer(template, sagaId, sequence: instance.sequence, due: now)],
            cancelTimerIds: ["\(sagaId)/t\(instance.sequence - 1)"])
    }
}

/// A realistic mid-flight order saga, built through the engine types' `Codable` form (their memberwise
/// initializers are internal to SagaEngine).
enum BenchFixture {

    /// A ~300-byte command body (one shipment with a few lines).
    static func commandBody(sagaId: String, branch: Int) -> [UInt8] {
        let lines: JSONValue = .array(
            (0..<4).map { ["sku": .string("SKU-\(1000 + $0)"), "quantity": .number(Double($0 + 1)), "uom": "EA"] })
        let body: JSONValue = [
            "shipmentId": .string("\(sagaId)-s\(branch)"),
            "warehouse": .string(["berlin", "hamburg", "munich"][branch]),
            "orderId": .string(sagaId), "carrier": "dhl-parcel", "service": "standard", "lines": lines,
            "address": ["name": "Erika Mustermann", "street": "Heidestraße 17", "city": "Köln", "zip": "51147"],
        ]
        return JSONText.encodeBytes(body)
    }

    static func ms(_ value: Int64) -> JSONValue { ["milliseconds": .number(Double(value))] }

    static func branch(_ index: Int, item: JSONValue?, status: String, inFlight: Bool, output: JSONValue?) -> JSONValue
    {
        var members: [String: JSONValue] = [
            "status": .string(status), "round": 0, "attempt": 1, "compensationAttempt": 0, "unansweredAttempts": 0,
            "startedAt": ms(1_700_000_000_000),
        ]
        if let item { members["item"] = item }
        if let output {
            members["output"] = output
            members["finishedAt"] = ms(1_700_000_001_000)
        }
        if inFlight {
            members["pending"] = [
                "messageId": .string("ord-100042/ship/\(index)/a1/m17"), "routingKey": "tms.shipment.create",
                "kind": "do", "attempt": 1, "sentAt": ms(1_700_000_002_000),
            ]
            members["timer"] = [
                "id": .string("ord-100042/t18/\(index)"), "kind": "replyTimeout", "dueAt": ms(1_700_000_032_000),
            ]
        }
        return .object(members)
    }

    static func step(_ status: String, _ branches: [JSONValue], output: JSONValue?) -> JSONValue {
        var members: [String: JSONValue] = [
            "status": .string(status), "branches": .array(branches), "round": 0, "reallocations": 0,
            "excludedWarehouses": [],
        ]
        if status != "pending" { members["startedAt"] = ms(1_700_000_000_000) }
        if let output {
            members["output"] = output
            members["finishedAt"] = ms(1_700_000_001_000)
        }
        return .object(members)
    }

    /// accept, reserve, split done; release done for 3 shipments; ship in flight for 3; invoice pending.
    static func instanceJSON() -> JSONValue {
        let lines: JSONValue = .array(
            (0..<5).map { ["sku": .string("SKU-\(1000 + $0)"), "quantity": .number(Double($0 + 1))] })
        let shipments: [JSONValue] = (0..<3).map {
            [
                "id": .string("ord-100042-s\($0)"), "warehouse": .string(["berlin", "hamburg", "munich"][$0]),
                "lines": .array([["sku": .string("SKU-\(1000 + $0)"), "quantity": 2]]),
            ]
        }
        let stock: JSONValue = .array(
            (0..<5).map { ["warehouse": "berlin", "sku": .string("SKU-\(1000 + $0)"), "quantity": 10] })
        let released = shipments.enumerated().map {
            branch($0.offset, item: $0.element, status: "succeeded", inFlight: false, output: ["released": true])
        }
        let shipping = shipments.enumerated().map {
            branch($0.offset, item: $0.element, status: "inFlight", inFlight: true, output: nil)
        }
        let steps: [JSONValue] = [
            step(
                "succeeded", [branch(0, item: nil, status: "succeeded", inFlight: false, output: ["accepted": true])],
                output: ["accepted": true]),
            step(
                "succeeded",
                [
                    branch(
                        0, item: nil, status: "succeeded", inFlight: false,
                        output: ["reservationId": "r-889", "stock": stock])
                ], output: ["reservationId": "r-889", "stock": stock]),
            step("succeeded", [], output: ["shipments": .array(shipments), "backordered": []]),
            step("succeeded", released, output: [["released": true], ["released": true], ["released": true]]),
            step("running", shipping, output: nil),
            step("pending", [], output: nil),
        ]
        let completions: JSONValue = [
            ["step": 0, "branch": 0], ["step": 1, "branch": 0], ["step": 2, "branch": 0], ["step": 3, "branch": 0],
            ["step": 3, "branch": 1], ["step": 3, "branch": 2],
        ]
        return [
            "key": ["workflow": "order-fulfillment", "id": "ord-100042"], "version": 1,
            "definitionHash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "status": "running",
            "input": ["orderId": "ord-100042", "customer": "c-77", "lines": lines, "currency": "EUR"],
            "steps": .array(steps), "cursor": 4, "completions": completions, "pivotPassed": false,
            "startedAt": ms(1_700_000_000_000), "updatedAt": ms(1_700_000_002_000), "sequence": 18,
        ]
    }

    static func instance() throws -> SagaInstance {
        try JSONDecoder().decode(SagaInstance.self, from: Data(JSONText.encodeBytes(instanceJSON())))
    }
}
