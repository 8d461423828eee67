import Foundation
import GRDB
import PlainText
import SagaEngine

/// Where finished sagas go once they are older than the pool's retention: the `archive` folder of the pool's data
/// directory, one gzip-compressed JSON-lines file per day (the UTC day of each saga's last progress), and an index
/// from saga id to its place in a day file, so `waybill sagas show` reads one saga without unpacking a whole day.
///
/// ```
/// archive/2026-11-05.jsonl.gz   ArchivedSaga lines; one gzip member per archived batch (`zcat` reads them all)
/// archive/index.sqlite          saga id -> day, member offset and length, line within the member
/// ```
///
/// Every worker of a pool appends here. An append runs inside a write transaction of the index, whose lock
/// serializes the appenders of every process; the member is written and synced before the transaction records it,
/// and an append first cuts the day file back to the end of its last recorded member, so a write that a crash cut
/// short is overwritten, never read. A crash between the append and the removal from the partition file archives
/// the saga again later: the index points at the newest copy, and a reader of a whole day file keeps the last line
/// of each saga.
public final class SagaArchive: Sendable {
    /// The index's file name inside the archive folder.
    public static let indexFile = "index.sqlite"

    /// The archive folder.
    public let directory: String
    /// `nil` when a read-only open found no index: an archive nothing was written to yet.
    private let index: DatabasePool?

    /// Where one archived saga's line is.
    public struct Location: Sendable, Hashable {
        public var key: SagaKey
        /// `2026-11-05`: the day file is ``SagaArchive/fileName(day:)``.
        public var day: String
        /// The gzip member holding it: byte offset and length in the day file.
        public var offset: Int64
        public var length: Int64
        /// The line within the member, from 0.
        public var line: Int
    }

    /// Opens the archive in `directory`; a writable open creates the folder and the index.
    ///
    /// Throws ``SagaStoreError`` when the index cannot be opened or created.
    public init(directory: String, readOnly: Bool) throws {
        self.directory = directory
        let indexPath = (directory as NSString).appendingPathComponent(Self.indexFile)
        do {
            if readOnly {
                guard FileManager.default.fileExists(atPath: indexPath) else {
                    index = nil
                    return
                }
            } else {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
            var configuration = GRDB.Configuration()
            configuration.readonly = readOnly
            configuration.busyMode = .timeout(30)
            configuration.label = "waybill.archive"
            let pool = try DatabasePool(path: indexPath, configuration: configuration)
            if !readOnly {
                try Self.migrator.migrate(pool)
                // GRDB's pool commits with synchronous=NORMAL; the index must be on disk before the rows it records
                // leave their partition file, which commits with FULL.
                try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
            }
            index = pool
        } catch {
            throw SagaStoreError.wrap(error, path: indexPath, operation: "opening the saga archive")
        }
    }

    /// The archive of the pool whose data directory is `dataDirectory`.
    public convenience init(dataDirectory: String, readOnly: Bool) throws {
        try self.init(directory: Self.directory(dataDirectory: dataDirectory), readOnly: readOnly)
    }

    /// The archive folder of a pool's data directory.
    public static func directory(dataDirectory: String) -> String {
        (dataDirectory as NSString).appendingPathComponent("archive")
    }

    /// `2026-11-05.jsonl.gz`.
    public static func fileName(day: String) -> String { "\(day).jsonl.gz" }

    /// The UTC day of `time`, `2026-11-05`.
    public static func day(of time: Timestamp) -> String {
        String(UTCTime(millisecondsSinceEpoch: time.milliseconds).text(.seconds).prefix(10))
    }

    /// The path of a day's file.
    public func path(day: String) -> String {
        (directory as NSString).appendingPathComponent(Self.fileName(day: day))
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-archive-index") { db in
            try db.execute(
                sql: """
                    CREATE TABLE members (
                        day TEXT NOT NULL,
                        offset INTEGER NOT NULL,              -- bytes into the day file
                        length INTEGER NOT NULL,
                        sagas INTEGER NOT NULL,
                        written_at INTEGER NOT NULL,
                        PRIMARY KEY (day, offset)
                    ) WITHOUT ROWID;
                    CREATE TABLE sagas (
                        saga_id TEXT NOT NULL,
                        workflow TEXT NOT NULL,
                        day TEXT NOT NULL,
                        offset INTEGER NOT NULL,              -- the member (members.offset)
                        line INTEGER NOT NULL,                -- within the member, from 0
                        status TEXT NOT NULL,
                        updated_at INTEGER NOT NULL,
                        PRIMARY KEY (saga_id, workflow)
                    ) WITHOUT ROWID;
                    """)
        }
        return migrator
    }

    // MARK: - Writing

    /// Appends `sagas` to their day files (one gzip member per day) and records them in the index. When it returns,
    /// they are on disk and findable; only then may their rows leave the partition file.
    public func append(_ sagas: [ArchivedSaga], at now: Timestamp) throws {
        guard let index else {
            throw SagaStoreError(.notWritable, "the saga archive in \(directory) was opened read-only")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for (day, group) in Dictionary(grouping: sagas, by: { Self.day(of: Timestamp(milliseconds: $0.updatedAt)) })
            .sorted(by: { $0.key < $1.key })
        {
            var text: [UInt8] = []
            for saga in group {
                text += try encoder.encode(saga)
                text.append(UInt8(ascii: "\n"))
            }
            let member: [UInt8]
            do {
                member = try Gzip.compress(text)
            } catch {
                throw SagaStoreError(.ioError, "cannot compress archived sagas: \(error)")
            }
            let file = path(day: day)
            do {
                try index.write { db in
                    let end =
                        try Int64.fetchOne(
                            db, sql: "SELECT MAX(offset + length) FROM members WHERE day = ?", arguments: [day]) ?? 0
                    let placed = try DayFile.append(member, to: file, after: end)
                    if placed.kept > 0 {
                        // Whole members the index does not know (an append whose index commit was lost): kept, and
                        // recorded so the next append starts after them.
                        try db.execute(
                            sql: "INSERT INTO members (day, offset, length, sagas, written_at) VALUES (?, ?, ?, 0, ?)",
                            arguments: [day, end, placed.kept, now.milliseconds])
                    }
                    try db.execute(
                        sql: "INSERT INTO members (day, offset, length, sagas, written_at) VALUES (?, ?, ?, ?, ?)",
                        arguments: [day, placed.start, member.count, group.count, now.milliseconds])
                    let statement = try db.cachedStatement(
                        sql: """
                            INSERT INTO sagas (saga_id, workflow, day, offset, line, status, updated_at)
                            VALUES (?, ?, ?, ?, ?, ?, ?)
                            ON CONFLICT (saga_id, workflow) DO UPDATE SET day = excluded.day, offset = excluded.offset,
                                line = excluded.line, status = excluded.status, updated_at = excluded.updated_at
                            """)
                    for (line, saga) in group.enumerated() {
                        try statement.execute(arguments: [
                            saga.sagaId, saga.workflow, day, placed.start, line, saga.status.rawValue, saga.updatedAt,
                        ])
                    }
                }
            } catch {
                throw SagaStoreError.wrap(error, path: file, operation: "archiving \(group.count) sagas")
            }
        }
    }

    // MARK: - Reading

    /// Where the sagas with this id are (one per workflow that has it), or only the one of `workflow`.
    public func locate(sagaId: String, workflow: String? = nil) throws -> [Location] {
        guard let index else { return [] }
        do {
            return try index.read { db in
                let rows =
                    if let workflow {
                        try Row.fetchAll(
                            db,
                            sql: """
                                SELECT s.workflow, s.day, s.offset, m.length, s.line FROM sagas s
                                JOIN members m ON m.day = s.day AND m.offset = s.offset
                                WHERE s.saga_id = ? AND s.workflow = ?
                                """,
                            arguments: [sagaId, workflow])
                    } else {
                        try Row.fetchAll(
                            db,
                            sql: """
                                SELECT s.workflow, s.day, s.offset, m.length, s.line FROM sagas s
                                JOIN members m ON m.day = s.day AND m.offset = s.offset
                                WHERE s.saga_id = ? ORDER BY s.workflow
                                """,
                            arguments: [sagaId])
                    }
                return rows.map { row in
                    Location(
                        key: SagaKey(workflow: row[0], id: sagaId), day: row[1], offset: row[2], length: row[3],
                        line: row[4])
                }
            }
        } catch {
            throw SagaStoreError.wrap(error, path: directory, operation: "looking up saga \(sagaId) in the archive")
        }
    }

    /// The archived saga at `location`.
    ///
    /// Throws ``SagaStoreError/Code/corruptState`` when the day file does not hold what the index says.
    public func load(_ location: Location) throws -> ArchivedSaga {
        try decode(location, lines: try lines(of: location))
    }

    /// The lines of the gzip member holding `location`.
    private func lines(of location: Location) throws -> [ArraySlice<UInt8>] {
        let file = path(day: location.day)
        guard let handle = FileHandle(forReadingAtPath: file) else {
            throw SagaStoreError(
                .cannotOpen, "the archive file \(file) is missing; restore it from a backup to read \(location.key)")
        }
        defer { try? handle.close() }
        do {
            try handle.seek(toOffset: UInt64(location.offset))
            let member = try handle.read(upToCount: Int(location.length)) ?? Data()
            let text = try Gzip.decompress(Array(member))
            return text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        } catch {
            throw SagaStoreError(
                .corruptState,
                "cannot read \(location.key) from \(file) (member at byte \(location.offset)): \(error). Restore the "
                    + "file from a backup.")
        }
    }

    /// The saga at `location` among its member's `lines`.
    private func decode(_ location: Location, lines: [ArraySlice<UInt8>]) throws -> ArchivedSaga {
        let file = path(day: location.day)
        do {
            guard location.line < lines.count else {
                throw SagaStoreError(
                    .corruptState, "\(file) has no line \(location.line) at byte \(location.offset)")
            }
            let saga = try JSONDecoder().decode(ArchivedSaga.self, from: Data(lines[location.line]))
            guard saga.key == location.key else {
                throw SagaStoreError(
                    .corruptState, "\(file) holds \(saga.key) where the index expects \(location.key)")
            }
            return saga
        } catch let error as SagaStoreError {
            throw error
        } catch {
            throw SagaStoreError(
                .corruptState,
                "cannot read \(location.key) from \(file) (member at byte \(location.offset)): \(error). Restore the "
                    + "file from a backup.")
        }
    }

    /// Every archived saga whose last progress is at or after `since` (all when `nil`), of `workflow` when given,
    /// oldest day first; each gzip member is unpacked once. A saga archived twice comes back once, as its newest copy.
    public func sagas(updatedSince since: Timestamp?, workflow: String?) throws -> [ArchivedSaga] {
        guard let index else { return [] }
        let rows: [Row]
        do {
            rows = try index.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT s.saga_id, s.workflow, s.day, s.offset, m.length, s.line FROM sagas s
                        JOIN members m ON m.day = s.day AND m.offset = s.offset
                        WHERE s.updated_at >= ? AND (?2 IS NULL OR s.workflow = ?2)
                        ORDER BY s.day, s.offset, s.line
                        """,
                    arguments: [since?.milliseconds ?? Int64.min, workflow])
            }
        } catch {
            throw SagaStoreError.wrap(error, path: directory, operation: "listing archived sagas")
        }
        var sagas: [ArchivedSaga] = []
        var member: (day: String, offset: Int64, lines: [ArraySlice<UInt8>])?
        for row in rows {
            let location = Location(
                key: SagaKey(workflow: row[1], id: row[0]), day: row[2], offset: row[3], length: row[4], line: row[5])
            if member?.day != location.day || member?.offset != location.offset {
                member = (location.day, location.offset, try lines(of: location))
            }
            sagas.append(try decode(location, lines: member?.lines ?? []))
        }
        return sagas
    }

    /// How many sagas the archive holds.
    public func count() throws -> Int {
        guard let index else { return 0 }
        do {
            return try index.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sagas") ?? 0 }
        } catch {
            throw SagaStoreError.wrap(error, path: directory, operation: "counting archived sagas")
        }
    }

    /// What the archive holds, from its members alone (a few rows per batch, so it stays quick however many sagas
    /// were archived): the saga lines written, and the day files. A saga archived twice counts twice.
    public func summary() throws -> (lines: Int, days: Int) {
        guard let index else { return (0, 0) }
        do {
            return try index.read { db in
                let row = try Row.fetchOne(db, sql: "SELECT COALESCE(SUM(sagas), 0), COUNT(DISTINCT day) FROM members")
                return (row?[0] ?? 0, row?[1] ?? 0)
            }
        } catch {
            throw SagaStoreError.wrap(error, path: directory, operation: "summing up the saga archive")
        }
    }

    /// Closes the index.
    public func close() throws {
        try index?.close()
    }
}

/// The day files' raw writes (apart from ``SagaArchive``, whose `close()` would shadow the system call).
private enum DayFile {
    /// Appends `bytes` to `path` (created when missing) after its first `offset` bytes, the members the index knows,
    /// and syncs it (and the folder, for a new file). What lies beyond `offset` is kept when it is whole gzip members
    /// (written by an append whose index commit was lost) and cut off from the first member that is not (a write a
    /// crash interrupted), so no whole member is ever lost. Returns where the new member starts and how many bytes of
    /// unindexed whole members were kept before it.
    static func append(_ bytes: [UInt8], to path: String, after offset: Int64) throws -> (start: Int64, kept: Int64) {
        let created = !FileManager.default.fileExists(atPath: path)
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw posixError("cannot open \(path)") }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw posixError("cannot read the size of \(path)") }
        let size = Int64(status.st_size)
        guard size >= offset else {
            throw SagaStoreError(
                .corruptState,
                "\(path) is \(size) bytes but the archive index records \(offset) bytes of it; the file was cut, "
                    + "moved or replaced. Put the whole file back to archive more sagas of that day.")
        }
        var kept: Int64 = 0
        if size > offset {
            var tail = [UInt8](repeating: 0, count: Int(size - offset))
            let read = tail.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, off_t(offset)) }
            guard read == tail.count else { throw posixError("cannot read the end of \(path)") }
            kept = Int64(Gzip.wholeMembersLength(tail))
            if offset + kept < size, ftruncate(descriptor, off_t(offset + kept)) != 0 {
                throw posixError("cannot cut \(path) back to its last whole member")
            }
        }
        let start = offset + kept
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes {
                pwrite(descriptor, $0.baseAddress, $0.count, off_t(start) + off_t(written))
            }
            guard count > 0 else {
                if count < 0 && errno == EINTR { continue }
                throw posixError("cannot write \(path)")
            }
            written += count
        }
        guard fsync(descriptor) == 0 else { throw posixError("cannot sync \(path)") }
        if created { FileSync.directory(of: path) }
        return (start, kept)
    }

    private static func posixError(_ what: String) -> SagaStoreError {
        let code = errno
        return SagaStoreError(code == ENOSPC ? .diskFull : .ioError, "\(what): \(String(cString: strerror(code)))")
    }
}
