import Foundation
import GRDB
import Testing
import WaybillDefinition
import WaybillTestSupport

@testable import SagaEngine
@testable import SagaStore

/// Milestone events kept for replay: written in the saga's commit, kept after the outbox row goes, read back by saga
/// and by window in commit order, archived and removed with the saga, and never changed otherwise.
@Suite struct StoredEventTests {
    static func change(_ id: String, at: Int64, status: SagaStatus = .running, outbox: [OutboxMessage]) -> SagaChange {
        var instance = Fixtures.runningInstance(id: id, updatedAt: at)
        instance.status = status
        return SagaChange(
            key: Fixtures.key(id), at: Timestamp(milliseconds: at), instance: instance,
            currentStep: status.isTerminal ? nil : "release", owner: "worker-1",
            journal: [JournalEntry(at: Timestamp(milliseconds: at), kind: .note, detail: "step at \(at)")],
            outbox: outbox)
    }

    @Test("kept messages stay after their outbox rows are confirmed; commands are not kept")
    func keptAfterConfirm() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        let ids = try store.commit([
            Self.change(
                "o-1", at: 1_000,
                outbox: [Fixtures.outbox("cmd-1"), Fixtures.event("ev-1", type: "order.accepted")]),
            Self.change("o-2", at: 1_000, outbox: [Fixtures.event("ev-2", type: "order.accepted")]),
        ])
        try store.commit([Self.change("o-1", at: 2_000, outbox: [Fixtures.event("ev-3", type: "order.reserved")])])
        // The body is stored once, in the events row; the unconfirmed outbox row still reads back whole.
        let pending = try store.pendingOutbox(limit: 10)
        #expect(pending.map(\.message.messageId) == ["cmd-1", "ev-1", "ev-2", "ev-3"])
        #expect(
            pending.map(\.message.body) == [
                Fixtures.outbox("cmd-1").body, Fixtures.event("ev-1", type: "order.accepted").body,
                Fixtures.event("ev-2", type: "order.accepted").body,
                Fixtures.event("ev-3", type: "order.reserved").body,
            ])
        #expect(
            try store.pool.read { db in
                try Int.fetchOne(db, sql: "SELECT sum(length(body)) FROM outbox WHERE message_id LIKE 'ev-%'")
            } == 0)
        try store.deleteOutbox(ids: ids)
        #expect(try store.counts()["events"] == 3)

        let reader = try SagaStoreReader(path: store.configuration.path)
        let events = try reader.read("test") { try $0.events(of: Fixtures.key("o-1")) }
        #expect(events.map(\.eventId) == ["ev-1", "ev-3"])
        let first = try #require(events.first)
        #expect(first.type == "order.accepted" && first.exchange == "waybill.events")
        #expect(first.contentType == "application/cloudevents+json")
        #expect(first.headers == ["waybill-event-type": "order.accepted"])
        #expect(first.body == Fixtures.event("ev-1", type: "order.accepted").body)
        #expect(first.at == Timestamp(milliseconds: 1_000))
        #expect(try reader.read("test") { try $0.storedEventCount() } == 3)

        // Kept events are append-only outside the archiver.
        #expect(throws: (any Error).self) { try store.pool.write { db in try db.execute(sql: "DELETE FROM events") } }
        #expect(throws: (any Error).self) {
            try store.pool.write { db in try db.execute(sql: "UPDATE events SET body = x'00'") }
        }
    }

    @Test("a window reads in commit order, a page at a time, with either end open")
    func windowInPages() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        for index in 0..<10 {
            try store.commit([
                Self.change(
                    "o-\(index % 3)", at: 1_000 + Int64(index) * 100, outbox: [Fixtures.event("ev-\(index)")])
            ])
        }
        let reader = try SagaStoreReader(path: store.configuration.path)
        var seen: [String] = []
        var after: Int64?
        while true {
            let page = try reader.read("test") { snapshot in
                try snapshot.events(
                    from: Timestamp(milliseconds: 1_200), until: Timestamp(milliseconds: 1_800), workflow: nil,
                    after: after, limit: 2)
            }
            seen += page.map(\.eventId)
            guard let last = page.last else { break }
            after = last.row
        }
        #expect(seen == ["ev-2", "ev-3", "ev-4", "ev-5", "ev-6", "ev-7"])
        let open = try reader.read("test") { snapshot in
            try snapshot.events(from: nil, until: nil, workflow: "other", after: nil, limit: 100)
        }
        #expect(open.isEmpty, "another workflow has none")
        let all = try reader.read("test") { snapshot in
            try snapshot.events(from: nil, until: nil, workflow: Fixtures.workflow, after: nil, limit: 100)
        }
        #expect(all.count == 10)
    }

    @Test("the archive keeps a saga's events with it, and they leave the partition file with the saga")
    func archivedWithTheSaga() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.commit([Self.change("o-1", at: 1_000, outbox: [Fixtures.event("ev-1", type: "order.accepted")])])
        try store.commit([
            Self.change("o-1", at: 2_000, status: .completed, outbox: [Fixtures.event("ev-2", type: "order.completed")])
        ])
        try store.commit([Self.change("o-2", at: 2_500, outbox: [Fixtures.event("ev-3")])])
        let now = Timestamp(milliseconds: 10_000)
        let sagas = try store.finishedSagas(before: now, limit: 10, now: now)
        try store.deleteOutbox(ids: [1, 2, 3])
        let ready = try store.finishedSagas(before: now, limit: 10, now: now)
        #expect(sagas.isEmpty, "not before the outbox rows are confirmed")
        let saga = try #require(ready.first)
        #expect(saga.events?.map(\.id) == ["ev-1", "ev-2"])
        #expect(saga.storedEvents.map(\.type) == ["order.accepted", "order.completed"])
        #expect(
            saga.storedEvents.map(\.body) == [
                Fixtures.event("ev-1", type: "order.accepted").body,
                Fixtures.event("ev-2", type: "order.completed").body,
            ])

        let archive = try SagaArchive(directory: directory.file("archive"), readOnly: false)
        try archive.append(ready, at: now)
        #expect(try store.removeArchived([saga.key: ArchiveMark(saga)]) == [saga.key])
        #expect(try store.counts()["events"] == 1, "o-2's event stays")

        let loaded = try archive.sagas(updatedSince: Timestamp(milliseconds: 1_500), workflow: nil)
        #expect(loaded.map(\.sagaId) == ["o-1"])
        #expect(loaded.first?.storedEvents.map(\.eventId) == ["ev-1", "ev-2"])
        #expect(try archive.sagas(updatedSince: Timestamp(milliseconds: 2_001), workflow: nil).isEmpty)
        #expect(try archive.sagas(updatedSince: nil, workflow: "other").isEmpty)

        // A line written before events were kept reads back without them...
        var old = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(saga)) as? [String: Any])
        old["events"] = nil
        // ... nor the steps' retired branches.
        var state = try #require(old["state"] as? [String: Any])
        let steps = try #require(state["steps"] as? [[String: Any]])
        #expect(steps.allSatisfy { $0["retired"] != nil })
        state["steps"] = steps.map { step in step.filter { $0.key != "retired" } }
        old["state"] = state
        let decoded = try JSONDecoder().decode(ArchivedSaga.self, from: JSONSerialization.data(withJSONObject: old))
        #expect(decoded.events == nil && decoded.storedEvents.isEmpty)
        #expect(decoded.state.steps.allSatisfy { $0.retired.isEmpty })
        #expect(
            decoded.state.steps.map { $0.branches.map(\.status) } == saga.state.steps.map { $0.branches.map(\.status) })
    }
}
