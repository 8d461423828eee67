import CSQLite
import Foundation
import GRDB

/// Values bound straight onto a cached statement's SQLite handle, in parameter order, for the worker's hot reads and
/// writes. `StatementArguments` turns every value into an existential and then into a `DatabaseValue`; on the hot path
/// that was about 9 % of a worker's instructions (callgrind, two-shipment orders). Parameters left unbound are NULL,
/// which pads the fixed-size `IN (...)` lists for free.
///
/// Run the statement with GRDB as usual once bound (`execute()`, or a cursor without arguments), so GRDB's checks and
/// transaction bookkeeping still apply.
struct DirectBinding {
    let statement: Statement
    private var index: CInt = 1

    /// Resets `statement` and clears its bindings.
    init(_ statement: Statement) {
        // After a failed step SQLite reports that error again on the next reset, and GRDB's own reset would trap on it:
        // reset here first, ignoring what it reports (the failure was thrown when it happened).
        sqlite3_reset(statement.sqliteStatement)
        // Marks the statement's (empty) arguments as bound, so GRDB runs it with the values bound below.
        statement.setUncheckedArguments(StatementArguments())
        self.statement = statement
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

    /// Runs the statement to its end (an INSERT, UPDATE or DELETE).
    func execute() throws { try statement.execute() }

    private mutating func advance(_ code: CInt) throws {
        guard code == SQLITE_OK else {
            throw DatabaseError(
                resultCode: ResultCode(rawValue: code), message: "binding parameter \(index) failed",
                sql: statement.sql)
        }
        index += 1
    }
}
