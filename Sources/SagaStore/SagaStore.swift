import Foundation
import GRDB
import SagaEngine
import Synchronization
import WaybillDefinition

/// The worker's durable memory: sagas, their journal, the inbox of processed message ids, the outbox of
/// messages to publish, durable timers and the workflow definitions sagas run, in one SQLite file in WAL mode.
///
/// Open one store per file and share it: it is `Sendable`, writes are serialized on one connection and reads run
/// concurrently on a small reader pool (except the hot path's lookup, which reads on the writer's connection). The hot
/// path is ``commit(_:)``: many handled messages, one transaction, one fsync; acknowledge the messages only after it
/// returns.
public final class SagaStore: Sendable {
    /// How to open the store. Every field has a default; map environment variables and config keys onto it.
    public struct Configuration: Sendable {
        /// What a commit guarantees when the machine loses power.
        public enum Durability: Sendable, Hashable {
            /// `synchronous=FULL`: a returned commit survives power loss. The default: a worker acknowledges messages
            /// right after the commit, so a lost commit would lose an order.
            case full
            /// `synchronous=NORMAL`: commits survive a process crash but the last ones may vanish on power loss.
            /// Faster per commit; opt in only when the broker can redeliver everything since the last checkpoint.
            case normal
        }

        /// The database file; its directory is created when missing (unless read-only). `-wal` and `-shm` files
        /// live beside it: back up all three, or use `sqlite3 .backup`.
        public var path: String
        /// Power-loss guarantee of a commit; ``Durability/full`` unless you opt out.
        public var durability: Durability
        /// How long a write waits for another process's lock before failing with
        /// ``SagaStoreError/Code/databaseLocked``.
        public var busyTimeout: Duration
        /// Opens for reading only (the operator CLI): never creates, migrates or writes the file, and works while
        /// the worker is stopped or running. Writes throw ``SagaStoreError/Code/notWritable``.
        public var readOnly: Bool
        /// How many reads may run at once.
        public var maximumReaderCount: Int
        /// The page cache of each connection, in MiB, filled lazily. Keep it above the pages of the sagas in flight
        /// (about 4 KiB each) so commits do not re-read pages they just wrote.
        public var pageCacheMegabytes: Int

        /// A configuration; only `path` usually needs setting.
        public init(
            path: String = ".waybill/waybill.sqlite", durability: Durability = .full,
            busyTimeout: Duration = .seconds(5), readOnly: Bool = false, maximumReaderCount: Int = 4,
            pageCacheMegabytes: Int = 64
        ) {
            self.path = path
            self.durability = durability
            self.busyTimeout = busyTimeout
            self.readOnly = readOnly
            self.maximumReaderCount = maximumReaderCount
            self.pageCacheMegabytes = pageCacheMegabytes
        }
    }

    /// How the store was opened.
    public let configuration: Configuration
    /// Internal so tests can inspect pragmas and raw rows.
    let pool: DatabasePool
    /// The fence epoch this store claimed (``claim(owner:at:)``); once claimed, every write checks it.
    let fence = Mutex(FenceState.unclaimed)

    /// Opens (creating and migrating when writable) the store at `configuration.path`.
    ///
    /// Throws ``SagaStoreError`` with ``SagaStoreError/Code/schemaMismatch`` when a newer Waybill migrated the file
    /// or a read-only open finds migrations missing (the message names both schema versions), and
    /// ``SagaStoreError/Code/cannotOpen`` when a read-only path does not exist.
    public init(configuration: Configuration = Configuration()) throws {
        self.configuration = configuration
        let path = configuration.path
        do {
            if !configuration.readOnly {
                let directory = (path as NSString).deletingLastPathComponent
                if !directory.isEmpty && !FileManager.default.fileExists(atPath: directory) {
                    do {
                        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                    } catch {
                        throw SagaStoreError(
                            .notWritable,
                            "cannot create the directory \(directory) for the saga store. Create it or fix its "
                                + "parent's permissions, or set another path.",
                            cause: error)
                    }
                }
            }
            var grdb = GRDB.Configuration()
            grdb.readonly = configuration.readOnly
            grdb.busyMode = .timeout(Double(configuration.busyTimeout.milliseconds) / 1000)
            grdb.maximumReaderCount = max(1, configuration.maximumReaderCount)
            grdb.label = "waybill.store"
            let cacheKiB = max(1, configuration.pageCacheMegabytes) * 1024
            grdb.prepareDatabase { db in
                // page_size only takes effect while the file is empty (a new store); later opens ignore it.
                try db.execute(sql: "PRAGMA page_size = \(Self.pageSize); PRAGMA cache_size = -\(cacheKiB)")
            }
            pool = try DatabasePool(path: path, configuration: grdb)
            try pool.read { db in try Schema.check(db, path: path, canMigrate: !configuration.readOnly) }
            if !configuration.readOnly {
                try Schema.migrator.migrate(pool)
                // DatabasePool switches the writer to WAL and `synchronous=NORMAL` after `prepareDatabase` runs, so
                // the durability is set here, on the one writer connection, once the pool exists.
                let synchronous = configuration.durability == .full ? "FULL" : "NORMAL"
                try pool.writeWithoutTransaction { db in
                    try db.execute(
                        sql: "PRAGMA synchronous = \(synchronous); PRAGMA wal_autocheckpoint = \(Self.checkpointPages)")
                }
            }
        } catch {
            throw SagaStoreError.wrap(error, path: path, operation: "opening the saga store")
        }
    }

    /// Closes the file. Later calls on this store throw. Call it on shutdown after the last commit.
    ///
    /// With `checkpoint` (the default) a writable store first moves the write-ahead log into the file and empties it
    /// (`wal_checkpoint(TRUNCATE)`), so the file a stopped worker leaves is whole: a read-only reader of a file with a
    /// long log and no live writer would rebuild the log's index on every open (6 ms for a 38 MB log). It never waits:
    /// when another connection is reading or writing the file, the checkpoint is left to the next writer. Pass
    /// `false` when the file belongs to someone else now (a partition lost to another worker).
    public func close(checkpoint: Bool = true) throws {
        do {
            if checkpoint, !configuration.readOnly {
                _ = try? pool.writeWithoutTransaction { db in
                    try db.execute(sql: "PRAGMA busy_timeout = 0; PRAGMA wal_checkpoint(TRUNCATE)")
                }
            }
            try pool.close()
        } catch {
            throw SagaStoreError.wrap(error, path: configuration.path, operation: "closing the saga store")
        }
    }

    // MARK: - Writing

    /// Writes every change in one transaction (group commit): all of them or none.
    ///
    /// Encoding happens before the write lock is taken; the SQL runs on cached statements. A message id already in
    /// the inbox fails the whole batch with ``SagaStoreError/Code/duplicateMessage`` (filter deliveries with
    /// ``processedMessageIds(in:)`` first). Outbox message ids are not checked: they are unique by construction (each
    /// names its saga and a number from the saga's own sequence). Within a change, cancelled timers are removed before
    /// scheduled ones are written.
    ///
    /// - Returns: the outbox row ids of the changes' messages, in order (pass them to ``deleteOutbox(ids:)`` once
    ///   the broker confirmed the messages).
    @discardableResult
    public func commit(_ changes: [SagaChange]) throws -> [Int64] {
        try commitBlocking(changes, deletingOutbox: [])
    }

    /// ``commit(_:)`` without blocking the caller: the transaction runs on the store's writer queue while the task
    /// is suspended, so the commits of several stores (a pool's partitions) run, and wait for their fsyncs, in
    /// parallel.
    @discardableResult
    public func commit(_ changes: [SagaChange]) async throws -> [Int64] {
        try await commit(changes, deletingOutbox: [])
    }

    /// ``commit(_:)`` that also removes the outbox rows `confirmed` (the broker confirmed their messages) in the same
    /// transaction: a deletion costs no transaction, and no disk flush, of its own. With no changes and no rows it
    /// does nothing.
    @discardableResult
    public func commit(_ changes: [SagaChange], deletingOutbox confirmed: [Int64]) async throws -> [Int64] {
        guard let prepared = try prepareCommit(changes, deleting: confirmed) else { return [] }
        do {
            return try await pool.writeWithoutTransaction { db in try self.write(prepared, deleting: confirmed, in: db)
            }
        } catch {
            throw commitFailure(error, changes: changes)
        }
    }

    /// ``commit(_:deletingOutbox:)`` on the caller's thread, which waits for the transaction and its disk flush, and
    /// now and then for a WAL checkpoint (some megabytes written and flushed) or for another process's write lock (up
    /// to the busy timeout). The worker uses it for a batch with one partition's work, on a thread of Swift's
    /// cooperative pool, where handing the commit to the store's queue and back costs more than the wait.
    @discardableResult
    public func commitBlocking(_ changes: [SagaChange], deletingOutbox confirmed: [Int64]) throws -> [Int64] {
        guard let prepared = try prepareCommit(changes, deleting: confirmed) else { return [] }
        do {
            return try pool.writeWithoutTransaction { db in try write(prepared, deleting: confirmed, in: db) }
        } catch {
            throw commitFailure(error, changes: changes)
        }
    }

    /// What both commits do before the transaction: `nil` when there is nothing to write.
    private func prepareCommit(_ changes: [SagaChange], deleting confirmed: [Int64]) throws -> [PreparedChange]? {
        guard !changes.isEmpty || !confirmed.isEmpty else { return nil }
        try checkWritable("committing saga changes")
        return changes.map(PreparedChange.init)
    }

    private func commitFailure(_ error: any Error, changes: [SagaChange]) -> SagaStoreError {
        SagaStoreError.wrap(error, path: configuration.path, operation: "committing \(changes.count) changes")
    }

    /// One commit's transaction: the fence check, then every change on cached statements, then the deletion of
    /// confirmed outbox rows.
    private func write(
        _ prepared: [PreparedChange], deleting confirmed: [Int64] = [], in db: Database
    ) throws
        -> [Int64]
    {
        var outboxIds: [Int64] = []
        outboxIds.reserveCapacity(prepared.reduce(0) { $0 + $1.outbox.count })
        try inFencedTransaction(db) { db in
            let statements = try WriteStatements(db)
            for change in prepared { try statements.write(change, outboxIds: &outboxIds) }
            try deleteOutboxRows(confirmed, in: db)
        }
        return outboxIds
    }

    /// Removes outbox rows once the broker confirmed their messages.
    ///
    /// Not synced on its own: with `durability: .full` the deletion is written with `synchronous=NORMAL` and reaches
    /// the disk with the next synced commit. A deletion lost to a power cut only publishes those messages again,
    /// under the same message ids, which receivers drop; a commit is never weakened.
    public func deleteOutbox(ids: [Int64]) throws {
        guard !ids.isEmpty else { return }
        try checkWritable("deleting confirmed outbox messages")
        do {
            try pool.writeWithoutTransaction { db in try deleteOutbox(ids, in: db) }
        } catch {
            throw SagaStoreError.wrap(error, path: configuration.path, operation: "deleting \(ids.count) outbox rows")
        }
    }

    /// ``deleteOutbox(ids:)`` without blocking the caller, so several partitions' deletions run in parallel.
    public func deleteOutbox(ids: [Int64]) async throws {
        guard !ids.isEmpty else { return }
        try checkWritable("deleting confirmed outbox messages")
        do {
            try await pool.writeWithoutTransaction { db in try self.deleteOutbox(ids, in: db) }
        } catch {
            throw SagaStoreError.wrap(error, path: configuration.path, operation: "deleting \(ids.count) outbox rows")
        }
    }

    private func deleteOutbox(_ ids: [Int64], in db: Database) throws {
        let relaxed = configuration.durability == .full
        if relaxed { try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        defer { if relaxed { try? db.execute(sql: "PRAGMA synchronous = FULL") } }
        try inFencedTransaction(db) { db in try deleteOutboxRows(ids, in: db) }
    }

    private func deleteOutboxRows(_ ids: [Int64], in db: Database) throws {
        for chunk in ids.chunked(by: Self.chunkSize) {
            let size = Self.listSize(chunk.count)
            var statement = DirectBinding(
                try db.cachedStatement(sql: "DELETE FROM outbox WHERE id IN (\(Self.placeholders(size)))"))
            for id in chunk { try statement.bind(id) }
            try statement.execute()
        }
    }

    /// Stores a workflow definition by the SHA-256 of `source` and returns that hash (pass it to the engine as the
    /// saga's definition hash). Storing the same text again keeps the first `firstSeenAt`.
    @discardableResult
    public func saveDefinition(name: String, version: Int, source: String, at now: Timestamp) throws -> String {
        let hash = ContentHash.sha256Hex(Array(source.utf8))
        try checkWritable("storing a workflow definition")
        do {
            try fencedWrite { db in
                try db.execute(
                    sql: """
                        INSERT INTO workflow_definitions (hash, name, version, source, first_seen_at)
                        VALUES (?, ?, ?, ?, ?) ON CONFLICT (hash) DO NOTHING
                        """,
                    arguments: [hash, name, version, source, now.milliseconds])
            }
        } catch {
            throw SagaStoreError.wrap(
                error, path: configuration.path, operation: "storing definition \(name) v\(version)")
        }
        return hash
    }

    /// Appends journal lines that belong to no state change (a CLI note, a worker observation).
    public func appendJournal(_ entries: [JournalEntry], for key: SagaKey, at now: Timestamp) throws {
        try commit([SagaChange(key: key, at: now, instance: nil, currentStep: nil, journal: entries)])
    }

    // MARK: - Reading

    /// The saga stored under `key`, or `nil`.
    public func saga(_ key: SagaKey) throws -> StoredSaga? {
        try sagas([key])[key]
    }

    /// The sagas stored under `keys` (missing ones are absent from the result), in one query per 400 keys.
    public func sagas(_ keys: [SagaKey]) throws -> [SagaKey: StoredSaga] {
        guard !keys.isEmpty else { return [:] }
        return try read("loading \(keys.count) sagas") { db in try Self.sagas(keys, in: db) }
    }

    /// ``sagas(_:)`` and ``processedMessageIds(in:)`` together (what a batch needs to decide), without blocking the
    /// caller's thread while it reads. For the partition's owner only: it reads on the writer's connection without a
    /// read transaction (the comment on the private `lookup(_:processed:in:)` says why that is sound).
    public func lookup(
        _ keys: [SagaKey], processed ids: [String]
    ) async throws -> (
        sagas: [SagaKey: StoredSaga], processed: Set<String>
    ) {
        guard !keys.isEmpty || !ids.isEmpty else { return ([:], []) }
        do {
            return try await pool.writeWithoutTransaction { db in try Self.lookup(keys, processed: ids, in: db) }
        } catch {
            throw lookupFailure(error, keys: keys, ids: ids)
        }
    }

    /// ``lookup(_:processed:)`` on the caller's thread, which waits: for a batch with one partition's work, where
    /// handing the read to the store's queue and back costs more than the read itself.
    public func lookupBlocking(
        _ keys: [SagaKey], processed ids: [String]
    ) throws -> (
        sagas: [SagaKey: StoredSaga], processed: Set<String>
    ) {
        guard !keys.isEmpty || !ids.isEmpty else { return ([:], []) }
        do {
            return try pool.writeWithoutTransaction { db in try Self.lookup(keys, processed: ids, in: db) }
        } catch {
            throw lookupFailure(error, keys: keys, ids: ids)
        }
    }

    /// Both reads of a lookup, on the writer's connection and without a read transaction (a `BEGIN` and a `COMMIT`
    /// less per partition and batch): the partition's owner is its only writer and does not write it while deciding
    /// its batch, so both reads see one state. The writer's page cache stays valid across its own commits, where a
    /// reader connection drops its whole cache whenever the file changed, so every batch would read its pages again.
    private static func lookup(
        _ keys: [SagaKey], processed ids: [String], in db: Database
    ) throws -> (sagas: [SagaKey: StoredSaga], processed: Set<String>) {
        (try sagas(keys, in: db), try processedMessageIds(in: ids, db))
    }

    private func lookupFailure(_ error: any Error, keys: [SagaKey], ids: [String]) -> SagaStoreError {
        SagaStoreError.wrap(
            error, path: configuration.path,
            operation: "loading \(keys.count) sagas and checking \(ids.count) message ids")
    }

    private static func sagas(_ keys: [SagaKey], in db: Database) throws -> [SagaKey: StoredSaga] {
        var result: [SagaKey: StoredSaga] = [:]
        result.reserveCapacity(keys.count)
        for chunk in keys.chunked(by: Self.chunkSize) {
            var statement = DirectBinding(
                reading: try db.cachedStatement(sql: Self.loadSagasSQL(count: Self.listSize(chunk.count))))
            for key in chunk {
                try statement.bind(key.workflow)
                try statement.bind(key.id)
            }
            let rows = try Row.fetchCursor(statement.statement)
            while let row = try rows.next() {
                let data: Data = row[2]
                let instance = try StateCodec.decode([UInt8](data))
                result[instance.key] = StoredSaga(instance: instance, currentStep: row[0], owner: row[1])
            }
        }
        return result
    }

    /// The binding keys and key expressions of the waits recorded for `exchange`, without repeats: what
    /// ``waiters(exchange:routingKey:message:expressions:)`` evaluates (a worker keeps them, adding what it records).
    public func waitExpressions(exchange: String) async throws -> Set<WaitExpression> {
        do {
            return try await pool.unsafeRead { db in
                Set(
                    try Row.fetchAll(
                        db, sql: "SELECT DISTINCT routing_key, key_expression FROM waits WHERE exchange = ?",
                        arguments: [exchange]
                    ).map { WaitExpression(bindingKey: $0[0], expression: $0[1]) })
            }
        } catch {
            throw SagaStoreError.wrap(
                error, path: configuration.path, operation: "reading the wait expressions of \(exchange)")
        }
    }

    /// The sagas waiting for a message published to `exchange` with `routingKey` (matched against each wait's binding
    /// key), with `message` as body: each of the exchange's wait `expressions` is evaluated over the message and its
    /// value looked up among the values the sagas wait for. Returns the saga and wait id of every match, for
    /// ``SagaEvent/signal(waitId:message:)``. For the partition's owner only, like ``lookup(_:processed:)``.
    public func waiters(
        exchange: String, routingKey: String, message: JSONValue, expressions: Set<WaitExpression>
    ) async throws -> [(key: SagaKey, waitId: String)] {
        do {
            return try await pool.unsafeRead { db in
                var found: [(key: SagaKey, waitId: String)] = []
                for known in expressions.sorted(by: { ($0.bindingKey, $0.expression) < ($1.bindingKey, $1.expression) })
                {
                    let bindingKey = known.bindingKey
                    let expression = known.expression
                    guard MessageWait.topic(bindingKey, matches: routingKey),
                        let template = try? Template.parse(string: expression),
                        let value = try? template.evaluate(
                            in: EvaluationScope(
                                input: .null, alias: (MessageWait.messageName, message), sagaId: "", workflow: "")),
                        let match = MessageWait.correlationText(value)
                    else { continue }
                    let rows = try Row.fetchCursor(
                        db.cachedStatement(
                            sql: """
                                SELECT workflow, saga_id, wait_id FROM waits
                                WHERE exchange = ? AND routing_key = ? AND key_expression = ? AND match_value = ?
                                """),
                        arguments: [exchange, bindingKey, expression, match])
                    while let row = try rows.next() {
                        found.append((SagaKey(workflow: row[0], id: row[1]), row[2]))
                    }
                }
                return found
            }
        } catch {
            throw SagaStoreError.wrap(
                error, path: configuration.path, operation: "finding the sagas waiting for \(exchange) \(routingKey)")
        }
    }

    /// The waits for a message of one saga (what ``waiters(exchange:routingKey:message:expressions:)`` searches).
    public func awaitedMessages(of key: SagaKey) throws -> [AwaitedMessage] {
        try read("reading the waits of \(key)") { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT wait_id, exchange, routing_key, key_expression, match_value FROM waits
                    WHERE workflow = ? AND saga_id = ? ORDER BY wait_id
                    """, arguments: [key.workflow, key.id]
            ).map { AwaitedMessage(id: $0[0], exchange: $0[1], routingKey: $0[2], key: $0[3], match: $0[4]) }
        }
    }

    /// Forgets inbox marks older than `before`, oldest first, at most `limit` per call; returns how many it removed.
    ///
    /// The inbox only has to remember messages the broker could still redeliver, so a few days is plenty. Keep
    /// `limit` small so the write lock is held briefly, and call again while it returns `limit`.
    @discardableResult
    public func pruneInbox(before: Timestamp, limit: Int = 10_000) throws -> Int {
        try checkWritable("pruning the inbox")
        do {
            return try fencedWrite { db in
                try db.execute(
                    sql: """
                        DELETE FROM inbox WHERE message_id IN
                            (SELECT message_id FROM inbox WHERE at < ? ORDER BY at LIMIT ?)
                        """,
                    arguments: [before.milliseconds, max(0, limit)])
                return db.changesCount
            }
        } catch {
            throw SagaStoreError.wrap(error, path: configuration.path, operation: "pruning the inbox")
        }
    }

    /// The ids among `ids` that were already recorded in the inbox (their messages were processed: ack and drop).
    public func processedMessageIds(in ids: [String]) throws -> Set<String> {
        guard !ids.isEmpty else { return [] }
        return try read("checking \(ids.count) message ids") { db in try Self.processedMessageIds(in: ids, db) }
    }

    private static func processedMessageIds(in ids: [String], _ db: Database) throws -> Set<String> {
        var found: Set<String> = []
        for chunk in ids.chunked(by: Self.chunkSize) {
            let size = Self.listSize(chunk.count)
            var statement = DirectBinding(
                reading: try db.cachedStatement(
                    sql: "SELECT message_id FROM inbox WHERE message_id IN (\(Self.placeholders(size)))"))
            for id in chunk { try statement.bind(id) }
            let rows = try String.fetchCursor(statement.statement)
            while let id = try rows.next() { found.insert(id) }
        }
        return found
    }

    /// Timers due at or before `now`, earliest first (ties by saga and id), at most `limit`.
    public func dueTimers(before now: Timestamp, limit: Int) throws -> [StoredTimer] {
        try read("reading due timers") { db in
            try Self.timers(
                db,
                sql: """
                    SELECT workflow, saga_id, timer_id, kind, due_at FROM timers WHERE due_at <= ?
                    ORDER BY due_at, workflow, saga_id, timer_id LIMIT ?
                    """,
                arguments: [now.milliseconds, limit])
        }
    }

    /// The timers of one kind, by saga: the hold timers of the commands a participant's limit holds back
    /// (``SagaTimer/Kind/hold``) and the reply timeouts of the commands in flight are what a new owner of the
    /// partition gives its limiter.
    public func timers(ofKind kind: SagaTimer.Kind) throws -> [StoredTimer] {
        try read("reading the \(kind.rawValue) timers") { db in
            try Self.timers(
                db,
                sql: """
                    SELECT workflow, saga_id, timer_id, kind, due_at FROM timers WHERE kind = ?
                    ORDER BY workflow, saga_id, timer_id
                    """,
                arguments: [kind.rawValue])
        }
    }

    /// The oldest start of the unfinished sagas (running, compensating or suspended) by definition and current step:
    /// what the reservation aging metric is made of (the steps before a saga's current one hold effects it may still
    /// undo).
    public func oldestActiveByStep() throws -> [ActiveStepGroup] {
        try read("reading the oldest unfinished sagas by step") { db in
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT definition_hash, current_step, status, MIN(started_at) FROM sagas
                    WHERE status IN ('running', 'compensating', 'suspended')
                    GROUP BY definition_hash, current_step, status
                    """)
            var groups: [ActiveStepGroup] = []
            while let row = try rows.next() {
                groups.append(
                    ActiveStepGroup(
                        definitionHash: row[0], currentStep: row[1], compensating: (row[2] as String) != "running",
                        oldestStart: Timestamp(milliseconds: row[3])))
            }
            return groups
        }
    }

    /// How many sagas are not finished yet (running or compensating); read from the status index alone.
    public func activeSagaCount() throws -> Int {
        try read("counting active sagas") { db in
            try Int.fetchOne(
                db, sql: "SELECT count(*) FROM sagas WHERE status IN ('running', 'compensating')") ?? 0
        }
    }

    /// How many outbox rows wait for their confirm (and deletion): a growing figure means the broker does not take
    /// what this partition publishes.
    public func outboxDepth() throws -> Int {
        try read("counting outbox rows") { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox") ?? 0 }
    }

    /// When the earliest timer is due, or `nil` when none is scheduled (sleep until then).
    public func nextTimerDue() throws -> Timestamp? {
        try read("reading the next timer") { db in
            try Int64.fetchOne(db, sql: "SELECT MIN(due_at) FROM timers").map(Timestamp.init(milliseconds:))
        }
    }

    /// The timers of one saga, earliest first.
    public func timers(of key: SagaKey) throws -> [StoredTimer] {
        try read("reading the timers of \(key)") { db in
            try Self.timers(
                db,
                sql: """
                    SELECT workflow, saga_id, timer_id, kind, due_at FROM timers WHERE workflow = ? AND saga_id = ?
                    ORDER BY due_at, timer_id
                    """,
                arguments: [key.workflow, key.id])
        }
    }

    /// Outbox messages not yet confirmed, in commit order (per saga, the order they were produced), at most `limit`.
    public func pendingOutbox(limit: Int) throws -> [PendingOutboxMessage] {
        try read("reading the outbox") { db in
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT id, message_id, workflow, saga_id, exchange, routing_key, content_type, correlation_id,
                           reply_to, headers, mandatory,
                           CASE WHEN length(body) > 0 THEN body ELSE COALESCE(
                               (SELECT e.body FROM events e WHERE e.workflow = outbox.workflow
                                AND e.saga_id = outbox.saga_id AND e.event_id = outbox.message_id), body) END,
                           created_at
                    FROM outbox ORDER BY id LIMIT ?
                    """,
                arguments: [limit])
            var messages: [PendingOutboxMessage] = []
            while let row = try rows.next() {
                let id: Int64 = row[0]
                let headerText: String = row[9]
                guard let headers = OutboxMessage.headers(fromText: headerText) else {
                    throw SagaStoreError(
                        .corruptState,
                        "outbox row \(id) has unreadable headers. Delete the row with the sqlite3 shell after "
                            + "checking what it was for.")
                }
                let body: Data = row[11]
                messages.append(
                    PendingOutboxMessage(
                        id: id, key: SagaKey(workflow: row[2], id: row[3]),
                        message: OutboxMessage(
                            messageId: row[1], exchange: row[4], routingKey: row[5], contentType: row[6],
                            correlationId: row[7], replyTo: row[8], headers: headers, body: [UInt8](body),
                            mandatory: row[10]),
                        createdAt: Timestamp(milliseconds: row[12])))
            }
            return messages
        }
    }

    /// The definition stored under `hash`, or `nil`.
    public func definition(hash: String) throws -> StoredDefinition? {
        try read("reading definition \(hash.prefix(12))") { db in
            try Row.fetchOne(
                db, sql: "SELECT hash, name, version, source, first_seen_at FROM workflow_definitions WHERE hash = ?",
                arguments: [hash]
            ).map { row in
                StoredDefinition(
                    hash: row[0], name: row[1], version: row[2], source: row[3],
                    firstSeenAt: Timestamp(milliseconds: row[4]))
            }
        }
    }

    /// The journal of one saga, oldest first.
    public func journal(of key: SagaKey) throws -> [JournalRecord] {
        try read("reading the journal of \(key)") { db in
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT id, at, kind, step, actor, detail, facts FROM journal WHERE workflow = ? AND saga_id = ?
                    ORDER BY id
                    """,
                arguments: [key.workflow, key.id])
            var records: [JournalRecord] = []
            while let row = try rows.next() {
                records.append(
                    JournalRecord(
                        id: row[0], key: key,
                        entry: JournalEntry(
                            at: Timestamp(milliseconds: row[1]), kind: JournalEntry.Kind(rawValue: row[2]),
                            step: row[3], actor: row[4], detail: row[5],
                            facts: (row[6] as String?).flatMap { try? JSONText.decode($0) })))
            }
            return records
        }
    }

    // MARK: - Internals

    /// Bytes per page of a new store: SQLite's default. A transition dirties about eight pages in different B-trees
    /// (saga row, its indexes, journal, inbox, outbox, timers), and every dirty page is checksummed and written whole
    /// to the WAL, then again by the checkpoint. A partition's commit carries few sagas, so small pages write less:
    /// with two-shipment orders, 4 KiB pages took 1.6 % fewer instructions per saga than 16 KiB pages (callgrind) and
    /// a quarter of the WAL bytes, and the bench's throughput was the same or better.
    static let pageSize = 4_096

    /// WAL pages before SQLite checkpoints on commit: about 32 MiB of WAL. A saga page rewritten many times between
    /// checkpoints is copied to the database file once, so a larger WAL cuts checkpoint work; the file stays small
    /// enough for a fast recovery after a crash.
    static let checkpointPages = 2_000

    /// Keys or ids per `IN (...)` query; far below SQLite's 32,766 variables.
    static let chunkSize = 400

    /// Loads `count` sagas by key. The keys drive a join on the primary key; `(workflow, saga_id) IN (VALUES ...)`
    /// would scan the whole table on SQLite 3.40.
    static func loadSagasSQL(count: Int) -> String {
        let values = Array(repeating: "(?, ?)", count: count).joined(separator: ", ")
        return """
            WITH wanted (workflow, saga_id) AS (VALUES \(values))
            SELECT sagas.current_step, sagas.owner, sagas.state FROM wanted
            CROSS JOIN sagas ON sagas.workflow = wanted.workflow AND sagas.saga_id = wanted.saga_id
            """
    }

    /// How many `?` a hot-path `IN (...)` list of `count` values gets: the next power of two (at most
    /// ``chunkSize``), so a handful of cached statements serve every batch instead of one prepared per call. The
    /// extra places are NULL, which matches no row.
    static func listSize(_ count: Int) -> Int {
        count <= 1 ? 1 : min(chunkSize, 1 << (Int.bitWidth - (count - 1).leadingZeroBitCount))
    }

    static func placeholders(_ count: Int) -> String {
        Array(repeating: "?", count: count).joined(separator: ", ")
    }

    func checkWritable(_ operation: String) throws {
        if configuration.readOnly {
            throw SagaStoreError(
                .notWritable,
                "\(operation) in \(configuration.path) is refused: the store was opened read-only (operator mode). "
                    + "Open it without readOnly, or send the command to a running worker.")
        }
    }

    func read<T>(_ operation: String, _ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.read(body)
        } catch {
            throw SagaStoreError.wrap(error, path: configuration.path, operation: operation)
        }
    }

    private static func timers(_ db: Database, sql: String, arguments: StatementArguments) throws -> [StoredTimer] {
        let rows = try Row.fetchCursor(db, sql: sql, arguments: arguments)
        var timers: [StoredTimer] = []
        while let row = try rows.next() {
            let kindText: String = row[3]
            guard let kind = SagaTimer.Kind(rawValue: kindText) else {
                throw SagaStoreError(
                    .corruptState, "a timer has unknown kind '\(kindText)'; this binary may be older than the file.")
            }
            timers.append(
                StoredTimer(
                    key: SagaKey(workflow: row[0], id: row[1]), id: row[2], kind: kind,
                    dueAt: Timestamp(milliseconds: row[4])))
        }
        return timers
    }
}

/// A change with its state and outbox columns encoded, ready to bind (built before the write lock is taken).
struct PreparedChange {
    struct Outbox {
        var message: OutboxMessage
        var headers: String
    }

    var change: SagaChange
    var state: [UInt8]?
    var outbox: [Outbox]

    init(_ change: SagaChange) {
        self.change = change
        state = change.instance.map(StateCodec.encode)
        outbox = change.outbox.map { Outbox(message: $0, headers: OutboxMessage.headerText($0.headers)) }
    }
}

/// The cached statements of one commit and how a change binds to them.
struct WriteStatements {
    let database: Database
    let upsertSaga: Statement
    let insertJournal: Statement
    let insertInbox: Statement
    let insertOutbox: Statement
    let upsertTimer: Statement
    let deleteTimer: Statement
    let insertEvent: Statement

    /// Keeps a milestone event for replay.
    private func keepEvent(
        _ message: OutboxMessage, headers: String, workflow: String, sagaId: String, at: Int64
    )
        throws
    {
        var row = DirectBinding(insertEvent)
        try row.bind(message.messageId)
        try row.bind(workflow)
        try row.bind(sagaId)
        try row.bind(message.exchange)
        try row.bind(message.routingKey)
        try row.bind(message.contentType)
        try row.bind(headers)
        try row.bind(message.body)
        try row.bind(at)
        try row.execute()
    }

    init(_ db: Database) throws {
        database = db
        // Looked up once per commit, like the others: a two-shipment saga keeps nine events.
        insertEvent = try db.cachedStatement(
            sql: """
                INSERT INTO events (event_id, workflow, saga_id, exchange, routing_key, content_type, headers, body, at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        upsertSaga = try db.cachedStatement(
            sql: """
                INSERT INTO sagas (workflow, saga_id, definition_hash, version, status, current_step, owner,
                                   started_at, updated_at, failure_code, state)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (workflow, saga_id) DO UPDATE SET
                    definition_hash = excluded.definition_hash, version = excluded.version, status = excluded.status,
                    current_step = excluded.current_step, owner = COALESCE(excluded.owner, sagas.owner),
                    updated_at = excluded.updated_at, failure_code = excluded.failure_code, state = excluded.state
                """)
        insertJournal = try db.cachedStatement(
            sql: """
                INSERT INTO journal (workflow, saga_id, at, kind, step, actor, detail, facts)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """)
        insertInbox = try db.cachedStatement(sql: "INSERT INTO inbox (message_id, at) VALUES (?, ?)")
        insertOutbox = try db.cachedStatement(
            sql: """
                INSERT INTO outbox (message_id, workflow, saga_id, exchange, routing_key, content_type, correlation_id,
                                    reply_to, headers, mandatory, body, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        upsertTimer = try db.cachedStatement(
            sql: """
                INSERT INTO timers (workflow, saga_id, timer_id, kind, due_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (workflow, saga_id, timer_id) DO UPDATE SET kind = excluded.kind, due_at = excluded.due_at
                """)
        deleteTimer = try db.cachedStatement(
            sql: "DELETE FROM timers WHERE workflow = ? AND saga_id = ? AND timer_id = ?")
    }

    /// Records a saga's wait for a message.
    private func insertWait(_ wait: AwaitedMessage, workflow: String, sagaId: String) throws {
        var row = DirectBinding(
            try database.cachedStatement(
                sql: """
                    INSERT OR REPLACE INTO waits (workflow, saga_id, wait_id, exchange, routing_key, key_expression,
                                                  match_value)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """))
        try row.bind(workflow)
        try row.bind(sagaId)
        try row.bind(wait.id)
        try row.bind(wait.exchange)
        try row.bind(wait.routingKey)
        try row.bind(wait.key)
        try row.bind(wait.match)
        try row.execute()
    }

    /// Forgets a saga's wait for a message.
    private func deleteWait(_ id: String, workflow: String, sagaId: String) throws {
        var row = DirectBinding(
            try database.cachedStatement(sql: "DELETE FROM waits WHERE workflow = ? AND saga_id = ? AND wait_id = ?"))
        try row.bind(workflow)
        try row.bind(sagaId)
        try row.bind(id)
        try row.execute()
    }

    func write(_ prepared: PreparedChange, outboxIds: inout [Int64]) throws {
        let change = prepared.change
        let workflow = change.key.workflow
        let sagaId = change.key.id
        let now = change.at.milliseconds
        if let instance = change.instance, let state = prepared.state {
            var saga = DirectBinding(upsertSaga)
            try saga.bind(workflow)
            try saga.bind(sagaId)
            try saga.bind(instance.definitionHash)
            try saga.bind(instance.version)
            try saga.bind(instance.status.rawValue)
            try saga.bind(change.currentStep)
            try saga.bind(change.owner)
            try saga.bind(instance.startedAt.milliseconds)
            try saga.bind(instance.updatedAt.milliseconds)
            try saga.bind(instance.failure?.error.code)
            try saga.bind(state)
            try saga.execute()
        }
        for entry in change.journal {
            var journal = DirectBinding(insertJournal)
            try journal.bind(workflow)
            try journal.bind(sagaId)
            try journal.bind(entry.at.milliseconds)
            try journal.bind(entry.kind.rawValue)
            try journal.bind(entry.step)
            try journal.bind(entry.actor)
            try journal.bind(entry.detail)
            try journal.bind(entry.facts.map { JSONText.encode($0) })
            try journal.execute()
        }
        if let messageId = change.inboxMessageId {
            var inbox = DirectBinding(insertInbox)
            try inbox.bind(messageId)
            try inbox.bind(now)
            try inbox.execute()
        }
        for outbox in prepared.outbox {
            let message = outbox.message
            var row = DirectBinding(insertOutbox)
            try row.bind(message.messageId)
            try row.bind(workflow)
            try row.bind(sagaId)
            try row.bind(message.exchange)
            try row.bind(message.routingKey)
            try row.bind(message.contentType)
            try row.bind(message.correlationId)
            try row.bind(message.replyTo)
            try row.bind(outbox.headers)
            try row.bind(message.mandatory)
            // A kept event's body is written once, in its events row; the outbox row finds it there (pendingOutbox).
            try row.bind(message.kept ? [] : message.body)
            try row.bind(now)
            try row.execute()
            outboxIds.append(database.lastInsertedRowID)
            if message.kept {
                try keepEvent(message, headers: outbox.headers, workflow: workflow, sagaId: sagaId, at: now)
            }
        }
        for timerId in change.cancelTimerIds {
            var timer = DirectBinding(deleteTimer)
            try timer.bind(workflow)
            try timer.bind(sagaId)
            try timer.bind(timerId)
            try timer.execute()
        }
        for timer in change.scheduleTimers {
            var row = DirectBinding(upsertTimer)
            try row.bind(workflow)
            try row.bind(sagaId)
            try row.bind(timer.id)
            try row.bind(timer.kind.rawValue)
            try row.bind(timer.dueAt.milliseconds)
            try row.execute()
        }
        for id in change.cancelAwaitIds { try deleteWait(id, workflow: workflow, sagaId: sagaId) }
        for wait in change.awaitMessages { try insertWait(wait, workflow: workflow, sagaId: sagaId) }
    }
}

extension Array {
    /// Consecutive slices of at most `size` elements.
    func chunked(by size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
