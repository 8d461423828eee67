// The system SQLite (Debian's libsqlite3-dev), the same library GRDB links. SagaStore binds the hot writes' values
// straight onto GRDB's cached statements through these helpers.
#include <sqlite3.h>

// SQLITE_TRANSIENT is a macro casting -1 to a function pointer, which Swift cannot import: SQLite copies the bytes
// before these return, so the caller's buffer may go away. A NULL pointer with length 0 binds an empty value, not NULL.
static inline int waybill_bind_text(sqlite3_stmt *statement, int index, const char *text, int length) {
    return sqlite3_bind_text(statement, index, text ? text : "", length, SQLITE_TRANSIENT);
}

static inline int waybill_bind_blob(sqlite3_stmt *statement, int index, const void *bytes, int length) {
    return sqlite3_bind_blob(statement, index, bytes ? bytes : "", length, SQLITE_TRANSIENT);
}
