import Foundation
import GRDB
import SagaEngine

/// A milestone event as it was published, kept for replay: the `events` table of a partition file, or an archived
/// saga's ``ArchivedSaga/events``.
public struct StoredEvent: Sendable, Hashable {
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
    /// given, after row `after`, in commit order (the rows' order, which a worker's clock stepping back cannot
    /// change): page through a window by passing the last one's ``StoredEvent/row``.
    public func events(
        from: Timestamp?, until: Timestamp?, workflow: String?, after: Int64?, limit: Int
    ) throws -> [StoredEvent] {
        guard try keepsEvents() else { return [] }
        // The window's rows lie between the first row committed at or after `from` and the last one before `until`
        // (both found through events_by_at); the times still filter what lies between.
        var low = after ?? 0
        if let from {
            guard
                let first = try Int64.fetchOne(
                    db, sql: "SELECT min(id) FROM events WHERE at >= ?", arguments: [from.milliseconds])
            else { return [] }
            low = max(low, first - 1)
        }
        var conditions = ["id > ?"]
        var arguments: StatementArguments = [low]
        if let until {
            guard
                let last = try Int64.fetchOne(
                    db, sql: "SELECT max(id) FROM events WHERE at < ?", arguments: [until.milliseconds])
            else { return [] }
            conditions.append("id <= ?")
            arguments += [last]
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
        arguments += [limit]
        return try Row.fetchAll(
            db,
            sql:
                "SELECT \(Self.eventColumns) FROM events WHERE \(conditions.joined(separator: " AND ")) ORDER BY id LIMIT ?",
            arguments: arguments
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
