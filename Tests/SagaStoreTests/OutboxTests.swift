import Testing
import WaybillTestSupport

@testable import SagaEngine
@testable import SagaStore

/// The outbox keeps commands in commit order until they are confirmed, with their headers stored as JSON.
@Suite struct OutboxTests {
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

    @Test(
        "a commit deletes the confirmed rows it is given in its own transaction; a failed commit deletes none and the next one works"
    )
    func commitTakesConfirmedRowsAlong() async throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        let first = try await store.commit(
            [Fixtures.change("ord-a", message: "m-1", outbox: [Fixtures.outbox("a-1"), Fixtures.outbox("a-2")])])
        let second = try await store.commit(
            [Fixtures.change("ord-b", message: "m-2", outbox: [Fixtures.outbox("b-1")])], deletingOutbox: [first[0]])
        #expect(try store.pendingOutbox(limit: 10).map(\.message.messageId) == ["a-2", "b-1"])
        // A deletion alone is a transaction too.
        try await store.commit([], deletingOutbox: second)
        #expect(try store.pendingOutbox(limit: 10).map(\.message.messageId) == ["a-2"])
        // The same inbox message twice fails the commit: its deletion is rolled back with it.
        await #expect(throws: SagaStoreError.self) {
            try await store.commit([Fixtures.change("ord-c", message: "m-1")], deletingOutbox: [first[1]])
        }
        #expect(try store.pendingOutbox(limit: 10).map(\.message.messageId) == ["a-2"])
        // The statement whose step failed is the next commit's too: it is reset before it is bound again.
        try await store.commit([Fixtures.change("ord-c", message: "m-3", outbox: [Fixtures.outbox("c-1")])])
        #expect(try store.pendingOutbox(limit: 10).map(\.message.messageId) == ["a-2", "c-1"])
    }

    @Test(
        "the blocking commit and lookup write and read what the suspending ones do, failures included"
    )
    func blockingCommitAndLookupMatchTheSuspendingOnes() async throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        let first = try store.commitBlocking(
            [Fixtures.change("ord-a", message: "m-1", outbox: [Fixtures.outbox("a-1"), Fixtures.outbox("a-2")])],
            deletingOutbox: [])
        let second = try await store.commit(
            [Fixtures.change("ord-b", message: "m-2", outbox: [Fixtures.outbox("b-1")])], deletingOutbox: [first[0]])
        #expect(second[0] > first[1])
        try store.commitBlocking([], deletingOutbox: second)
        #expect(try store.pendingOutbox(limit: 10).map(\.message.messageId) == ["a-2"])
        // A duplicate inbox message fails the blocking commit with the store's error, and its deletion is rolled back.
        let duplicate = #expect(throws: SagaStoreError.self) {
            try store.commitBlocking([Fixtures.change("ord-c", message: "m-1")], deletingOutbox: [first[1]])
        }
        #expect(duplicate?.code == .duplicateMessage)
        #expect(try store.pendingOutbox(limit: 10).map(\.message.messageId) == ["a-2"])

        let keys = ["ord-a", "ord-b", "ord-none"].map { SagaKey(workflow: Fixtures.workflow, id: $0) }
        let ids = ["m-1", "m-2", "m-3"]
        let blocking = try store.lookupBlocking(keys, processed: ids)
        let suspending = try await store.lookup(keys, processed: ids)
        #expect(Set(blocking.sagas.keys.map(\.id)) == ["ord-a", "ord-b"])
        #expect(blocking.processed == ["m-1", "m-2"])
        #expect(blocking.sagas == suspending.sagas)
        #expect(blocking.processed == suspending.processed)
        // Nothing to read is no read.
        let empty = try store.lookupBlocking([], processed: [])
        #expect(empty.sagas.isEmpty && empty.processed.isEmpty)
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

/// The hot path's `IN (...)` lists come in a few sizes, so their statements are prepared once and cached.
struct ListSizeTests {
    @Test(
        "a list of n values gets the next power of two places, at most the chunk size",
        arguments: [(1, 1), (2, 2), (3, 4), (4, 4), (5, 8), (129, 256), (256, 256), (257, 400), (400, 400)])
    func listSize(count: Int, size: Int) {
        #expect(SagaStore.listSize(count) == size)
    }

    @Test("padded lists find exactly the rows asked for")
    func paddedLookups() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.commit((1...5).map { Fixtures.change("ord-\($0)", message: "m-\($0)") })
        for count in 1...5 {
            let asked = (1...count).map { "m-\($0)" } + ["m-none"]
            #expect(try store.processedMessageIds(in: asked) == Set((1...count).map { "m-\($0)" }))
            let keys = (1...count).map { SagaKey(workflow: Fixtures.change("ord-\($0)").key.workflow, id: "ord-\($0)") }
            #expect(try store.sagas(keys).count == count)
        }
    }
}
