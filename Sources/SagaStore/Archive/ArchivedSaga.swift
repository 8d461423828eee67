import SagaEngine
import WaybillDefinition

/// A finished saga as the archive keeps it, one JSON line: its row, its whole state, its whole journal
/// and the milestone events it published.
///
/// ```
/// {"format":1,"workflow":"order-fulfillment","sagaId":"o-1","status":"completed","updatedAt":1765000000000,
///  "archivedAt":1767600000000,"state":{...},"journal":[{"id":1,"at":...,"kind":"start","detail":"..."}], ...}
/// ```
///
/// Times are milliseconds since the Unix epoch. Fields are only ever added; ``format`` changes if one ever changes
/// meaning. The state reads back as it was stored, except that a step or branch output that was JSON `null` reads
/// back as no output.
public struct ArchivedSaga: Sendable, Hashable, Codable {
    /// The format this binary writes.
    public static let currentFormat = 1

    /// One journal line, as ``JournalLine`` has it.
    public struct Line: Sendable, Hashable, Codable {
        /// The journal row id in the partition file it came from: ascending ids are the order things happened.
        public var id: Int64
        /// When it was written.
        public var at: Int64
        /// `start`, `reply`, `timer`, `operator`, `ignored`, ... (``JournalLine/kind``).
        public var kind: String
        /// The step (and branch) concerned.
        public var step: String?
        /// The operator who acted; `nil` for the worker.
        public var actor: String?
        /// The human line.
        public var detail: String
        /// The line as data (``JournalLine/facts``).
        public var facts: JSONValue?
    }

    /// One kept milestone event, as ``StoredEvent`` has it.
    public struct Event: Sendable, Hashable, Codable {
        /// The CloudEvents `id` (the AMQP `message_id`).
        public var id: String
        public var exchange: String
        /// The routing key: the event type.
        public var type: String
        public var contentType: String?
        public var headers: [String: String]
        /// The body as UTF-8 text (a CloudEvents JSON document).
        public var body: String
        /// When its saga's change was committed.
        public var at: Int64
    }

    /// The line's format.
    public var format: Int
    /// The workflow; with ``sagaId`` the saga's key (a reader keeps the copy with the latest ``archivedAt`` per key).
    public var workflow: String
    /// The saga id (the order id).
    public var sagaId: String
    /// The content hash of the definition it ran (the partition files keep the definitions).
    public var definitionHash: String
    /// The workflow version it ran.
    public var version: Int
    /// How it ended: completed, compensated or cancelled.
    public var status: SagaStatus
    /// The step at its cursor when it ended (`nil` past the last step).
    public var currentStep: String?
    /// The worker that last wrote it.
    public var owner: String?
    /// When it started.
    public var startedAt: Int64
    /// Its last progress: the day file it goes to is this day's (UTC).
    public var updatedAt: Int64
    /// The error code of the failure it compensated for.
    public var failureCode: String?
    /// When it moved out of its partition file.
    public var archivedAt: Int64
    /// The engine's whole state.
    public var state: SagaInstance
    /// Every journal line, oldest first.
    public var journal: [Line]
    /// Every milestone event it published, oldest first; `nil` in lines written before events were kept.
    public var events: [Event]?

    /// The archived form of a stored saga and its journal.
    public init(record: SagaRecord, journal: [JournalLine], events: [StoredEvent] = [], archivedAt: Timestamp) {
        let row = record.row
        format = Self.currentFormat
        workflow = row.key.workflow
        sagaId = row.key.id
        definitionHash = row.definitionHash
        version = row.version
        status = row.status
        currentStep = row.currentStep
        owner = row.owner
        startedAt = row.startedAt.milliseconds
        updatedAt = row.updatedAt.milliseconds
        failureCode = row.failureCode
        self.archivedAt = archivedAt.milliseconds
        state = record.instance
        self.journal = journal.map {
            Line(
                id: $0.id, at: $0.at.milliseconds, kind: $0.kind, step: $0.step, actor: $0.actor, detail: $0.detail,
                facts: $0.facts)
        }
        self.events = events.map {
            Event(
                id: $0.eventId, exchange: $0.exchange, type: $0.type, contentType: $0.contentType, headers: $0.headers,
                body: String(decoding: $0.body, as: UTF8.self), at: $0.at.milliseconds)
        }
    }

    /// The saga's key.
    public var key: SagaKey { SagaKey(workflow: workflow, id: sagaId) }

    /// The saga as the readers of a partition file return it.
    public var record: SagaRecord {
        SagaRecord(
            row: SagaRow(
                key: key, definitionHash: definitionHash, version: version, status: status, currentStep: currentStep,
                owner: owner, startedAt: Timestamp(milliseconds: startedAt),
                updatedAt: Timestamp(milliseconds: updatedAt), failureCode: failureCode),
            instance: state)
    }

    /// The kept events as the readers of a partition file return them (rows number them in order).
    public var storedEvents: [StoredEvent] {
        (events ?? []).enumerated().map { index, event in
            StoredEvent(
                row: Int64(index), eventId: event.id, key: key, exchange: event.exchange, type: event.type,
                contentType: event.contentType, headers: event.headers, body: Array(event.body.utf8),
                at: Timestamp(milliseconds: event.at))
        }
    }

    /// The journal as the readers of a partition file return it.
    public var journalLines: [JournalLine] {
        journal.map {
            JournalLine(
                id: $0.id, at: Timestamp(milliseconds: $0.at), kind: $0.kind, step: $0.step, actor: $0.actor,
                detail: $0.detail, facts: $0.facts)
        }
    }
}
