import Foundation
import GRDB
import SagaEngine
import WaybillDefinition

/// What ``PoolDirectory/repartition(_:partitions:at:)`` did: the new count, and what each new partition received.
public struct RepartitionReport: Sendable, Hashable {
    /// What one new partition file received.
    public struct Share: Sendable, Hashable {
        /// The new partition.
        public var partition: Int
        /// Sagas now stored in it.
        public var sagas = 0
        /// Their journal lines.
        public var journalLines = 0
        /// Their durable timers.
        public var timers = 0
        /// Their outbox rows (messages committed but not yet confirmed by the broker).
        public var outboxMessages = 0
        /// Their kept milestone events.
        public var events = 0
        /// Its sagas by the old partition they came from; empty when the report only recounted the files (a run
        /// that finished an interrupted one).
        public var sagasFrom: [Int: Int] = [:]

        /// Describes a share.
        public init(partition: Int) {
            self.partition = partition
        }

        /// Sagas that came from an old partition with another number.
        public var moved: Int { sagasFrom.reduce(0) { $0 + ($1.key == partition ? 0 : $1.value) } }
    }

    /// The pool's data directory.
    public var path: String
    /// The partition count before.
    public var previousCount: Int
    /// The partition count now.
    public var count: Int
    /// One share per new partition, in partition order; empty when the pool already had `count` partitions.
    public var shares: [Share]
    /// Workflow definitions copied to every new partition file.
    public var definitions: Int
    /// Inbox marks (processed message ids) copied to every new partition file.
    public var inboxMarks: Int
    /// Workers whose leftover member files were removed (their partition lists named the old partitions).
    public var clearedMembers: [String]
    /// Whether this run first finished a repartition an earlier run left half-done.
    public var finishedInterrupted: Bool

    /// Sagas in the pool.
    public var sagas: Int { shares.reduce(0) { $0 + $1.sagas } }
    /// Sagas whose partition number changed.
    public var moved: Int { shares.reduce(0) { $0 + $1.moved } }
    /// Journal lines in the pool.
    public var journalLines: Int { shares.reduce(0) { $0 + $1.journalLines } }
    /// Timers in the pool.
    public var timers: Int { shares.reduce(0) { $0 + $1.timers } }
    /// Outbox rows in the pool.
    public var outboxMessages: Int { shares.reduce(0) { $0 + $1.outboxMessages } }
}

/// Changing a pool's partition count: the offline operation behind `waybill pool repartition`.
///
/// Every saga moves, with its journal, timers and outbox rows, to the file of ``partition(of:count:)`` under the
/// new count; workflow definitions and the inbox are copied to every new file. The new files are built under
/// `repartition/` beside the pool's files, checked, then swapped in, and `pool.json` is rewritten last. Until the
/// swap starts the pool is untouched; a run interrupted during the swap is finished by the next run (a
/// `repartition/pool.json` marks a complete build).
extension PoolDirectory {
    /// The folder a repartition builds in, inside the pool's directory.
    public static let repartitionFolder = "repartition"

    /// Changes the partition count of the pool in `path` to `count`, offline. Safe to run again after an
    /// interruption: it finishes a half-done swap first, and rebuilds a half-done build from the untouched files.
    ///
    /// Throws ``SagaStoreError/Code/poolInUse`` (changing nothing) when a worker of the pool is live or another
    /// process holds a partition's lock, ``SagaStoreError/Code/partitionCountMismatch`` for a count out of range, and
    /// the store's errors for a partition file it cannot read. Messages already queued in the partition queues, and
    /// replies to commands sent before, were routed by the old count: stop the workers only once they drained.
    @discardableResult
    public static func repartition(
        _ path: String, partitions count: Int, at now: Timestamp = .now()
    ) throws
        -> RepartitionReport
    {
        guard partitionCountRange.contains(count) else {
            throw SagaStoreError(
                .partitionCountMismatch, "a pool has 1 to 256 partitions, not \(count); 16 suits up to 16 workers.")
        }
        let before = try open(path)
        let locks = try before.lockForRepartition()
        defer { locks.forEach { $0.release() } }

        var finished = false
        if FileManager.default.fileExists(atPath: before.stagingPath(PoolDirectory.descriptionFile)) {
            try before.finishSwap()
            finished = true
        }
        let pool = try open(path)
        guard pool.partitionCount != count else {
            return RepartitionReport(
                path: path, previousCount: finished ? before.partitionCount : pool.partitionCount, count: count,
                shares: finished ? try pool.recount() : [], definitions: 0, inboxMarks: 0,
                clearedMembers: finished ? pool.clearDeadMembers() : [], finishedInterrupted: finished)
        }
        var report = try pool.build(count: count, at: now)
        report.finishedInterrupted = finished
        let live = pool.liveMembers()
        guard live.isEmpty else {
            throw SagaStoreError(
                .poolInUse,
                "worker \(live.joined(separator: ", ")) joined \(path) while the new partitions were built; nothing "
                    + "was swapped in. Stop every worker of the pool, then run the repartition again.")
        }
        try pool.finishSwap()
        report.clearedMembers = pool.clearDeadMembers()
        return report
    }

    // MARK: - Locks

    /// Takes `pool.lock` and every partition lock file's lock, after checking that no worker is live.
    private func lockForRepartition() throws -> [FileLock] {
        let live = liveMembers()
        guard live.isEmpty else {
            throw SagaStoreError(
                .poolInUse,
                "worker \(live.joined(separator: ", ")) is running in \(path); a repartition is offline. Stop every "
                    + "worker of the pool (SIGTERM drains it), then run the repartition again.")
        }
        var locks: [FileLock] = []
        guard let poolLock = try FileLock.tryLock("\(path)/pool.lock") else {
            throw SagaStoreError(
                .poolInUse,
                "another process holds \(path)/pool.lock (a running worker, a repartition, or a worker creating the "
                    + "pool); stop every worker, wait for it to finish, then try again.")
        }
        locks.append(poolLock)
        let folder = "\(path)/partitions"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
        for name in names where name.hasSuffix(".lock") {
            guard let lock = try FileLock.tryLock("\(folder)/\(name)") else {
                throw SagaStoreError(
                    .poolInUse,
                    "partition \(name.dropLast(5)) of \(path) is locked by a live process (a worker that has not "
                        + "joined the pool yet, or a stuck one); stop it, then run the repartition again.")
            }
            locks.append(lock)
        }
        return locks
    }

    // MARK: - Building

    private func stagingPath(_ name: String) -> String {
        "\(path)/\(Self.repartitionFolder)/\(name)"
    }

    /// Builds the new partition files under `repartition/next`, checks them, and writes the `repartition/pool.json`
    /// marker that makes the build complete.
    private func build(count: Int, at now: Timestamp) throws -> RepartitionReport {
        let manager = FileManager.default
        let staging = "\(path)/\(Self.repartitionFolder)"
        if manager.fileExists(atPath: staging) {
            try remove(staging, what: "the unfinished build of an interrupted repartition")
        }
        for partition in 0..<count {
            // The store creates the file with this binary's schema; the copy below only inserts rows.
            try SagaStore(configuration: SagaStore.Configuration(path: nextPath(partition))).close()
        }
        let sources = try partitions.filter { manager.fileExists(atPath: databasePath(partition: $0)) }.map {
            partition in
            // Opening a reader checks that the file is a store of a schema this binary reads.
            _ = try SagaStoreReader(path: databasePath(partition: partition))
            return partition
        }

        var shares = (0..<count).map { RepartitionReport.Share(partition: $0) }
        var before = TableCounts()
        var definitionHashes = Set<String>()
        var configuration = Configuration()
        configuration.label = "waybill.repartition"
        configuration.prepareDatabase { db in
            db.add(
                function: DatabaseFunction("waybill_partition", argumentCount: 1, pure: true) { values in
                    guard let id = String.fromDatabaseValue(values[0]) else { return nil }
                    return PoolDirectory.partition(of: id, count: count)
                })
        }
        let scratch = try DatabaseQueue(configuration: configuration)
        do {
            try scratch.writeWithoutTransaction { db in
                for partition in 0..<count {
                    try db.execute(sql: "ATTACH DATABASE ? AS dst", arguments: [nextPath(partition)])
                    try db.execute(sql: "CREATE TABLE dst.repartition_sagas AS SELECT * FROM dst.sagas WHERE 0")
                    try db.execute(sql: "DETACH DATABASE dst")
                }
                for source in sources {
                    try db.execute(sql: "ATTACH DATABASE ? AS src", arguments: [databasePath(partition: source)])
                    before.add(try TableCounts(db, schema: "src"))
                    definitionHashes.formUnion(
                        try String.fetchAll(db, sql: "SELECT hash FROM src.workflow_definitions"))
                    try db.execute(sql: Self.movingSQL)
                    for partition in 0..<count {
                        try db.execute(sql: "ATTACH DATABASE ? AS dst", arguments: [nextPath(partition)])
                        try db.inTransaction {
                            try Self.copy(db, to: partition, from: source, share: &shares[partition])
                            return .commit
                        }
                        try db.execute(sql: "DETACH DATABASE dst")
                    }
                    try db.execute(sql: "DROP TABLE temp.moving")
                    try db.execute(sql: "DETACH DATABASE src")
                }
                // Sagas go in start order, so row numbers follow start order as in a file a worker wrote.
                for partition in 0..<count {
                    try db.execute(sql: "ATTACH DATABASE ? AS dst", arguments: [nextPath(partition)])
                    try db.inTransaction {
                        try db.execute(
                            sql: """
                                INSERT INTO dst.sagas (\(Self.sagaColumns)) SELECT \(Self.sagaColumns)
                                FROM dst.repartition_sagas ORDER BY started_at, workflow, saga_id
                                """)
                        try db.execute(sql: "DROP TABLE dst.repartition_sagas")
                        return .commit
                    }
                    try db.execute(sql: "PRAGMA dst.wal_checkpoint(TRUNCATE)")
                    try db.execute(sql: "DETACH DATABASE dst")
                }
            }
        } catch {
            throw SagaStoreError.wrap(error, path: staging, operation: "building the new partition files")
        }
        let inbox = try check(count: count, shares: shares, before: before, definitions: definitionHashes)
        let marker = try repartitionedDescription(count: count, at: now)
        try writeDurably(marker, to: stagingPath(Self.descriptionFile))
        return RepartitionReport(
            path: path, previousCount: partitionCount, count: count, shares: shares,
            definitions: definitionHashes.count, inboxMarks: inbox, clearedMembers: [], finishedInterrupted: false)
    }

    /// A new partition's file while it is built.
    private func nextPath(_ partition: Int) -> String {
        stagingPath("next/\(Self.name(ofPartition: partition)).sqlite")
    }

    private static let sagaColumnNames = [
        "workflow", "saga_id", "definition_hash", "version", "status", "current_step", "owner", "started_at",
        "updated_at", "failure_code", "state",
    ]
    private static let sagaColumns = sagaColumnNames.joined(separator: ", ")

    /// Every saga key the attached source file mentions, with its partition under the new count.
    private static let movingSQL = """
        CREATE TEMP TABLE moving AS
        SELECT workflow, saga_id, waybill_partition(saga_id) AS target FROM (
            SELECT workflow, saga_id FROM src.sagas UNION SELECT workflow, saga_id FROM src.journal
            UNION SELECT workflow, saga_id FROM src.timers UNION SELECT workflow, saga_id FROM src.outbox);
        CREATE INDEX temp.moving_by_target ON moving (target, workflow, saga_id);
        """

    /// Copies what the attached `src` holds for partition `partition` into the attached `dst`, with the definitions
    /// and the inbox. Journal and outbox rows keep their order (new ids, ascending as before).
    private static func copy(
        _ db: Database, to partition: Int, from source: Int, share: inout RepartitionReport.Share
    ) throws {
        func from(_ table: String) -> String {
            "FROM temp.moving m JOIN src.\(table) t ON t.workflow = m.workflow AND t.saga_id = m.saga_id"
        }
        try db.execute(
            sql: """
                INSERT INTO dst.repartition_sagas (\(sagaColumns))
                SELECT \(sagaColumnNames.map { "t.\($0)" }.joined(separator: ", ")) \(from("sagas")) WHERE m.target = ?
                """,
            arguments: [partition])
        let sagas = db.changesCount
        share.sagas += sagas
        if sagas > 0 { share.sagasFrom[source, default: 0] += sagas }
        // A source file no worker has migrated since journal lines gained `facts` has no such column.
        let sourceHasFacts = try String.fetchAll(db, sql: "SELECT name FROM pragma_table_info('journal', 'src')")
            .contains("facts")
        try db.execute(
            sql: """
                INSERT INTO dst.journal (workflow, saga_id, at, kind, step, actor, detail, facts)
                SELECT t.workflow, t.saga_id, t.at, t.kind, t.step, t.actor, t.detail, \(sourceHasFacts ? "t.facts" : "NULL")
                \(from("journal"))
                WHERE m.target = ? ORDER BY t.id
                """,
            arguments: [partition])
        share.journalLines += db.changesCount
        try db.execute(
            sql: """
                INSERT INTO dst.timers (workflow, saga_id, timer_id, kind, due_at)
                SELECT t.workflow, t.saga_id, t.timer_id, t.kind, t.due_at \(from("timers")) WHERE m.target = ?
                """,
            arguments: [partition])
        share.timers += db.changesCount
        // A source file no worker has migrated since wait steps could wait for a message has no waits.
        if try Int.fetchOne(db, sql: "SELECT count(*) FROM src.sqlite_master WHERE type = 'table' AND name = 'waits'")
            ?? 0 > 0
        {
            try db.execute(
                sql: """
                    INSERT INTO dst.waits (workflow, saga_id, wait_id, exchange, routing_key, key_expression, match_value)
                    SELECT t.workflow, t.saga_id, t.wait_id, t.exchange, t.routing_key, t.key_expression, t.match_value
                    \(from("waits")) WHERE m.target = ?
                    """,
                arguments: [partition])
        }
        try db.execute(
            sql: """
                INSERT INTO dst.outbox (message_id, workflow, saga_id, exchange, routing_key, content_type,
                                        correlation_id, reply_to, headers, mandatory, body, created_at)
                SELECT t.message_id, t.workflow, t.saga_id, t.exchange, t.routing_key, t.content_type,
                       t.correlation_id, t.reply_to, t.headers, t.mandatory, t.body, t.created_at \(from("outbox"))
                WHERE m.target = ? ORDER BY t.id
                """,
            arguments: [partition])
        share.outboxMessages += db.changesCount
        // A source file no worker has migrated since milestone events were kept has no events.
        if try Int.fetchOne(db, sql: "SELECT count(*) FROM src.sqlite_master WHERE type = 'table' AND name = 'events'")
            ?? 0 > 0
        {
            try db.execute(
                sql: """
                    INSERT INTO dst.events (event_id, workflow, saga_id, exchange, routing_key, content_type, headers,
                                            body, at)
                    SELECT t.event_id, t.workflow, t.saga_id, t.exchange, t.routing_key, t.content_type, t.headers,
                           t.body, t.at \(from("events"))
                    WHERE m.target = ? ORDER BY t.id
                    """,
                arguments: [partition])
            share.events += db.changesCount
        }
        try db.execute(
            sql: """
                INSERT INTO dst.workflow_definitions (hash, name, version, source, first_seen_at)
                SELECT hash, name, version, source, first_seen_at FROM src.workflow_definitions WHERE true
                ON CONFLICT (hash) DO UPDATE SET first_seen_at = min(first_seen_at, excluded.first_seen_at)
                """)
        // A message id processed anywhere stays processed everywhere, for as long as any old file remembered it.
        try db.execute(
            sql: """
                INSERT INTO dst.inbox (message_id, at) SELECT message_id, at FROM src.inbox WHERE true
                ON CONFLICT (message_id) DO UPDATE SET at = max(at, excluded.at)
                """)
    }

    /// Row counts of the tables a repartition moves.
    private struct TableCounts: Equatable {
        var sagas = 0
        var journal = 0
        var timers = 0
        var outbox = 0
        var events = 0

        init() {}

        init(_ db: Database, schema: String) throws {
            func count(_ table: String) throws -> Int {
                try Int.fetchOne(db, sql: "SELECT count(*) FROM \(schema).\(table)") ?? 0
            }
            sagas = try count("sagas")
            journal = try count("journal")
            timers = try count("timers")
            outbox = try count("outbox")
            if try db.tableExists("events", in: schema) { events = try count("events") }
        }

        mutating func add(_ other: TableCounts) {
            sagas += other.sagas
            journal += other.journal
            timers += other.timers
            outbox += other.outbox
            events += other.events
        }
    }

    /// Recounts the new files and compares them with the old ones; returns the inbox size of each new file.
    private func check(
        count: Int, shares: [RepartitionReport.Share], before: TableCounts,
        definitions: Set<String>
    ) throws -> Int {
        var after = TableCounts()
        var inboxSizes = Set<Int>()
        for partition in 0..<count {
            let file = nextPath(partition)
            let (counts, stored, inbox) = try Self.readOnly(file).read { db in
                (
                    try TableCounts(db, schema: "main"),
                    try Int.fetchOne(db, sql: "SELECT count(*) FROM workflow_definitions") ?? 0,
                    try Int.fetchOne(db, sql: "SELECT count(*) FROM inbox") ?? 0
                )
            }
            let share = shares[partition]
            guard counts.sagas == share.sagas, counts.journal == share.journalLines, counts.timers == share.timers,
                counts.outbox == share.outboxMessages, counts.events == share.events, stored == definitions.count
            else {
                throw SagaStoreError(
                    .corruptState,
                    "the repartition check failed: \(file) does not hold what was copied into it; the pool was not "
                        + "changed. Check the disk, then run the repartition again.")
            }
            after.add(counts)
            inboxSizes.insert(inbox)
        }
        guard after == before, inboxSizes.count <= 1 else {
            throw SagaStoreError(
                .corruptState,
                "the repartition check failed: the new partition files hold \(after.sagas) sagas, \(after.journal) "
                    + "journal lines, \(after.timers) timers and \(after.outbox) outbox rows, the old ones "
                    + "\(before.sagas), \(before.journal), \(before.timers) and \(before.outbox); the pool was not "
                    + "changed. Check the disk, then run the repartition again.")
        }
        return inboxSizes.first ?? 0
    }

    /// `pool.json` as it is, with the new count and when it changed.
    private func repartitionedDescription(count: Int, at now: Timestamp) throws -> Data {
        let file = "\(path)/\(Self.descriptionFile)"
        guard let data = FileManager.default.contents(atPath: file),
            case .object(var fields) = try? JSONText.decode(Array(data))
        else {
            throw SagaStoreError(.corruptState, "\(file) cannot be read. Restore it from a backup.")
        }
        let queues = max(fields["queueCount"]?.intValue ?? 0, fields["partitions"]?.intValue ?? 0, count)
        fields["partitions"] = .number(Double(count))
        // Queues above the new count may still receive replies to commands sent before: workers keep draining them.
        fields["queueCount"] = .number(Double(queues))
        fields["repartitionedAtMilliseconds"] = .number(Double(now.milliseconds))
        return Data((JSONText.encode(.object(fields)) + "\n").utf8)
    }

    // MARK: - Swapping

    /// Puts a complete build in place: `partitions` → `repartition/previous`, `repartition/next` → `partitions`,
    /// the marker → `pool.json`, then removes `repartition/`. Each step is skipped when an earlier run did it.
    private func finishSwap() throws {
        let manager = FileManager.default
        let live = "\(path)/partitions"
        let next = stagingPath("next")
        let previous = stagingPath("previous")
        if manager.fileExists(atPath: next) {
            if manager.fileExists(atPath: live) {
                guard !manager.fileExists(atPath: previous) else {
                    throw SagaStoreError(
                        .poolInUse,
                        "\(live) reappeared during an interrupted repartition (a worker started meanwhile?); stop "
                            + "every worker, move \(live) aside, then run the repartition again.")
                }
                try move(live, to: previous)
            }
            try move(next, to: live)
        }
        guard let marker = FileManager.default.contents(atPath: stagingPath(Self.descriptionFile)) else {
            throw SagaStoreError(
                .corruptState, "\(stagingPath(Self.descriptionFile)) vanished while the repartition finished.")
        }
        try writeDurably(marker, to: "\(path)/\(Self.descriptionFile)")
        try remove("\(path)/\(Self.repartitionFolder)", what: "the previous partition files")
    }

    /// What the current files hold (after finishing an interrupted run, whose figures were lost).
    private func recount() throws -> [RepartitionReport.Share] {
        try partitions.map { partition in
            var share = RepartitionReport.Share(partition: partition)
            let file = databasePath(partition: partition)
            guard FileManager.default.fileExists(atPath: file) else { return share }
            do {
                let counts = try Self.readOnly(file).read { db in try TableCounts(db, schema: "main") }
                share.sagas = counts.sagas
                share.journalLines = counts.journal
                share.timers = counts.timers
                share.outboxMessages = counts.outbox
                share.events = counts.events
            } catch {
                throw SagaStoreError.wrap(error, path: file, operation: "counting the rows", readOnly: true)
            }
            return share
        }
    }

    /// A read-only connection to a partition file.
    private static func readOnly(_ file: String) throws -> DatabaseQueue {
        var configuration = Configuration()
        configuration.readonly = true
        return try DatabaseQueue(path: file, configuration: configuration)
    }

    /// Removes the files of every worker that is not live; returns their ids.
    private func clearDeadMembers() -> [String] {
        members().filter { !$0.isLive }.map(\.worker).filter { clearDeadMember($0) }
    }

    private func move(_ from: String, to destination: String) throws {
        guard rename(from, destination) == 0 else {
            throw SagaStoreError(
                .ioError,
                "cannot move \(from) to \(destination): \(String(cString: strerror(errno))). Fix the cause, then run "
                    + "the repartition again; it continues where it stopped.")
        }
        FileSync.directory(of: destination)
        FileSync.directory(of: from)
    }

    private func remove(_ folder: String, what: String) throws {
        do {
            try FileManager.default.removeItem(atPath: folder)
        } catch {
            throw SagaStoreError(
                .notWritable, "cannot remove \(folder) (\(what)); remove it by hand, then run the repartition again.",
                cause: error)
        }
    }

    /// Writes `data` to a temporary file beside `file`, flushes it to the disk, and renames it over `file`.
    private func writeDurably(_ data: Data, to file: String) throws {
        let temporary = file + ".tmp"
        do {
            try data.write(to: URL(fileURLWithPath: temporary))
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: temporary))
            defer { try? handle.close() }
            try handle.synchronize()
        } catch {
            throw SagaStoreError(
                .notWritable, "cannot write \(temporary); check the permissions and the disk.", cause: error)
        }
        try move(temporary, to: file)
    }

    /// Flushes a folder's entries (a rename) to the disk; best effort.
}
