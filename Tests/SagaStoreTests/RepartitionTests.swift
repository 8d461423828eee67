import Foundation
import GRDB
import Testing
import WaybillDefinition
import WaybillTestSupport

@testable import SagaEngine
@testable import SagaStore

/// `waybill pool repartition`: every saga, journal line, timer and outbox row ends up exactly once, in the file of its
/// partition under the new count; definitions and the inbox are in every file; a live worker stops it.
@Suite("Repartitioning a pool")
struct RepartitionTests {
    /// Everything a pool's files hold, with where each row is.
    struct Contents: Equatable {
        /// Saga id → the partitions whose file has its row (exactly one when all is well).
        var sagas: [String: [Int]] = [:]
        /// Saga id → its journal lines in id order, with the partition of each.
        var journal: [String: [String]] = [:]
        var journalPartitions: [String: Set<Int>] = [:]
        /// `saga/timer` → partitions.
        var timers: [String: [Int]] = [:]
        /// `saga/wait match` → partitions.
        var waits: [String: [Int]] = [:]
        /// Outbox message id → partitions; saga id → its outbox message ids in id order.
        var outbox: [String: [Int]] = [:]
        var outboxOrder: [String: [String]] = [:]
        /// Kept event id → partitions; saga id → its kept event ids in order.
        var events: [String: [Int]] = [:]
        var eventOrder: [String: [String]] = [:]
        /// Partition → definition hashes and inbox message ids.
        var definitions: [Int: Set<String>] = [:]
        var inbox: [Int: Set<String>] = [:]

        /// What a comparison across counts looks at: the rows, not where they are.
        var rows: [String] {
            sagas.keys.sorted() + journal.keys.sorted().flatMap { journal[$0] ?? [] } + timers.keys.sorted()
                + waits.keys.sorted() + outbox.keys.sorted()
                + outboxOrder.keys.sorted().flatMap { outboxOrder[$0] ?? [] } + events.keys.sorted()
                + eventOrder.keys.sorted().flatMap { eventOrder[$0] ?? [] }
        }
    }

    let directory: TemporaryDirectory
    let path: String
    static let sagaCount = 60
    static let otherDefinition = "name: other\nversion: 1\n"

    init() throws {
        directory = try TemporaryDirectory()
        path = directory.file("pool")
        let pool = try PoolDirectory.create(path, partitions: 4)
        var stores: [Int: SagaStore] = [:]
        func store(_ id: String) throws -> SagaStore {
            let partition = pool.partition(of: id)
            if let store = stores[partition] { return store }
            let store = try SagaStore(
                configuration: SagaStore.Configuration(
                    path: pool.databasePath(partition: partition), durability: .normal))
            try store.saveDefinition(
                name: Fixtures.workflow, version: 1, source: "name: fixture\n", at: Timestamp(milliseconds: 0))
            stores[partition] = store
            return store
        }
        for index in 0..<Self.sagaCount {
            let id = "o-\(index)"
            let target = try store(id)
            var first = Fixtures.change(
                id, message: "m-\(id)-start",
                schedule: index % 3 == 0 ? [Fixtures.timer("\(id)/t1", due: 1_700_000_100_000 + Int64(index))] : [],
                at: 1_700_000_000_000 + Int64(index))
            first.journal.append(
                JournalEntry(at: first.at, kind: .start, step: nil, detail: "started \(id)"))
            var second = Fixtures.change(
                id, message: "m-\(id)-reply",
                outbox: index % 4 == 0
                    ? [Fixtures.outbox("out-\(id)-1"), Fixtures.event("ev-\(id)-1"), Fixtures.event("ev-\(id)-2")]
                    : [],
                at: 1_700_000_001_000 + Int64(index))
            second.journal[0].detail = "reply to \(id)"
            if index % 5 == 0 {
                second.awaitMessages = [
                    AwaitedMessage(
                        id: "\(id)/w1", exchange: "payments", routingKey: "payment.confirmed", key: "${message.id}",
                        match: id)
                ]
            }
            // Later sagas started earlier, so start order is not the order rows were written in.
            let started = Timestamp(milliseconds: 1_600_000_000_000 - Int64(index))
            first.instance?.startedAt = started
            second.instance?.startedAt = started
            try target.commit([first])
            try target.commit([second])
        }
        // Journal lines of a saga without a row, and a definition only one file has.
        try store("ghost").appendJournal(
            [
                JournalEntry(
                    at: Timestamp(milliseconds: 0), kind: .note, step: nil, detail: "note about a saga never started")
            ],
            for: Fixtures.key("ghost"), at: Timestamp(milliseconds: 0))
        try store("o-0").saveDefinition(
            name: "other", version: 1, source: Self.otherDefinition, at: Timestamp(milliseconds: 0))
        for store in stores.values { try store.close() }
    }

    /// Reads every partition file of the pool in `path`.
    static func contents(_ path: String) throws -> Contents {
        let pool = try PoolDirectory.open(path)
        var contents = Contents()
        for partition in pool.partitions {
            let file = pool.databasePath(partition: partition)
            guard FileManager.default.fileExists(atPath: file) else { continue }
            var configuration = Configuration()
            configuration.readonly = true
            try DatabaseQueue(path: file, configuration: configuration).read { db in
                for id in try String.fetchAll(db, sql: "SELECT saga_id FROM sagas") {
                    contents.sagas[id, default: []].append(partition)
                }
                for row in try Row.fetchAll(db, sql: "SELECT saga_id, kind, at, detail FROM journal ORDER BY id") {
                    let id: String = row[0]
                    contents.journal[id, default: []].append(
                        "\(id) \(row[1] as String) \(row[2] as Int64) \(row[3] as String)")
                    contents.journalPartitions[id, default: []].insert(partition)
                }
                for row in try Row.fetchAll(db, sql: "SELECT saga_id, timer_id FROM timers") {
                    contents.timers["\(row[0] as String)/\(row[1] as String)", default: []].append(partition)
                }
                for row in try Row.fetchAll(db, sql: "SELECT saga_id, wait_id, match_value FROM waits") {
                    contents.waits["\(row[0] as String)/\(row[1] as String) \(row[2] as String)", default: []].append(
                        partition)
                }
                for row in try Row.fetchAll(db, sql: "SELECT saga_id, message_id FROM outbox ORDER BY id") {
                    contents.outbox[row[1], default: []].append(partition)
                    contents.outboxOrder[row[0], default: []].append(row[1])
                }
                for row in try Row.fetchAll(db, sql: "SELECT saga_id, event_id FROM events ORDER BY id") {
                    contents.events[row[1], default: []].append(partition)
                    contents.eventOrder[row[0], default: []].append(row[1])
                }
                contents.definitions[partition] = Set(
                    try String.fetchAll(db, sql: "SELECT hash FROM workflow_definitions"))
                contents.inbox[partition] = Set(try String.fetchAll(db, sql: "SELECT message_id FROM inbox"))
            }
        }
        return contents
    }

    /// Checks that `contents` has every row once, in the file of its partition under `count`, and the definitions and
    /// inbox of `before` in every file.
    func expectPlaced(_ contents: Contents, count: Int, before: Contents) {
        let right = { (id: String) in PoolDirectory.partition(of: id, count: count) }
        #expect(contents.rows == before.rows)
        #expect(contents.sagas.count == Self.sagaCount)
        for (id, partitions) in contents.sagas { #expect(partitions == [right(id)], "saga \(id)") }
        for (id, partitions) in contents.journalPartitions { #expect(partitions == [right(id)], "journal of \(id)") }
        for (timer, partitions) in contents.timers {
            #expect(partitions == [right(String(timer.prefix { $0 != "/" }))], "timer \(timer)")
        }
        #expect(contents.waits.count == Self.sagaCount / 5)
        for (wait, partitions) in contents.waits {
            #expect(partitions == [right(String(wait.prefix { $0 != "/" }))], "wait \(wait)")
        }
        for (id, order) in contents.outboxOrder {
            for message in order { #expect(contents.outbox[message] == [right(id)], "outbox \(message)") }
        }
        #expect(contents.events.count == 2 * Self.sagaCount / 4)
        for (id, order) in contents.eventOrder {
            #expect(order == ["ev-\(id)-1", "ev-\(id)-2"], "events of \(id) keep their order")
            for event in order { #expect(contents.events[event] == [right(id)], "event \(event)") }
        }
        let definitions = before.definitions.values.reduce(Set()) { $0.union($1) }
        let inbox = before.inbox.values.reduce(Set()) { $0.union($1) }
        #expect(definitions.count == 2 && inbox.count == 2 * Self.sagaCount)
        #expect(contents.definitions.count == count && contents.inbox.count == count, "every partition has a file")
        for partition in 0..<count {
            #expect(contents.definitions[partition] == definitions, "definitions of p\(partition)")
            #expect(contents.inbox[partition] == inbox, "inbox of p\(partition)")
        }
    }

    @Test("4 → 8 → 3 keeps every saga, journal line, timer and outbox row exactly once, in its partition")
    func growAndShrink() throws {
        let original = try Self.contents(path)
        #expect(original.sagas.values.allSatisfy { $0.count == 1 })
        #expect(original.timers.count == 20 && original.outbox.count == 45 && original.events.count == 30)

        let grown = try PoolDirectory.repartition(path, partitions: 8, at: Timestamp(milliseconds: 5))
        #expect(try PoolDirectory.open(path).partitionCount == 8)
        expectPlaced(try Self.contents(path), count: 8, before: original)
        #expect(grown.previousCount == 4 && grown.count == 8 && !grown.finishedInterrupted)
        #expect(grown.shares.map(\.partition) == Array(0..<8))
        #expect(grown.sagas == Self.sagaCount && grown.timers == 20 && grown.outboxMessages == 45)
        #expect(grown.shares.map(\.events).reduce(0, +) == 30)
        #expect(grown.journalLines == 3 * Self.sagaCount + 1)
        #expect(grown.definitions == 2 && grown.inboxMarks == 2 * Self.sagaCount)
        for share in grown.shares {
            #expect(share.sagasFrom.values.reduce(0, +) == share.sagas)
            // Each saga came from its partition under the old count.
            for (old, _) in share.sagasFrom { #expect(old < 4) }
        }
        #expect(
            grown.moved
                == original.sagas.keys.filter {
                    PoolDirectory.partition(of: $0, count: 8) != PoolDirectory.partition(of: $0, count: 4)
                }.count)
        #expect(!FileManager.default.fileExists(atPath: "\(path)/\(PoolDirectory.repartitionFolder)"))

        let shrunk = try PoolDirectory.repartition(path, partitions: 3)
        #expect(try PoolDirectory.open(path).partitionCount == 3)
        expectPlaced(try Self.contents(path), count: 3, before: original)
        #expect(shrunk.sagas == Self.sagaCount && shrunk.previousCount == 8)
        let files = try FileManager.default.contentsOfDirectory(atPath: "\(path)/partitions").filter {
            $0.hasSuffix(".sqlite")
        }
        #expect(files.sorted() == ["p00.sqlite", "p01.sqlite", "p02.sqlite"])

        let same = try PoolDirectory.repartition(path, partitions: 3)
        #expect(same.shares.isEmpty && same.count == 3)
    }

    @Test("the new files hold their rows in start order and read like a worker's files")
    func newFilesAreStores() throws {
        try PoolDirectory.repartition(path, partitions: 2)
        let pool = try PoolDirectory.open(path)
        for partition in pool.partitions {
            let store = try SagaStore(
                configuration: SagaStore.Configuration(path: pool.databasePath(partition: partition), readOnly: true))
            let rows = try store.pool.read { db in
                try Row.fetchAll(db, sql: "SELECT saga_id, started_at FROM sagas ORDER BY rowid")
            }
            let ids: [String] = rows.map { $0[0] }
            let started: [Int64] = rows.map { $0[1] }
            #expect(ids.count > 1)
            #expect(started == started.sorted(), "row numbers follow start order")
            #expect(try store.sagas(ids.map(Fixtures.key)).count == ids.count, "every state decodes")
            let journal = try store.journal(of: Fixtures.key(ids[0]))
            #expect(journal.map(\.entry.detail) == ["reply ok", "started \(ids[0])", "reply to \(ids[0])"])
            try store.close()
        }
    }

    @Test("a live worker, or a held partition lock, stops it before anything changes")
    func refusals() throws {
        let before = try Self.contents(path)
        let pool = try PoolDirectory.open(path)
        let member = try pool.join(as: "w1")
        let running = #expect(throws: SagaStoreError.self) { try PoolDirectory.repartition(path, partitions: 8) }
        #expect(running?.code == .poolInUse)
        #expect(running?.message.hasPrefix("worker w1 is running in \(path); a repartition is offline.") == true)
        member.release()

        let owner = try #require(try FileLock.tryLock(pool.lockPath(partition: 2)))
        let locked = #expect(throws: SagaStoreError.self) { try PoolDirectory.repartition(path, partitions: 8) }
        #expect(locked?.code == .poolInUse)
        #expect(locked?.message.hasPrefix("partition p02 of \(path) is locked by a live process") == true)
        owner.release()

        #expect(try PoolDirectory.open(path).partitionCount == 4)
        #expect(try Self.contents(path) == before)
        #expect(!FileManager.default.fileExists(atPath: "\(path)/\(PoolDirectory.repartitionFolder)"))
    }

    @Test("a run interrupted while building is rebuilt from the untouched files")
    func interruptedBuild() throws {
        let before = try Self.contents(path)
        let leftover = "\(path)/\(PoolDirectory.repartitionFolder)/next"
        try FileManager.default.createDirectory(atPath: leftover, withIntermediateDirectories: true)
        try Data("half a file".utf8).write(to: URL(fileURLWithPath: "\(leftover)/p00.sqlite"))
        let report = try PoolDirectory.repartition(path, partitions: 6)
        #expect(!report.finishedInterrupted)
        expectPlaced(try Self.contents(path), count: 6, before: before)
    }

    @Test(
        "a run interrupted while swapping is finished by the next one",
        arguments: ["before the first move", "after the first move", "after both moves"])
    func interruptedSwap(point: String) throws {
        let before = try Self.contents(path)
        // The complete build a run would leave: repartition a copy, and take its files and pool.json as the build.
        let copy = directory.file("copy")
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        try PoolDirectory.repartition(copy, partitions: 8)
        let staging = "\(path)/\(PoolDirectory.repartitionFolder)"
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(copy)/partitions", toPath: "\(staging)/next")
        try FileManager.default.copyItem(atPath: "\(copy)/pool.json", toPath: "\(staging)/pool.json")
        if point != "before the first move" {
            try FileManager.default.moveItem(atPath: "\(path)/partitions", toPath: "\(staging)/previous")
        }
        if point == "after both moves" {
            try FileManager.default.moveItem(atPath: "\(staging)/next", toPath: "\(path)/partitions")
        }
        #expect(try PoolDirectory.open(path).partitionCount == 4, "pool.json is rewritten last")

        let report = try PoolDirectory.repartition(path, partitions: 8)
        #expect(report.finishedInterrupted)
        #expect(report.previousCount == 4 && report.count == 8)
        #expect(report.sagas == Self.sagaCount, "the figures are recounted from the files")
        #expect(try PoolDirectory.open(path).partitionCount == 8)
        expectPlaced(try Self.contents(path), count: 8, before: before)
        #expect(!FileManager.default.fileExists(atPath: staging))
    }
}
