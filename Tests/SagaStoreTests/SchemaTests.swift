import GRDB
import Testing
import WaybillTestSupport

@testable import SagaEngine
@testable import SagaStore

/// The schema and the connection settings a store opens with: migrations, pragmas, the indexes queries use, and
/// the refusal of a schema this binary does not know.
@Suite struct SchemaTests {
    @Test func migrationsCreateTheSchemaAndAreIdempotentOnReopen() throws {
        let directory = try TemporaryDirectory()
        for _ in 0..<3 {
            let store = try SagaStore.open(in: directory)
            let (tables, indexes, migrations) = try store.pool.read { db in
                (
                    Set(try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")),
                    Set(try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index'")),
                    try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")
                )
            }
            #expect(
                tables.isSuperset(of: [
                    "workflow_definitions", "sagas", "journal", "inbox", "outbox", "timers", "waits", "events",
                ]))
            #expect(
                indexes.isSuperset(of: [
                    "sagas_by_status", "sagas_by_step", "sagas_by_updated_at", "timers_by_due_at", "journal_by_saga",
                    "inbox_by_at", "waits_by_match", "events_by_saga", "events_by_at",
                ]))
            #expect(
                migrations == [
                    "v1-sagas-journal-inbox-outbox-timers", "v2-inbox-by-time", "v3-partition-fence",
                    "v4-journal-facts", "v5-journal-archive-permit", "v6-waits", "v7-events",
                    "v8-outbox-without-message-index",
                ])
            try store.close()
        }
    }

    @Test func theOutboxRebuildKeepsRowsIdsAndTheIdSequence() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("waybill.sqlite")
        let older = try DatabasePool(path: path)
        try Schema.migrator.migrate(older, upTo: "v7-events")
        try older.write { db in
            for (id, messageId) in [(5, "m-5"), (9, "m-9")] {
                try db.execute(
                    sql: """
                        INSERT INTO outbox (id, message_id, workflow, saga_id, exchange, routing_key, headers, mandatory,
                                            body, created_at)
                        VALUES (?, ?, 'w', 's-1', 'x', 'k', '{}', 1, x'7b7d', 1)
                        """,
                    arguments: [id, messageId])
            }
            // Rows 10-12 were published and deleted before the upgrade: their ids must not come back.
            try db.execute(sql: "UPDATE sqlite_sequence SET seq = 12 WHERE name = 'outbox'")
        }
        try older.close()

        let store = try SagaStore.open(in: directory)
        let (rows, unique, next) = try store.pool.write { db in
            let rows = try Row.fetchAll(db, sql: "SELECT id, message_id FROM outbox ORDER BY id").map {
                "\($0[0] as Int64):\($0[1] as String)"
            }
            let unique = try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM pragma_index_list('outbox') WHERE \"unique\" = 1")
            try db.execute(
                sql: """
                    INSERT INTO outbox (message_id, workflow, saga_id, exchange, routing_key, headers, mandatory, body,
                                        created_at)
                    VALUES ('m-next', 'w', 's-1', 'x', 'k', '{}', 1, x'', 2)
                    """)
            return (rows, unique, db.lastInsertedRowID)
        }
        #expect(rows == ["5:m-5", "9:m-9"])
        #expect(unique == 0)
        #expect(next == 13)
        try store.close()
    }

    @Test func theOutboxRebuildOfAFileThatNeverHadOutboxRowsStartsAtOne() throws {
        let directory = try TemporaryDirectory()
        let older = try DatabasePool(path: directory.file("waybill.sqlite"))
        try Schema.migrator.migrate(older, upTo: "v7-events")
        try older.close()

        let store = try SagaStore.open(in: directory)
        let (sequenceRows, first) = try store.pool.write { db in
            let rows = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sqlite_sequence WHERE name LIKE 'outbox%'")
            try db.execute(
                sql: """
                    INSERT INTO outbox (message_id, workflow, saga_id, exchange, routing_key, headers, mandatory, body,
                                        created_at)
                    VALUES ('m-1', 'w', 's-1', 'x', 'k', '{}', 1, x'', 1)
                    """)
            return (rows, db.lastInsertedRowID)
        }
        #expect(sequenceRows == 0)
        #expect(first == 1)
        try store.close()
    }

    @Test func walAndFullSynchronousByDefault() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        #expect(try store.writerPragma("journal_mode") == "wal")
        #expect(try store.writerPragma("synchronous") == "2")
        #expect(store.configuration.durability == .full)
    }

    @Test func normalDurabilityIsAnExplicitOptIn() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory, durability: .normal)
        #expect(try store.writerPragma("journal_mode") == "wal")
        #expect(try store.writerPragma("synchronous") == "1")
    }

    @Test func aSchemaFromANewerBinaryIsRefused() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.pool.write { db in
            try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99-from-the-future')")
        }
        try store.close()
        for readOnly in [false, true] {
            #expect {
                try SagaStore.open(in: directory, readOnly: readOnly)
            } throws: { error in
                let error = try #require(error as? SagaStoreError)
                return error.code == .schemaMismatch && error.code.rawValue == "store.schema_mismatch"
                    && error.message.contains("schema version 9 ('v99-from-the-future')")
                    && error.message.contains("this binary knows schema version 8 ('v8-outbox-without-message-index')")
            }
        }
    }

    @Test func readOnlyOpenReadsAnOlderSchemaThatHasWhatReadsNeed() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.pool.write { db in
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'v2-inbox-by-time'")
        }
        try store.close()
        let reader = try SagaStore.open(in: directory, readOnly: true)
        #expect(try reader.dueTimers(before: Timestamp(milliseconds: 0), limit: 1).isEmpty)
        try reader.close()
    }

    @Test func aFileFromBeforeJournalFactsReadsItsJournalWithout() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        let key = SagaKey(workflow: "w", id: "s-1")
        try store.appendJournal(
            [JournalEntry(at: Timestamp(milliseconds: 5), kind: .note, detail: "before", facts: ["event": "note"])],
            for: key, at: Timestamp(milliseconds: 5))
        #expect(try store.journal(of: key).map(\.entry.facts) == [["event": "note"]])
        try store.pool.write { db in
            try db.execute(sql: "ALTER TABLE journal DROP COLUMN facts")
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'v4-journal-facts'")
        }
        try store.close()
        let reader = try SagaStoreReader(path: store.configuration.path)
        let lines = try reader.read("reading") { try $0.journal(of: key) }
        #expect(lines.map(\.detail) == ["before"])
        #expect(lines.map(\.facts) == [nil])
    }

    @Test func readOnlyOpenOfAFileWithoutTheReadableSchemaNamesBothVersions() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.pool.write { db in
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'v1-sagas-journal-inbox-outbox-timers'")
        }
        try store.close()
        #expect {
            try SagaStore.open(in: directory, readOnly: true)
        } throws: { error in
            let error = try #require(error as? SagaStoreError)
            return error.code == .schemaMismatch
                && error.message.contains("has schema version 7 ('v8-outbox-without-message-index')")
                && error.message.contains(
                    "this binary reads schema version 1 ('v1-sagas-journal-inbox-outbox-timers') up to schema version 8 "
                        + "('v8-outbox-without-message-index')")
        }
    }

    @Test func journalIsAppendOnly() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.commit([Fixtures.change("ord-1")])
        #expect(throws: DatabaseError.self) {
            try store.pool.write { db in try db.execute(sql: "UPDATE journal SET detail = 'rewritten'") }
        }
        #expect(throws: DatabaseError.self) {
            try store.pool.write { db in try db.execute(sql: "DELETE FROM journal") }
        }
        #expect(try store.journal(of: Fixtures.key("ord-1")).map(\.entry.detail) == ["reply ok"])
    }

    @Test func queriesUseTheirIndexes() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        let plans: [(String, StatementArguments, String)] = [
            (SagaStore.loadSagasSQL(count: 3), ["w", "a", "w", "b", "w", "c"], "sqlite_autoindex_sagas_1"),
            ("SELECT message_id FROM inbox WHERE message_id IN (?, ?)", ["a", "b"], "PRIMARY KEY"),
            ("SELECT MIN(due_at) FROM timers", [], "timers_by_due_at"),
            ("SELECT * FROM timers WHERE due_at <= ? ORDER BY due_at LIMIT 5", [1], "timers_by_due_at"),
            ("SELECT * FROM journal WHERE workflow = ? AND saga_id = ? ORDER BY id", ["w", "a"], "journal_by_saga"),
            ("SELECT * FROM sagas WHERE status = ? ORDER BY updated_at", ["running"], "sagas_by_status"),
            ("SELECT * FROM sagas WHERE workflow = ? AND current_step = ?", ["w", "ship"], "sagas_by_step"),
            ("SELECT * FROM sagas ORDER BY updated_at LIMIT 10", [], "sagas_by_updated_at"),
        ]
        for (sql, arguments, index) in plans {
            let plan = try store.pool.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: arguments).map {
                    $0["detail"] as String
                }
            }
            #expect(plan.contains { $0.contains(index) }, "\(sql) does not use \(index): \(plan)")
            #expect(!plan.contains { $0 == "SCAN sagas" || $0 == "SCAN inbox" }, "\(sql) scans a whole table: \(plan)")
        }
    }
}

/// The page size, checkpoint interval and cache of a new store.
@Suite struct TuningTests {
    @Test func newStoresUseLargePagesAndALargerCheckpointInterval() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        #expect(try store.writerPragma("page_size") == String(SagaStore.pageSize))
        #expect(try store.writerPragma("wal_autocheckpoint") == String(SagaStore.checkpointPages))
        #expect(try store.writerPragma("cache_size") == "-65536")
    }
}
