import GRDB

/// The store's schema: named, append-only migrations in raw SQL. Never edit a registered migration; add a new one.
///
/// Times are integer milliseconds since the Unix epoch (`datetime(at / 1000, 'unixepoch')` in the sqlite3 shell).
enum Schema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-sagas-journal-inbox-outbox-timers") { db in
            try db.execute(
                sql: """
                    CREATE TABLE workflow_definitions (
                        hash TEXT NOT NULL PRIMARY KEY,       -- SHA-256 of the source text, lowercase hex
                        name TEXT NOT NULL,
                        version INTEGER NOT NULL,
                        source TEXT NOT NULL,
                        first_seen_at INTEGER NOT NULL
                    );
                    CREATE INDEX workflow_definitions_by_name ON workflow_definitions (name, version);

                    CREATE TABLE sagas (
                        workflow TEXT NOT NULL,
                        saga_id TEXT NOT NULL,
                        definition_hash TEXT NOT NULL,
                        version INTEGER NOT NULL,
                        status TEXT NOT NULL,                 -- running, compensating, completed, ...
                        current_step TEXT,                    -- NULL once past the last step
                        owner TEXT,                           -- worker id
                        started_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL,          -- last progress
                        failure_code TEXT,
                        state BLOB NOT NULL,                  -- SagaStateFormat
                        PRIMARY KEY (workflow, saga_id)
                    );
                    CREATE INDEX sagas_by_status ON sagas (status, updated_at);
                    CREATE INDEX sagas_by_step ON sagas (workflow, current_step);
                    CREATE INDEX sagas_by_updated_at ON sagas (updated_at);

                    CREATE TABLE journal (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        workflow TEXT NOT NULL,
                        saga_id TEXT NOT NULL,
                        at INTEGER NOT NULL,
                        kind TEXT NOT NULL,                   -- start, reply, timer, returned, operator, ignored, ...
                        step TEXT,
                        actor TEXT,                           -- operator name; NULL for the worker
                        detail TEXT NOT NULL
                    );
                    CREATE INDEX journal_by_saga ON journal (workflow, saga_id, id);
                    CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
                    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
                    CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
                    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;

                    CREATE TABLE inbox (
                        message_id TEXT NOT NULL PRIMARY KEY,
                        at INTEGER NOT NULL
                    ) WITHOUT ROWID;

                    CREATE TABLE outbox (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- publish order
                        message_id TEXT NOT NULL UNIQUE,
                        workflow TEXT NOT NULL,
                        saga_id TEXT NOT NULL,
                        exchange TEXT NOT NULL,
                        routing_key TEXT NOT NULL,
                        content_type TEXT,
                        correlation_id TEXT,
                        reply_to TEXT,
                        headers TEXT NOT NULL,                -- flat JSON object of strings
                        mandatory INTEGER NOT NULL,
                        body BLOB NOT NULL,
                        created_at INTEGER NOT NULL
                    );

                    CREATE TABLE timers (
                        workflow TEXT NOT NULL,
                        saga_id TEXT NOT NULL,
                        timer_id TEXT NOT NULL,
                        kind TEXT NOT NULL,                   -- replyTimeout, retry
                        due_at INTEGER NOT NULL,
                        PRIMARY KEY (workflow, saga_id, timer_id)
                    ) WITHOUT ROWID;
                    CREATE INDEX timers_by_due_at ON timers (due_at);
                    """)
        }
        migrator.registerMigration("v2-inbox-by-time") { db in
            // Lets the worker forget old inbox marks without scanning the table (SagaStore.pruneInbox).
            try db.execute(sql: "CREATE INDEX inbox_by_at ON inbox (at);")
        }
        migrator.registerMigration("v3-partition-fence") { db in
            // The fence of a pool partition (SagaStore.claim): the current epoch and its owner, one row; every write
            // of a claimed store checks the epoch. The history keeps every claim, so a check can prove that no two
            // workers held the partition at once.
            try db.execute(
                sql: """
                    CREATE TABLE fence (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        epoch INTEGER NOT NULL,
                        owner TEXT NOT NULL,
                        claimed_at INTEGER NOT NULL
                    );
                    CREATE TABLE fence_history (
                        epoch INTEGER PRIMARY KEY,
                        owner TEXT NOT NULL,
                        claimed_at INTEGER NOT NULL,
                        released_at INTEGER
                    );
                    """)
        }
        migrator.registerMigration("v4-journal-facts") { db in
            // Each journal line's event as data (JournalEntry.facts), beside the human line; NULL for older lines.
            try db.execute(sql: "ALTER TABLE journal ADD COLUMN facts TEXT;")
        }
        migrator.registerMigration("v5-journal-archive-permit") { db in
            // The journal stays append-only, except for the archiver (SagaStore.removeArchived): its transaction holds
            // the one permit row while it deletes the journal of sagas it moved to the archive, and removes it before
            // committing, so no other writer ever sees it.
            try db.execute(
                sql: """
                    CREATE TABLE journal_archive_permit (id INTEGER PRIMARY KEY CHECK (id = 1));
                    DROP TRIGGER journal_no_delete;
                    CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
                    WHEN NOT EXISTS (SELECT 1 FROM journal_archive_permit)
                    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
                    """)
        }
        migrator.registerMigration("v6-waits") { db in
            // Sagas waiting for a message (a wait step), found by what a message must carry: its exchange, the
            // binding key, the key expression and the value the saga waits for. wait_id is the wait's timer id.
            try db.execute(
                sql: """
                    CREATE TABLE waits (
                        workflow TEXT NOT NULL,
                        saga_id TEXT NOT NULL,
                        wait_id TEXT NOT NULL,
                        exchange TEXT NOT NULL,
                        routing_key TEXT NOT NULL,
                        key_expression TEXT NOT NULL,
                        match_value TEXT NOT NULL,
                        PRIMARY KEY (workflow, saga_id, wait_id)
                    ) WITHOUT ROWID;
                    CREATE INDEX waits_by_match ON waits (exchange, routing_key, key_expression, match_value);
                    """)
        }
        migrator.registerMigration("v7-events") { db in
            // Every milestone event as it was published, kept for replay (`waybill events replay`) as long as the
            // journal keeps its saga, and archived with it. Written in the saga's commit beside the outbox row,
            // which goes once confirmed; this one stays. Only the archiver deletes (under the journal's permit). The
            // body is written here only: the event's outbox row has an empty one and is read back with this one.
            try db.execute(
                sql: """
                    CREATE TABLE events (
                        id INTEGER PRIMARY KEY,               -- commit order within the file
                        event_id TEXT NOT NULL,               -- the CloudEvents id (the AMQP message_id)
                        workflow TEXT NOT NULL,
                        saga_id TEXT NOT NULL,
                        exchange TEXT NOT NULL,
                        routing_key TEXT NOT NULL,            -- the event type
                        content_type TEXT,
                        headers TEXT NOT NULL,                -- flat JSON object of strings
                        body BLOB NOT NULL,
                        at INTEGER NOT NULL
                    );
                    CREATE INDEX events_by_saga ON events (workflow, saga_id);
                    CREATE INDEX events_by_at ON events (at);
                    CREATE TRIGGER events_no_update BEFORE UPDATE ON events
                    BEGIN SELECT RAISE(ABORT, 'stored events are append-only'); END;
                    CREATE TRIGGER events_no_delete BEFORE DELETE ON events
                    WHEN NOT EXISTS (SELECT 1 FROM journal_archive_permit)
                    BEGIN SELECT RAISE(ABORT, 'stored events are append-only'); END;
                    """)
        }
        migrator.registerMigration("v8-outbox-without-message-index") { db in
            // Nothing looks an outbox row up by its message id, and keeping that unique index cost every published
            // message an insert and a delete at a random place in it (a worker writes and deletes some 16 rows per
            // order). The table is rebuilt without it; its rows, ids and id sequence are kept.
            try db.execute(
                sql: """
                    CREATE TABLE outbox_v8 (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- publish order
                        message_id TEXT NOT NULL,
                        workflow TEXT NOT NULL,
                        saga_id TEXT NOT NULL,
                        exchange TEXT NOT NULL,
                        routing_key TEXT NOT NULL,
                        content_type TEXT,
                        correlation_id TEXT,
                        reply_to TEXT,
                        headers TEXT NOT NULL,                -- flat JSON object of strings
                        mandatory INTEGER NOT NULL,
                        body BLOB NOT NULL,
                        created_at INTEGER NOT NULL
                    );
                    INSERT INTO outbox_v8 SELECT id, message_id, workflow, saga_id, exchange, routing_key, content_type,
                        correlation_id, reply_to, headers, mandatory, body, created_at FROM outbox ORDER BY id;
                    DELETE FROM sqlite_sequence WHERE name = 'outbox_v8';
                    INSERT INTO sqlite_sequence (name, seq) SELECT 'outbox_v8', seq FROM sqlite_sequence
                        WHERE name = 'outbox';
                    DROP TABLE outbox;
                    ALTER TABLE outbox_v8 RENAME TO outbox;
                    """)
        }
        return migrator
    }

    /// The last migration the read-only queries depend on. A read-only open (the operator commands) accepts a file
    /// that has every migration up to this one, even when later ones are missing (they only add what the worker
    /// needs, like the inbox index); move it forward when a migration adds a table or column the reads use.
    static let oldestReadable = "v1-sagas-journal-inbox-outbox-timers"

    /// The migrations this binary knows, oldest first; the schema version is their count.
    static var knownMigrations: [String] { migrator.migrations }

    /// Where a file's schema stands against this binary's.
    enum Standing: Equatable {
        /// Every migration the file has is known, and none is missing.
        case current
        /// Known migrations are missing (a new file, or one written by an older Waybill).
        case behind
        /// The file has migrations this binary does not know: a newer Waybill wrote it.
        case ahead
    }

    /// Reads the file's applied migrations and compares them with ``knownMigrations``.
    static func standing(_ db: Database) throws -> (Standing, applied: [String]) {
        guard try db.tableExists("grdb_migrations") else { return (.behind, []) }
        let applied = try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY identifier")
        let known = knownMigrations
        if applied.contains(where: { !known.contains($0) }) { return (.ahead, applied) }
        return (applied.count == known.count ? .current : .behind, applied)
    }

    /// `version N ('identifier')` for a list of applied migrations, in the order this binary registers them (an
    /// unknown identifier sorts last).
    static func describe(_ applied: [String]) -> String {
        guard !applied.isEmpty else { return "no Waybill schema" }
        let known = knownMigrations
        let last = applied.max { (known.firstIndex(of: $0) ?? Int.max) < (known.firstIndex(of: $1) ?? Int.max) }
        return "schema version \(applied.count) ('\(last ?? "")')"
    }

    /// Throws ``SagaStoreError/Code/schemaMismatch`` unless the file's schema is one this binary may use: a writer
    /// migrates a file that is behind, so only `ahead` stops it; a reader cannot migrate, so it needs at least
    /// ``oldestReadable`` and nothing newer than this binary knows. The message names both versions.
    static func check(_ db: Database, path: String, canMigrate: Bool) throws {
        let (standing, applied) = try standing(db)
        let known = knownMigrations
        let mine = "schema version \(known.count) ('\(known.last ?? "")')"
        switch standing {
        case .current:
            return
        case .ahead:
            throw SagaStoreError(
                .schemaMismatch,
                "\(path) has \(describe(applied)), written by a newer Waybill; this binary knows \(mine). Run the "
                    + "Waybill version that wrote the file (an older binary must never write it).")
        case .behind where !canMigrate:
            guard let needed = known.firstIndex(of: oldestReadable) else { return }
            let readable = "schema version \(needed + 1) ('\(oldestReadable)')"
            if applied.isEmpty {
                throw SagaStoreError(
                    .schemaMismatch,
                    "\(path) is not a Waybill store (it has no Waybill schema; this binary reads \(readable) up to "
                        + "\(mine)). Check the path, or start a worker on it once to create the tables.")
            }
            guard known[...needed].allSatisfy(applied.contains) else {
                throw SagaStoreError(
                    .schemaMismatch,
                    "\(path) has \(describe(applied)); this binary reads \(readable) up to \(mine). Start a worker "
                        + "of this version on it once to migrate it, or use the waybill binary that matches the worker."
                )
            }
            return
        case .behind:
            return
        }
    }
}
