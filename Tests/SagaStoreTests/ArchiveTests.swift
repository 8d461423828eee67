import Foundation
import GRDB
import Testing
import WaybillDefinition
import WaybillTestSupport

@testable import SagaEngine
@testable import SagaStore

/// The archive: gzip members appended per day, the index that finds one saga, and the store's side (which sagas may
/// leave a partition file, and leaving it with the whole journal).
@Suite struct ArchiveTests {
    /// A change that leaves saga `id` with `status` at `at`, with two journal lines and no outbox message.
    static func ended(_ id: String, _ status: SagaStatus, at: Int64, outbox: [OutboxMessage] = []) -> SagaChange {
        var instance = Fixtures.runningInstance(id: id, updatedAt: at)
        instance.status = status
        return SagaChange(
            key: Fixtures.key(id), at: Timestamp(milliseconds: at), instance: instance,
            currentStep: status.isTerminal ? nil : "release", owner: "worker-1",
            journal: [
                JournalEntry(at: Timestamp(milliseconds: at - 1), kind: .reply, step: "release[0]", detail: "reply ok"),
                JournalEntry(at: Timestamp(milliseconds: at), kind: .note, detail: "saga \(status.rawValue)"),
            ],
            outbox: outbox)
    }

    static let day1: Int64 = 1_764_979_200_000  // 2025-12-06T00:00:00Z
    static let day2: Int64 = day1 + 86_400_000

    @Test func gzipMembersBackToBackReadAsOneStream() throws {
        let first = Array("hello\n".utf8)
        let second = Array(String(repeating: "a saga line\n", count: 5_000).utf8)
        let joined = try Gzip.compress(first) + Gzip.compress(second)
        #expect(try Gzip.decompress(joined) == first + second)
        #expect(try Gzip.decompress([]) == [])

        let cut = Array(joined.dropLast(3))
        #expect(throws: Gzip.Failure.self) { try Gzip.decompress(cut) }
        var damaged = joined
        damaged[damaged.count / 2] ^= 0xFF
        #expect(throws: Gzip.Failure.self) { try Gzip.decompress(damaged) }
    }

    @Test("only finished sagas older than the cut-off, without unconfirmed outbox rows, are offered for archiving")
    func finishedSagasSelection() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.commit([
            Self.ended("old-completed", .completed, at: 1_000),
            Self.ended("old-compensated", .compensated, at: 1_100),
            Self.ended("old-cancelled", .cancelled, at: 1_200),
            Self.ended("old-suspended", .suspended, at: 1_300),
            Self.ended("old-running", .running, at: 1_400),
            Self.ended("new-completed", .completed, at: 9_000),
            Self.ended("unsent", .completed, at: 1_500, outbox: [Fixtures.outbox("m-unsent")]),
        ])
        let now = Timestamp(milliseconds: 10_000)
        let offered = try store.finishedSagas(before: Timestamp(milliseconds: 5_000), limit: 10, now: now)
        #expect(offered.map(\.sagaId) == ["old-completed", "old-compensated", "old-cancelled"])
        #expect(try store.finishedSagas(before: Timestamp(milliseconds: 5_000), limit: 2, now: now).count == 2)

        let first = try #require(offered.first)
        #expect(first.journal.map(\.detail) == ["reply ok", "saga completed"])
        #expect(first.state.status == .completed)
        #expect(first.archivedAt == 10_000)
        #expect(first.record.row.updatedAt == Timestamp(milliseconds: 1_000))
    }

    @Test("removing archived sagas takes their journal too, skips one changed since, and the journal stays append-only")
    func removeArchived() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.commit([
            Self.ended("a", .completed, at: 1_000), Self.ended("b", .compensated, at: 1_000),
            Self.ended("c", .completed, at: 1_000),
        ])
        let before = try store.counts()
        #expect(before["sagas"] == 3 && before["journal"] == 6)

        // "c" moved on after it was archived (its last progress is no longer the archived one), and "b" got a journal
        // line (an ignored late reply) without moving: both stay.
        let mark = ArchiveMark(updatedAt: Timestamp(milliseconds: 1_000), lastJournalId: 6)
        try store.commit([Self.ended("c", .completed, at: 2_000)])
        try store.appendJournal(
            [JournalEntry(at: Timestamp(milliseconds: 1_500), kind: .ignored, detail: "late reply")],
            for: Fixtures.key("b"), at: Timestamp(milliseconds: 1_500))
        let removed = try store.removeArchived([
            Fixtures.key("a"): mark, Fixtures.key("b"): mark, Fixtures.key("c"): mark, Fixtures.key("gone"): mark,
        ])
        #expect(removed == [Fixtures.key("a")])
        let after = try store.counts()
        #expect(after["sagas"] == 2 && after["journal"] == 7)
        #expect(try store.journal(of: Fixtures.key("b")).count == 3, "the late line is not lost")
        #expect(try store.journal(of: Fixtures.key("a")).isEmpty)

        // Outside the archiver's transaction the journal still refuses deletes and updates.
        #expect(throws: (any Error).self) {
            try store.pool.write { db in try db.execute(sql: "DELETE FROM journal") }
        }
        #expect(throws: (any Error).self) {
            try store.pool.write { db in try db.execute(sql: "UPDATE journal SET detail = 'x'") }
        }
        #expect(try store.counts()["journal"] == 7)
        #expect(
            try store.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM journal_archive_permit") } == 0)
    }

    @Test("archived sagas are found by id and read back whole; one gzip member per day and batch")
    func appendAndLoad() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.commit([
            Self.ended("o-1", .completed, at: Self.day1 + 5_000),
            Self.ended("o-2", .compensated, at: Self.day1 + 6_000),
            Self.ended("o-3", .completed, at: Self.day2 + 1_000),
        ])
        let now = Timestamp(milliseconds: Self.day2 + 10_000)
        let sagas = try store.finishedSagas(before: now, limit: 10, now: now)
        let archive = try SagaArchive(directory: directory.file("archive"), readOnly: false)
        try archive.append(Array(sagas.prefix(1)), at: now)
        try archive.append(Array(sagas.dropFirst()), at: now)
        #expect(try archive.count() == 3)

        let location = try #require(try archive.locate(sagaId: "o-2").first)
        #expect(location.day == "2025-12-06")
        #expect(location.line == 0, "o-2 is the first line of the second member of that day")
        #expect(location.offset > 0)
        let loaded = try archive.load(location)
        // The one thing JSON does not keep: an output that is JSON null reads back as no output.
        var expected = sagas[1]
        #expect(expected.state.steps[0].branches[0].output == .null)
        expected.state.steps[0].branches[0].output = nil
        #expect(loaded == expected)
        #expect(loaded.journalLines.map(\.detail) == ["reply ok", "saga compensated"])
        #expect(try archive.locate(sagaId: "o-2", workflow: "other").isEmpty)
        #expect(try archive.locate(sagaId: "nope").isEmpty)

        // A whole day file is JSON lines: the two members of 2025-12-06 read as one stream.
        let file = try Data(contentsOf: URL(fileURLWithPath: archive.path(day: "2025-12-06")))
        let lines = try Gzip.decompress(Array(file)).split(separator: UInt8(ascii: "\n"))
        #expect(lines.count == 2)
        let ids = try lines.map { try JSONText.decode(Array($0))["sagaId"] }
        #expect(ids == ["o-1", "o-2"])
        #expect(FileManager.default.fileExists(atPath: archive.path(day: "2025-12-07")))

        // A reader opens the same archive read-only.
        let reader = try SagaArchive(directory: directory.file("archive"), readOnly: true)
        #expect(try reader.load(try #require(try reader.locate(sagaId: "o-3").first)).status == .completed)
        #expect(throws: SagaStoreError.self) { try reader.append(sagas, at: now) }
        #expect(try SagaArchive(directory: directory.file("none"), readOnly: true).locate(sagaId: "o-1").isEmpty)
    }

    @Test("an append after a crash keeps whole members the index lost and cuts a torn tail, so no member is lost")
    func tornTailIsCutOffAndWholeMembersKept() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.commit((1...4).map { Self.ended("o-\($0)", .completed, at: Self.day1) })
        let now = Timestamp(milliseconds: Self.day2)
        let sagas = try store.finishedSagas(before: now, limit: 10, now: now)
        let archive = try SagaArchive(directory: directory.file("archive"), readOnly: false)
        try archive.append([sagas[0]], at: now)
        let path = archive.path(day: "2025-12-06")
        let first = try Data(contentsOf: URL(fileURLWithPath: path))

        // A whole member whose index commit was lost, then one cut short by a crash.
        let lost = try Gzip.compress(Array("{\"sagaId\":\"lost\"}\n".utf8))
        let torn = try Gzip.compress(Array("{\"sagaId\":\"torn\"}\n".utf8)).prefix(10)
        try (first + lost + torn).write(to: URL(fileURLWithPath: path))
        #expect(throws: Gzip.Failure.self) { try Gzip.decompress(Array(first + lost + torn)) }

        try archive.append([sagas[1]], at: now)
        let repaired = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(repaired.prefix(first.count + lost.count) == first + lost, "the unindexed whole member is kept")
        let lines = try Gzip.decompress(Array(repaired)).split(separator: UInt8(ascii: "\n"))
        #expect(lines.count == 3)
        #expect(try archive.load(try #require(try archive.locate(sagaId: "o-2").first)).sagaId == "o-2")
        #expect(try archive.load(try #require(try archive.locate(sagaId: "o-1").first)).sagaId == "o-1")

        // The index lost altogether: the day file is kept whole and appended to, never cut.
        try archive.close()
        for suffix in ["", "-wal", "-shm"] {
            try? FileManager.default.removeItem(atPath: directory.file("archive/\(SagaArchive.indexFile)\(suffix)"))
        }
        let fresh = try SagaArchive(directory: directory.file("archive"), readOnly: false)
        try fresh.append([sagas[2]], at: now)
        let kept = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(kept.prefix(repaired.count) == repaired)
        #expect(try Gzip.decompress(Array(kept)).split(separator: UInt8(ascii: "\n")).count == 4)
        #expect(try fresh.load(try #require(try fresh.locate(sagaId: "o-3").first)).sagaId == "o-3")

        // A file shorter than the index says was cut or moved away: refused, not overwritten.
        try kept.prefix(5).write(to: URL(fileURLWithPath: path))
        #expect {
            try fresh.append([sagas[3]], at: now)
        } throws: { error in
            (error as? SagaStoreError)?.code == .corruptState
        }
    }
}
