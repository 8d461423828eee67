import SagaEngine
import WaybillDefinition

/// A finished saga as the archive keeps it, one JSON line: its row, its whole state and its whole journal.
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

    /// The archived form of a stored saga and its journal.
    public init(record: SagaRecord, journal: [JournalLine], archivedAt: Timestamp) {
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

    /// The journal as the readers of a partition file return it.
    public var journalLines: [JournalLine] {
        journal.map {
            JournalLine(
                id: $0.id, at: Timestamp(milliseconds: $0.at), kind: $0.kind, step: $0.step, actor: $0.actor,
                detail: $0.detail, facts: $0.facts)
        }
    }
}
