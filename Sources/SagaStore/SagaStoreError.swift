import CodedError
import GRDB

/// A store failure: a stable ``CodedError/code`` for programs, a ``CodedError/message`` for people that says what
/// went wrong and what to do, and the error underneath (usually SQLite's) as ``CodedError/cause`` when there is one.
///
/// Match on the code (`catch let error as SagaStoreError where error.code == .databaseLocked`), never on the
/// message. Messages name the database file and SQL outcome but never saga data (inputs, outputs, bodies). The
/// cause is a GRDB `DatabaseError` for SQLite failures, or the reason a saga's state could not be decoded.
public typealias SagaStoreError = CodedError<SagaStoreErrorDomain>

/// The store's error family (``SagaStoreError``): its codes are `store.<snake_case>`.
public enum SagaStoreErrorDomain: ErrorDomain {
    /// `SQLite n: ...` for a GRDB `DatabaseError` (its extended result code and SQLite's message), so
    /// ``SagaStoreError``'s description reads `code: message (SQLite n: ...)`; any other cause as itself.
    public static func describe(cause: any Error) -> String {
        guard let database = cause as? DatabaseError else { return "\(cause)" }
        return "SQLite \(database.extendedResultCode.rawValue): \(database.message ?? "no message")"
    }
}

/// The store's codes: the raw values (`store.<snake_case>`) are stable and may appear in logs and dead-letter
/// reasons.
extension ErrorCode where Domain == SagaStoreErrorDomain {
    /// Another process held the write lock longer than the busy timeout. Retry later; transient.
    public static let databaseLocked = Self(rawValue: "store.database_locked")
    /// The file or its directory cannot be written (permissions, read-only mount) or the store was opened
    /// read-only.
    public static let notWritable = Self(rawValue: "store.not_writable")
    /// The file cannot be opened: missing (in read-only mode), a missing directory, or not a database.
    public static let cannotOpen = Self(rawValue: "store.cannot_open")
    /// The file's schema version is not the one this binary uses: a newer Waybill migrated it, or a read-only
    /// open finds migrations missing (or no Waybill schema at all). The message names both versions.
    public static let schemaMismatch = Self(rawValue: "store.schema_mismatch")
    /// The file or a saga's state blob is damaged.
    public static let corruptState = Self(rawValue: "store.corrupt_state")
    /// The disk is full; the failed write committed nothing. Transient once space is freed.
    public static let diskFull = Self(rawValue: "store.disk_full")
    /// The operating system reported an I/O error.
    public static let ioError = Self(rawValue: "store.io_error")
    /// A message id was already recorded in the inbox: the message was processed before (or twice in a batch).
    public static let duplicateMessage = Self(rawValue: "store.duplicate_message")
    /// A uniqueness or integrity rule of the schema was broken (a row the schema refuses; a bug in the caller).
    public static let constraintViolation = Self(rawValue: "store.constraint_violation")
    /// Another worker claimed this partition after this store did (its epoch moved on): the store refuses every
    /// write, and the worker must stop touching the partition.
    public static let fenced = Self(rawValue: "store.fenced")
    /// A pool's data directory has another partition count than the one asked for (or one out of range).
    public static let partitionCountMismatch = Self(rawValue: "store.partition_count_mismatch")
    /// A live worker already holds the member lock of this worker id in the pool's data directory.
    public static let memberIdInUse = Self(rawValue: "store.member_id_in_use")
    /// An offline pool operation (`waybill pool repartition`) found a live worker, or a lock held by another
    /// process, in the pool's data directory; it changed nothing.
    public static let poolInUse = Self(rawValue: "store.pool_in_use")
    /// Any other SQLite failure.
    public static let sqlite = Self(rawValue: "store.sqlite_error")
}

extension ErrorCode where Domain == SagaStoreErrorDomain {
    /// A saga's state blob is truncated or malformed; the store reports it as ``corruptState``.
    static let damagedState = Self(rawValue: "store.damaged_state")
    /// A saga's state blob was written by a newer Waybill; the store reports it as ``corruptState``.
    static let unsupportedStateFormat = Self(rawValue: "store.unsupported_state_format")
}

extension SagaStoreError {
    /// Turns any error thrown inside the store into a ``SagaStoreError`` that names `path` and `operation`.
    ///
    /// `readOnly` is for the operators' reader (``SagaStoreReader``): its advice speaks of `--db` and read access,
    /// never of settings only a worker has.
    static func wrap(_ error: any Error, path: String, operation: String, readOnly: Bool = false) -> SagaStoreError {
        if let error = error as? SagaStoreError { return error }
        if let error = error as? StateCodecError {
            return SagaStoreError(
                .corruptState,
                "\(operation) in \(path) failed: a saga's state cannot be read (\(error.message)). Run the Waybill "
                    + "version that wrote it, or restore the file from a backup.",
                cause: error)
        }
        guard let error = error as? DatabaseError else {
            return SagaStoreError(.sqlite, "\(operation) in \(path) failed.", cause: error)
        }
        let context = "\(operation) in \(path) failed"
        if readOnly, let reader = readerError(error, context: context) { return reader }
        switch error.resultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return SagaStoreError(
                .databaseLocked,
                "\(context): the database is locked by another connection for longer than the busy timeout. "
                    + "Another process is writing the file (a second worker on the same path?); stop it or raise "
                    + "busyTimeout, then retry.",
                cause: error)
        case .SQLITE_READONLY:
            return SagaStoreError(
                .notWritable,
                "\(context): the file is read-only. Check the permissions of the file, its -wal and -shm files and its "
                    + "directory, or open the store without readOnly.",
                cause: error)
        case .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_AUTH:
            return SagaStoreError(
                .cannotOpen,
                "\(context): the file cannot be opened. Check that the directory exists and is writable by this user "
                    + "(a read-only open needs an existing store).",
                cause: error)
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            return SagaStoreError(
                .corruptState,
                "\(context): the file is not a valid SQLite database or is damaged. Restore it from a backup; do not "
                    + "point a worker at a file that is not its store.",
                cause: error)
        case .SQLITE_FULL:
            return SagaStoreError(
                .diskFull, "\(context): the disk is full. Free space on the volume; nothing of this batch was saved.",
                cause: error)
        case .SQLITE_IOERR:
            return SagaStoreError(
                .ioError,
                "\(context): the operating system reported an I/O error. Check the disk and the kernel log; nothing of "
                    + "this batch was saved.",
                cause: error)
        case .SQLITE_CONSTRAINT:
            if error.message?.contains("inbox.message_id") == true {
                return SagaStoreError(
                    .duplicateMessage,
                    "\(context): a message id is already in the inbox, so that message was processed before or appears "
                        + "twice in the batch. Check processedMessageIds(in:) before applying messages; nothing of "
                        + "this batch was saved.",
                    cause: error)
            }
            return SagaStoreError(
                .constraintViolation,
                "\(context): the batch breaks a uniqueness or integrity rule (\(error.message ?? "constraint")). "
                    + "Nothing of this batch was saved; fix the caller.",
                cause: error)
        default:
            return SagaStoreError(.sqlite, "\(context).", cause: error)
        }
    }

    /// The reader's wording for the failures an operator meets (a locked, unreadable or wrong file).
    private static func readerError(_ error: DatabaseError, context: String) -> SagaStoreError? {
        switch error.resultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            SagaStoreError(
                .databaseLocked, "\(context): the file stayed locked for 5s (a checkpoint or a restore?); try again",
                cause: error)
        case .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_AUTH:
            SagaStoreError(
                .cannotOpen,
                "\(context): the file cannot be opened; check the path and that this user may read it and its -wal "
                    + "and -shm files",
                cause: error)
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            SagaStoreError(
                .corruptState, "\(context): not a SQLite database, or a damaged one; check --db", cause: error)
        default:
            nil
        }
    }
}
