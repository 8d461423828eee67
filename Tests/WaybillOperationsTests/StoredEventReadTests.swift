import Foundation
import SagaEngine
import SagaStore
import Testing
import WaybillOperations
import WaybillTestSupport

/// What `waybill events replay` reads: a pool's kept events merged across partition files and the archive, oldest
/// first, each saga's in the order it published them, narrowed by saga, workflow, window and type.
@Suite("Reading stored events")
struct StoredEventReadTests {
    let directory: TemporaryDirectory
    let pool: PoolDirectory
    /// Every event committed, in commit order: (saga, event id, time).
    let committed: [(key: SagaKey, id: String, type: String, at: Timestamp)]
    /// The sagas moved to the archive.
    let archived: Set<SagaKey>

    /// The fixture's sagas in a pool of 4 partitions, each change publishing one event (`order.step` or
    /// `order.done` for a finished saga); then the finished sagas move to the archive.
    init() throws {
        directory = try TemporaryDirectory()
        let pool = try PoolDirectory.create(directory.file("pool"), partitions: 4)
        self.pool = pool
        let scratch = try SagaStore(
            configuration: SagaStore.Configuration(path: directory.file("scratch.sqlite"), durability: .normal))
        var all = try Fixture.changes(saveDefinitionsIn: scratch)
        try scratch.close()
        var committed: [(key: SagaKey, id: String, type: String, at: Timestamp)] = []
        var counts: [SagaKey: Int] = [:]
        for index in all.indices where all[index].instance != nil {
            let key = all[index].key
            counts[key, default: 0] += 1
            let id = "\(key)-e\(counts[key] ?? 0)"
            let type = all[index].instance?.status.isTerminal == true ? "order.done" : "order.step"
            all[index].outbox.append(
                OutboxMessage(
                    messageId: id, exchange: "waybill.events", routingKey: type,
                    contentType: "application/cloudevents+json", headers: ["waybill-event-type": type],
                    body: Array(#"{"id":"\#(id)"}"#.utf8), kept: true))
            committed.append((key, id, type, all[index].at))
        }
        self.committed = committed
        var archived: Set<SagaKey> = []
        let archive = try SagaArchive(dataDirectory: pool.path, readOnly: false)
        for (partition, mine) in Dictionary(grouping: all, by: { pool.partition(of: $0.key.id) }) {
            let store = try SagaStore(
                configuration: SagaStore.Configuration(
                    path: pool.databasePath(partition: partition), durability: .normal))
            _ = try Fixture.changes(saveDefinitionsIn: store)
            let outbox = try store.commit(mine)
            try store.deleteOutbox(ids: outbox)
            let finished = try store.finishedSagas(
                before: Fixture.now.adding(milliseconds: 1), limit: 100, now: Fixture.now)
            try archive.append(finished, at: Fixture.now)
            let removed = try store.removeArchived(
                Dictionary(uniqueKeysWithValues: finished.map { ($0.key, ArchiveMark($0)) }))
            archived.formUnion(removed)
            try store.close()
        }
        try archive.close()
        self.archived = archived
    }

    func read(_ selection: EventSelection, pageSize: Int = SagaInspector.eventPage) async throws -> [StoredEvent] {
        let inspector = try SagaInspector(dataDirectory: pool.path)
        var events: [StoredEvent] = []
        try await inspector.forEachStoredEvent(selection, pageSize: pageSize) { events.append($0) }
        return events
    }

    @Test("everything, from files and archive alike, oldest first, each saga's in its order")
    func everythingInOrder() async throws {
        #expect(!archived.isEmpty, "the fixture has finished sagas to archive")
        #expect(committed.contains { !archived.contains($0.key) }, "and unfinished ones that stay")
        let events = try await read(EventSelection())
        #expect(events.map(\.eventId).sorted() == committed.map(\.id).sorted(), "every event once")
        #expect(events.map(\.at) == events.map(\.at).sorted(), "oldest first")
        for key in Set(committed.map(\.key)) {
            #expect(
                events.filter { $0.key == key }.map(\.eventId) == committed.filter { $0.key == key }.map(\.id),
                "\(key) keeps its order")
        }
        #expect(events.contains { archived.contains($0.key) } && events.contains { !archived.contains($0.key) })
        // Read two at a time from each file: the same events in the same order.
        #expect(try await read(EventSelection(), pageSize: 2).map(\.eventId) == events.map(\.eventId))
    }

    @Test("a window, a workflow, a type pattern and one saga narrow it")
    func narrowed() async throws {
        let times = committed.map(\.at).sorted()
        let from = times[times.count / 3]
        let until = times[2 * times.count / 3]
        let window = try await read(EventSelection(from: from, until: until))
        #expect(
            window.map(\.eventId).sorted()
                == committed.filter { $0.at >= from && $0.at < until }.map(\.id).sorted())
        #expect(!window.isEmpty)

        let done = try await read(EventSelection(types: ["order.done"]))
        #expect(done.map(\.eventId).sorted() == committed.filter { $0.type == "order.done" }.map(\.id).sorted())
        #expect(!done.isEmpty)
        #expect(try await read(EventSelection(types: ["order.*"])).count == committed.count)
        #expect(try await read(EventSelection(types: ["shipment.#"])).isEmpty)

        let workflow = try #require(committed.first?.key.workflow)
        #expect(try await read(EventSelection(workflow: workflow)).allSatisfy { $0.key.workflow == workflow })
        #expect(try await read(EventSelection(workflow: "no-such-workflow")).isEmpty)

        for key in [archived.first, committed.first { !archived.contains($0.key) }?.key].compactMap({ $0 }) {
            let one = try await read(EventSelection(saga: SagaReference(key)))
            #expect(one.map(\.eventId) == committed.filter { $0.key == key }.map(\.id), "\(key)")
        }
    }
}
