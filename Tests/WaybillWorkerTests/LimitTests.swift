import Foundation
import Prometheus
import SagaEngine
import SagaStore
import Synchronization
import Testing
import WaybillDefinition
import WaybillHTTP
import WaybillTestSupport

@testable import WaybillWorker

/// The participants' limits against a real broker and a participant that enforces its own limit.
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
struct LimitTests {
    /// Every participant but the ERP, which the limited participant plays.
    static let otherParticipants = ["inventory.#", "wms.#", "tms.#", "billing.#"]

    /// Runs `body` with a limited ERP (every `erp.#` command) beside the scenario's participant, and the limits file
    /// `limits` in the workflows folder.
    static func withLimitedERP(
        _ scenario: Scenario, limits: String, maxInFlight: Int, perSecond: Double, burst: Double,
        _ body: (LimitedParticipant) async throws -> Void
    ) async throws {
        try limits.write(
            toFile: scenario.workflowsDirectory + "/participants.yaml", atomically: true, encoding: .utf8)
        let erp = LimitedParticipant(
            client: scenario.client, queue: scenario.names.participantQueue + ".erp", maxInFlight: maxInFlight,
            perSecond: perSecond, burst: burst)
        let running = Task { try await erp.run(bindingTo: scenario.names.commandsExchange, keys: ["erp.#"]) }
        defer { running.cancel() }
        try await eventually("the ERP consuming") {
            (try? await scenario.client.inspectQueue(erp.queue))?.consumerCount ?? 0 > 0
        }
        try await body(erp)
        _ = try? await scenario.client.deleteQueue(erp.queue)
    }

    static func orders(_ count: Int, priority: (Int) -> String? = { _ in nil }) -> (ids: [String], bodies: [Data]) {
        let ids = (0..<count).map { "o-\($0)" }
        let bodies = ids.enumerated().map { index, id in
            var order: JSONValue = OrderJSON.order(id, lines: [("A", 1)])
            if let lane = priority(index), case .object(var members) = order {
                members["priority"] = .string(lane)
                order = .object(members)
            }
            return Data(JSONText.encode(order).utf8)
        }
        return (ids, bodies)
    }

    @Test("a burst of 2,000 orders against an ERP that takes 10 in flight and 200/s: none refused, none failed")
    func burstWithinTheParticipantsLimit() async throws {
        try await Scenario.run(bindings: Self.otherParticipants) { scenario in
            let limits = """
                participants:
                  - commands: erp.#
                    max_in_flight: 10
                    rate: { per_second: 200, burst: 20 }
                """
            try await Self.withLimitedERP(scenario, limits: limits, maxInFlight: 10, perSecond: 200, burst: 40) {
                erp in
                let worker = try await scenario.startWorker()
                let (ids, bodies) = Self.orders(2_000)
                try await scenario.publishStarts(bodies)
                try await Self.waitForCompleted(ids.count, scenario, erp)
                let seen = erp.snapshot
                #expect(seen.refused.isEmpty, "the ERP refused \(seen.refused.count) commands")
                #expect(seen.maxInFlight <= 10)
                #expect(seen.maxInFlight >= 5, "the limit was reached: at most \(seen.maxInFlight) in flight")
                let accepts = seen.accepted.filter { $0.routingKey == "erp.order.accept" }
                #expect(accepts.count == ids.count, "one accept per order")
                #expect(Set(accepts.map(\.idempotencyKey)).count == ids.count)
                #expect(accepts.allSatisfy { $0.attempt == 1 })
                let sagas = try worker.store.sagas(ids.map(scenario.key))
                #expect(sagas.count == ids.count)
                #expect(sagas.values.allSatisfy { $0.instance.status == .completed })
                let held = sagas.values.filter { saga in
                    (try? worker.store.journal(of: saga.instance.key))?.contains {
                        $0.entry.facts?["held"] != nil
                    } ?? false
                }
                #expect(held.count > 500, "the limit held commands back: \(held.count) sagas waited")
            }
        }
    }

    @Test("limits above what the ERP takes: its rate_limited replies slow the limiter, no attempt spent, none failed")
    func backPressureTeachesTheLimiter() async throws {
        try await Scenario.run(bindings: Self.otherParticipants) { scenario in
            let limits = """
                participants:
                  - commands: erp.#
                    max_in_flight: 40
                    rate: { per_second: 2000 }
                """
            try await Self.withLimitedERP(scenario, limits: limits, maxInFlight: 10, perSecond: 200, burst: 20) {
                erp in
                let registry = PrometheusCollectorRegistry()
                let worker = try await scenario.startWorker(metrics: WorkerMetrics(registry: registry))
                let (ids, bodies) = Self.orders(1_500)
                try await scenario.publishStarts(bodies)
                try await Self.waitForCompleted(ids.count, scenario, erp)
                let seen = erp.snapshot
                // Refusals by the half of the run they came in: the first teach the limiter, then only probes remain.
                let half = seen.received.count / 2
                let refusedIds = Set(seen.refused.compactMap(\.messageId))
                let late = seen.received.suffix(from: half).count { refusedIds.contains($0.messageId ?? "") }
                print(
                    "back-pressure: the ERP refused \(seen.refused.count) of \(seen.received.count) commands for "
                        + "\(ids.count) orders, \(late) of them in the second half")
                #expect(!seen.refused.isEmpty, "the ERP pushed back")
                // Refused commands went out again under new message ids, with the same attempt number.
                #expect(seen.accepted.allSatisfy { $0.attempt == 1 })
                let accepts = seen.accepted.filter { $0.routingKey == "erp.order.accept" }
                #expect(Set(accepts.map(\.idempotencyKey)).count == ids.count)
                #expect(accepts.count == ids.count, "each order accepted once")
                // The limiter learned: once adapted, hardly any command is refused (without it, every saga backs off
                // alone and the refusals go on to the end).
                #expect(
                    late * 50 <= seen.received.count - half,
                    "\(late) refusals in the second half of the run: the limiter did not slow down")
                let sagas = try worker.store.sagas(ids.map(scenario.key))
                #expect(sagas.values.allSatisfy { $0.instance.status == .completed })
                #expect(
                    sagas.values.allSatisfy { saga in
                        saga.instance.steps.flatMap(\.branches).allSatisfy {
                            $0.lastError?.code != StepError.rateLimitedCode
                        }
                    }, "no branch recorded rate_limited as a failure")
                let metrics = registry.emitToString()
                #expect(metrics.contains("waybill_command_failures_total{participant=\"erp\",code=\"rate_limited\"}"))
                #expect(
                    metrics.contains("waybill_command_hold_seconds_count{participant=\"erp.#\",priority=\"normal\"}"))
                #expect(metrics.contains("waybill_participant_in_flight{participant=\"erp.#\"}"))
            }
        }
    }

    @Test("under a saturated limit, high-priority orders finish far sooner than low-priority ones, and all finish")
    func priorityLanes() async throws {
        let edits = WorkflowEdits(replacements: [
            (old: "  saga_id: ${input.orderId}", new: "  saga_id: ${input.orderId}\n  priority: ${input.priority}")
        ])
        try await Scenario.run(edits: edits, bindings: Self.otherParticipants) { scenario in
            let limits = """
                participants:
                  - commands: erp.order.accept
                    max_in_flight: 4
                    rate: { per_second: 100, burst: 10 }
                """
            try await Self.withLimitedERP(scenario, limits: limits, maxInFlight: 4, perSecond: 100, burst: 20) {
                erp in
                let worker = try await scenario.startWorker()
                // One order in ten is high priority, spread through the burst.
                let (ids, bodies) = Self.orders(600) { $0 % 10 == 9 ? "high" : "low" }
                try await scenario.publishStarts(bodies)
                try await Self.waitForCompleted(ids.count, scenario, erp)
                #expect(erp.snapshot.refused.isEmpty)
                let sagas = try worker.store.sagas(ids.map(scenario.key))
                #expect(sagas.values.allSatisfy { $0.instance.status == .completed }, "every low-priority order too")
                // The order the ERP took the orders in: high-priority ones went ahead of the low ones held with them.
                let accepts = erp.snapshot.accepted.filter { $0.routingKey == "erp.order.accept" }.map(\.sagaId)
                let high = Set(ids.enumerated().filter { $0.offset % 10 == 9 }.map(\.element))
                var highPositions: [Int64] = []
                var lowPositions: [Int64] = []
                for (position, id) in accepts.enumerated() {
                    if high.contains(id) {
                        highPositions.append(Int64(position))
                    } else {
                        lowPositions.append(Int64(position))
                    }
                }
                let highLate = Self.percentile(highPositions, 0.99)
                let lowMedian = Self.percentile(lowPositions, 0.5)
                var waits: [String: [Int64]] = [:]
                for id in ids {
                    let saga = try #require(sagas[scenario.key(id)]).instance
                    let accepted = try #require(saga.steps[0].finishedAt)
                    waits[high.contains(id) ? "high" : "low", default: []].append(
                        accepted.milliseconds - saga.startedAt.milliseconds)
                }
                print(
                    "priority lanes: accept waited p99 \(Self.percentile(waits["high"] ?? [], 0.99)) ms (high) "
                        + "against \(Self.percentile(waits["low"] ?? [], 0.99)) ms (low); the 99th percentile "
                        + "high-priority order was accepted \(highLate)th, the median low one \(lowMedian)th")
                #expect(highLate < lowMedian, "high-priority orders went ahead of the low ones held with them")
            }
        }
    }

    @Test("a worker SIGKILLed while its commands are held back: after the takeover each is sent exactly once")
    func heldCommandsSurviveAKill() async throws {
        try await Scenario.run(script: PoolTests.holdInvoices) { scenario in
            // Two in flight for the pool: each of the two workers sends one invoice at a time, the rest wait.
            let limits = """
                participants:
                  - commands: billing.invoice.create
                    max_in_flight: 2
                """
            try limits.write(
                toFile: scenario.workflowsDirectory + "/participants.yaml", atomically: true, encoding: .utf8)
            try await PoolTests.withTwoWorkers(scenario) { first, second in
                let (ids, bodies) = Self.orders(PoolTests.orders)
                try await scenario.publishStarts(bodies)
                let pool = scenario.pool
                defer { pool.close() }
                // Each worker sent one invoice (the participant holds it unanswered); every other one is held back.
                try await eventually("two invoices out and the others held back", seconds: 60) {
                    let held = try ids.reduce(0) { total, id in
                        total + (try pool.timers(of: scenario.key(id))).count { $0.kind == .hold }
                    }
                    return held == ids.count - 2
                        && scenario.participant.received.count { $0.routingKey == "billing.invoice.create" } == 2
                }
                try await first.kill()
                try await eventually("the survivor owns every partition", seconds: 30) {
                    let owners = try PoolTests.owners(scenario)
                    return owners.count == TestNames.partitions && Set(owners.values) == [scenario.names.workerId(2)]
                }
                // Answer invoices as they come; the survivor counts the killed worker's unanswered one in flight.
                try await eventually("every order completed", seconds: 120) {
                    try await scenario.participant.answerHeld()
                    return ChaosTests.distinctCompleted(scenario) == ids.count
                }
                let most = scenario.participant.snapshot.mostHeld
                #expect(most == 2, "\(most) invoices were out at once")
                let invoices = scenario.participant.received.filter { $0.routingKey == "billing.invoice.create" }
                #expect(invoices.count == ids.count, "\(invoices.count) invoice commands for \(ids.count) orders")
                #expect(Set(invoices.map(\.idempotencyKey)).count == ids.count, "each sent exactly once")
                #expect(invoices.allSatisfy { $0.attempt == 1 })
                #expect(try await second.terminate() == .exited(0))
                try ChaosTests.expectAllCompleted(scenario, ids: ids, store: pool)
            }
        }
    }

    @Test("commands held under a limit that a restart no longer has go out at once")
    func heldCommandsOutliveTheirLimit() async throws {
        try await Scenario.run(script: PoolTests.holdInvoices) { scenario in
            let limitsFile = scenario.workflowsDirectory + "/participants.yaml"
            try """
            participants:
              - commands: billing.invoice.create
                max_in_flight: 1
            """.write(toFile: limitsFile, atomically: true, encoding: .utf8)
            let worker = try await scenario.startWorker()
            let (ids, bodies) = Self.orders(5)
            try await scenario.publishStarts(bodies)
            let pool = scenario.pool
            defer { pool.close() }
            try await eventually("one invoice out, four held back") {
                let held = try ids.reduce(0) { total, id in
                    total + (try pool.timers(of: scenario.key(id))).count { $0.kind == .hold }
                }
                return held == 4
                    && scenario.participant.received.count { $0.routingKey == "billing.invoice.create" } == 1
            }
            try await worker.stop()
            try FileManager.default.removeItem(atPath: limitsFile)
            try await scenario.startWorker(2)
            try await scenario.participant.waitUntil("every invoice sent") { received in
                received.count { $0.routingKey == "billing.invoice.create" } == ids.count
            }
            try await scenario.participant.answerHeld()
            try await eventually("every order completed", seconds: 60) {
                ChaosTests.distinctCompleted(scenario) == ids.count
            }
            let invoices = scenario.participant.received.filter { $0.routingKey == "billing.invoice.create" }
            #expect(Set(invoices.map(\.idempotencyKey)).count == ids.count, "each sent once")
        }
    }

    /// Waits until `count` orders completed; on a timeout, records how far they got.
    static func waitForCompleted(
        _ count: Int, _ scenario: Scenario, _ erp: LimitedParticipant, seconds: Double = 120
    ) async throws {
        do {
            try await eventually("\(count) orders completed", seconds: seconds) {
                scenario.observer.count("order.completed") >= count
            }
        } catch {
            let seen = erp.snapshot
            Issue.record(
                "\(scenario.observer.count("order.completed")) of \(count) completed, \(scenario.observer.count("order.accepted")) accepted; the ERP received \(seen.received.count), accepted \(seen.accepted.count), refused \(seen.refused.count), \(seen.inFlight) in flight now"
            )
            throw error
        }
    }

    static func percentile(_ values: [Int64], _ fraction: Double) -> Int64 {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
    }
}
