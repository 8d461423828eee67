import Foundation
import Testing
import WaybillTestSupport

@testable import SagaEngine
@testable import SagaStore

/// The pool's data directory: the partition of a saga, the partition count, and the member files.
struct PoolDirectoryTests {
    @Test(
        "a saga's partition is FNV-1a of its id, mixed, modulo the count: the same on every host and in every version",
        arguments: [
            ("o-1", 10, 2, 5), ("o-2", 5, 1, 3), ("o-000225", 9, 1, 6), ("order-42", 7, 3, 4), ("é-ü", 14, 2, 6),
        ])
    func partitionsArePinned(id: String, of16: Int, of4: Int, of7: Int) {
        // Values computed by an independent implementation of the documented hash (docs/pool.md), not by this code.
        #expect(PoolDirectory.partition(of: id, count: 16) == of16)
        #expect(PoolDirectory.partition(of: id, count: 4) == of4)
        #expect(PoolDirectory.partition(of: id, count: 7) == of7)
    }

    @Test("ids spread evenly over the partitions")
    func partitionsAreBalanced() {
        var counts = [Int](repeating: 0, count: 16)
        for index in 0..<16_000 { counts[PoolDirectory.partition(of: "o-\(index)", count: 16)] += 1 }
        #expect(counts.allSatisfy { (850...1_150).contains($0) }, "\(counts)")
    }

    @Test("the first worker fixes the partition count; later opens keep it and a different count is refused")
    func partitionCountIsFixed() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("pool")
        let created = try PoolDirectory.create(path, partitions: 8)
        #expect(created.partitionCount == 8)
        #expect(try PoolDirectory.create(path, partitions: 16).partitionCount == 8, "an existing pool keeps its count")
        #expect(try PoolDirectory.open(path).partitionCount == 8)
        let error = #expect(throws: SagaStoreError.self) { try PoolDirectory.openOrCreate(path, partitions: 16) }
        #expect(error?.code == .partitionCountMismatch)
        #expect(error?.message.contains("waybill pool repartition") == true, "\(error?.message ?? "")")
        #expect(throws: SagaStoreError.self) { try PoolDirectory.open(directory.file("nothing-here")) }
    }

    @Test("a lost pool.json is not guessed again over existing partition files")
    func lostDescriptionIsRefused() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("pool")
        let pool = try PoolDirectory.create(path, partitions: 4, poolName: "shop")
        #expect(pool.poolName == "shop")
        let store = try SagaStore(configuration: SagaStore.Configuration(path: pool.databasePath(partition: 2)))
        try store.close()
        try FileManager.default.removeItem(atPath: "\(path)/\(PoolDirectory.descriptionFile)")
        let error = #expect(throws: SagaStoreError.self) { try PoolDirectory.create(path, partitions: 16) }
        #expect(error?.code == .corruptState)
    }

    @Test("workers hold the pool shared; a repartition's exclusive lock and a running worker exclude each other")
    func holdExcludesRepartition() throws {
        let directory = try TemporaryDirectory()
        let pool = try PoolDirectory.create(directory.file("pool"), partitions: 4)
        let first = try pool.hold()
        let second = try pool.hold()
        #expect(try FileLock.tryLock("\(pool.path)/pool.lock") == nil, "a repartition cannot start under workers")
        first.release()
        second.release()
        let repartition = try #require(try FileLock.tryLock("\(pool.path)/pool.lock"))
        let refused = #expect(throws: SagaStoreError.self) { try pool.hold() }
        #expect(refused?.code == .poolInUse)
        repartition.release()
    }

    @Test("a worker starting while another creates the pool waits for the creation's brief exclusive lock")
    func holdWaitsOutACreation() throws {
        let directory = try TemporaryDirectory()
        let pool = try PoolDirectory.create(directory.file("pool"), partitions: 4)
        let creation = try #require(try FileLock.tryLock("\(pool.path)/pool.lock"))
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(100)) { creation.release() }
        let held = try pool.hold()
        #expect(try FileLock.tryLock("\(pool.path)/pool.lock") == nil, "the worker holds the pool shared")
        held.release()
    }

    @Test("a member lock is exclusive while held and free once released; a dead member's files are cleared")
    func membership() throws {
        let directory = try TemporaryDirectory()
        let pool = try PoolDirectory.create(directory.file("pool"), partitions: 4)
        let first = try pool.join(as: "w1")
        let error = #expect(throws: SagaStoreError.self) { try pool.join(as: "w1") }
        #expect(error?.code == .memberIdInUse)
        let status = PoolMemberStatus(
            worker: "w1", pid: 42, host: "h", state: .running, startedAt: Timestamp(milliseconds: 1),
            updatedAt: Timestamp(milliseconds: 2), partitions: [0, 3], inFlightSagas: 5, queuedMessages: 7)
        try pool.write(status)
        #expect(pool.liveMembers() == ["w1"])
        #expect(pool.members() == [status])
        #expect(!pool.clearDeadMember("w1"), "a live member's files stay")

        first.release()
        #expect(pool.liveMembers().isEmpty)
        #expect(pool.members().map(\.isLive) == [false])
        #expect(pool.clearDeadMember("w1"))
        #expect(pool.members().isEmpty)
        _ = try pool.join(as: "w1")
    }
}

/// The fence: a partition's lock plus the epoch every write checks.
struct FenceTests {
    @Test("a partition lock excludes a second holder, even in the same process, until it is released")
    func lockIsExclusive() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("p00.lock")
        let held = try #require(try FileLock.tryLock(path))
        #expect(try FileLock.tryLock(path) == nil)
        #expect(FileLock.isHeld(path))
        held.release()
        #expect(!FileLock.isHeld(path))
        #expect(try FileLock.tryLock(path) != nil)
    }

    @Test("a stale owner's writes are refused once another worker claimed the partition; nothing of them is written")
    func staleOwnerIsFenced() throws {
        let directory = try TemporaryDirectory()
        let stale = try SagaStore.open(in: directory, "p00.sqlite")
        let staleClaim = try stale.claim(owner: "w1", at: Timestamp(milliseconds: 1_000))
        try stale.commit([Fixtures.change("ord-1", message: "m1")])

        // The next owner claims the same file (its lock was broken, or the stale worker lost it without noticing).
        let next = try SagaStore.open(in: directory, "p00.sqlite")
        let nextClaim = try next.claim(owner: "w2", at: Timestamp(milliseconds: 2_000))
        #expect(nextClaim.epoch == staleClaim.epoch + 1)
        let before = try next.counts()

        let refused = #expect(throws: SagaStoreError.self) {
            try stale.commit([Fixtures.change("ord-2", message: "m2", outbox: [Fixtures.outbox("x-1")])])
        }
        #expect(refused?.code == .fenced)
        #expect(refused?.message.contains("claimed by w2") == true, "\(refused?.message ?? "")")
        for write in [
            { try stale.deleteOutbox(ids: [1]) },
            { _ = try stale.pruneInbox(before: Timestamp(milliseconds: 10_000)) },
            { _ = try stale.saveDefinition(name: "x", version: 1, source: "name: x", at: .now()) },
        ] as [() throws -> Void] {
            #expect(throws: SagaStoreError.self) { try write() }
        }
        #expect(try next.counts() == before, "the stale owner wrote nothing")

        try next.commit([Fixtures.change("ord-2", message: "m2")])
        #expect(try next.currentClaim()?.owner == "w2")
        #expect(try next.claimHistory().map(\.owner) == ["w1", "w2"])
    }

    @Test("a released claim refuses writes until claimed again, and the history records the release")
    func releasedClaim() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory, "p01.sqlite")
        try store.claim(owner: "w1", at: Timestamp(milliseconds: 1_000))
        try store.releaseClaim(at: Timestamp(milliseconds: 5_000))
        let refused = #expect(throws: SagaStoreError.self) { try store.commit([Fixtures.change("ord-1")]) }
        #expect(refused?.code == .fenced)
        #expect(try store.claimHistory().first?.releasedAt == Timestamp(milliseconds: 5_000))
        try store.claim(owner: "w1", at: Timestamp(milliseconds: 6_000))
        try store.commit([Fixtures.change("ord-1")])
        #expect(try store.claimHistory().map(\.epoch) == [1, 2])
    }
}
