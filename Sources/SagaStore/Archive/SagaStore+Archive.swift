import GRDB
import SagaEngine

extension SagaStore {
    /// Finished sagas (completed, compensated, cancelled) whose last progress is before `before`, oldest first, at
    /// most `limit`, each with its whole journal and kept events: what the archiver moves next. A saga with outbox
    /// rows the broker has not confirmed yet waits for a later pass. `now` is the archive time the lines carry.
    public func finishedSagas(before: Timestamp, limit: Int, now: Timestamp) throws -> [ArchivedSaga] {
        try read("reading finished sagas to archive") { db in
            let snapshot = StoreSnapshot(db)
            let unsent = try Set(
                Row.fetchAll(db, sql: "SELECT DISTINCT workflow, saga_id FROM outbox").map {
                    SagaKey(workflow: $0[0], id: $0[1])
                })
            // Ask for as many more as there are sagas with unsent rows, so those never crowd a batch out.
            var keys: [(SagaKey, Timestamp)] = []
            for status in SagaStatus.allCases where status.isTerminal {
                let rows = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT workflow, saga_id, updated_at FROM sagas
                        WHERE status = ? AND updated_at < ? ORDER BY updated_at LIMIT ?
                        """,
                    arguments: [status.rawValue, before.milliseconds, limit + unsent.count])
                keys += rows.map { (SagaKey(workflow: $0[0], id: $0[1]), Timestamp(milliseconds: $0[2])) }
                    .filter { !unsent.contains($0.0) }
            }
            keys.sort { $0.1 < $1.1 }
            keys = Array(keys.prefix(limit))
            let records = try snapshot.records(keys.map(\.0))
            return try keys.compactMap { key, _ in
                guard let record = records[key] else { return nil }
                return ArchivedSaga(
                    record: record, journal: try snapshot.journal(of: key), events: try snapshot.events(of: key),
                    archivedAt: now)
            }
        }
    }

    /// Removes archived sagas with their journal lines, kept events and timers, in one transaction. A saga leaves only when it is
    /// still finished and nothing happened to it since it was archived: its last progress and its newest journal line
    /// are still the ones in ``ArchiveMark`` (a late reply or a refused repair adds a journal line without moving the
    /// saga). Returns the ones removed.
    @discardableResult
    public func removeArchived(_ sagas: [SagaKey: ArchiveMark]) throws -> [SagaKey] {
        try checkWritable("removing archived sagas")
        guard !sagas.isEmpty else { return [] }
        let finished = SagaStatus.allCases.filter(\.isTerminal).map { "'\($0.rawValue)'" }.joined(separator: ", ")
        do {
            return try fencedWrite { db in
                // The journal's delete trigger lets a delete through only while this transaction holds the permit.
                try db.execute(sql: "INSERT INTO journal_archive_permit (id) VALUES (1)")
                let deleteSaga = try db.cachedStatement(
                    sql: """
                        DELETE FROM sagas WHERE workflow = ?1 AND saga_id = ?2 AND updated_at = ?3
                        AND status IN (\(finished))
                        AND NOT EXISTS (SELECT 1 FROM journal WHERE workflow = ?1 AND saga_id = ?2 AND id > ?4)
                        """)
                let deleteJournal = try db.cachedStatement(
                    sql: "DELETE FROM journal WHERE workflow = ? AND saga_id = ?")
                let deleteTimers = try db.cachedStatement(sql: "DELETE FROM timers WHERE workflow = ? AND saga_id = ?")
                let deleteWaits = try db.cachedStatement(sql: "DELETE FROM waits WHERE workflow = ? AND saga_id = ?")
                let deleteEvents = try db.cachedStatement(
                    sql: "DELETE FROM events WHERE workflow = ? AND saga_id = ?")
                var removed: [SagaKey] = []
                for (key, mark) in sagas.sorted(by: { $0.key.id < $1.key.id }) {
                    try deleteSaga.execute(arguments: [
                        key.workflow, key.id, mark.updatedAt.milliseconds, mark.lastJournalId,
                    ])
                    guard db.changesCount == 1 else { continue }
                    try deleteJournal.execute(arguments: [key.workflow, key.id])
                    try deleteTimers.execute(arguments: [key.workflow, key.id])
                    try deleteWaits.execute(arguments: [key.workflow, key.id])
                    try deleteEvents.execute(arguments: [key.workflow, key.id])
                    removed.append(key)
                }
                try db.execute(sql: "DELETE FROM journal_archive_permit")
                return removed
            }
        } catch {
            throw SagaStoreError.wrap(
                error, path: configuration.path, operation: "removing \(sagas.count) archived sagas")
        }
    }
}

/// What an archived saga looked like when it was written to the archive: its row may leave the partition file only
/// while both still hold.
public struct ArchiveMark: Sendable, Hashable {
    /// Its last progress.
    public var updatedAt: Timestamp
    /// The id of its newest journal line (0 for none).
    public var lastJournalId: Int64

    /// The mark of an archived saga's line.
    public init(_ saga: ArchivedSaga) {
        self.init(updatedAt: Timestamp(milliseconds: saga.updatedAt), lastJournalId: saga.journal.last?.id ?? 0)
    }

    /// A mark from its parts.
    public init(updatedAt: Timestamp, lastJournalId: Int64) {
        self.updatedAt = updatedAt
        self.lastJournalId = lastJournalId
    }
}
