import Foundation
import GRDB

/// Read-only access to one store file for operators: the `waybill sagas|workflows` commands (and anything else that
/// must show what a worker stored without being the worker).
///
/// It opens the file with `SQLITE_OPEN_READONLY` on one connection, so it works while the worker is stopped and
/// never blocks it (WAL readers do not take the write lock), and it checks on open that the file's schema version is
/// the one this binary reads. ``read(_:_:)`` runs a body in one read transaction, so everything the body asks of its
/// ``StoreSnapshot`` comes from one consistent snapshot. Every query behind the snapshot is written for the schema's
/// indexes; ``StoreSnapshot/queryPlan(for:status:)`` shows SQLite's plan for a listing.
public final class SagaStoreReader: Sendable {
    /// The file.
    public let path: String
    private let queue: DatabaseQueue

    /// Opens `path` read-only and checks that it is a Waybill store of the schema version this binary reads.
    ///
    /// `memoryMapSize` lets SQLite map that much of the file instead of reading it page by page; off by default
    /// (measured on a 2.5 GB file, mapping costs more in page faults and unmapping than it saves for one command).
    ///
    /// Throws ``SagaStoreError/Code/cannotOpen`` when the file does not exist and
    /// ``SagaStoreError/Code/schemaMismatch`` (naming both versions) when its schema is not this binary's.
    public init(path: String, memoryMapSize: Int64 = 0) throws(SagaStoreError) {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else {
            throw SagaStoreError(
                .cannotOpen,
                "\(path) does not exist: check the file given with --db, or read the pool's partition files with "
                    + "--data-dir DIR")
        }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(5)
        configuration.label = "waybill.reader"
        if memoryMapSize > 0 {
            configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA mmap_size = \(memoryMapSize)") }
        }
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration)
            try queue.read { db in try Schema.check(db, path: path, canMigrate: false) }
        } catch {
            throw SagaStoreError.wrap(error, path: path, operation: "opening", readOnly: true)
        }
    }

    /// Runs `body` in one read transaction and returns what it returns.
    ///
    /// Errors the body throws itself pass through unchanged; SQLite and state-decoding failures become
    /// ``SagaStoreError`` values that name the file and `operation` (e.g. "listing sagas"). Do not keep the snapshot
    /// past the body: it is only valid inside it.
    public func read<T>(_ operation: String, _ body: (StoreSnapshot) throws -> T) throws -> T {
        do {
            return try queue.read { db in try body(StoreSnapshot(db)) }
        } catch let error as DatabaseError {
            throw SagaStoreError.wrap(error, path: path, operation: operation, readOnly: true)
        } catch let error as StateCodecError {
            throw SagaStoreError.wrap(error, path: path, operation: operation, readOnly: true)
        }
    }
}
