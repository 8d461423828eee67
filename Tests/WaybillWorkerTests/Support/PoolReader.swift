import Foundation
import SagaEngine
import SagaStore
import Synchronization

/// Reads a pool's partition files the way the tests read one worker's database: each saga from its partition's
/// file, through read-only stores opened when first needed (a partition's file exists once a worker claimed it).
final class PoolReader: Sendable {
    let pool: PoolDirectory
    private let stores = Mutex<[Int: SagaStore]>([:])

    /// The pool in `directory`, with `partitions` partitions (the count the scenario's workers create it with).
    init(directory: String, partitions: Int) {
        pool = PoolDirectory(path: directory, partitionCount: partitions)
    }

    /// The read-only store of `partition`, or `nil` while its file does not exist yet.
    func store(_ partition: Int) throws -> SagaStore? {
        if let store = stores.withLock({ $0[partition] }) { return store }
        guard let store = try pool.openReadOnly(partition: partition) else { return nil }
        stores.withLock { $0[partition] = store }
        return store
    }

    func saga(_ key: SagaKey) throws -> StoredSaga? {
        try store(pool.partition(of: key.id))?.saga(key)
    }

    func sagas(_ keys: [SagaKey]) throws -> [SagaKey: StoredSaga] {
        var found: [SagaKey: StoredSaga] = [:]
        for (partition, keys) in Dictionary(grouping: keys, by: { pool.partition(of: $0.id) }) {
            guard let store = try store(partition) else { continue }
            found.merge(try store.sagas(keys)) { first, _ in first }
        }
        return found
    }

    func journal(of key: SagaKey) throws -> [JournalRecord] {
        try store(pool.partition(of: key.id))?.journal(of: key) ?? []
    }

    func timers(of key: SagaKey) throws -> [StoredTimer] {
        try store(pool.partition(of: key.id))?.timers(of: key) ?? []
    }

    func awaitedMessages(of key: SagaKey) throws -> [AwaitedMessage] {
        try store(pool.partition(of: key.id))?.awaitedMessages(of: key) ?? []
    }

    /// The outbox rows of every partition.
    func pendingOutbox(limit: Int) throws -> [PendingOutboxMessage] {
        var rows: [PendingOutboxMessage] = []
        for partition in pool.partitions {
            rows += try store(partition)?.pendingOutbox(limit: limit) ?? []
        }
        return rows
    }

    /// Every claim of every partition, by partition.
    func claims() throws -> [Int: [FenceClaim]] {
        var claims: [Int: [FenceClaim]] = [:]
        for partition in pool.partitions {
            if let store = try store(partition) { claims[partition] = try store.claimHistory() }
        }
        return claims
    }

    func close() {
        let all = stores.withLock { stores in
            defer { stores.removeAll() }
            return stores.values
        }
        for store in all { try? store.close() }
    }
}
