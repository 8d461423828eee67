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
/// archive/                  finished sagas moved out of the partition files (``SagaArchive``)
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
    /// How many partition queues the pool has ever had: above ``partitionCount`` after a repartition to fewer
    /// partitions, whose left-over queues the workers keep draining into the right partitions.
    public let queueCount: Int
    /// The `pool_name` its queues are named with, when recorded (pools made before it was recorded have none).
    public let poolName: String?

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
            return PoolDirectory(
                path: path, partitionCount: count, queueCount: max(count, value["queueCount"]?.intValue ?? count),
                poolName: value["poolName"]?.stringValue)
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
    public static func openOrCreate(_ path: String, partitions: Int, poolName: String? = nil) throws -> PoolDirectory {
        let pool = try create(path, partitions: partitions, poolName: poolName)
        guard pool.partitionCount == partitions else {
            throw SagaStoreError(
                .partitionCountMismatch,
                "the pool in \(path) has \(pool.partitionCount) partitions, not \(partitions). Leave `partitions` unset "
                    + "(or set it to \(pool.partitionCount)); to change the count, stop every worker and run "
                    + "`waybill pool repartition --data-dir \(path) --partitions \(partitions)`.")
        }
        return pool
    }

    /// The pool in `path`, creating it with `partitions` (and `poolName`, the prefix of its queues) when new; an
    /// existing pool keeps its own count. Refuses to make a new `pool.json` beside existing partition files: a lost
    /// description must be restored, not guessed, or every saga would move.
    public static func create(_ path: String, partitions: Int, poolName: String? = nil) throws -> PoolDirectory {
        guard partitionCountRange.contains(partitions) else {
            throw SagaStoreError(
                .partitionCountMismatch,
                "a pool has 1 to 256 partitions, not \(partitions); 16 suits up to 16 workers.")
        }
        let file = (path as NSString).appendingPathComponent(descriptionFile)
        let manager = FileManager.default
        // The folders first, also for an existing pool.json (restored from a backup, or written by hand).
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
        if manager.fileExists(atPath: file) { return try open(path) }
        // Only one process writes pool.json; the others wait here until it is there (the writer then holds the lock
        // shared for as long as it runs, so waiting for the lock itself would never end).
        let creation = (path as NSString).appendingPathComponent("pool.lock")
        var lock: FileLock?
        for _ in 0..<200 {
            if manager.fileExists(atPath: file) { return try open(path) }
            lock = try FileLock.tryLock(creation)
            if lock != nil { break }
            usleep(10_000)
        }
        guard let lock else {
            throw SagaStoreError(
                .poolInUse, "\(creation) is held by another process for more than 2 s; start the worker again.")
        }
        defer { lock.release() }
        if !manager.fileExists(atPath: file) {
            let existing = ((try? manager.contentsOfDirectory(atPath: "\(path)/partitions")) ?? []).filter {
                $0.hasSuffix(".sqlite")
            }
            guard existing.isEmpty else {
                throw SagaStoreError(
                    .corruptState,
                    "\(path) has partition files but no \(descriptionFile): the pool's partition count is lost, and a "
                        + "guess would move every saga. Restore \(descriptionFile) from a backup.")
            }
            var fields: [String: JSONValue] = [
                "format": .number(1), "partitions": .number(Double(partitions)),
                "createdAtMilliseconds": .number(Double(Timestamp.now().milliseconds)),
            ]
            if let poolName { fields["poolName"] = .string(poolName) }
            do {
                try Data((JSONText.encode(.object(fields)) + "\n").utf8).write(
                    to: URL(fileURLWithPath: file), options: .atomic)
            } catch {
                throw SagaStoreError(.notWritable, "cannot write \(file).", cause: error)
            }
        }
        return try open(path)
    }

    /// Holds the pool open for a worker's lifetime: a shared lock on `pool.lock`, which `waybill pool repartition`
    /// needs exclusively. Throws ``SagaStoreError/Code/poolInUse`` while a repartition runs or when an interrupted
    /// one must be finished first.
    public func hold() throws -> FileLock {
        let unfinished = "\(path)/\(Self.repartitionFolder)/\(Self.descriptionFile)"
        // Another worker creating the pool holds the lock exclusively for a few milliseconds (until its pool.json is
        // written and read back); a repartition holds it far longer than the 2 s waited here.
        var held: FileLock?
        for attempt in 0..<200 {
            held = try FileLock.tryLock("\(path)/pool.lock", shared: true)
            if held != nil || attempt == 199 { break }
            usleep(10_000)
        }
        guard let lock = held else {
            throw SagaStoreError(
                .poolInUse,
                "a `waybill pool repartition` is changing \(path); start the worker once it is done.")
        }
        if FileManager.default.fileExists(atPath: unfinished) {
            lock.release()
            throw SagaStoreError(
                .poolInUse,
                "\(path) has an interrupted repartition (\(unfinished)); finish it with `waybill pool repartition "
                    + "--data-dir \(path) --partitions N` (the same N) before starting workers.")
        }
        return lock
    }

    /// A pool description without touching the disk (tests, and tools that already read it).
    public init(path: String, partitionCount: Int, queueCount: Int? = nil, poolName: String? = nil) {
        self.path = path
        self.partitionCount = partitionCount
        self.queueCount = max(partitionCount, queueCount ?? partitionCount)
        self.poolName = poolName
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

    /// Opens a partition's file read-only (tools and checks that read beside the workers), or returns `nil` while it
    /// does not exist: no worker has claimed that partition yet, so it holds no saga.
    public func openReadOnly(partition: Int) throws -> SagaStore? {
        let path = databasePath(partition: partition)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return try SagaStore(configuration: SagaStore.Configuration(path: path, readOnly: true))
    }

    /// Whether some live process holds the partition's lock now.
    public func isOwned(partition: Int) -> Bool {
        FileLock.isHeld(lockPath(partition: partition))
    }
}
