import GRDB
import Testing
import WaybillTestSupport

@testable import SagaEngine
@testable import SagaStore

/// One commit writes a batch of saga changes together: the saga rows, their journal lines, or nothing at all.
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
        // The 7th change reuses the 3rd change's inbox message id, after six changes were written: the batch must
        // fail as a whole.
        let seventh = batch[6]
        batch[6].inboxMessageId = "m-2"
        #expect {
            try store.commit(batch)
        } throws: { error in
            let error = try #require(error as? SagaStoreError)
            return error.code == .duplicateMessage && error.cause is DatabaseError
        }
        #expect(try store.counts() == countsBefore)
        #expect(try store.saga(Fixtures.key("ord-0")) == nil)
        #expect(try store.processedMessageIds(in: ["m-0", "m-5"]).isEmpty)
        #expect(try store.pendingOutbox(limit: 100).isEmpty)
        #expect(try store.nextTimerDue() == nil)
        // The store is still usable afterwards.
        batch[6] = seventh
        try store.commit(batch)
        #expect(try store.counts()["sagas"] == 11)
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
}
