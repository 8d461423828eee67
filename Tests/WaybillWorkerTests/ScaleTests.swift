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
    @Test("two workers share the partitions: every saga is owned and finished by the owner of its partition")
    func twoWorkersPartitionSagas() async throws {
        try await Scenario.run { scenario in
            let first = try await scenario.startWorker(1)
            let second = try await scenario.startWorker(2)
            // Four partitions, two workers: the cooperative rebalance gives each two.
            let owners = try await scenario.waitForSharing([first, second])
            #expect(owners.count == TestNames.partitions, "every partition has one owner: \(owners)")
            let ids = (0..<50).map { "o-\($0)" }
            // Every order twice: the duplicate must reach the saga's partition, and be absorbed there.
            let bodies = ids.map { Data(JSONText.encode(OrderJSON.order($0, lines: [("A", 1)])).utf8) }
            try await scenario.publishStarts(bodies + bodies)
            try await eventually("50 orders completed", seconds: 60) {
                scenario.observer.count("order.completed") >= ids.count
            }
            let pool = scenario.pool
            defer { pool.close() }
            try await eventually("every duplicate start journaled") {
                var ignored = 0
                for key in ids.map(scenario.key) {
                    ignored += try pool.journal(of: key).count { $0.entry.kind == .ignored }
                }
                return ignored == ids.count
            }

            let sagas = try pool.sagas(ids.map(scenario.key))
            #expect(Set(sagas.keys) == Set(ids.map(scenario.key)), "every saga is stored")
            var perWorker: [String: Int] = [:]
            for saga in sagas.values {
                let partition = pool.pool.partition(of: saga.instance.key.id)
                #expect(
                    saga.owner == owners[partition], "saga \(saga.instance.key.id) written by its partition's owner")
                #expect(saga.instance.status == .completed)
                perWorker[saga.owner ?? "-", default: 0] += 1
                // Replies went to the partition: every command of the saga named its partition's queue.
                let replyQueues = Set(scenario.participant.received(saga: saga.instance.key.id).compactMap(\.replyTo))
                #expect(replyQueues == [scenario.names.partitionQueues[partition]])
            }
            #expect(perWorker.count == 2, "both workers own sagas: \(perWorker)")
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
