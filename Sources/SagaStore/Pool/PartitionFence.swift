import GRDB
import SagaEngine

/// One claim of a partition's store: the epoch it got and who holds it.
public struct FenceClaim: Sendable, Hashable {
    /// Grows by one with every claim of the file; a write checks that it is still the file's epoch.
    public var epoch: Int64
    /// The worker that claimed it.
    public var owner: String
    /// When.
    public var claimedAt: Timestamp
    /// When the owner gave it up (`nil` while held, or when the owner died holding it).
    public var releasedAt: Timestamp?
}

/// The fence: the epoch half of a partition's ownership (the other half is the partition's ``FileLock``).
///
/// A worker that took a partition's lock calls ``claim(owner:at:)``: the file's epoch grows by one and this store
/// remembers it. From then on every write transaction reads the file's epoch first and fails with
/// ``SagaStoreError/Code/fenced``, writing nothing, when it moved on; so a stale owner (one that lost its lock
/// without noticing, or whose lock was broken by hand) cannot write a single row after the next owner claimed.
extension SagaStore {
    /// Claims the partition for `owner`: a new epoch, recorded with its owner in the file and in its history.
    /// Call it only while holding the partition's lock. Returns the claim.
    @discardableResult
    public func claim(owner: String, at now: Timestamp) throws -> FenceClaim {
        try checkWritable("claiming the partition")
        do {
            let epoch: Int64 = try pool.writeWithoutTransaction { db in
                var epoch: Int64 = 0
                try db.inTransaction(.immediate) {
                    epoch = (try Int64.fetchOne(db, sql: "SELECT epoch FROM fence WHERE id = 1") ?? 0) + 1
                    try db.execute(
                        sql: """
                            INSERT INTO fence (id, epoch, owner, claimed_at) VALUES (1, ?, ?, ?)
                            ON CONFLICT (id) DO UPDATE SET
                                epoch = excluded.epoch, owner = excluded.owner, claimed_at = excluded.claimed_at
                            """,
                        arguments: [epoch, owner, now.milliseconds])
                    try db.execute(
                        sql: "INSERT INTO fence_history (epoch, owner, claimed_at) VALUES (?, ?, ?)",
                        arguments: [epoch, owner, now.milliseconds])
                    return .commit
                }
                return epoch
            }
            fence.withLock { $0 = .held(epoch) }
            return FenceClaim(epoch: epoch, owner: owner, claimedAt: now)
        } catch {
            throw SagaStoreError.wrap(error, path: configuration.path, operation: "claiming the partition")
        }
    }

    /// Records that the claim ended (the owner handed the partition off); later writes through this store fail as
    /// fenced. A claim that another owner already replaced is left as it is.
    public func releaseClaim(at now: Timestamp) throws {
        guard case .held(let epoch) = fence.withLock({ $0 }) else { return }
        do {
            try fencedWrite { db in
                try db.execute(
                    sql: "UPDATE fence_history SET released_at = ? WHERE epoch = ?",
                    arguments: [now.milliseconds, epoch])
            }
        } catch let error as SagaStoreError where error.code == .fenced {
            // Someone else holds it now: nothing of ours to record.
        } catch {
            throw SagaStoreError.wrap(error, path: configuration.path, operation: "releasing the partition")
        }
        fence.withLock { $0 = .released(epoch) }
    }

    /// The file's current claim, or `nil` for a file no worker ever claimed.
    public func currentClaim() throws -> FenceClaim? {
        try read("reading the partition's fence") { db in
            try Row.fetchOne(
                db,
                sql: """
                    SELECT fence.epoch, fence.owner, fence.claimed_at, fence_history.released_at
                    FROM fence LEFT JOIN fence_history ON fence_history.epoch = fence.epoch
                    """
            ).map(Self.claim)
        }
    }

    /// Every claim of the file, oldest first.
    public func claimHistory() throws -> [FenceClaim] {
        try read("reading the partition's claims") { db in
            try Row.fetchAll(
                db, sql: "SELECT epoch, owner, claimed_at, released_at FROM fence_history ORDER BY epoch"
            ).map(Self.claim)
        }
    }

    private static func claim(_ row: Row) -> FenceClaim {
        let released: Int64? = row[3]
        return FenceClaim(
            epoch: row[0], owner: row[1], claimedAt: Timestamp(milliseconds: row[2]),
            releasedAt: released.map { Timestamp(milliseconds: $0) })
    }

    /// Runs `body` in an immediate write transaction after the fence check.
    func fencedWrite<T>(_ body: (Database) throws -> T) throws -> T {
        try pool.writeWithoutTransaction { db in try inFencedTransaction(db, body) }
    }

    /// Runs `body` in an immediate write transaction on the writer connection `db`, after the fence check.
    ///
    /// The transaction statements are cached: the hot loop runs one such transaction per partition per batch, and
    /// preparing `BEGIN` and `COMMIT` each time was a visible share of its work.
    func inFencedTransaction<T>(_ db: Database, _ body: (Database) throws -> T) throws -> T {
        try db.cachedStatement(sql: "BEGIN IMMEDIATE").execute()
        do {
            try checkFence(db)
            let result = try body(db)
            try db.cachedStatement(sql: "COMMIT").execute()
            return result
        } catch {
            try? db.cachedStatement(sql: "ROLLBACK").execute()
            throw error
        }
    }

    /// Throws ``SagaStoreError/Code/fenced`` when this store claimed the file and the file's epoch is no longer that
    /// claim's (or the claim was released). A store that never claimed writes unchecked (single-file tools, tests).
    func checkFence(_ db: Database) throws {
        switch fence.withLock({ $0 }) {
        case .unclaimed:
            return
        case .released(let epoch):
            throw SagaStoreError(
                .fenced,
                "\(configuration.path): this worker released the partition (epoch \(epoch)); it must claim it again "
                    + "before writing.")
        case .held(let mine):
            let current = try Row.fetchOne(db.cachedStatement(sql: "SELECT epoch, owner FROM fence WHERE id = 1"))
            let epoch: Int64? = current?[0]
            guard epoch != mine else { return }
            let holder: String = current?[1] ?? "nobody"
            throw SagaStoreError(
                .fenced,
                "\(configuration.path) was claimed by \(holder) (epoch \(epoch ?? 0)) after this worker's claim "
                    + "(epoch \(mine)): this worker no longer owns the partition and must not write to it.")
        }
    }
}

/// Where a store stands with its partition's fence.
enum FenceState: Sendable {
    /// Never claimed: writes are not checked (single-file tools, tests).
    case unclaimed
    /// Claimed with this epoch: every write checks the file still has it.
    case held(Int64)
    /// Claimed, then handed off: every write fails.
    case released(Int64)
}
