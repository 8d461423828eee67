import GRDB

/// A store failure: a stable ``code`` for programs, a ``message`` for people that says what went wrong and what to
/// do, and the error underneath (usually SQLite's) when there is one.
///
/// Messages name the database file and SQL outcome but never saga data (inputs, outputs, bodies).
public struct SagaStoreError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure it is; the raw values (`store.<snake_case>`) are stable and may appear in logs and
    /// dead-letter reasons.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// The stable identifier, e.g. `store.database_locked`; programs match on it, never on the message.
        public var rawValue: String

        /// Wraps an identifier. Compare against the static codes below; a code made here matches none of them.
        public init(rawValue: String) {
            self.rawValue = rawValue
        }

        /// The stable identifier, as logs and dead-letter reasons show it.
        public var description: String { rawValue }

        /// Another process held the write lock longer than the busy timeout. Retry later; transient.
        public static let databaseLocked = Code(rawValue: "store.database_locked")
        /// The file or its directory cannot be written (permissions, read-only mount) or the store was opened
        /// read-only.
        public static let notWritable = Code(rawValue: "store.not_writable")
        /// The file cannot be opened: missing (in read-only mode), a missing directory, or not a database.
        public static let cannotOpen = Code(rawValue: "store.cannot_open")
        /// The file's schema version is not the one this binary uses: a newer Waybill migrated it, or a read-only
        /// open finds migrations missing (or no Waybill schema at all). The message names both versions.
        public static let schemaMismatch = Code(rawValue: "store.schema_mismatch")
        /// The file or a saga's state blob is damaged.
        public static let corruptState = Code(rawValue: "store.corrupt_state")
        /// The disk is full; the failed write committed nothing. Transient once space is freed.
        public static let diskFull = Code(rawValue: "store.disk_full")
        /// The operating system reported an I/O error.
        public static let ioError = Code(rawValue: "store.io_error")
        /// A message id was already recorded in the inbox: the message was processed before (or twice in a batch).
        public static let duplicateMessage = Code(rawValue: "store.duplicate_message")
        /// A uniqueness or integrity rule of the schema was broken (e.g. an outbox message id used twice).
        public static let constraintViolation = Code(rawValue: "store.constraint_violation")
        /// Any other SQLite failure.
        public static let sqlite = Code(rawValue: "store.sqlite_error")
    }

    /// What kind of failure it is: branch on this, since the message's wording may change.
    public var code: Code
    /// What went wrong and what to do about it.
    public var message: String
    /// The error that caused it, if any: a GRDB `DatabaseError` for SQLite failures, or the reason a saga's state
    /// could not be decoded.
    public var cause: (any Error)?

    /// Makes an error; `message` must say what to do, not only what happened.
    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// `code: message (SQLite n: ...)`, or the cause in parentheses when it is not SQLite's.
    public var description: String {
        switch cause {
        case let database as DatabaseError:
            "\(code): \(message) (SQLite \(database.extendedResultCode.rawValue): \(database.message ?? "no message"))"
        case let cause?: "\(code): \(message) (\(cause))"
        case nil: "\(code): \(message)"
        }
    }
}

extension SagaStoreError.Code {
    /// A saga's state blob is truncated or malformed; the store reports it as ``corruptState``.
    static let damagedState = Self(rawValue: "store.damaged_state")
    /// A saga's state blob was written by a newer Waybill; the store reports it as ``corruptState``.
    static let unsupportedStateFormat = Self(rawValue: "store.unsupported_state_format")
}

extension SagaStoreError {
    /// Turns any error thrown inside the store into a ``SagaStoreError`` that names `path` and `operation`.
    static func wrap(_ error: any Error, path: String, operation: String) -> SagaStoreError {
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
                    + "Nothing of this batch was saved; fix the caller (message ids must be unique).",
                cause: error)
        default:
            return SagaStoreError(.sqlite, "\(context).", cause: error)
        }
    }
}
