import Foundation
import GRDB
import SagaEngine

/// A milestone event as it was published, kept for replay: the `events` table of a partition file, or an archived
/// saga's ``ArchivedSaga/events``.
public struct StoredEvent: Sendable, Hashable {
    /// Where a stored event sits in its file's order: when it was committed, then its row.
    public struct Position: Sendable, Hashable, Comparable {
        public var at: Timestamp
        public var row: Int64

        public init(at: Timestamp, row: Int64) {
            self.at = at
            self.row = row
        }

        public static func < (lhs: Position, rhs: Position) -> Bool {
            (lhs.at, lhs.row) < (rhs.at, rhs.row)
        }
    }

    /// The row in its partition file (ascending is commit order); for an archived event, its place in the saga's list.
    public var row: Int64
    /// The CloudEvents `id`, also the AMQP `message_id`: a replay sends it unchanged.
    public var eventId: String
    /// The saga that published it.
    public var key: SagaKey
    /// The exchange it went to.
    public var exchange: String
    /// The routing key: the event type (`order.shipped`).
    public var type: String
    /// The `content_type` it was published with.
    public var contentType: String?
    /// Its application headers.
    public var headers: [String: String]
    /// The body, exactly as first published.
    public var body: [UInt8]
    /// When its saga's change was committed.
    public var at: Timestamp

    /// Describes one.
    public init(
        row: Int64, eventId: String, key: SagaKey, exchange: String, type: String, contentType: String?,
        headers: [String: String], body: [UInt8], at: Timestamp
    ) {
        self.row = row
        self.eventId = eventId
        self.key = key
        self.exchange = exchange
        self.type = type
        self.contentType = contentType
        self.headers = headers
        self.body = body
        self.at = at
    }

    /// Its place in its file's order.
    public var position: Position { Position(at: at, row: row) }
}

extension StoreSnapshot {
    /// Whether the file keeps events (files no worker has opened since events were kept have no table).
    private func keepsEvents() throws -> Bool {
        try db.tableExists("events")
    }

    /// The stored events of one saga, in the order it published them.
    public func events(of key: SagaKey) throws -> [StoredEvent] {
        guard try keepsEvents() else { return [] }
        return try Row.fetchAll(
            db,
            sql: "SELECT \(Self.eventColumns) FROM events WHERE workflow = ? AND saga_id = ? ORDER BY id",
            arguments: [key.workflow, key.id]
        ).map(Self.storedEvent)
    }

    /// Up to `limit` stored events committed in `from ..< until` (either end open when `nil`), of `workflow` when
    /// given, after `position`, in commit order (time, then row): page through a window by passing the last one's
    /// ``StoredEvent/position``.
    public func events(
        from: Timestamp?, until: Timestamp?, workflow: String?, after position: StoredEvent.Position?, limit: Int
    ) throws -> [StoredEvent] {
        guard try keepsEvents() else { return [] }
        var conditions: [String] = []
        var arguments: StatementArguments = []
        if let position {
            conditions.append("(at, id) > (?, ?)")
            arguments += [position.at.milliseconds, position.row]
        }
        if let from {
            conditions.append("at >= ?")
            arguments += [from.milliseconds]
        }
        if let until {
            conditions.append("at < ?")
            arguments += [until.milliseconds]
        }
        if let workflow {
            conditions.append("workflow = ?")
            arguments += [workflow]
        }
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        arguments += [limit]
        return try Row.fetchAll(
            db, sql: "SELECT \(Self.eventColumns) FROM events \(filter) ORDER BY at, id LIMIT ?", arguments: arguments
        ).map(Self.storedEvent)
    }

    /// How many events the file keeps.
    public func storedEventCount() throws -> Int {
        guard try keepsEvents() else { return 0 }
        return try Int.fetchOne(db, sql: "SELECT count(*) FROM events") ?? 0
    }

    private static let eventColumns =
        "id, event_id, workflow, saga_id, exchange, routing_key, content_type, headers, body, at"

    private static func storedEvent(_ row: Row) -> StoredEvent {
        StoredEvent(
            row: row[0], eventId: row[1], key: SagaKey(workflow: row[2], id: row[3]), exchange: row[4], type: row[5],
            contentType: row[6], headers: OutboxMessage.headers(fromText: row[7]) ?? [:], body: [UInt8](row[8] as Data),
            at: Timestamp(milliseconds: row[9]))
    }
}
