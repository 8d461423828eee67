import Foundation
import SagaEngine
import SagaStore
import Synchronization
import Testing
import WaybillDefinition
import WaybillTestSupport

@testable import WaybillWorker

/// Several workers on one broker, and a throughput figure.
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
struct ScaleTests {
    @Test("two workers share the orders: every saga is owned and finished by exactly one of them")
    func twoWorkersPartitionSagas() async throws {
        try await Scenario.run { scenario in
            let first = try await scenario.startWorker(1)
            let second = try await scenario.startWorker(2)
            let ids = (0..<50).map { "o-\($0)" }
            // Every order twice: the duplicate must reach the worker that owns the saga, and be absorbed there.
            let bodies = ids.map { Data(JSONText.encode(OrderJSON.order($0, lines: [("A", 1)])).utf8) }
            try await scenario.publishStarts(bodies + bodies)
            try await eventually("50 orders completed", seconds: 60) {
                scenario.observer.count("order.completed") >= ids.count
            }
            try await eventually("every duplicate start journaled") {
                let keys = ids.map(scenario.key)
                var ignored = 0
                for worker in [first, second] {
                    for key in keys { ignored += try worker.store.journal(of: key).count { $0.entry.kind == .ignored } }
                }
                return ignored == ids.count
            }

            let keys = ids.map(scenario.key)
            let inFirst = try first.store.sagas(keys)
            let inSecond = try second.store.sagas(keys)
            #expect(Set(inFirst.keys).union(inSecond.keys) == Set(keys), "every saga is stored somewhere")
            #expect(Set(inFirst.keys).isDisjoint(with: inSecond.keys), "no saga is stored twice")
            #expect(!inFirst.isEmpty && !inSecond.isEmpty, "both workers own sagas: \(inFirst.count)/\(inSecond.count)")
            for (worker, sagas) in [(first, inFirst), (second, inSecond)] {
                for saga in sagas.values {
                    #expect(saga.owner == worker.id)
                    #expect(saga.instance.status == .completed)
                    // Replies went to the owner: every command of the saga named its reply queue.
                    let replyQueues = Set(
                        scenario.participant.received(saga: saga.instance.key.id).compactMap(\.replyTo))
                    #expect(replyQueues == ["waybill.replies.\(worker.id)"])
                }
            }
            #expect(scenario.observer.count("order.completed") == ids.count, "each saga completed once")
            #expect(scenario.participant.received.count == ids.count * 5)
        }
    }

    @Test("throughput: 2,000 orders through one worker (prints completed sagas per second)")
    func throughput() async throws {
        let count = 2000
        let batches = Mutex((count: 0, inputs: 0))
        try await Scenario.run { scenario in
            let worker = try await scenario.startWorker(batchObserver: { timing in
                batches.withLock { $0 = ($0.count + 1, $0.inputs + timing.inputs) }
            })
            let ids = (0..<count).map { "o-\($0)" }
            let bodies = ids.map { Data(JSONText.encode(OrderJSON.order($0, lines: [("A", 1), ("B", 2)])).utf8) }
            let clock = ContinuousClock()
            let started = clock.now
            try await scenario.publishStarts(bodies)
            try await eventually("\(count) orders completed", seconds: 180) {
                scenario.observer.count("order.completed") >= count
            }
            let elapsed = clock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let (batchCount, inputs) = batches.withLock { $0 }
            print(
                "throughput: \(count) orders completed in \(String(format: "%.2f", seconds)) s = "
                    + "\(String(format: "%.0f", Double(count) / seconds)) sagas/s (one worker, debug build, in-test "
                    + "participant; \(batchCount) batches of \(inputs / max(batchCount, 1)) inputs on average, "
                    + "batch_size \(worker.configuration.batchSize))")

            let sagas = try worker.store.sagas(ids.map(scenario.key))
            #expect(sagas.count == count)
            #expect(sagas.values.allSatisfy { $0.instance.status == .completed })
            #expect(scenario.participant.snapshot.applied.count == count * 5)
        }
    }
}
