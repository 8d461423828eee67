import CSQLite
import Foundation
import GRDB

/// Values bound straight onto a cached statement's SQLite handle, in parameter order, for the worker's hot reads and
/// writes. `StatementArguments` turns every value into an existential and then into a `DatabaseValue`; on the hot path
/// that was about 9 % of a worker's instructions (callgrind, two-shipment orders). Parameters left unbound are NULL,
/// which pads the fixed-size `IN (...)` lists for free.
///
/// A write runs with ``execute()``, on SQLite directly. A query made with ``init(reading:)`` runs with a GRDB cursor.
struct DirectBinding {
    let statement: Statement
    private var index: CInt = 1

    /// Resets `statement` and clears its bindings, for a write that ``execute()`` runs.
    init(_ statement: Statement) {
        // After a failed step SQLite reports that error again on the next reset (and GRDB's own reset, in
        // `init(reading:)`, would trap on it): reset here first, ignoring what it reports. The failure was thrown when
        // it happened, and the reset statement is usable again.
        sqlite3_reset(statement.sqliteStatement)
        sqlite3_clear_bindings(statement.sqliteStatement)
        self.statement = statement
    }

    /// Resets `statement` and clears its bindings, for a query read with a GRDB cursor (`Row.fetchCursor`): its empty
    /// arguments are marked as bound, so the cursor runs it with the values bound here.
    init(reading statement: Statement) {
        self.init(statement)
        statement.setUncheckedArguments(StatementArguments())
    }

    mutating func bind(_ value: String) throws {
        var value = value
        let code = value.withUTF8 { text in
            text.withMemoryRebound(to: CChar.self) {
                waybill_bind_text(statement.sqliteStatement, index, $0.baseAddress, CInt($0.count))
            }
        }
        try advance(code)
    }

    mutating func bind(_ value: String?) throws {
        if let value { try bind(value) } else { try bindNull() }
    }

    mutating func bind(_ value: Int64) throws {
        try advance(sqlite3_bind_int64(statement.sqliteStatement, index, value))
    }

    mutating func bind(_ value: Int) throws { try bind(Int64(value)) }

    mutating func bind(_ value: Bool) throws { try bind(Int64(value ? 1 : 0)) }

    mutating func bind(_ bytes: [UInt8]) throws {
        let code = bytes.withUnsafeBytes {
            waybill_bind_blob(statement.sqliteStatement, index, $0.baseAddress, CInt($0.count))
        }
        try advance(code)
    }

    mutating func bindNull() throws {
        try advance(sqlite3_bind_null(statement.sqliteStatement, index))
    }

    /// Runs the statement to its end (an INSERT, UPDATE or DELETE) on SQLite directly, inside the transaction GRDB
    /// opened and commits: the hot writes need none of GRDB's per-statement bookkeeping (a store has no transaction
    /// observers, and the autocommit state it tracks only dates transactions), which with its argument handling cost
    /// about 3 % of a worker's instructions. A failure throws a `DatabaseError` with the step's (extended) result code
    /// and SQLite's message, as GRDB does; unlike GRDB, a cancelled task does not stop the statements (the commit,
    /// which GRDB runs, does), and a failed statement stays in GRDB's cache, reset by the next use.
    ///
    /// Never give a statement written this way the SQL text of one run through GRDB with arguments: both would share
    /// GRDB's cached statement, and GRDB would bind its own arguments over these.
    func execute() throws {
        let handle = statement.sqliteStatement
        var code = sqlite3_step(handle)
        while code == SQLITE_ROW { code = sqlite3_step(handle) }
        guard code == SQLITE_DONE else {
            throw DatabaseError(
                resultCode: ResultCode(rawValue: code),
                message: String(cString: sqlite3_errmsg(sqlite3_db_handle(handle))),
                sql: statement.sql)
        }
    }

    private mutating func advance(_ code: CInt) throws {
        guard code == SQLITE_OK else {
            throw DatabaseError(
                resultCode: ResultCode(rawValue: code), message: "binding parameter \(index) failed",
                sql: statement.sql)
        }
        index += 1
    }
}
