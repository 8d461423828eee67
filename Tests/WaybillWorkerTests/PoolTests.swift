import AMQPTransport
import Foundation
import SagaEngine
import SagaStore
import Testing
import WaybillDefinition
import WaybillTestSupport
import WaybillWire

@testable import WaybillWorker

/// A pool of workers: one owner per partition, takeover of a killed worker's partitions, drain, and a partition
/// mapping that depends on nothing but the saga id.
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
struct PoolTests {
    static let orders = 40

    static func bodies(_ ids: [String]) -> [Data] {
        ids.map { Data(JSONText.encode(OrderJSON.order($0, lines: [("A", 1)])).utf8) }
    }

    /// Which live worker owns which partition, from the member status files (none before the first worker made the
    /// pool).
    static func owners(_ scenario: Scenario) throws -> [Int: String] {
        guard let pool = try? PoolDirectory.open(scenario.dataDirectory) else { return [:] }
        var owners: [Int: String] = [:]
        for member in pool.members() where member.isLive {
            for partition in member.partitions { owners[partition] = member.worker }
        }
        return owners
    }

    /// Runs `body` with two `waybill worker` processes of the scenario, running and sharing the partitions. When
    /// anything fails, the workers' logs are recorded and both are killed.
    static func withTwoWorkers(
        _ scenario: Scenario, _ body: (WorkerProcess, WorkerProcess) async throws -> Void
    ) async throws {
        var processes: [WorkerProcess] = []
        do {
            for index in 1...2 {
                let log = scenario.scratch.url.appendingPathComponent("worker-\(index).log")
                processes.append(
                    try WorkerProcess(
                        environment: try WorkerProcess.environment(for: scenario, worker: index), log: log))
            }
            try await eventually("two workers sharing the four partitions", seconds: 60) { [processes] in
                for process in processes {
                    if let ended = process.ended { throw WorkerFailure(message: "worker ended: \(ended)") }
                }
                let owners = try Self.owners(scenario)
                return owners.count == TestNames.partitions && Set(owners.values).count == 2
            }
            try await body(processes[0], processes[1])
        } catch {
            for (index, process) in processes.enumerated() {
                Issue.record("worker \(index + 1) log:\n\(process.logTail())")
                try? await process.kill()
            }
            throw error
        }
    }

    /// Every claim of every partition came after the previous one ended, or after its owner died at `deaths`.
    static func expectOneOwnerAtATime(_ pool: PoolReader, deaths: [String: Timestamp] = [:]) throws {
        for (partition, claims) in try pool.claims() {
            for (previous, next) in zip(claims, claims.dropFirst()) {
                #expect(next.epoch == previous.epoch + 1)
                let ended = previous.releasedAt ?? deaths[previous.owner]
                let endedAt = try #require(ended, "partition \(partition): claim \(previous.epoch) never ended")
                #expect(
                    next.claimedAt >= endedAt,
                    "partition \(partition): epoch \(next.epoch) by \(next.owner) claimed while \(previous.owner) held it"
                )
            }
        }
    }

    /// Holds every invoice until the test answers, so that every saga waits for a reply when a worker goes away.
    static let holdInvoices: Participant.Script = { command in
        command.routingKey == "billing.invoice.create" ? .hold : nil
    }

    static func waitForInvoices(_ scenario: Scenario, count: Int) async throws {
        try await scenario.participant.waitUntil("every order waiting for its invoice") { received in
            received.count { $0.routingKey == "billing.invoice.create" } >= count
        }
    }

    @Test("a worker killed with SIGKILL: the survivor takes its partitions over, matches their pending replies")
    func takeoverAfterKill() async throws {
        try await Scenario.run(script: Self.holdInvoices) { scenario in
            try await Self.withTwoWorkers(scenario) { first, second in
                let ids = (0..<Self.orders).map { "o-\($0)" }
                try await scenario.publishStarts(Self.bodies(ids))
                try await Self.waitForInvoices(scenario, count: ids.count)
                let killedAt = Timestamp.now()
                let clock = ContinuousClock()
                let killed = clock.now
                try await first.kill()
                try await eventually("the survivor owns every partition", seconds: 30) {
                    let owners = try Self.owners(scenario)
                    return owners.count == TestNames.partitions && Set(owners.values) == [scenario.names.workerId(2)]
                }
                let takeover = clock.now - killed
                print("takeover after SIGKILL: \(takeover) (rebalance interval 200 ms)")
                #expect(takeover < .seconds(15))
                // The replies to the killed worker's commands go to its partitions' queues: the survivor gets them.
                try await scenario.participant.answerHeld()
                try await eventually("every order completed", seconds: 120) {
                    ChaosTests.distinctCompleted(scenario) == ids.count
                }
                #expect(try await second.terminate() == .exited(0))
                let pool = scenario.pool
                defer { pool.close() }
                try ChaosTests.expectAllCompleted(scenario, ids: ids, store: pool)
                try Self.expectOneOwnerAtATime(pool, deaths: [scenario.names.workerId(1): killedAt])
            }
        }
    }

    @Test("SIGTERM drains a worker: it exits 0, hands every partition off, and the other one finishes its sagas")
    func drain() async throws {
        try await Scenario.run(script: Self.holdInvoices) { scenario in
            try await Self.withTwoWorkers(scenario) { first, second in
                let ids = (0..<Self.orders).map { "o-\($0)" }
                try await scenario.publishStarts(Self.bodies(ids))
                try await Self.waitForInvoices(scenario, count: ids.count)
                #expect(try await first.terminate() == .exited(0), "a drained worker exits 0")
                let pool = try PoolDirectory.open(scenario.dataDirectory)
                #expect(
                    !pool.members().contains { $0.worker == scenario.names.workerId(1) },
                    "a drained worker leaves the pool")
                try await eventually("the other worker owns every partition", seconds: 30) {
                    try Self.owners(scenario).values.allSatisfy { $0 == scenario.names.workerId(2) }
                        && Self.owners(scenario).count == TestNames.partitions
                }
                try await scenario.participant.answerHeld()
                try await eventually("every order completed", seconds: 120) {
                    ChaosTests.distinctCompleted(scenario) == ids.count
                }
                #expect(try await second.terminate() == .exited(0))
                let reader = scenario.pool
                defer { reader.close() }
                try ChaosTests.expectAllCompleted(scenario, ids: ids, store: reader)
                #expect(try reader.pendingOutbox(limit: 10).isEmpty, "a drain leaves nothing unpublished")
                // Every claim ended with a release: nobody died.
                try Self.expectOneOwnerAtATime(reader)
            }
        }
    }

    @Test("duplicate starts after the workers restart in the other order reach the same sagas: none is created twice")
    func mappingIgnoresStartOrder() async throws {
        try await Scenario.run { scenario in
            let ids = (0..<30).map { "o-\($0)" }
            let second = try await scenario.startWorker(2)
            let first = try await scenario.startWorker(1)
            let before = try await scenario.waitForSharing([first, second])
            try await scenario.publishStarts(Self.bodies(ids))
            try await eventually("every order completed", seconds: 60) {
                ChaosTests.distinctCompleted(scenario) == ids.count
            }
            try await second.stop()
            try await first.stop()

            // The other order: the partitions may go to other workers, but each saga stays in its partition's file.
            let again1 = try await scenario.startWorker(1)
            let again2 = try await scenario.startWorker(2)
            let after = try await scenario.waitForSharing([again1, again2])
            print(
                "partition owners before: \(before.sorted { $0.key < $1.key }), after: \(after.sorted { $0.key < $1.key })"
            )
            try await scenario.publishStarts(Self.bodies(ids))
            let pool = scenario.pool
            defer { pool.close() }
            try await eventually("every duplicate journaled as ignored", seconds: 60) {
                try ids.allSatisfy { id in
                    try pool.journal(of: scenario.key(id)).contains { $0.entry.kind == .ignored }
                }
            }
            // Each saga is in exactly one partition file: its own.
            for partition in 0..<TestNames.partitions {
                let store = try #require(try pool.store(partition))
                let found = try store.sagas(ids.map(scenario.key))
                #expect(
                    found.keys.allSatisfy { pool.pool.partition(of: $0.id) == partition },
                    "partition \(partition) holds only its own sagas")
            }
            #expect(try pool.sagas(ids.map(scenario.key)).count == ids.count)
            #expect(scenario.participant.received.count == ids.count * 5, "no saga ran twice")
            #expect(scenario.observer.count("order.completed") == ids.count)
        }
    }

    @Test("a drain that cannot finish (the broker stopped answering) still ends within the shutdown grace")
    func drainIsBoundedByTheGrace() async throws {
        let broker = try AMQPConfiguration(url: try #require(TestBroker.url))
        let link = try FaultyLink(brokerPort: UInt16(broker.endpoints[0].port))
        defer { link.stop() }
        let url = try StartupTests.url(through: link)
        try await Scenario.run { scenario in
            let worker = try await scenario.startWorker(adjust: {
                $0.amqpURL = url
                $0.shutdownGrace = .seconds(2)
            })
            try await scenario.placeOrder("o-1")
            try await scenario.waitForStatus("o-1", .completed, in: worker)
            // From now on the broker's answers never reach the worker: consumer cancels and confirms hang until the
            // missed heartbeats (about 10 s) tell.
            link.holdBrokerBytes()
            let clock = ContinuousClock()
            let began = clock.now
            await worker.group.triggerGracefulShutdown()
            let task = worker.task
            try await within(8, "the worker to stop") { try await task.value }
            let took = clock.now - began
            #expect(took < .seconds(6), "stopped after \(took), shutdown grace 2 s")
        }
    }
}

extension PoolTests {
    @Test("after a repartition to fewer partitions, what the old queues still receive is forwarded to its partition")
    func leftoverQueuesAreDrained() async throws {
        try await Scenario.run { scenario in
            // The pool as `waybill pool repartition` leaves it after going from six partitions to four.
            try FileManager.default.createDirectory(atPath: scenario.dataDirectory, withIntermediateDirectories: true)
            let description = #"{"format": 1, "partitions": 4, "queueCount": 6}"#
            try description.write(
                toFile: "\(scenario.dataDirectory)/\(PoolDirectory.descriptionFile)", atomically: true, encoding: .utf8)
            let leftovers = (4..<6).map { PoolQueues.partition($0, pool: scenario.names.poolName) }
            let worker = try await scenario.startWorker()
            do {
                // A start a worker forwarded to old partition 5 before the change.
                var properties = MessageProperties(contentType: "application/json", persistent: true)
                properties.headers[WireHeader.input] = .string(PartitionInput.start.rawValue)
                properties.headers[WireHeader.workflow] = .string(scenario.names.workflow)
                properties.headers[WireHeader.sagaId] = "o-left"
                let body = Data(JSONText.encode(OrderJSON.order("o-left", lines: [("A", 1)])).utf8)
                let outcome = try await scenario.client.publish(
                    OutboundMessage(
                        exchange: "", routingKey: leftovers[1], body: body, mandatory: true, properties: properties))
                #expect(outcome.isConfirmed)
                try await scenario.waitForStatus("o-left", .completed, in: worker)
                #expect(try await scenario.client.inspectQueue(leftovers[1]).consumerCount >= 1)
            } catch {
                for queue in leftovers { _ = try? await scenario.client.deleteQueue(queue) }
                throw error
            }
            try await worker.stop()
            for queue in leftovers { _ = try? await scenario.client.deleteQueue(queue) }
        }
    }
}
