import Foundation
import GRDB
import SagaEngine
import SagaStore
import Synchronization
import WaybillDefinition

/// The columns of one `sagas` row that operators filter and sort by, without the state blob.
public struct SagaRow: Sendable, Hashable {
    /// The saga.
    public var key: SagaKey
    /// The content hash of the definition it runs.
    public var definitionHash: String
    /// The workflow version it started with.
    public var version: Int
    /// Its status.
    public var status: SagaStatus
    /// The step at the cursor; `nil` past the last step.
    public var currentStep: String?
    /// The worker that owns it (and must apply repairs).
    public var owner: String?
    /// When it started.
    public var startedAt: Timestamp
    /// Its last progress.
    public var updatedAt: Timestamp
    /// The error code of the failure it is compensating or suspended for.
    public var failureCode: String?

    /// Describes a row (tests and the benchmark build rows by hand).
    public init(
        key: SagaKey, definitionHash: String, version: Int, status: SagaStatus, currentStep: String?, owner: String?,
        startedAt: Timestamp, updatedAt: Timestamp, failureCode: String?
    ) {
        self.key = key
        self.definitionHash = definitionHash
        self.version = version
        self.status = status
        self.currentStep = currentStep
        self.owner = owner
        self.startedAt = startedAt
        self.updatedAt = updatedAt
        self.failureCode = failureCode
    }

    /// The stable sort of every listing: last progress, then workflow, then saga id.
    static func precedes(_ lhs: SagaRow, _ rhs: SagaRow) -> Bool {
        if lhs.updatedAt != rhs.updatedAt { return lhs.updatedAt < rhs.updatedAt }
        if lhs.key.workflow != rhs.key.workflow { return lhs.key.workflow < rhs.key.workflow }
        return lhs.key.id < rhs.key.id
    }
}

/// A saga row with its decoded state.
public struct SagaRecord: Sendable, Hashable {
    /// The indexed columns.
    public var row: SagaRow
    /// The full state.
    public var instance: SagaInstance
}

/// One page of `waybill sagas list`.
public struct SagaPage: Sendable, Hashable {
    /// The rows, in the filter's order.
    public var rows: [SagaRow]
    /// Whether more rows match than the limit let through.
    public var hasMore: Bool
}

/// A journal line as the CLI shows it.
public struct JournalLine: Sendable, Hashable {
    /// The journal row id: ascending ids are the order things happened (`--follow` resumes after the last one).
    public var id: Int64
    /// When it was written.
    public var at: Timestamp
    /// `start`, `reply`, `timer`, `returned`, `operator`, `ignored`, `rejected`, `note`.
    public var kind: String
    /// The step (and branch, `release[1]`) concerned.
    public var step: String?
    /// The operator who acted; `nil` for the worker.
    public var actor: String?
    /// The human line.
    public var detail: String

    /// Describes a journal line.
    public init(id: Int64, at: Timestamp, kind: String, step: String?, actor: String?, detail: String) {
        self.id = id
        self.at = at
        self.kind = kind
        self.step = step
        self.actor = actor
        self.detail = detail
    }
}

/// A stored workflow definition with what it takes to run it.
public struct DefinitionRecord: Sendable, Hashable {
    /// The SHA-256 of the source.
    public var hash: String
    /// The workflow name.
    public var name: String
    /// Its version.
    public var version: Int
    /// When a worker first stored it.
    public var firstSeenAt: Timestamp
    /// The YAML source; empty in listings.
    public var source: String
}

/// Read-only access to one worker's SQLite file for the operator CLI.
///
/// It opens the file with `SQLITE_OPEN_READONLY`, so it works while the worker is stopped and never blocks it (WAL
/// readers do not take the write lock). Each method reads in one transaction, so what it returns is one consistent
/// snapshot. Every query is written for the schema's indexes (`sagas_by_status (status, updated_at)`,
/// `sagas_by_updated_at`, `sagas_by_step (workflow, current_step)`, the primary keys, `journal_by_saga`,
/// `timers_by_due_at`); `explain(_:)` shows the plan.
public final class OperationsDatabase: Sendable {
    /// The file.
    public let path: String
    let queue: DatabaseQueue
    private let definitions = Mutex<[String: WorkflowDefinition]>([:])

    /// The migration this binary's queries are written for.
    static let requiredMigration = "v1-sagas-journal-inbox-outbox-timers"

    /// Opens `path` read-only and checks that it is a Waybill store this binary understands.
    ///
    /// `memoryMapSize` lets SQLite map that much of the file instead of reading it page by page; off by default
    /// (measured on a 2.5 GB file, mapping costs more in page faults and unmapping than it saves for one command).
    public init(path: String, memoryMapSize: Int64 = 0) throws(OperationsError) {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else {
            throw OperationsError(
                .database,
                "\(path) does not exist: pass the worker's database with --db PATH, set WAYBILL_DATABASE, or set "
                    + "`database` in the config file")
        }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(5)
        configuration.label = "waybill.operations"
        if memoryMapSize > 0 {
            configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA mmap_size = \(memoryMapSize)") }
        }
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration)
            let migrations = try queue.read { db -> [String] in
                guard try db.tableExists("grdb_migrations") else { return [] }
                return try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")
            }
            guard migrations.contains(Self.requiredMigration) else {
                throw OperationsError(
                    .database,
                    "\(path) is not a Waybill store (no '\(Self.requiredMigration)' migration); check --db, or start a "
                        + "worker on it once to create the tables")
            }
        } catch let error as OperationsError {
            throw error
        } catch {
            throw Self.wrap(error, path: path, operation: "opening")
        }
    }

    // MARK: - Sagas

    /// The saga a command-line reference names.
    ///
    /// `workflow/ID` looks in that workflow; a bare `ID` looks in every workflow stored in the file and fails with
    /// ``OperationsError/Code/ambiguous`` (listing each `workflow/ID`) when more than one has it.
    public func resolve(_ reference: SagaReference) throws(OperationsError) -> SagaKey {
        let keys: [SagaKey] = try read("looking up saga \(reference)") { db in
            var found: [SagaKey] = []
            if let workflow = reference.workflow {
                if try Bool.fetchOne(
                    db, sql: "SELECT 1 FROM sagas WHERE workflow = ? AND saga_id = ?",
                    arguments: [workflow, reference.id]) == true
                {
                    return [SagaKey(workflow: workflow, id: reference.id)]
                }
            }
            // A bare id, or an id that itself contains '/': probe each known workflow through the primary key.
            let whole = reference.description
            let names = try String.fetchAll(db, sql: "SELECT DISTINCT name FROM workflow_definitions ORDER BY name")
            for name in names
            where try Bool.fetchOne(
                db, sql: "SELECT 1 FROM sagas WHERE workflow = ? AND saga_id = ?", arguments: [name, whole]) == true
            {
                found.append(SagaKey(workflow: name, id: whole))
            }
            return found
        }
        guard let first = keys.first else {
            throw OperationsError(
                .notFound,
                "no saga '\(reference)' in \(path); check the id (and the workflow), or the --db of the worker that "
                    + "owns it (`waybill sagas list` shows what this file holds)")
        }
        guard keys.count == 1 else {
            throw OperationsError(
                .ambiguous,
                "saga id '\(reference.id)' exists in \(keys.count) workflows; name one: "
                    + keys.map(\.description).joined(separator: ", "))
        }
        return first
    }

    /// The saga stored under `key`, with its state decoded, or `nil`.
    public func saga(_ key: SagaKey) throws(OperationsError) -> SagaRecord? {
        try sagas([key])[key]
    }

    /// The sagas stored under `keys` (absent ones are missing from the result), in one snapshot.
    public func sagas(_ keys: [SagaKey]) throws(OperationsError) -> [SagaKey: SagaRecord] {
        try read("loading \(keys.count) sagas") { db in try Self.records(db, keys: keys) }
    }

    /// One page of sagas matching `filter`, in its stable order.
    ///
    /// With two or more statuses it runs one index-ordered query per status and merges them, so every query walks
    /// `sagas_by_status` in `updated_at` order and stops at the limit instead of sorting every match.
    public func list(_ filter: SagaFilter, now: Timestamp) throws(OperationsError) -> SagaPage {
        try read("listing sagas") { db in try Self.list(db, filter: filter, now: now) }
    }

    /// The timers of one saga, earliest first.
    public func timers(of key: SagaKey) throws(OperationsError) -> [StoredTimer] {
        try read("reading the timers of \(key)") { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT timer_id, kind, due_at FROM timers WHERE workflow = ? AND saga_id = ?
                    ORDER BY due_at, timer_id
                    """,
                arguments: [key.workflow, key.id])
            return rows.compactMap { row in
                SagaTimer.Kind(rawValue: row[1]).map {
                    StoredTimer(key: key, id: row[0], kind: $0, dueAt: Timestamp(milliseconds: row[2]))
                }
            }
        }
    }

    /// Journal lines of one saga with an id above `afterId`, oldest first, at most `limit`.
    public func journal(
        of key: SagaKey, afterId: Int64 = 0, limit: Int? = nil
    ) throws(OperationsError)
        -> [JournalLine]
    {
        try read("reading the journal of \(key)") { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT id, at, kind, step, actor, detail FROM journal
                    WHERE workflow = ? AND saga_id = ? AND id > ? ORDER BY id LIMIT ?
                    """,
                arguments: [key.workflow, key.id, afterId, limit ?? -1]
            ).map { row in
                JournalLine(
                    id: row[0], at: Timestamp(milliseconds: row[1]), kind: row[2], step: row[3], actor: row[4],
                    detail: row[5])
            }
        }
    }

    /// The journal lines of one saga, the newest `count` of them, oldest first.
    public func journalTail(of key: SagaKey, count: Int) throws(OperationsError) -> [JournalLine] {
        try read("reading the journal of \(key)") { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT id, at, kind, step, actor, detail FROM journal
                    WHERE workflow = ? AND saga_id = ? ORDER BY id DESC LIMIT ?
                    """,
                arguments: [key.workflow, key.id, count]
            ).reversed().map { row in
                JournalLine(
                    id: row[0], at: Timestamp(milliseconds: row[1]), kind: row[2], step: row[3], actor: row[4],
                    detail: row[5])
            }
        }
    }

    // MARK: - Definitions

    /// Every stored definition (without sources), by name, version and first sighting.
    public func definitionRecords() throws(OperationsError) -> [DefinitionRecord] {
        try read("listing workflow definitions") { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT hash, name, version, first_seen_at FROM workflow_definitions
                    ORDER BY name, version, first_seen_at, hash
                    """
            ).map { row in
                DefinitionRecord(
                    hash: row[0], name: row[1], version: row[2], firstSeenAt: Timestamp(milliseconds: row[3]),
                    source: "")
            }
        }
    }

    /// The stored definition under `hash`, with its source, or `nil`.
    public func definitionRecord(hash: String) throws(OperationsError) -> DefinitionRecord? {
        try read("reading definition \(hash.prefix(12))") { db in
            try Row.fetchOne(
                db, sql: "SELECT hash, name, version, first_seen_at, source FROM workflow_definitions WHERE hash = ?",
                arguments: [hash]
            ).map { row in
                DefinitionRecord(
                    hash: row[0], name: row[1], version: row[2], firstSeenAt: Timestamp(milliseconds: row[3]),
                    source: row[4])
            }
        }
    }

    /// The parsed definition a saga runs (cached per hash), or `nil` when the file does not hold it.
    ///
    /// Throws ``OperationsError/Code/corrupt`` when the stored source no longer loads with this binary.
    public func definition(hash: String) throws(OperationsError) -> WorkflowDefinition? {
        if let known = definitions.withLock({ $0[hash] }) { return known }
        return try read("reading definition \(hash.prefix(12))") { db in try loadDefinition(db, hash: hash) }
    }

    /// ``definition(hash:)`` inside a read that is already open.
    func loadDefinition(_ db: Database, hash: String) throws -> WorkflowDefinition? {
        if let known = definitions.withLock({ $0[hash] }) { return known }
        guard
            let row = try Row.fetchOne(
                db, sql: "SELECT name, version, source FROM workflow_definitions WHERE hash = ?", arguments: [hash])
        else { return nil }
        let name: String = row[0]
        let version: Int = row[1]
        let source: String = row[2]
        let definition: WorkflowDefinition
        do {
            definition = try WorkflowLoader.load(yaml: source, file: "stored:\(hash.prefix(12))")
        } catch {
            throw OperationsError(
                .corrupt,
                "the stored definition \(name) v\(version) (\(hash.prefix(12))) does not load with this waybill "
                    + "binary: \(error.description.split(separator: "\n").first ?? ""); use the binary the worker runs")
        }
        definitions.withLock { $0[hash] = definition }
        return definition
    }

    // MARK: - Plans

    /// SQLite's plan for `sql` (`EXPLAIN QUERY PLAN`), one line per step, for the benchmark and for tuning.
    public func explain(
        _ sql: String, arguments: [(any DatabaseValueConvertible)?] = []
    ) throws(OperationsError)
        -> [String]
    {
        try read("explaining a query") { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: StatementArguments(arguments)).map {
                row in
                let detail: String = row["detail"]
                return detail
            }
        }
    }

    // MARK: - Internals

    func read<T>(_ operation: String, _ body: (Database) throws -> T) throws(OperationsError) -> T {
        do {
            return try queue.read(body)
        } catch let error as OperationsError {
            throw error
        } catch {
            throw Self.wrap(error, path: path, operation: operation)
        }
    }

    static func wrap(_ error: any Error, path: String, operation: String) -> OperationsError {
        if let error = error as? OperationsError { return error }
        if let error = error as? SagaStoreError {
            return OperationsError(.corrupt, "\(operation) in \(path): \(error)")
        }
        if let error = error as? DatabaseError {
            switch error.resultCode {
            case .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_AUTH:
                return OperationsError(
                    .database,
                    "\(operation) \(path) failed: cannot open the file (check the path and that this user may read "
                        + "it and its -wal and -shm files)")
            case .SQLITE_NOTADB, .SQLITE_CORRUPT:
                return OperationsError(
                    .database, "\(operation) \(path) failed: not a SQLite database or damaged; check --db")
            case .SQLITE_BUSY, .SQLITE_LOCKED:
                return OperationsError(
                    .database, "\(operation) \(path) failed: the file stayed locked for 5s; try again")
            default:
                return OperationsError(
                    .database,
                    "\(operation) \(path) failed: SQLite \(error.resultCode.rawValue): \(error.message ?? "")")
            }
        }
        return OperationsError(.database, "\(operation) \(path) failed: \(error)")
    }

    static let rowColumns =
        "workflow, saga_id, definition_hash, version, status, current_step, owner, started_at, updated_at, failure_code"

    static func sagaRow(_ row: Row) throws -> SagaRow {
        let statusText: String = row[4]
        guard let status = SagaStatus(rawValue: statusText) else {
            throw OperationsError(
                .corrupt,
                "saga \(row[0] as String)/\(row[1] as String) has unknown status '\(statusText)'; "
                    + "this waybill binary may be older than the worker")
        }
        return SagaRow(
            key: SagaKey(workflow: row[0], id: row[1]), definitionHash: row[2], version: row[3], status: status,
            currentStep: row[5], owner: row[6], startedAt: Timestamp(milliseconds: row[7]),
            updatedAt: Timestamp(milliseconds: row[8]), failureCode: row[9])
    }

    static func records(_ db: Database, keys: [SagaKey]) throws -> [SagaKey: SagaRecord] {
        var result: [SagaKey: SagaRecord] = [:]
        try forEachRow(db, keys: keys, columns: "\(rowColumns), state") { row in
            let sagaRow = try sagaRow(row)
            result[sagaRow.key] = SagaRecord(row: sagaRow, instance: try decodeState(row[10], key: sagaRow.key))
        }
        return result
    }

    /// The workflows that have sagas, by skipping through the primary key (one seek per workflow).
    static func distinctWorkflows(_ db: Database) throws -> [String] {
        var names: [String] = []
        var next = try String.fetchOne(db, sql: "SELECT workflow FROM sagas ORDER BY workflow LIMIT 1")
        while let name = next {
            names.append(name)
            next = try String.fetchOne(
                db, sql: "SELECT workflow FROM sagas WHERE workflow > ? ORDER BY workflow LIMIT 1", arguments: [name])
        }
        return names
    }

    /// The current steps sagas of `workflow` are at, by skipping through `sagas_by_step` (one seek per step).
    static func distinctSteps(_ db: Database, workflow: String) throws -> [String] {
        var steps: [String] = []
        var next = try String.fetchOne(
            db,
            sql: """
                SELECT current_step FROM sagas WHERE workflow = ? AND current_step IS NOT NULL
                ORDER BY current_step LIMIT 1
                """,
            arguments: [workflow])
        while let step = next {
            steps.append(step)
            next = try String.fetchOne(
                db,
                sql:
                    "SELECT current_step FROM sagas WHERE workflow = ? AND current_step > ? ORDER BY current_step LIMIT 1",
                arguments: [workflow, step])
        }
        return steps
    }

    /// Row id -> status of every unfinished saga, read from `sagas_by_status` alone.
    static func liveRowids(_ db: Database) throws -> [Int64: SagaStatus] {
        var live: [Int64: SagaStatus] = [:]
        live.reserveCapacity(1024)
        for status in [SagaStatus.running, .compensating, .suspended] {
            let rowids = try Int64.fetchCursor(
                db, sql: "SELECT rowid FROM sagas WHERE status = ?", arguments: [status.rawValue])
            while let rowid = try rowids.next() { live[rowid] = status }
        }
        return live
    }

    /// The sagas stored under these row ids, with their state.
    static func records(_ db: Database, rowids: [Int64]) throws -> [Int64: SagaRecord] {
        var result: [Int64: SagaRecord] = [:]
        var start = 0
        while start < rowids.count {
            let chunk = rowids[start..<min(start + 400, rowids.count)]
            start += 400
            let marks = Array(repeating: "?", count: chunk.count).joined(separator: ", ")
            let rows = try Row.fetchCursor(
                db, sql: "SELECT \(rowColumns), state, rowid FROM sagas WHERE rowid IN (\(marks))",
                arguments: StatementArguments(Array(chunk)))
            while let row = try rows.next() {
                let sagaRow = try sagaRow(row)
                result[row[11]] = SagaRecord(row: sagaRow, instance: try decodeState(row[10], key: sagaRow.key))
            }
        }
        return result
    }

    /// Visits the rows of `keys` through the primary key: one `workflow = ? AND saga_id IN (...)` query per
    /// workflow and 400 ids. (A row-value `(workflow, saga_id) IN (VALUES ...)` would scan the whole table.)
    static func forEachRow(_ db: Database, keys: [SagaKey], columns: String, _ body: (Row) throws -> Void) throws {
        var byWorkflow: [String: [String]] = [:]
        for key in keys { byWorkflow[key.workflow, default: []].append(key.id) }
        for (workflow, ids) in byWorkflow.sorted(by: { $0.key < $1.key }) {
            var start = 0
            while start < ids.count {
                let chunk = ids[start..<min(start + 400, ids.count)]
                start += 400
                let marks = Array(repeating: "?", count: chunk.count).joined(separator: ", ")
                let rows = try Row.fetchCursor(
                    db, sql: "SELECT \(columns) FROM sagas WHERE workflow = ? AND saga_id IN (\(marks))",
                    arguments: StatementArguments([workflow] + Array(chunk)))
                while let row = try rows.next() { try body(row) }
            }
        }
    }

    static func decodeState(_ data: Data, key: SagaKey) throws -> SagaInstance {
        do {
            return try SagaStateFormat.decode([UInt8](data))
        } catch {
            throw OperationsError(
                .corrupt,
                "the state of saga \(key) cannot be decoded (\(error)); this waybill binary may be older than the "
                    + "worker, or the file is damaged")
        }
    }

    static func list(_ db: Database, filter: SagaFilter, now: Timestamp) throws -> SagaPage {
        let fetch = filter.limit.map { $0 + 1 }
        let workflows = filter.step != nil && filter.workflow == nil ? try distinctWorkflows(db) : []
        var rows: [SagaRow] = []
        if filter.statuses.count <= 1 {
            rows = try listQuery(
                db, filter: filter, status: filter.statuses.first, now: now, limit: fetch, workflows: workflows)
        } else {
            for status in filter.statuses {
                rows += try listQuery(db, filter: filter, status: status, now: now, limit: fetch, workflows: workflows)
            }
            rows.sort(by: filter.newestFirst ? { SagaRow.precedes($1, $0) } : SagaRow.precedes)
        }
        guard let limit = filter.limit, rows.count > limit else { return SagaPage(rows: rows, hasMore: false) }
        return SagaPage(rows: Array(rows.prefix(limit)), hasMore: true)
    }

    /// The SQL of one list query (one status, or none) and its arguments, for `explain(_:arguments:)`.
    public static func explainableListSQL(
        filter: SagaFilter, status: SagaStatus?, now: Timestamp, workflows: [String] = []
    )
        -> (sql: String, arguments: [(any DatabaseValueConvertible)?])
    {
        let (sql, arguments) = listSQL(
            filter: filter, status: status, now: now, limit: filter.limit.map { $0 + 1 }, workflows: workflows)
        return (sql, arguments.map { $0 })
    }

    /// The SQL and arguments of one list query.
    ///
    /// Index choice: with `--step`, `sagas_by_step` (its population is bounded by the sagas at that step, and
    /// completed sagas have none), over every workflow in `workflows` when none is named; the status test is then
    /// written `+status` so SQLite does not walk a large status range looking for a rare step. Otherwise
    /// `sagas_by_status` (status, updated_at), which delivers rows in order and stops at the limit, or
    /// `sagas_by_updated_at` without a status.
    static func listSQL(
        filter: SagaFilter, status: SagaStatus?, now: Timestamp, limit: Int?, workflows: [String]
    )
        -> (sql: String, arguments: [DatabaseValueConvertible])
    {
        var conditions: [String] = []
        var arguments: [DatabaseValueConvertible] = []
        if let status {
            conditions.append(filter.step == nil ? "status = ?" : "+status = ?")
            arguments.append(status.rawValue)
        }
        if let workflow = filter.workflow {
            conditions.append("workflow = ?")
            arguments.append(workflow)
        } else if filter.step != nil {
            conditions.append(
                "workflow IN (\(Array(repeating: "?", count: max(1, workflows.count)).joined(separator: ", ")))")
            arguments += workflows.isEmpty ? [""] : workflows
        }
        if let step = filter.step {
            conditions.append("current_step = ?")
            arguments.append(step)
        }
        if let stuckFor = filter.stuckFor {
            conditions.append("updated_at <= ?")
            arguments.append(now.milliseconds - stuckFor.milliseconds)
        }
        if let since = filter.since {
            conditions.append("updated_at >= ?")
            arguments.append(since.milliseconds)
        }
        if let owner = filter.owner {
            conditions.append("owner = ?")
            arguments.append(owner)
        }
        let direction = filter.newestFirst ? "DESC" : "ASC"
        var sql = "SELECT \(rowColumns) FROM sagas"
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        sql += " ORDER BY updated_at \(direction), workflow \(direction), saga_id \(direction)"
        if let limit {
            sql += " LIMIT ?"
            arguments.append(limit)
        }
        return (sql, arguments)
    }

    private static func listQuery(
        _ db: Database, filter: SagaFilter, status: SagaStatus?, now: Timestamp, limit: Int?, workflows: [String]
    ) throws -> [SagaRow] {
        let (sql, arguments) = listSQL(filter: filter, status: status, now: now, limit: limit, workflows: workflows)
        let cursor = try Row.fetchCursor(db, sql: sql, arguments: StatementArguments(arguments))
        var rows: [SagaRow] = []
        while let row = try cursor.next() { rows.append(try sagaRow(row)) }
        return rows
    }
}
