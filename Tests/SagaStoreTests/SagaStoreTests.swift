import Foundation
import GRDB
import Testing
import WaybillDefinition
import WaybillTestSupport

@testable import SagaEngine
@testable import SagaStore

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
                tables.isSuperset(of: ["workflow_definitions", "sagas", "journal", "inbox", "outbox", "timers"]))
            #expect(
                indexes.isSuperset(of: [
                    "sagas_by_status", "sagas_by_step", "sagas_by_updated_at", "timers_by_due_at", "journal_by_saga",
                    "inbox_by_at",
                ]))
            #expect(migrations == ["v1-sagas-journal-inbox-outbox-timers", "v2-inbox-by-time"])
            try store.close()
        }
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
                    && error.message.contains("schema version 3 ('v99-from-the-future')")
                    && error.message.contains("this binary knows schema version 2 ('v2-inbox-by-time')")
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
                && error.message.contains("has schema version 1 ('v2-inbox-by-time')")
                && error.message.contains(
                    "this binary reads schema version 1 ('v1-sagas-journal-inbox-outbox-timers') up to schema version 2 "
                        + "('v2-inbox-by-time')")
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
}

@Suite struct CommitTests {
    @Test func stateRoundTripsThroughTheStore() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        let instance = Fixtures.fullInstance(id: "ord-9")
        try store.commit([
            SagaChange(
                key: instance.key, at: instance.updatedAt, instance: instance, currentStep: "release",
                owner: "worker-7")
        ])
        let stored = try #require(try store.saga(instance.key))
        #expect(stored.instance == instance)
        #expect(stored.currentStep == "release")
        #expect(stored.owner == "worker-7")
        let row = try #require(
            try store.pool.read { db in
                try Row.fetchOne(
                    db, sql: "SELECT status, version, definition_hash, failure_code, updated_at, started_at FROM sagas")
            })
        #expect(row["status"] == "compensating")
        #expect(row["version"] == 7)
        #expect(row["definition_hash"] == Fixtures.hash)
        #expect(row["failure_code"] == "out_of_stock")
        #expect(row["updated_at"] == instance.updatedAt.milliseconds)
        #expect(row["started_at"] == instance.startedAt.milliseconds)
    }

    @Test func batchLoadReturnsOnlyStoredSagas() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        let ids = (0..<450).map { "ord-\($0)" }
        try store.commit(ids.map { Fixtures.change($0) })
        let keys = ids.map(Fixtures.key) + [Fixtures.key("missing"), SagaKey(workflow: "returns", id: "ord-1")]
        let loaded = try store.sagas(keys)
        #expect(loaded.count == 450)
        #expect(loaded[Fixtures.key("ord-449")]?.instance == Fixtures.runningInstance(id: "ord-449"))
        #expect(loaded[Fixtures.key("missing")] == nil)
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

    @Test func aLaterChangeReplacesTheSagaRow() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.commit([Fixtures.change("ord-1")])
        var next = Fixtures.runningInstance(id: "ord-1", step: 1, updatedAt: 1_700_000_009_000)
        next.status = .completed
        try store.commit([
            SagaChange(
                key: next.key, at: next.updatedAt, instance: next, currentStep: nil, owner: "worker-2")
        ])
        let stored = try #require(try store.saga(next.key))
        #expect(stored.instance == next)
        #expect(stored.currentStep == nil)
        #expect(stored.owner == "worker-2")
        #expect(try store.counts()["sagas"] == 1)
        try store.commit([SagaChange(key: next.key, at: next.updatedAt, instance: next, currentStep: nil, owner: nil)])
        #expect(try store.saga(next.key)?.owner == "worker-2")
    }

    @Test func aFailingBatchPersistsNothing() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.commit([Fixtures.change("before", message: "m-before")])
        let countsBefore = try store.counts()
        var batch = (0..<10).map { index in
            Fixtures.change(
                "ord-\(index)", message: "m-\(index)", outbox: [Fixtures.outbox("cmd-\(index)")],
                schedule: [Fixtures.timer("t-\(index)", due: 1_000 + Int64(index))])
        }
        // The 7th change reuses the 3rd change's outbox message id: the batch must fail as a whole.
        batch[6].outbox.append(Fixtures.outbox("cmd-2"))
        #expect {
            try store.commit(batch)
        } throws: { error in
            let error = try #require(error as? SagaStoreError)
            return error.code == .constraintViolation && error.cause is DatabaseError
        }
        #expect(try store.counts() == countsBefore)
        #expect(try store.saga(Fixtures.key("ord-0")) == nil)
        #expect(try store.processedMessageIds(in: ["m-0", "m-5"]).isEmpty)
        #expect(try store.pendingOutbox(limit: 100).isEmpty)
        #expect(try store.nextTimerDue() == nil)
        // The store is still usable afterwards.
        batch[6].outbox.removeLast()
        try store.commit(batch)
        #expect(try store.counts()["sagas"] == 11)
    }

    @Test func pruningForgetsOnlyOldInboxMarks() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.commit((0..<5).map { Fixtures.change("ord-\($0)", message: "m-\($0)", at: 1_000 + Int64($0) * 100) })
        #expect(try store.pruneInbox(before: Timestamp(milliseconds: 1_250), limit: 2) == 2)
        #expect(try store.pruneInbox(before: Timestamp(milliseconds: 1_250)) == 1)
        #expect(try store.pruneInbox(before: Timestamp(milliseconds: 1_250)) == 0)
        let ids = (0..<5).map { "m-\($0)" }
        #expect(try store.processedMessageIds(in: ids) == ["m-3", "m-4"])
    }

    @Test func inboxDedupesMessages() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.commit([Fixtures.change("ord-1", message: "m-1"), Fixtures.change("ord-2", message: "m-2")])
        #expect(try store.processedMessageIds(in: ["m-1", "m-3", "m-2"]) == ["m-1", "m-2"])
        #expect(try store.processedMessageIds(in: []) == [])
        let many = (0..<1000).map { "other-\($0)" } + ["m-2"]
        #expect(try store.processedMessageIds(in: many) == ["m-2"])

        // Committing an already processed message again fails the batch and changes nothing.
        let countsBefore = try store.counts()
        #expect {
            try store.commit([Fixtures.change("ord-3", message: "m-3"), Fixtures.change("ord-1", message: "m-1")])
        } throws: { error in
            (error as? SagaStoreError)?.code == .duplicateMessage
        }
        #expect(try store.counts() == countsBefore)
    }

    @Test func anIgnoredEventWritesOnlyItsJournalNoteAndInboxMark() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.commit([Fixtures.change("ord-1", message: "m-1")])
        let before = try store.saga(Fixtures.key("ord-1"))
        try store.commit([
            SagaChange(
                key: Fixtures.key("ord-1"), at: Timestamp(milliseconds: 1_700_000_009_000), instance: nil,
                currentStep: nil,
                journal: [
                    JournalEntry(
                        at: Timestamp(milliseconds: 1_700_000_009_000), kind: .ignored,
                        detail: "ignored: late reply m-0")
                ], inboxMessageId: "m-late")
        ])
        #expect(try store.saga(Fixtures.key("ord-1")) == before)
        #expect(try store.processedMessageIds(in: ["m-late"]) == ["m-late"])
        let journal = try store.journal(of: Fixtures.key("ord-1"))
        #expect(journal.map(\.entry.kind) == [.reply, .ignored])
        #expect(journal.map(\.id) == journal.map(\.id).sorted())
    }

    @Test func outboxKeepsOrderPerSagaAndDeletesConfirmedRows() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.commit([
            Fixtures.change("ord-a", message: "m-1", outbox: [Fixtures.outbox("a-1"), Fixtures.outbox("a-2")]),
            Fixtures.change("ord-b", message: "m-2", outbox: [Fixtures.outbox("b-1")]),
        ])
        try store.commit([
            Fixtures.change("ord-b", message: "m-3", outbox: [Fixtures.outbox("b-2")]),
            Fixtures.change("ord-a", message: "m-4", outbox: [Fixtures.outbox("a-3")]),
        ])
        let pending = try store.pendingOutbox(limit: 100)
        #expect(pending.map(\.message.messageId) == ["a-1", "a-2", "b-1", "b-2", "a-3"])
        #expect(pending.map(\.id) == pending.map(\.id).sorted())
        #expect(pending.filter { $0.key.id == "ord-a" }.map(\.message.messageId) == ["a-1", "a-2", "a-3"])
        #expect(pending[0].message == Fixtures.outbox("a-1"))
        #expect(pending[0].createdAt == Timestamp(milliseconds: 1_700_000_000_500))
        #expect(try store.pendingOutbox(limit: 2).map(\.message.messageId) == ["a-1", "a-2"])

        try store.deleteOutbox(ids: [pending[0].id, pending[2].id])
        #expect(try store.pendingOutbox(limit: 100).map(\.message.messageId) == ["a-2", "b-2", "a-3"])
        try store.deleteOutbox(ids: pending.map(\.id))
        #expect(try store.pendingOutbox(limit: 100).isEmpty)
        // Ids are never reused after deletion, so publish order stays monotonic.
        try store.commit([Fixtures.change("ord-c", outbox: [Fixtures.outbox("c-1")])])
        #expect(try store.pendingOutbox(limit: 1).first.map(\.id) ?? 0 > pending.last?.id ?? .max)
    }

    @Test func timersComeDueInOrderAndCanBeMovedAndCancelled() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.commit([
            Fixtures.change("ord-1", schedule: [Fixtures.timer("t-1", due: 300)]),
            Fixtures.change("ord-2", schedule: [Fixtures.timer("t-2", .retry, due: 100)]),
            Fixtures.change("ord-3", schedule: [Fixtures.timer("t-3", due: 200), Fixtures.timer("t-4", due: 900)]),
        ])
        #expect(try store.nextTimerDue() == Timestamp(milliseconds: 100))
        let due = try store.dueTimers(before: Timestamp(milliseconds: 250), limit: 10)
        #expect(due.map(\.id) == ["t-2", "t-3"])
        #expect(
            due[0]
                == StoredTimer(key: Fixtures.key("ord-2"), id: "t-2", kind: .retry, dueAt: Timestamp(milliseconds: 100))
        )
        #expect(try store.dueTimers(before: Timestamp(milliseconds: 250), limit: 1).map(\.id) == ["t-2"])
        #expect(try store.dueTimers(before: Timestamp(milliseconds: 200), limit: 10).map(\.id) == ["t-2", "t-3"])

        // Upsert moves t-1 to the front; cancelling t-2 and t-3 removes them.
        try store.commit([
            Fixtures.change("ord-1", schedule: [Fixtures.timer("t-1", .retry, due: 50)]),
            Fixtures.change("ord-2", cancel: ["t-2"]),
            Fixtures.change("ord-3", cancel: ["t-3", "unknown"]),
        ])
        #expect(try store.dueTimers(before: Timestamp(milliseconds: 1_000), limit: 10).map(\.id) == ["t-1", "t-4"])
        #expect(try store.timers(of: Fixtures.key("ord-1")).map(\.kind) == [.retry])
        #expect(try store.nextTimerDue() == Timestamp(milliseconds: 50))
        #expect(try store.counts()["timers"] == 2)
    }

    @Test func timerIdsAreScopedToTheirSaga() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.commit([
            Fixtures.change("ord-1", schedule: [Fixtures.timer("t-1", due: 10)]),
            Fixtures.change("ord-2", schedule: [Fixtures.timer("t-1", due: 20)]),
        ])
        try store.commit([Fixtures.change("ord-1", cancel: ["t-1"])])
        #expect(try store.dueTimers(before: Timestamp(milliseconds: 100), limit: 10).map(\.key.id) == ["ord-2"])
    }

    @Test func definitionsAreStoredByContentHash() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        let source = "name: order-fulfillment\nversion: 1\n"
        let hash = try store.saveDefinition(
            name: "order-fulfillment", version: 1, source: source, at: Timestamp(milliseconds: 10))
        #expect(hash == ContentHash.sha256Hex(Array(source.utf8)))
        let again = try store.saveDefinition(
            name: "order-fulfillment", version: 1, source: source, at: Timestamp(milliseconds: 99))
        #expect(again == hash)
        let stored = try #require(try store.definition(hash: hash))
        #expect(
            stored
                == StoredDefinition(
                    hash: hash, name: "order-fulfillment", version: 1, source: source,
                    firstSeenAt: Timestamp(milliseconds: 10)))
        #expect(try store.definition(hash: "nope") == nil)
    }

    static let oddHeaders = ["a": "1", "quote\"back\\slash": "tab\tnew\nline \u{1} ünï ✓ 😀", "": ""]

    @Test func headersAreStoredAsSortedCompactJSON() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        var message = Fixtures.outbox("m-1")
        message.headers = Self.oddHeaders
        try store.commit([Fixtures.change("ord-1", outbox: [message])])
        let stored = try store.pool.read { db in try String.fetchOne(db, sql: "SELECT headers FROM outbox") }
        #expect(stored == #"{"":"","a":"1","quote\"back\\slash":"tab\tnew\nline \u0001 ünï ✓ 😀"}"#)
        #expect(try store.pendingOutbox(limit: 10).map(\.message.headers) == [Self.oddHeaders])
    }

    /// Outbox rows written before the store used ``JSONText``: the old codec escaped every control character as
    /// `\u00XX`. Such rows must still publish with the same headers after an upgrade.
    @Test(
        arguments: [
            (#"{"":"","a":"1","quote\"back\\slash":"tab\u0009new\u000aline \u0001 ünï ✓ 😀"}"#, oddHeaders),
            ("{}", [:]),
            (#"{"a":"\u00e9\ud83d\ude00"}"#, ["a": "é😀"]),
            (#" { "b" : "2" , "a" : "\/\b\f\r" } "#, ["a": "/\u{8}\u{C}\r", "b": "2"]),
        ] as [(String, [String: String])])
    func headersWrittenByTheOldCodecStillRead(text: String, headers: [String: String]) throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.commit([Fixtures.change("ord-1", outbox: [Fixtures.outbox("m-1")])])
        try store.pool.write { db in try db.execute(sql: "UPDATE outbox SET headers = ?", arguments: [text]) }
        #expect(try store.pendingOutbox(limit: 10).map(\.message.headers) == [headers])
    }

    @Test(arguments: [#"{"a":1}"#, #"{"a":"b"} x"#, #"["a"]"#, #"{"a":{"b":"c"}}"#, "", #"{"a":"\ud83d"}"#])
    func unreadableHeadersAreReportedAsCorrupt(text: String) throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.commit([Fixtures.change("ord-1", outbox: [Fixtures.outbox("m-1")])])
        try store.pool.write { db in try db.execute(sql: "UPDATE outbox SET headers = ?", arguments: [text]) }
        let error = #expect(throws: SagaStoreError.self) { try store.pendingOutbox(limit: 10) }
        #expect(error?.code == .corruptState)
    }
}

@Suite struct OpenTests {
    @Test func reopenAfterCloseKeepsEverything() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        let instance = Fixtures.fullInstance(id: "ord-1")
        try store.saveDefinition(name: "order-fulfillment", version: 1, source: "v1", at: Timestamp(milliseconds: 1))
        try store.commit([
            SagaChange(
                key: instance.key, at: instance.updatedAt, instance: instance, currentStep: "release",
                owner: "worker-1",
                journal: [JournalEntry(at: instance.updatedAt, kind: .start, actor: nil, detail: "started")],
                inboxMessageId: "m-start", outbox: [Fixtures.outbox("cmd-1")],
                scheduleTimers: [Fixtures.timer("t-1", due: 5_000)])
        ])
        let countsBefore = try store.counts()
        try store.close()
        #expect(throws: SagaStoreError.self) { try store.saga(instance.key) }

        let reopened = try SagaStore.open(in: directory)
        #expect(try reopened.counts() == countsBefore)
        #expect(try reopened.saga(instance.key)?.instance == instance)
        #expect(try reopened.processedMessageIds(in: ["m-start"]) == ["m-start"])
        #expect(try reopened.pendingOutbox(limit: 10).map(\.message) == [Fixtures.outbox("cmd-1")])
        #expect(try reopened.timers(of: instance.key).map(\.id) == ["t-1"])
        #expect(try reopened.journal(of: instance.key).map(\.entry.detail) == ["started"])
    }

    @Test func readOnlyOpenWorksWhileTheWorkerIsDownAndRefusesWrites() throws {
        let directory = try TemporaryDirectory()
        let writer = try SagaStore.open(in: directory)
        try writer.commit([Fixtures.change("ord-1", message: "m-1", schedule: [Fixtures.timer("t-1", due: 7)])])
        try writer.close()

        let reader = try SagaStore.open(in: directory, readOnly: true)
        #expect(try reader.saga(Fixtures.key("ord-1"))?.instance == Fixtures.runningInstance(id: "ord-1"))
        #expect(try reader.nextTimerDue() == Timestamp(milliseconds: 7))
        #expect {
            try reader.commit([Fixtures.change("ord-2")])
        } throws: { error in
            let error = try #require(error as? SagaStoreError)
            return error.code == .notWritable && error.message.contains("read-only")
        }
        #expect(throws: SagaStoreError.self) { try reader.deleteOutbox(ids: [1]) }
        #expect(throws: SagaStoreError.self) {
            try reader.saveDefinition(name: "x", version: 1, source: "x", at: Timestamp(milliseconds: 0))
        }
        // Even SQL that bypasses the API cannot write through a read-only store.
        #expect {
            try reader.pool.write { db in try db.execute(sql: "DELETE FROM inbox") }
        } throws: { error in
            (error as? DatabaseError)?.resultCode == .SQLITE_READONLY
        }
        #expect(try reader.counts()["sagas"] == 1)
    }

    @Test func readOnlyOpenSeesCommitsOfARunningWorker() throws {
        let directory = try TemporaryDirectory()
        let writer = try SagaStore.open(in: directory)
        let reader = try SagaStore.open(in: directory, readOnly: true)
        try writer.commit([Fixtures.change("ord-1")])
        #expect(try reader.saga(Fixtures.key("ord-1")) != nil)
    }

    @Test func readOnlyOpenOfAMissingFileSaysSo() throws {
        let directory = try TemporaryDirectory()
        #expect {
            try SagaStore.open(in: directory, "absent.sqlite", readOnly: true)
        } throws: { error in
            (error as? SagaStoreError)?.code == .cannotOpen
        }
        #expect(!FileManager.default.fileExists(atPath: directory.file("absent.sqlite")))
    }

    @Test func writableOpenCreatesMissingDirectories() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory, "nested/deeper/waybill.sqlite")
        try store.commit([Fixtures.change("ord-1")])
        #expect(FileManager.default.fileExists(atPath: directory.file("nested/deeper/waybill.sqlite")))
    }

    @Test func anUncreatableDirectoryIsReportedClearly() throws {
        let directory = try TemporaryDirectory()
        try Data("not a directory".utf8).write(to: directory.url.appendingPathComponent("file"))
        #expect {
            try SagaStore.open(in: directory, "file/sub/waybill.sqlite")
        } throws: { error in
            let error = try #require(error as? SagaStoreError)
            return error.code == .notWritable && error.message.contains("cannot create the directory")
        }
    }

    @Test func aFileThatIsNotADatabaseIsReportedClearly() throws {
        let directory = try TemporaryDirectory()
        try Data(repeating: 0x42, count: 8192).write(to: directory.url.appendingPathComponent("junk.sqlite"))
        #expect {
            try SagaStore.open(in: directory, "junk.sqlite")
        } throws: { error in
            (error as? SagaStoreError)?.code == .corruptState
        }
    }

    @Test func errorsCarryStableCodesAndActionableMessages() {
        let locked = SagaStoreError.wrap(
            DatabaseError(resultCode: .SQLITE_BUSY, message: "database is locked"), path: "/var/w.sqlite",
            operation: "committing 3 changes")
        #expect(locked.code.rawValue == "store.database_locked")
        #expect(locked.message.contains("/var/w.sqlite") && locked.message.contains("busyTimeout"))
        #expect(locked.description.hasPrefix("store.database_locked: committing 3 changes in /var/w.sqlite failed"))
        #expect(locked.description.hasSuffix("(SQLite 5: database is locked)"))
        #expect(locked.cause is DatabaseError)
        let full = SagaStoreError.wrap(DatabaseError(resultCode: .SQLITE_FULL), path: "p", operation: "o")
        #expect(full.code == .diskFull)
    }
}

@Suite struct TuningTests {
    @Test func newStoresUseLargePagesAndALargerCheckpointInterval() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        #expect(try store.writerPragma("page_size") == String(SagaStore.pageSize))
        #expect(try store.writerPragma("wal_autocheckpoint") == String(SagaStore.checkpointPages))
        #expect(try store.writerPragma("cache_size") == "-65536")
    }
}
