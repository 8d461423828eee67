import GRDB
import SagaEngine

/// Index-only walks for the pool-wide views (`stats`, `stuck`, sagas per definition): they count and join index
/// entries by row and never read a saga's row or state, so they stay fast on files with millions of finished sagas.
extension StoreSnapshot {
    /// How many sagas are stored.
    public func sagaCount() throws -> Int {
        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sagas") ?? 0
    }

    /// How many sagas have `status` (a range of `sagas_by_status`).
    public func sagaCount(status: SagaStatus) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sagas WHERE status = ?", arguments: [status.rawValue]) ?? 0
    }

    /// How many sagas have `status` and progressed at or after `since`.
    public func sagaCount(status: SagaStatus, updatedAtOrAfter since: Timestamp) throws -> Int {
        try Int.fetchOne(
            db, sql: "SELECT COUNT(*) FROM sagas WHERE status = ? AND updated_at >= ?",
            arguments: [status.rawValue, since.milliseconds]) ?? 0
    }

    /// The workflows that have sagas, sorted, by skipping through the primary key (one seek per workflow).
    public func workflowsWithSagas() throws -> [String] {
        var names: [String] = []
        var next = try String.fetchOne(db, sql: "SELECT workflow FROM sagas ORDER BY workflow LIMIT 1")
        while let name = next {
            names.append(name)
            next = try String.fetchOne(
                db, sql: "SELECT workflow FROM sagas WHERE workflow > ? ORDER BY workflow LIMIT 1", arguments: [name])
        }
        return names
    }

    /// The current steps the sagas of `workflow` are at, sorted, by skipping through `sagas_by_step` (one seek per
    /// step). Sagas past their last step have none.
    public func currentSteps(of workflow: String) throws -> [String] {
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

    /// Visits the row of every saga of `workflow` at `step` (from `sagas_by_step`), or at any step when `step` is
    /// `nil`.
    public func forEachRow(workflow: String, step: String?, _ body: (SagaRowNumber) throws -> Void) throws {
        let rows =
            if let step {
                try Int64.fetchCursor(
                    db, sql: "SELECT rowid FROM sagas WHERE workflow = ? AND current_step = ?",
                    arguments: [workflow, step])
            } else {
                try Int64.fetchCursor(
                    db, sql: "SELECT rowid FROM sagas WHERE workflow = ? AND current_step IS NOT NULL",
                    arguments: [workflow])
            }
        while let row = try rows.next() { try body(SagaRowNumber(row)) }
    }

    /// Visits every saga with `status`, with its last progress, from `sagas_by_status` alone.
    public func forEachActivity(status: SagaStatus, _ body: (SagaActivity) throws -> Void) throws {
        let rows = try Row.fetchCursor(
            db, sql: "SELECT rowid, updated_at FROM sagas WHERE status = ?", arguments: [status.rawValue])
        while let row = try rows.next() {
            try body(
                SagaActivity(row: SagaRowNumber(row[0]), status: status, updatedAt: Timestamp(milliseconds: row[1])))
        }
    }

    /// The status of every unfinished (running, compensating or suspended) saga, by row, from `sagas_by_status`.
    public func unfinishedStatuses() throws -> [SagaRowNumber: SagaStatus] {
        var unfinished: [SagaRowNumber: SagaStatus] = [:]
        unfinished.reserveCapacity(1024)
        for status in [SagaStatus.running, .compensating, .suspended] {
            let rows = try Int64.fetchCursor(
                db, sql: "SELECT rowid FROM sagas WHERE status = ?", arguments: [status.rawValue])
            while let row = try rows.next() { unfinished[SagaRowNumber(row)] = status }
        }
        return unfinished
    }

    /// The timers of kind `retry` and `wait`, and every timer due before `dueBefore`, with their saga's row (one pass over
    /// the timers that matter, joined through the primary key).
    public func timerSignals(retryOrDueBefore dueBefore: Timestamp) throws -> [TimerSignal] {
        // The kind comes back as a number, so no row makes a string: 1 retry, 2 reply timeout, 3 wait, 4 a command
        // held back by a participant's limit (waiting by design, like a wait), 0 a kind this binary does not know
        // (skipped).
        let rows = try Row.fetchCursor(
            db,
            sql: """
                SELECT s.rowid,
                    CASE t.kind WHEN 'retry' THEN 1 WHEN 'replyTimeout' THEN 2 WHEN 'wait' THEN 3 WHEN 'hold' THEN 4
                    ELSE 0 END,
                    t.due_at
                FROM timers t JOIN sagas s ON s.workflow = t.workflow AND s.saga_id = t.saga_id
                WHERE t.kind IN ('retry', 'wait', 'hold') OR t.due_at < ?
                """,
            arguments: [dueBefore.milliseconds])
        var signals: [TimerSignal] = []
        while let row = try rows.next() {
            let kind: SagaTimer.Kind
            switch row[1] as Int64 {
            case 1: kind = .retry
            case 2: kind = .replyTimeout
            case 3: kind = .wait
            case 4: kind = .hold
            default: continue
            }
            signals.append(TimerSignal(row: SagaRowNumber(row[0]), kind: kind, dueAt: Timestamp(milliseconds: row[2])))
        }
        return signals
    }

    /// The definition hash and current step of the sagas in `rows`.
    public func placements(of rows: [SagaRowNumber]) throws -> [SagaPlacement] {
        var placements: [SagaPlacement] = []
        for chunk in rows.map(\.value).chunked(by: SagaStore.chunkSize) {
            let cursor = try Row.fetchCursor(
                db,
                sql:
                    "SELECT rowid, definition_hash, current_step FROM sagas WHERE rowid IN (\(Self.placeholders(chunk)))",
                arguments: StatementArguments(Array(chunk)))
            while let row = try cursor.next() {
                placements.append(
                    SagaPlacement(row: SagaRowNumber(row[0]), definitionHash: row[1], currentStep: row[2]))
            }
        }
        return placements
    }

    /// How many sagas started at or after `since`.
    ///
    /// A worker inserts a saga's row when the saga starts and never deletes rows, so row numbers follow start order
    /// and have no gaps: a binary search over them for the first start at or after `since` answers in about twenty
    /// lookups. When the rows do have gaps (the count differs from the largest row number), it counts instead.
    ///
    /// Pass `total`, the ``sagaCount()`` the caller already took in this snapshot, so the table is not counted twice.
    public func startedCount(since: Timestamp, total: Int) throws -> Int {
        let from = since.milliseconds
        let last = try Int64.fetchOne(db, sql: "SELECT MAX(rowid) FROM sagas") ?? 0
        guard last == Int64(total) else {
            return try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM sagas WHERE updated_at >= ? AND started_at >= ?",
                arguments: [from, from]) ?? 0
        }
        var low: Int64 = 1
        var high = last + 1
        while low < high {
            let middle = low + (high - low) / 2
            let started = try Int64.fetchOne(
                db, sql: "SELECT started_at FROM sagas WHERE rowid = ?", arguments: [middle])
            if let started, started >= from {
                high = middle
            } else {
                low = middle + 1
            }
        }
        return Int(last - low + 1)
    }

    /// Completions per time bucket: `count` buckets of `bucket` each, the first starting just after `start`; the
    /// result has `count` entries (zero where nothing completed).
    public func completedPerBucket(after start: Timestamp, bucket: Duration, count: Int) throws -> [Int] {
        let width = bucket.milliseconds
        let end = start.milliseconds + Int64(count) * width
        var perBucket = Array(repeating: 0, count: count)
        let rows = try Row.fetchCursor(
            db,
            sql: """
                SELECT (updated_at - ?) / ?, COUNT(*) FROM sagas
                WHERE status = 'completed' AND updated_at > ? AND updated_at <= ? GROUP BY 1
                """,
            arguments: [start.milliseconds + 1, width, start.milliseconds, end])
        while let row = try rows.next() {
            let index: Int = row[0]
            if index >= 0, index < perBucket.count { perBucket[index] = row[1] }
        }
        return perBucket
    }
}
