import SagaEngine
import WaybillDefinition

/// The saga state of one partition, as the worker's hot loop uses it: the seam a store on another engine (a
/// replicated one, for a pool that spans hosts) would implement; docs/pool.md says what each call must guarantee.
///
/// Every write runs in one transaction and is refused with ``SagaStoreError/Code/fenced`` once another owner claimed
/// the partition. ``SagaStore`` is the SQLite implementation.
public protocol PartitionStore: AnyObject, Sendable {
    /// The sagas stored under `keys` (missing ones are absent).
    func sagas(_ keys: [SagaKey]) throws -> [SagaKey: StoredSaga]
    /// The ids among `ids` already recorded in the inbox.
    func processedMessageIds(in ids: [String]) throws -> Set<String>
    /// ``sagas(_:)`` and ``processedMessageIds(in:)`` read together, while nothing else writes the partition;
    /// suspends the caller, not a thread, while it reads, so several partitions read at the same time.
    func lookup(
        _ keys: [SagaKey], processed ids: [String]
    ) async throws -> (
        sagas: [SagaKey: StoredSaga], processed: Set<String>
    )
    /// ``lookup(_:processed:)`` on the caller's thread, which waits while it reads. Meant for a store whose calls end
    /// on this host (a local file): a store that answers over the network should suspend here too.
    func lookupBlocking(
        _ keys: [SagaKey], processed ids: [String]
    ) throws -> (
        sagas: [SagaKey: StoredSaga], processed: Set<String>
    )
    /// Writes every change in one transaction; returns the outbox row ids of their messages, in order. Suspends
    /// the caller, not a thread, while the transaction runs, so several partitions commit in parallel.
    @discardableResult
    func commit(_ changes: [SagaChange]) async throws -> [Int64]
    /// ``commit(_:)`` that also removes the outbox rows in `confirmed`, in the same transaction.
    @discardableResult
    func commit(_ changes: [SagaChange], deletingOutbox confirmed: [Int64]) async throws -> [Int64]
    /// ``commit(_:deletingOutbox:)`` on the caller's thread, which waits for the transaction; the worker uses it for a
    /// batch with one partition's work. Like ``lookupBlocking(_:processed:)``, meant for a store on this host.
    @discardableResult
    func commitBlocking(_ changes: [SagaChange], deletingOutbox confirmed: [Int64]) throws -> [Int64]
    /// Outbox rows not yet confirmed, oldest first.
    func pendingOutbox(limit: Int) throws -> [PendingOutboxMessage]
    /// Removes outbox rows the broker confirmed (it need not be synced to disk on its own: a lost deletion only
    /// publishes those messages again, under the same ids).
    func deleteOutbox(ids: [Int64]) async throws
    /// The binding keys and key expressions of the waits recorded for `exchange`.
    func waitExpressions(exchange: String) async throws -> Set<WaitExpression>
    /// The sagas waiting for a message published to `exchange` with `routingKey` and body `message`, with the wait each
    /// waits in, given the exchange's wait expressions (see ``SagaStore/waiters(exchange:routingKey:message:expressions:)``).
    func waiters(
        exchange: String, routingKey: String, message: JSONValue, expressions: Set<WaitExpression>
    ) async throws -> [(key: SagaKey, waitId: String)]
    /// Timers due before `now`, soonest first.
    func dueTimers(before now: Timestamp, limit: Int) throws -> [StoredTimer]
    /// The timers of one kind (the hold timers and reply timeouts a new owner gives its participants' limiter).
    func timers(ofKind kind: SagaTimer.Kind) throws -> [StoredTimer]
    /// When the soonest timer is due, or `nil` when there is none.
    func nextTimerDue() throws -> Timestamp?
    /// Forgets inbox marks older than `before`, at most `limit`; returns how many.
    @discardableResult
    func pruneInbox(before: Timestamp, limit: Int) throws -> Int
    /// Finished sagas last changed before `before`, oldest first, at most `limit`, with their journals, stamped as
    /// archived at `now` (see ``SagaStore/finishedSagas(before:limit:now:)``).
    func finishedSagas(before: Timestamp, limit: Int, now: Timestamp) throws -> [ArchivedSaga]
    /// Removes archived sagas that have not changed since they were archived, with their journals; returns the
    /// removed (see ``SagaStore/removeArchived(_:)``).
    @discardableResult
    func removeArchived(_ sagas: [SagaKey: ArchiveMark]) throws -> [SagaKey]
    /// Stores a workflow definition by content hash and returns the hash.
    @discardableResult
    func saveDefinition(name: String, version: Int, source: String, at now: Timestamp) throws -> String
    /// A stored definition by hash.
    func definition(hash: String) throws -> StoredDefinition?
    /// Sagas not finished yet.
    func activeSagaCount() throws -> Int
    /// The oldest start of the unfinished sagas by definition, current step and whether they compensate.
    func oldestActiveByStep() throws -> [ActiveStepGroup]
    /// Outbox rows not yet confirmed (and deleted).
    func outboxDepth() throws -> Int
}

extension SagaStore: PartitionStore {}

/// One partition held by this process: its store, the claim's epoch, and how to give it up.
public protocol PartitionLease: Sendable {
    /// The partition number.
    var partition: Int { get }
    /// The claimed store; its writes check the claim.
    var store: any PartitionStore { get }
    /// The epoch and owner of the claim.
    var claim: FenceClaim { get }
    /// Hands the partition off: records the release, closes the store, lets the next owner in.
    func release(at now: Timestamp)
    /// Lets go after the claim was lost to another owner: writes nothing.
    func abandon()
}

/// Where a pool's partitions live and how one is claimed: the other half of the seam (``PartitionStore``). A claim
/// must exclude every other holder until it is released or its process dies, and must give the store a new epoch
/// that every later write of an older claim fails on.
public protocol PartitionStorage: Sendable {
    /// The pool's fixed partition count.
    var partitionCount: Int { get }
    /// Claims `partition` for `owner`, or returns `nil` when another live holder has it.
    func claim(_ partition: Int, owner: String, now: Timestamp) throws -> (any PartitionLease)?
    /// Whether some live process holds `partition` now.
    func isClaimed(_ partition: Int) -> Bool
}

/// The SQLite pool: a lock file and a SQLite file per partition in a data directory shared by the workers of one
/// host (``PoolDirectory``).
public struct SQLitePartitionStorage: PartitionStorage {
    public let pool: PoolDirectory
    public let durability: SagaStore.Configuration.Durability

    public init(pool: PoolDirectory, durability: SagaStore.Configuration.Durability) {
        self.pool = pool
        self.durability = durability
    }

    public var partitionCount: Int { pool.partitionCount }

    public func claim(_ partition: Int, owner: String, now: Timestamp) throws -> (any PartitionLease)? {
        guard let lock = try FileLock.tryLock(pool.lockPath(partition: partition)) else { return nil }
        do {
            // One worker may hold every partition: their connections' page caches share the budget of one store.
            // The hot loop reads and writes on the writer's connection; the readers serve timers, waits and metrics.
            let store = try SagaStore(
                configuration: SagaStore.Configuration(
                    path: pool.databasePath(partition: partition), durability: durability, maximumReaderCount: 2,
                    pageCacheMegabytes: max(2, 32 / max(1, pool.partitionCount))))
            do {
                let claim = try store.claim(owner: owner, at: now)
                return SQLitePartitionLease(partition: partition, sqlite: store, lock: lock, claim: claim)
            } catch {
                try? store.close()
                throw error
            }
        } catch {
            lock.release()
            throw error
        }
    }

    public func isClaimed(_ partition: Int) -> Bool {
        pool.isOwned(partition: partition)
    }
}

/// A claimed SQLite partition: the lock file held and the store whose writes check the claim's epoch.
final class SQLitePartitionLease: PartitionLease {
    let partition: Int
    let sqlite: SagaStore
    let lock: FileLock
    let claim: FenceClaim

    init(partition: Int, sqlite: SagaStore, lock: FileLock, claim: FenceClaim) {
        self.partition = partition
        self.sqlite = sqlite
        self.lock = lock
        self.claim = claim
    }

    var store: any PartitionStore { sqlite }

    func release(at now: Timestamp) {
        try? sqlite.releaseClaim(at: now)
        try? sqlite.close()
        lock.release()
    }

    func abandon() {
        // Another worker owns the file now: no checkpoint, which would take its write lock.
        try? sqlite.close(checkpoint: false)
        lock.release()
    }
}

extension PartitionStore {
    /// ``waiters(exchange:routingKey:message:expressions:)`` with the exchange's expressions read from the file.
    public func waiters(
        exchange: String, routingKey: String, message: JSONValue
    ) async throws -> [(key: SagaKey, waitId: String)] {
        try await waiters(
            exchange: exchange, routingKey: routingKey, message: message,
            expressions: try await waitExpressions(exchange: exchange))
    }
}
