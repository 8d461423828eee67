import Foundation
import SagaEngine
import SeededRandom
import WaybillDefinition

/// A pool's data directory: the partition count fixed when the pool was created, one SQLite file and one lock file
/// per partition, and one lock and status file per live worker. The workers of one host share it (a volume);
/// docs/pool.md has the layout and why.
///
/// ```
/// pool.json                 {"format": 1, "partitions": 16, "createdAtMilliseconds": ...}: written once, read by everyone
/// partitions/p07.sqlite     partition 7's sagas, journal, inbox, outbox, timers and definitions (WAL)
/// partitions/p07.lock       held (flock) by partition 7's owner
/// members/<worker>.lock     held by a live worker for as long as it runs
/// members/<worker>.json     what that worker last said about itself (``PoolMemberStatus``)
/// ```
///
/// A saga's partition is ``partition(of:)``: a stable hash of its id, never anything the broker decides, so broker
/// restarts and the order in which workers start change nothing. The count never changes while workers run;
/// `waybill pool repartition` changes it offline.
public struct PoolDirectory: Sendable, Hashable {
    /// The partition count of a new pool: enough for 16 workers to get one each.
    public static let defaultPartitionCount = 16
    /// The largest partition count a pool may have (each partition is a file, a queue and a consumer).
    public static let partitionCountRange = 1...256

    /// The directory.
    public let path: String
    /// How many partitions the pool has; fixed at creation.
    public let partitionCount: Int

    /// The pool in `path` as its `pool.json` describes it.
    ///
    /// Throws ``SagaStoreError/Code/cannotOpen`` when the directory has no `pool.json` (not a pool, or not created
    /// yet) and ``SagaStoreError/Code/corruptState`` when the file cannot be read.
    public static func open(_ path: String) throws -> PoolDirectory {
        let file = (path as NSString).appendingPathComponent(descriptionFile)
        guard let data = FileManager.default.contents(atPath: file) else {
            throw SagaStoreError(
                .cannotOpen,
                "\(path) is not a Waybill pool directory (it has no \(descriptionFile)). Point at the directory the "
                    + "workers use (data_directory), or start a worker once to create it.")
        }
        do {
            let value = try JSONText.decode(Array(data))
            guard value["format"]?.intValue == 1, let count = value["partitions"]?.intValue,
                partitionCountRange.contains(count)
            else {
                throw SagaStoreError(
                    .corruptState,
                    "\(file) does not describe a pool this Waybill knows (format 1, 1 to 256 partitions). Restore it "
                        + "from a backup.")
            }
            return PoolDirectory(path: path, partitionCount: count)
        } catch let error as SagaStoreError {
            throw error
        } catch {
            throw SagaStoreError(
                .corruptState, "\(file) is not valid JSON. Restore it from a backup.", cause: error)
        }
    }

    /// The pool in `path`, created with `partitions` partitions if the directory has none yet. An existing pool
    /// keeps its count: when `partitions` differs, it throws ``SagaStoreError/Code/partitionCountMismatch``
    /// (changing the count is `waybill pool repartition`, offline). Safe when several workers start at once.
    public static func openOrCreate(_ path: String, partitions: Int) throws -> PoolDirectory {
        let pool = try create(path, partitions: partitions)
        guard pool.partitionCount == partitions else {
            throw SagaStoreError(
                .partitionCountMismatch,
                "the pool in \(path) has \(pool.partitionCount) partitions, not \(partitions). Leave `partitions` unset "
                    + "(or set it to \(pool.partitionCount)); to change the count, stop every worker and run "
                    + "`waybill pool repartition --data-dir \(path) --partitions \(partitions)`.")
        }
        return pool
    }

    /// The pool in `path`, creating it with `partitions` when new; an existing pool keeps its own count.
    public static func create(_ path: String, partitions: Int) throws -> PoolDirectory {
        guard partitionCountRange.contains(partitions) else {
            throw SagaStoreError(
                .partitionCountMismatch,
                "a pool has 1 to 256 partitions, not \(partitions); 16 suits up to 16 workers.")
        }
        let manager = FileManager.default
        for folder in [
            path, (path as NSString).appendingPathComponent("partitions"),
            (path as NSString).appendingPathComponent("members"),
        ] {
            do {
                try manager.createDirectory(atPath: folder, withIntermediateDirectories: true)
            } catch {
                throw SagaStoreError(
                    .notWritable,
                    "cannot create \(folder) for the pool. Create it or fix its parent's permissions.", cause: error)
            }
        }
        // Only one process writes pool.json; the others wait here and then read it. `waybill pool repartition` holds
        // the same lock for as long as it runs, so a worker never starts in the middle of one.
        let creation = (path as NSString).appendingPathComponent("pool.lock")
        var lock: FileLock?
        for _ in 0..<200 {
            lock = try FileLock.tryLock(creation)
            if lock != nil { break }
            usleep(10_000)
        }
        guard let lock else {
            throw SagaStoreError(
                .poolInUse,
                "\(creation) is held by another process for more than 2 s (a `waybill pool repartition` running?); "
                    + "start the worker once it is done.")
        }
        defer { lock.release() }
        let unfinished = (path as NSString).appendingPathComponent("\(repartitionFolder)/\(descriptionFile)")
        if manager.fileExists(atPath: unfinished) {
            throw SagaStoreError(
                .poolInUse,
                "\(path) has an interrupted repartition (\(unfinished)); finish it with `waybill pool repartition "
                    + "--data-dir \(path) --partitions N` (the same N) before starting workers.")
        }
        let file = (path as NSString).appendingPathComponent(descriptionFile)
        if !manager.fileExists(atPath: file) {
            let text = JSONText.encode(
                .object([
                    "format": .number(1), "partitions": .number(Double(partitions)),
                    "createdAtMilliseconds": .number(Double(Timestamp.now().milliseconds)),
                ]))
            do {
                try Data((text + "\n").utf8).write(to: URL(fileURLWithPath: file), options: .atomic)
            } catch {
                throw SagaStoreError(.notWritable, "cannot write \(file).", cause: error)
            }
        }
        return try open(path)
    }

    /// A pool description without touching the disk (tests, and tools that already read it).
    public init(path: String, partitionCount: Int) {
        self.path = path
        self.partitionCount = partitionCount
    }

    /// The file that records the partition count.
    public static let descriptionFile = "pool.json"

    /// Every partition number, `0 ..< partitionCount`.
    public var partitions: Range<Int> { 0..<partitionCount }

    /// The partition of a saga: FNV-1a of the id's UTF-8 bytes, mixed (``StableHash``), modulo the count. The same
    /// on every host, process and Waybill version; the workflow name is not part of it.
    public static func partition(of sagaId: String, count: Int) -> Int {
        var hash = StableHash()
        hash.combine(sagaId)
        return Int(hash.value % UInt64(max(1, count)))
    }

    /// The partition of a saga in this pool.
    public func partition(of sagaId: String) -> Int {
        Self.partition(of: sagaId, count: partitionCount)
    }

    /// `p07`: how files and queues name a partition.
    public static func name(ofPartition partition: Int) -> String {
        partition < 10 ? "p0\(partition)" : "p\(partition)"
    }

    /// The SQLite file of a partition.
    public func databasePath(partition: Int) -> String {
        "\(path)/partitions/\(Self.name(ofPartition: partition)).sqlite"
    }

    /// The lock file its owner holds.
    public func lockPath(partition: Int) -> String {
        "\(path)/partitions/\(Self.name(ofPartition: partition)).lock"
    }

    /// The folder of member lock and status files.
    public var membersPath: String { "\(path)/members" }

    /// The lock file a live worker holds.
    public func memberLockPath(worker: String) -> String { "\(membersPath)/\(worker).lock" }

    /// The status file a live worker rewrites.
    public func memberStatusPath(worker: String) -> String { "\(membersPath)/\(worker).json" }

    /// Whether some live process holds the partition's lock now.
    public func isOwned(partition: Int) -> Bool {
        FileLock.isHeld(lockPath(partition: partition))
    }
}
