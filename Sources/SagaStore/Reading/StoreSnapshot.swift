import Foundation
import GRDB
import SagaEngine
import WaybillDefinition

/// One consistent read of a store file, handed to the body of ``SagaStoreReader/read(_:_:)``: typed queries that
/// answer from the schema's indexes (`sagas_by_status (status, updated_at)`, `sagas_by_updated_at`,
/// `sagas_by_step (workflow, current_step)`, the primary keys, `journal_by_saga`, `timers_by_due_at`).
///
/// Valid only inside the body that received it.
public struct StoreSnapshot {
    let db: Database

    init(_ db: Database) {
        self.db = db
    }

    // MARK: - Sagas by key

    /// Whether a saga is stored under `key` (one primary-key probe).
    public func contains(_ key: SagaKey) throws -> Bool {
        try Bool.fetchOne(
            db, sql: "SELECT 1 FROM sagas WHERE workflow = ? AND saga_id = ?", arguments: [key.workflow, key.id])
            == true
    }

    /// The names of every workflow with a stored definition, sorted.
    public func definedWorkflowNames() throws -> [String] {
        try String.fetchAll(db, sql: "SELECT DISTINCT name FROM workflow_definitions ORDER BY name")
    }

    /// The rows stored under `keys` (absent ones are missing from the result), without their state.
    public func rows(_ keys: [SagaKey]) throws -> [SagaKey: SagaRow] {
        var result: [SagaKey: SagaRow] = [:]
        try forEachRow(keys: keys, columns: Self.rowColumns) { row in
            let sagaRow = try Self.sagaRow(row)
            result[sagaRow.key] = sagaRow
        }
        return result
    }

    /// The sagas stored under `keys` (absent ones are missing from the result), with their state decoded.
    public func records(_ keys: [SagaKey]) throws -> [SagaKey: SagaRecord] {
        var result: [SagaKey: SagaRecord] = [:]
        try forEachRow(keys: keys, columns: "\(Self.rowColumns), state") { row in
            let sagaRow = try Self.sagaRow(row)
            result[sagaRow.key] = SagaRecord(row: sagaRow, instance: try Self.decodeState(row[10], key: sagaRow.key))
        }
        return result
    }

    /// The sagas stored in these rows, with their state, by row.
    public func records(rows: [SagaRowNumber]) throws -> [SagaRowNumber: SagaRecord] {
        var result: [SagaRowNumber: SagaRecord] = [:]
        try forEachRow(numbers: rows, columns: "\(Self.rowColumns), state, rowid") { row in
            let sagaRow = try Self.sagaRow(row)
            result[SagaRowNumber(row[11])] = SagaRecord(
                row: sagaRow, instance: try Self.decodeState(row[10], key: sagaRow.key))
        }
        return result
    }

    /// The rows (without their state) stored in these row numbers.
    public func rows(numbers: [SagaRowNumber]) throws -> [SagaRow] {
        var result: [SagaRow] = []
        try forEachRow(numbers: numbers, columns: Self.rowColumns) { row in result.append(try Self.sagaRow(row)) }
        return result
    }

    private func forEachRow(numbers: [SagaRowNumber], columns: String, _ body: (Row) throws -> Void) throws {
        for chunk in numbers.map(\.value).chunked(by: SagaStore.chunkSize) {
            let rows = try Row.fetchCursor(
                db, sql: "SELECT \(columns) FROM sagas WHERE rowid IN (\(Self.placeholders(chunk)))",
                arguments: StatementArguments(Array(chunk)))
            while let row = try rows.next() { try body(row) }
        }
    }

    // MARK: - Listings

    /// One page of the sagas `query` selects, in its stable order.
    ///
    /// With two or more statuses it runs one index-ordered query per status and merges them, so every query walks
    /// `sagas_by_status` in `updated_at` order and stops at the limit instead of sorting every match.
    public func list(_ query: SagaQuery) throws -> SagaPage {
        let fetch = query.limit.map { $0 + 1 }
        let workflows = query.step != nil && query.workflow == nil ? try workflowsWithSagas() : []
        var rows: [SagaRow] = []
        if query.statuses.count <= 1 {
            rows = try listRows(query, status: query.statuses.first, limit: fetch, workflows: workflows)
        } else {
            for status in query.statuses {
                rows += try listRows(query, status: status, limit: fetch, workflows: workflows)
            }
            rows.sort(by: query.newestFirst ? { SagaRow.precedes($1, $0) } : SagaRow.precedes)
        }
        guard let limit = query.limit, rows.count > limit else { return SagaPage(rows: rows, hasMore: false) }
        return SagaPage(rows: Array(rows.prefix(limit)), hasMore: true)
    }

    /// SQLite's plan (`EXPLAIN QUERY PLAN`) for the listing query of one status (or none), one line per step: for
    /// the benchmark and for tuning indexes.
    public func queryPlan(for query: SagaQuery, status: SagaStatus?) throws -> [String] {
        let workflows = query.step != nil && query.workflow == nil ? try workflowsWithSagas() : []
        let (sql, arguments) = Self.listSQL(
            query, status: status, limit: query.limit.map { $0 + 1 }, workflows: workflows)
        return try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: StatementArguments(arguments)).map {
            row in
            let detail: String = row["detail"]
            return detail
        }
    }

    // MARK: - Timers and journal

    /// The timers of one saga, earliest first.
    public func timers(of key: SagaKey) throws -> [StoredTimer] {
        let rows = try Row.fetchAll(
            db,
            sql:
                "SELECT timer_id, kind, due_at FROM timers WHERE workflow = ? AND saga_id = ? ORDER BY due_at, timer_id",
            arguments: [key.workflow, key.id])
        return rows.compactMap { row in
            SagaTimer.Kind(rawValue: row[1]).map {
                StoredTimer(key: key, id: row[0], kind: $0, dueAt: Timestamp(milliseconds: row[2]))
            }
        }
    }

    /// Journal lines of one saga with an id above `afterId`, oldest first, at most `limit`.
    public func journal(of key: SagaKey, afterId: Int64 = 0, limit: Int? = nil) throws -> [JournalLine] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT \(try journalColumns()) FROM journal
                WHERE workflow = ? AND saga_id = ? AND id > ? ORDER BY id LIMIT ?
                """,
            arguments: [key.workflow, key.id, afterId, limit ?? -1]
        ).map(Self.journalLine)
    }

    /// The newest `count` journal lines of one saga, oldest first.
    public func journalTail(of key: SagaKey, count: Int) throws -> [JournalLine] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT \(try journalColumns()) FROM journal
                WHERE workflow = ? AND saga_id = ? ORDER BY id DESC LIMIT ?
                """,
            arguments: [key.workflow, key.id, count]
        ).reversed().map(Self.journalLine)
    }

    // MARK: - Definitions

    /// Every stored definition, without its source, by name, version and first sighting.
    public func definitionRecords() throws -> [DefinitionRecord] {
        try Row.fetchAll(
            db,
            sql:
                "SELECT hash, name, version, first_seen_at FROM workflow_definitions ORDER BY name, version, first_seen_at, hash"
        ).map { row in
            DefinitionRecord(
                hash: row[0], name: row[1], version: row[2], firstSeenAt: Timestamp(milliseconds: row[3]), source: "")
        }
    }

    /// The stored definition under `hash`, with its source, or `nil`.
    public func definitionRecord(hash: String) throws -> DefinitionRecord? {
        try Row.fetchOne(
            db, sql: "SELECT hash, name, version, first_seen_at, source FROM workflow_definitions WHERE hash = ?",
            arguments: [hash]
        ).map { row in
            DefinitionRecord(
                hash: row[0], name: row[1], version: row[2], firstSeenAt: Timestamp(milliseconds: row[3]),
                source: row[4])
        }
    }

    // MARK: - Internals

    static let rowColumns =
        "workflow, saga_id, definition_hash, version, status, current_step, owner, started_at, updated_at, failure_code"

    static func placeholders(_ values: some Collection) -> String {
        SagaStore.placeholders(values.count)
    }

    static func sagaRow(_ row: Row) throws -> SagaRow {
        let statusText: String = row[4]
        guard let status = SagaStatus(rawValue: statusText) else {
            throw SagaStoreError(
                .corruptState,
                "saga \(row[0] as String)/\(row[1] as String) has unknown status '\(statusText)'; "
                    + "this waybill binary may be older than the worker")
        }
        return SagaRow(
            key: SagaKey(workflow: row[0], id: row[1]), definitionHash: row[2], version: row[3], status: status,
            currentStep: row[5], owner: row[6], startedAt: Timestamp(milliseconds: row[7]),
            updatedAt: Timestamp(milliseconds: row[8]), failureCode: row[9])
    }

    static func decodeState(_ data: Data, key: SagaKey) throws -> SagaInstance {
        do {
            return try StateCodec.decode([UInt8](data))
        } catch {
            throw SagaStoreError(
                .corruptState,
                "the state of saga \(key) cannot be decoded (\(error)); this waybill binary may be older than the "
                    + "worker, or the file is damaged")
        }
    }

    static func journalLine(_ row: Row) -> JournalLine {
        JournalLine(
            id: row[0], at: Timestamp(milliseconds: row[1]), kind: row[2], step: row[3], actor: row[4],
            detail: row[5], facts: (row[6] as String?).flatMap { try? JSONText.decode($0) })
    }

    /// The journal's columns in ``journalLine(_:)``'s order; a file written before the `facts` column (which operator
    /// commands read without migrating it) reads `NULL` there.
    private func journalColumns() throws -> String {
        let hasFacts = try db.columns(in: "journal").contains { $0.name == "facts" }
        return "id, at, kind, step, actor, detail, " + (hasFacts ? "facts" : "NULL AS facts")
    }

    /// Visits the rows of `keys` through the primary key: one `workflow = ? AND saga_id IN (...)` query per
    /// workflow and chunk of ids. (A row-value `(workflow, saga_id) IN (VALUES ...)` would scan the whole table.)
    private func forEachRow(keys: [SagaKey], columns: String, _ body: (Row) throws -> Void) throws {
        var byWorkflow: [String: [String]] = [:]
        for key in keys { byWorkflow[key.workflow, default: []].append(key.id) }
        for (workflow, ids) in byWorkflow.sorted(by: { $0.key < $1.key }) {
            for chunk in ids.chunked(by: SagaStore.chunkSize) {
                let rows = try Row.fetchCursor(
                    db,
                    sql: "SELECT \(columns) FROM sagas WHERE workflow = ? AND saga_id IN (\(Self.placeholders(chunk)))",
                    arguments: StatementArguments([workflow] + Array(chunk)))
                while let row = try rows.next() { try body(row) }
            }
        }
    }

    private func listRows(
        _ query: SagaQuery, status: SagaStatus?, limit: Int?, workflows: [String]
    ) throws
        -> [SagaRow]
    {
        let (sql, arguments) = Self.listSQL(query, status: status, limit: limit, workflows: workflows)
        let cursor = try Row.fetchCursor(db, sql: sql, arguments: StatementArguments(arguments))
        var rows: [SagaRow] = []
        while let row = try cursor.next() { rows.append(try Self.sagaRow(row)) }
        return rows
    }

    /// The SQL and arguments of one list query.
    ///
    /// Index choice: with a step, `sagas_by_step` (its population is bounded by the sagas at that step, and
    /// completed sagas have none), over every workflow in `workflows` when none is named; the status test is then
    /// written `+status` so SQLite does not walk a large status range looking for a rare step. Otherwise
    /// `sagas_by_status` (status, updated_at), which delivers rows in order and stops at the limit, or
    /// `sagas_by_updated_at` without a status.
    static func listSQL(
        _ query: SagaQuery, status: SagaStatus?, limit: Int?, workflows: [String]
    )
        -> (sql: String, arguments: [DatabaseValueConvertible])
    {
        var conditions: [String] = []
        var arguments: [DatabaseValueConvertible] = []
        if let status {
            conditions.append(query.step == nil ? "status = ?" : "+status = ?")
            arguments.append(status.rawValue)
        }
        if let workflow = query.workflow {
            conditions.append("workflow = ?")
            arguments.append(workflow)
        } else if query.step != nil {
            conditions.append("workflow IN (\(SagaStore.placeholders(max(1, workflows.count))))")
            arguments += workflows.isEmpty ? [""] : workflows
        }
        if let step = query.step {
            conditions.append("current_step = ?")
            arguments.append(step)
        }
        if let before = query.updatedAtOrBefore {
            conditions.append("updated_at <= ?")
            arguments.append(before.milliseconds)
        }
        if let after = query.updatedAtOrAfter {
            conditions.append("updated_at >= ?")
            arguments.append(after.milliseconds)
        }
        if let owner = query.owner {
            conditions.append("owner = ?")
            arguments.append(owner)
        }
        let direction = query.newestFirst ? "DESC" : "ASC"
        var sql = "SELECT \(rowColumns) FROM sagas"
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        sql += " ORDER BY updated_at \(direction), workflow \(direction), saga_id \(direction)"
        if let limit {
            sql += " LIMIT ?"
            arguments.append(limit)
        }
        return (sql, arguments)
    }
}
