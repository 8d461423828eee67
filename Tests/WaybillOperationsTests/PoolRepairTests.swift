import Foundation
import SagaEngine
import SagaStore
import Synchronization
import Testing
import WaybillOperations
import WaybillTestSupport
import WaybillWire

/// A repair is sent only while a live worker owns the saga's partition: without one it is refused after the owner
/// wait (2 s), with nothing sent, instead of waiting for the answer's timeout.
@Suite("Repairs and partition owners")
struct PoolRepairTests {
    let directory: TemporaryDirectory
    let pool: PoolDirectory
    let database: SagaInspector

    init() throws {
        directory = try TemporaryDirectory()
        pool = try Fixture.buildPool(in: directory)
        database = try SagaInspector(pool: pool)
    }

    /// A plan to `action` the sagas `ids`, checked against the pool as it is.
    func plan(_ action: ControlMessage.Action, _ ids: [String]) throws -> RepairPlan {
        let keys = ids.map { SagaKey(workflow: "order-fulfillment", id: $0) }
        let records = try keys.map { try #require(try database.saga($0)) }
        let plan = database.plan(
            RepairRequest(action: action, by: "alice", reason: "test"), records: records, filter: nil, now: Fixture.now)
        try #require(plan.sendable.count == ids.count)
        return plan
    }

    func partitionName(_ id: String) -> String { PoolDirectory.name(ofPartition: pool.partition(of: id)) }

    @Test("with no live owner, a repair is refused once the 2 s wait is over, and nothing is sent")
    func noOwner() async throws {
        let worker = InProcessWorker(pool: pool, now: Fixture.at(1))
        let runner = RepairRunner(
            inspector: database, channel: worker, route: RepairRoute(pool: pool, poolName: "waybill"),
            now: { Fixture.at(2) })
        let plan = try plan(.retry, ["o-1007"])
        let clock = ContinuousClock()
        let start = clock.now
        let error = await #expect(throws: OperationsError.self) { try await runner.run(plan) }
        #expect(clock.now - start >= .seconds(2), "it looks for an owner for the whole wait")
        #expect(error?.code == .noOwner)
        #expect(error?.exitCode == 6)
        #expect(
            error?.message
                == "no live worker owns partition \(partitionName("o-1007")) of \(pool.path) (checked for 2s); start a "
                + "worker (waybill worker) and try again; nothing was sent")
        #expect(worker.requests.withLock { $0.isEmpty })
        #expect(
            try database.saga(SagaKey(workflow: "order-fulfillment", id: "o-1007"))?.row.updatedAt == Fixture.at(-310))
    }

    @Test("a bulk repair names every partition without an owner and sends nothing, not even to owned ones")
    func someOwners() async throws {
        let ids = ["o-1006", "o-1007", "o-1008", "o-1009", "o-1010"]
        let partitions = Set(ids.map { pool.partition(of: $0) })
        try #require(partitions.count >= 2, "the sagas should span several partitions: \(partitions)")
        let owned = try #require(partitions.min())
        let owner = try #require(try FileLock.tryLock(pool.lockPath(partition: owned)))
        defer { owner.release() }
        let worker = InProcessWorker(pool: pool, now: Fixture.at(1))
        let route = RepairRoute(pool: pool, poolName: "waybill", ownerWait: .milliseconds(200))
        let runner = RepairRunner(inspector: database, channel: worker, route: route, now: { Fixture.at(2) })
        let error = await #expect(throws: OperationsError.self) { try await runner.run(try plan(.cancel, ids)) }
        let missing = partitions.subtracting([owned]).sorted().map(PoolDirectory.name(ofPartition:))
        #expect(
            error?.message
                == "no live worker owns partition\(missing.count == 1 ? "" : "s") \(missing.joined(separator: ", ")) "
                + "of \(pool.path) (checked for 200ms); start a worker (waybill worker) and try again; nothing was sent"
        )
        #expect(worker.requests.withLock { $0.isEmpty })
    }

    @Test("the wait ends as soon as a worker takes the partition, and the repair goes to that partition's queue")
    func ownerArrives() async throws {
        let partition = pool.partition(of: "o-1007")
        let taken = Mutex<FileLock?>(nil)
        let pool = pool
        let arrival = Task {
            try await Task.sleep(for: .milliseconds(150))
            let lock = try FileLock.tryLock(pool.lockPath(partition: partition))
            taken.withLock { $0 = lock }
        }
        let worker = InProcessWorker(pool: pool, now: Fixture.at(1))
        let route = RepairRoute(pool: pool, poolName: "eu-pool", ownerWait: .seconds(60))
        let run = try await RepairRunner(inspector: database, channel: worker, route: route, now: { Fixture.at(2) })
            .run(try plan(.retry, ["o-1007"]))
        try await arrival.value
        #expect(taken.withLock { $0 != nil }, "the run went on only once the lock was taken")
        #expect(run.outcomes.map(\.outcome.label) == ["applied"])
        #expect(worker.requests.withLock { $0.map(\.queue) } == ["eu-pool.\(partitionName("o-1007"))"])
        #expect(
            route.queue(of: SagaKey(workflow: "order-fulfillment", id: "o-1007"))
                == "eu-pool.\(partitionName("o-1007"))")
    }
}

/// ArgumentParser keeps the last of a repeated option; the operator commands refuse the repetition instead.
@Suite("Repeated options")
struct RepeatedOptionsTests {
    @Test("--db given twice is refused with both values and where to read several files")
    func repeatedDatabase() {
        let error = #expect(throws: OperationsError.self) {
            try RepeatedOptions.check(["sagas", "list", "--db", "a.sqlite", "--status", "running", "--db=b.sqlite"])
        }
        #expect(error?.code == .badArgument)
        #expect(
            error?.message
                == "--db is given 2 times (a.sqlite, b.sqlite); give it once (a repeated option does not add up: only "
                + "the last one would count); to read every partition file of a pool, give its directory with --data-dir"
        )
    }

    @Test("any repeated option is refused, a flag too; one of each, and words after --, are fine")
    func otherOptions() throws {
        let error = #expect(throws: OperationsError.self) {
            try RepeatedOptions.check(["sagas", "retry", "o-1", "--json", "--reason", "x", "--json"])
        }
        #expect(
            error?.message
                == "--json is given 2 times; give it once (a repeated option does not add up: only the last one would "
                + "count)")
        try RepeatedOptions.check(["sagas", "list", "--data-dir", "pool", "--status", "running", "--json"])
        try RepeatedOptions.check(["demo", "--", "--db", "a", "--db", "b"])
        // A migration's renamed steps and selection terms add up, one per use.
        try RepeatedOptions.check([
            "workflows", "migrate", "--map", "a=b", "--map", "c=d", "--select", "x=1", "--select=y=2",
        ])
        #expect(throws: OperationsError.self) {
            try RepeatedOptions.check(["workflows", "migrate", "--map", "a=b", "--to", "2", "--to", "3"])
        }
    }
}
