import Foundation
import SagaEngine
import SagaStore
import Testing
import WaybillDefinition
import WaybillTestSupport

@testable import WaybillWorker

/// Crashes and outages. These disrupt the broker or kill processes, so the suite runs serialized, and `scripts/test`
/// runs it on its own (`--filter ChaosTests`) after the other suites.
@Suite(.serialized, .enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
struct ChaosTests {
    static let orders = 40

    /// After the chaos: every saga completed exactly once, every effect applied once and never re-decided, and each
    /// saga's milestones (first copies; a crash may re-send an event under the same id) in order.
    static func expectAllCompleted(_ scenario: Scenario, ids: [String], store: PoolReader) throws {
        let sagas = try store.sagas(ids.map(scenario.key))
        #expect(sagas.count == ids.count)
        #expect(sagas.values.allSatisfy { $0.instance.status == .completed })
        let snapshot = scenario.participant.snapshot
        #expect(snapshot.applied.count == Set(snapshot.applied).count, "an effect was applied twice")
        #expect(snapshot.applied.count == ids.count * 5)
        for (key, sent) in Dictionary(grouping: snapshot.received, by: \.idempotencyKey) {
            let attempts = Set(sent.map(\.attempt))
            #expect(
                Set(sent.compactMap(\.messageId)).count == attempts.count,
                "\(key) was decided more than once: \(sent.map { "\($0.attempt):\($0.messageId ?? "-")" })")
        }
        for id in ids {
            var seen: Set<String> = []
            let firsts = scenario.observer.events(of: id).filter { seen.insert($0.id ?? "").inserted }
            #expect(firsts.compactMap(\.type) == HappyPathTests.milestones, "milestones of \(id)")
        }
    }

    static func distinctCompleted(_ scenario: Scenario) -> Int {
        Set(scenario.observer.all.filter { $0.type == "order.completed" }.compactMap(\.subject)).count
    }

    @Test("a worker killed with SIGKILL mid-run is restarted and every saga completes with no doubled effect")
    func workerKilledAndRestarted() async throws {
        try await Scenario.run { scenario in
            let environment = try WorkerProcess.environment(for: scenario)
            let log = scenario.scratch.url.appendingPathComponent("worker.log")
            let partitions = scenario.names.partitionQueues
            var worker = try WorkerProcess(environment: environment, log: log)
            do {
                try await eventually("the worker process to consume", seconds: 60) { [worker] in
                    if let ended = worker.ended { throw WorkerFailure(message: "worker ended: \(ended)") }
                    for queue in partitions {
                        guard (try? await scenario.client.inspectQueue(queue).consumerCount) == 1 else { return false }
                    }
                    return true
                }
                let ids = (0..<Self.orders).map { "o-\($0)" }
                try await scenario.publishStarts(
                    ids.map { Data(JSONText.encode(OrderJSON.order($0, lines: [("A", 1)])).utf8) })
                try await scenario.participant.waitUntil("60 commands") { $0.count >= 60 }
                try await worker.kill()
                // Completing a saga takes five commands, so at most 12 of the 40 can be done.
                #expect(Self.distinctCompleted(scenario) < ids.count, "the kill hit the run mid-way")

                worker = try WorkerProcess(environment: environment, log: log)
                try await eventually("every order completed after the restart", seconds: 120) {
                    Self.distinctCompleted(scenario) == ids.count
                }
                #expect(try await worker.terminate() == .exited(0), "SIGTERM stops the worker cleanly")
                let store = scenario.pool
                defer { store.close() }
                try Self.expectAllCompleted(scenario, ids: ids, store: store)
                #expect(
                    try store.sagas(ids.map(scenario.key)).values.allSatisfy { $0.owner == scenario.names.workerId(1) })
            } catch {
                Issue.record("worker log:\n\(worker.logTail())")
                try? await worker.kill()
                throw error
            }
        }
    }

    @Test("SIGTERM mid-run stops the worker gracefully (exit 0); after a restart every saga completes once")
    func workerTerminatedAndRestarted() async throws {
        try await Scenario.run { scenario in
            let environment = try WorkerProcess.environment(for: scenario)
            let log = scenario.scratch.url.appendingPathComponent("worker.log")
            let partitions = scenario.names.partitionQueues
            var worker = try WorkerProcess(environment: environment, log: log)
            do {
                try await eventually("the worker process to consume", seconds: 60) { [worker] in
                    if let ended = worker.ended { throw WorkerFailure(message: "worker ended: \(ended)") }
                    for queue in partitions {
                        guard (try? await scenario.client.inspectQueue(queue).consumerCount) == 1 else { return false }
                    }
                    return true
                }
                let ids = (0..<Self.orders).map { "o-\($0)" }
                try await scenario.publishStarts(
                    ids.map { Data(JSONText.encode(OrderJSON.order($0, lines: [("A", 1)])).utf8) })
                try await scenario.participant.waitUntil("60 commands") { $0.count >= 60 }
                #expect(try await worker.terminate() == .exited(0), "SIGTERM stops the worker cleanly mid-run")
                #expect(Self.distinctCompleted(scenario) < ids.count, "the stop hit the run mid-way")

                worker = try WorkerProcess(environment: environment, log: log)
                try await eventually("every order completed after the restart", seconds: 120) {
                    Self.distinctCompleted(scenario) == ids.count
                }
                #expect(try await worker.terminate() == .exited(0))
                let store = scenario.pool
                defer { store.close() }
                try Self.expectAllCompleted(scenario, ids: ids, store: store)
                #expect(try store.pendingOutbox(limit: 10).isEmpty, "a graceful stop leaves nothing unpublished")
            } catch {
                Issue.record("worker log:\n\(worker.logTail())")
                try? await worker.kill()
                throw error
            }
        }
    }

    @Test("the broker stops and starts mid-run; the worker reconnects and every saga completes")
    func brokerRestart() async throws {
        // The first orders wait at their invoice until after the outage; the second wave is in flight when it starts.
        let firstWave = (0..<Self.orders).map { "o-\($0)" }
        let secondWave = (Self.orders..<2 * Self.orders).map { "o-\($0)" }
        let held = Set(firstWave)
        let script: Participant.Script = { command in
            command.routingKey == "billing.invoice.create" && held.contains(command.sagaId) ? .hold : nil
        }
        try await Scenario.run(script: script) { scenario in
            let worker = try await scenario.startWorker()
            let orders = { (ids: [String]) in
                ids.map { Data(JSONText.encode(OrderJSON.order($0, lines: [("A", 1)])).utf8) }
            }
            try await scenario.publishStarts(orders(firstWave))
            try await scenario.participant.waitUntil("every first-wave order at its invoice") { received in
                received.count { $0.routingKey == "billing.invoice.create" } == firstWave.count
            }
            try await scenario.publishStarts(orders(secondWave))
            try await scenario.participant.waitUntil("the second wave under way") { received in
                received.count { secondWave.contains($0.sagaId) } >= 10
            }
            let stop = try await TestBroker.runScript(["stop"])
            try #require(stop.succeeded, "scripts/rabbitmq stop: \(stop.output)")
            let start = try await TestBroker.runScript(["start"])
            try #require(start.succeeded, "scripts/rabbitmq start: \(start.output)")

            try await scenario.client.waitUntilConnected()
            // The participant's connection may still be coming back: answer once its replies are confirmed.
            try await eventually("the held invoices answered after the restart", seconds: 60) {
                (try? await scenario.participant.answerHeld()) != nil
            }
            try await eventually("every order completed after the broker restart", seconds: 180) {
                Self.distinctCompleted(scenario) == firstWave.count + secondWave.count
            }
            try Self.expectAllCompleted(scenario, ids: firstWave + secondWave, store: worker.store)
        }
    }

    @Test(
        "two workers, the second first; duplicates before and after a broker restart: no saga twice, milestones in order"
    )
    func duplicatesAcrossBrokerRestart() async throws {
        try await Scenario.run { scenario in
            let second = try await scenario.startWorker(2)
            let first = try await scenario.startWorker(1)
            try await scenario.waitForSharing([first, second])
            let ids = (0..<(2 * Self.orders)).map { "o-\($0)" }
            let bodies = ids.map { Data(JSONText.encode(OrderJSON.order($0, lines: [("A", 1)])).utf8) }
            try await scenario.publishStarts(bodies + bodies)
            try await scenario.participant.waitUntil("the run under way") { $0.count >= ids.count }

            let stop = try await TestBroker.runScript(["stop"])
            try #require(stop.succeeded, "scripts/rabbitmq stop: \(stop.output)")
            let start = try await TestBroker.runScript(["start"])
            try #require(start.succeeded, "scripts/rabbitmq start: \(start.output)")
            try await scenario.client.waitUntilConnected()
            try await eventually("the duplicates published after the restart", seconds: 60) {
                (try? await scenario.publishStarts(bodies)) != nil
            }
            try await eventually("every order completed after the broker restart", seconds: 180) {
                Self.distinctCompleted(scenario) == ids.count
            }
            let pool = scenario.pool
            defer { pool.close() }
            try await eventually("every duplicate absorbed by its saga", seconds: 60) {
                try ids.allSatisfy { id in
                    try pool.journal(of: scenario.key(id)).count { $0.entry.kind == .ignored } >= 2
                }
            }
            for partition in 0..<TestNames.partitions {
                let found = try #require(try pool.store(partition)).sagas(ids.map(scenario.key))
                #expect(found.keys.allSatisfy { pool.pool.partition(of: $0.id) == partition })
            }
            try Self.expectAllCompleted(scenario, ids: ids, store: pool)
        }
    }
}
