import Testing
import WaybillTestSupport

@testable import SagaEngine
@testable import SagaStore

/// The inbox marks processed message ids, so a redelivered message is recognised, and forgets old marks.
@Suite struct InboxTests {
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
}
