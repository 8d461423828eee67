import GRDB
import SagaEngine

/// One row of `waybill sagas list`: the saga's indexed columns, without decoding its state.
public struct SagaSummary: Sendable, Hashable {
    /// The saga.
    public var key: SagaKey
    /// Its status.
    public var status: SagaStatus
    /// The step at the cursor; `nil` past the last step.
    public var currentStep: String?
    /// The worker that last wrote it.
    public var owner: String?
    /// The workflow version it runs.
    public var version: Int
    /// When it started.
    public var startedAt: Timestamp
    /// Its last progress.
    public var updatedAt: Timestamp
    /// The error code it is compensating or suspended for.
    public var failureCode: String?
}

/// Which sagas ``SagaStore/listSagas(_:)`` returns. Every filter is optional; they combine with AND.
public struct SagaFilter: Sendable, Hashable {
    /// The order of the result.
    public enum Order: Sendable, Hashable {
        /// Least recent progress first (what `stuck` wants).
        case oldestUpdateFirst
        /// Most recent progress first (what `list` wants).
        case newestUpdateFirst
    }

    /// Only sagas in this status.
    public var status: SagaStatus?
    /// Only sagas of this workflow.
    public var workflow: String?
    /// Only sagas whose cursor is at this step (needs `workflow`, which the step index starts with).
    public var step: String?
    /// Only sagas whose last progress is strictly before this instant (stuck sagas).
    public var updatedBefore: Timestamp?
    /// The order.
    public var order: Order
    /// At most this many rows.
    public var limit: Int

    /// A filter; with no arguments, the 100 most recently updated sagas.
    public init(
        status: SagaStatus? = nil, workflow: String? = nil, step: String? = nil, updatedBefore: Timestamp? = nil,
        order: Order = .newestUpdateFirst, limit: Int = 100
    ) {
        self.status = status
        self.workflow = workflow
        self.step = step
        self.updatedBefore = updatedBefore
        self.order = order
        self.limit = limit
    }
}

extension SagaStore {
    /// Sagas matching `filter`, read from the indexed columns only (the CLI's `list`, `stuck` and `--step`).
    public func listSagas(_ filter: SagaFilter = SagaFilter()) throws -> [SagaSummary] {
        var conditions: [String] = []
        var arguments: [(any DatabaseValueConvertible)?] = []
        if let status = filter.status {
            conditions.append("status = ?")
            arguments.append(status.rawValue)
        }
        if let workflow = filter.workflow {
            conditions.append("workflow = ?")
            arguments.append(workflow)
        }
        if let step = filter.step {
            conditions.append("current_step = ?")
            arguments.append(step)
        }
        if let updatedBefore = filter.updatedBefore {
            conditions.append("updated_at < ?")
            arguments.append(updatedBefore.milliseconds)
        }
        arguments.append(max(0, filter.limit))
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let direction = filter.order == .oldestUpdateFirst ? "ASC" : "DESC"
        let sql = """
            SELECT workflow, saga_id, status, current_step, owner, version, started_at, updated_at, failure_code
            FROM sagas \(whereClause) ORDER BY updated_at \(direction), workflow, saga_id LIMIT ?
            """
        return try read("listing sagas") { db in
            let rows = try Row.fetchCursor(db, sql: sql, arguments: StatementArguments(arguments))
            var summaries: [SagaSummary] = []
            while let row = try rows.next() {
                let statusText: String = row[2]
                guard let status = SagaStatus(rawValue: statusText) else {
                    throw SagaStoreError(
                        .corruptState,
                        "a saga has unknown status '\(statusText)'; this binary may be older than the file.")
                }
                summaries.append(
                    SagaSummary(
                        key: SagaKey(workflow: row[0], id: row[1]), status: status, currentStep: row[3], owner: row[4],
                        version: row[5], startedAt: Timestamp(milliseconds: row[6]),
                        updatedAt: Timestamp(milliseconds: row[7]), failureCode: row[8]))
            }
            return summaries
        }
    }

    /// How many sagas are in each status (the CLI's `stats`); statuses with no saga are absent.
    public func sagaCountsByStatus() throws -> [SagaStatus: Int] {
        try read("counting sagas") { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT status, COUNT(*) FROM sagas GROUP BY status")
            var counts: [SagaStatus: Int] = [:]
            while let row = try rows.next() {
                let statusText: String = row[0]
                if let status = SagaStatus(rawValue: statusText) { counts[status] = row[1] }
            }
            return counts
        }
    }

    /// Forgets inbox marks older than `before`, at most `limit` per call, and returns how many it removed.
    ///
    /// The inbox only needs to remember messages the broker could still redeliver; a few days is plenty. Call it
    /// from a periodic job with a small `limit` so the write lock is held briefly; repeat while it returns `limit`.
    @discardableResult
    public func pruneInbox(before: Timestamp, limit: Int = 10_000) throws -> Int {
        try checkWritable("pruning the inbox")
        do {
            return try pool.write { db in
                try db.execute(
                    sql: """
                        DELETE FROM inbox WHERE message_id IN (SELECT message_id FROM inbox WHERE at < ? LIMIT ?)
                        """,
                    arguments: [before.milliseconds, max(0, limit)])
                return db.changesCount
            }
        } catch {
            throw SagaStoreError.wrap(error, path: configuration.path, operation: "pruning the inbox")
        }
    }
}
