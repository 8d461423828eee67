import AMQPTransport
import SagaEngine
import SagaStore
import Synchronization

/// A partition this worker owns: its lease (the claimed store, whose every write checks the claim's epoch) and the
/// consumer of the partition's queue.
final class OwnedPartition: Sendable {
    let number: Int
    let queue: String
    let lease: any PartitionLease
    /// The partition queue's consumer, whose deliveries go straight to the hot loop's queue; set right after the
    /// claim, once the subscription is in place.
    let subscription = Mutex<AMQPSubscription?>(nil)
    /// Set when outbox rows were left unconfirmed (broker down, nack): the next batch publishes them first.
    let outboxDirty = Mutex(false)
    /// When the inbox is next pruned (ms since the epoch).
    let inboxPruneDue = Mutex<Int64>(0)
    /// When the partition's timers next need a look (ms since the epoch): the soonest stored timer, found when a look
    /// found none due, and brought forward by every commit that schedules an earlier one. A cancelled timer leaves it
    /// as it is: at worst one look too early.
    let timersDue = Mutex<Int64>(0)

    /// Sagas the archiver wrote to the pool's archive, with what they looked like then: the batch loop removes them
    /// from the partition file between batches (``BatchLoop``), so a removal never races the loop's own writes.
    let archived = Mutex<[SagaKey: ArchiveMark]>([:])
    /// Until when the archiver leaves this partition alone (ms since the epoch), after a pass or a removal failed.
    let archiveResumes = Mutex<Int64>(0)

    /// Outbox rows the broker confirmed and that are not deleted yet: the partition's next commit deletes them in its
    /// own transaction (or a timer tick, when no commit comes). Lost with the process, they are only sent again.
    private let confirmedOutbox = Mutex<[Int64]>([])

    /// The wait expressions of each exchange a message for wait steps came from, read from the file on the first such
    /// message and kept up to date by the commits that record waits (an expression no wait uses any more only costs
    /// a lookup that finds nothing).
    let waitExpressions = Mutex<[String: Set<WaitExpression>]>([:])

    /// The committed state of the partition's recently touched sagas (see ``SagaCache``).
    let cache: Mutex<SagaCache>

    init(queue: String, lease: any PartitionLease, cacheCapacity: Int = 0) {
        self.number = lease.partition
        self.queue = queue
        self.lease = lease
        self.cache = Mutex(SagaCache(capacity: cacheCapacity))
    }

    /// The partition's claimed store.
    var store: any PartitionStore { lease.store }

    /// Adds rows to delete with the next commit.
    func noteConfirmedOutbox(_ ids: [Int64]) {
        guard !ids.isEmpty else { return }
        confirmedOutbox.withLock { $0 += ids }
    }

    /// The rows to delete now; the caller puts them back with ``noteConfirmedOutbox(_:)`` if its deletion fails.
    func takeConfirmedOutbox() -> [Int64] {
        confirmedOutbox.withLock { rows in
            defer { rows.removeAll(keepingCapacity: true) }
            return rows
        }
    }
}

/// The partitions this worker owns now. The hot loop alone adds and removes them (between batches); consumers and
/// the status writer only read.
final class OwnedPartitions: Sendable {
    private let table = Mutex<[Int: OwnedPartition]>([:])

    /// The partition, when this worker owns it.
    subscript(number: Int) -> OwnedPartition? {
        table.withLock { $0[number] }
    }

    /// Every owned partition, by number.
    var all: [OwnedPartition] {
        table.withLock { $0.values.sorted { $0.number < $1.number } }
    }

    /// The owned partition numbers, ascending.
    var numbers: [Int] {
        table.withLock { $0.keys.sorted() }
    }

    var count: Int { table.withLock { $0.count } }

    func insert(_ partition: OwnedPartition) {
        table.withLock { $0[partition.number] = partition }
    }

    /// Removes and returns the partition (`nil` when not owned).
    @discardableResult
    func remove(_ number: Int) -> OwnedPartition? {
        table.withLock { $0.removeValue(forKey: number) }
    }
}
