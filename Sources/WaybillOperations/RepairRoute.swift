import SagaEngine
import SagaStore
import WaybillWire

/// Where the repairs of a pool go: each saga's partition queue (``PoolQueues/partition(_:pool:)``), consumed by the
/// worker that holds the partition's lock, which applies the repair and answers.
///
/// A repair is only sent while a live worker owns the partition: ``awaitOwners(of:)`` waits up to ``ownerWait`` for
/// one, and refuses with ``OperationsError/Code/noOwner`` (nothing sent) instead of leaving the request to expire
/// in a queue nobody reads.
public struct RepairRoute: Sendable {
    /// The pool's data directory (its partition count and lock files).
    public var pool: PoolDirectory
    /// The prefix of the pool's queues (`pool_name`): the same as the workers', or the requests go nowhere.
    public var poolName: String
    /// How long to wait for a partition's owner before refusing.
    public var ownerWait: Duration
    /// How often the locks are looked at while waiting.
    public var pollInterval: Duration

    /// Describes a route.
    public init(
        pool: PoolDirectory, poolName: String, ownerWait: Duration = .seconds(2),
        pollInterval: Duration = .milliseconds(50)
    ) {
        self.pool = pool
        self.poolName = poolName
        self.ownerWait = ownerWait
        self.pollInterval = pollInterval
    }

    /// The partition a saga lives in.
    public func partition(of key: SagaKey) -> Int { pool.partition(of: key.id) }

    /// The queue a repair of `key` is published to (routing key on the default exchange).
    public func queue(of key: SagaKey) -> String {
        PoolQueues.partition(partition(of: key), pool: poolName)
    }

    /// Waits until a live worker holds the lock of every partition the sagas of `keys` live in, or throws
    /// ``OperationsError/Code/noOwner`` naming those without an owner once ``ownerWait`` has passed.
    public func awaitOwners(of keys: [SagaKey]) async throws(OperationsError) {
        var missing = Set(keys.map(partition(of:)))
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: ownerWait)
        while true {
            missing = missing.filter { !pool.isOwned(partition: $0) }
            if missing.isEmpty { return }
            guard clock.now < deadline else { break }
            try? await clock.sleep(until: min(deadline, clock.now.advanced(by: pollInterval)))
        }
        let names = missing.sorted().map(PoolDirectory.name(ofPartition:))
        throw OperationsError(
            .noOwner,
            "no live worker owns partition\(names.count == 1 ? "" : "s") \(names.joined(separator: ", ")) of "
                + "\(pool.path) (checked for \(TimeText.span(milliseconds: ownerWait.milliseconds))); start a worker "
                + "(waybill worker) and try again; nothing was sent")
    }
}
