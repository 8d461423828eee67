import SagaEngine
import WaybillDefinition

/// The columns of one `sagas` row that operators filter and sort by, without the state blob.
public struct SagaRow: Sendable, Hashable {
    /// The saga.
    public var key: SagaKey
    /// The content hash of the definition it runs.
    public var definitionHash: String
    /// The workflow version it started with.
    public var version: Int
    /// Its status.
    public var status: SagaStatus
    /// The step at the cursor; `nil` past the last step.
    public var currentStep: String?
    /// The worker that last wrote it; informational in a pool, where the partition's current owner applies repairs.
    public var owner: String?
    /// When it started.
    public var startedAt: Timestamp
    /// Its last progress.
    public var updatedAt: Timestamp
    /// The error code of the failure it is compensating or suspended for.
    public var failureCode: String?

    /// Describes a row (tests and the benchmark build rows by hand).
    public init(
        key: SagaKey, definitionHash: String, version: Int, status: SagaStatus, currentStep: String?, owner: String?,
        startedAt: Timestamp, updatedAt: Timestamp, failureCode: String?
    ) {
        self.key = key
        self.definitionHash = definitionHash
        self.version = version
        self.status = status
        self.currentStep = currentStep
        self.owner = owner
        self.startedAt = startedAt
        self.updatedAt = updatedAt
        self.failureCode = failureCode
    }

    /// The stable order of every listing: last progress, then workflow, then saga id. Sort with it whenever rows
    /// from several queries are merged, so a listing never depends on which query found a row.
    public static func precedes(_ lhs: SagaRow, _ rhs: SagaRow) -> Bool {
        if lhs.updatedAt != rhs.updatedAt { return lhs.updatedAt < rhs.updatedAt }
        if lhs.key.workflow != rhs.key.workflow { return lhs.key.workflow < rhs.key.workflow }
        return lhs.key.id < rhs.key.id
    }
}

/// A saga row with its decoded state.
public struct SagaRecord: Sendable, Hashable {
    /// The indexed columns.
    public var row: SagaRow
    /// The full state.
    public var instance: SagaInstance

    /// Pairs a row with its state; `instance.key` must be `row.key`.
    public init(row: SagaRow, instance: SagaInstance) {
        self.row = row
        self.instance = instance
    }
}

/// One page of a listing.
public struct SagaPage: Sendable, Hashable {
    /// The rows, in the query's order.
    public var rows: [SagaRow]
    /// Whether more rows match than the limit let through.
    public var hasMore: Bool

    /// A page of `rows`.
    public init(rows: [SagaRow], hasMore: Bool) {
        self.rows = rows
        self.hasMore = hasMore
    }
}

/// Which sagas a listing selects, in which order: the store's query value behind `waybill sagas list` and a bulk
/// repair's `--where`.
///
/// Every condition combines with AND; ``statuses`` is an OR within itself. Rows come in the stable order of
/// ``SagaRow/precedes(_:_:)``, oldest progress first unless ``newestFirst``. Times are absolute: a caller that
/// thinks in "idle for 15 minutes" converts with its own clock, so a query means the same thing when it is re-run.
public struct SagaQuery: Sendable, Hashable {
    /// Keep only these statuses; empty means every status.
    public var statuses: [SagaStatus] = []
    /// Keep only this workflow.
    public var workflow: String?
    /// Keep only sagas whose current step (the step at the cursor) is this one.
    public var step: String?
    /// Keep only sagas whose last progress is at or before this time.
    public var updatedAtOrBefore: Timestamp?
    /// Keep only sagas whose last progress is at or after this time.
    public var updatedAtOrAfter: Timestamp?
    /// Keep only sagas last written by this worker.
    public var owner: String?
    /// At most this many rows; `nil` means no limit (bulk repairs).
    public var limit: Int?
    /// Most recent progress first instead of oldest first.
    public var newestFirst = false

    /// A query that selects every saga, oldest progress first.
    public init() {}
}

/// A journal line as operators see it.
public struct JournalLine: Sendable, Hashable {
    /// The journal row id: ascending ids are the order things happened (`--follow` resumes after the last one).
    public var id: Int64
    /// When it was written.
    public var at: Timestamp
    /// `start`, `reply`, `timer`, `returned`, `operator`, `ignored`, `rejected`, `note`.
    public var kind: String
    /// The step (and branch, `release[1]`) concerned.
    public var step: String?
    /// The operator who acted; `nil` for the worker.
    public var actor: String?
    /// The human line.
    public var detail: String
    /// The line as data (``JournalEntry/facts``); `nil` for lines without.
    public var facts: JSONValue?

    /// Describes a journal line.
    public init(
        id: Int64, at: Timestamp, kind: String, step: String?, actor: String?, detail: String, facts: JSONValue? = nil
    ) {
        self.id = id
        self.at = at
        self.kind = kind
        self.step = step
        self.actor = actor
        self.detail = detail
        self.facts = facts
    }
}

/// A stored workflow definition as operators list it.
public struct DefinitionRecord: Sendable, Hashable {
    /// The SHA-256 of the source.
    public var hash: String
    /// The workflow name.
    public var name: String
    /// Its version.
    public var version: Int
    /// When a worker first stored it.
    public var firstSeenAt: Timestamp
    /// The YAML source; empty in listings (ask ``StoreSnapshot/definitionRecord(hash:)`` for one with its source).
    public var source: String

    /// Describes a stored definition.
    public init(hash: String, name: String, version: Int, firstSeenAt: Timestamp, source: String) {
        self.hash = hash
        self.name = name
        self.version = version
        self.firstSeenAt = firstSeenAt
        self.source = source
    }
}

/// Where a saga's row sits in the `sagas` table. Rows are inserted when sagas start and never deleted, so row
/// numbers follow start order; they let the index-only walks (stats, stuck classes, usage per definition) join two
/// indexes without reading rows. Meaningful only within one store file.
public struct SagaRowNumber: Sendable, Hashable, Comparable {
    /// SQLite's rowid.
    public var value: Int64

    /// Wraps a rowid.
    public init(_ value: Int64) {
        self.value = value
    }

    /// Row order, which is start order.
    public static func < (lhs: SagaRowNumber, rhs: SagaRowNumber) -> Bool { lhs.value < rhs.value }
}

/// A running or compensating saga's place in the `sagas_by_status` index: enough to classify and order it without
/// reading its row.
public struct SagaActivity: Sendable, Hashable {
    /// Its row.
    public var row: SagaRowNumber
    /// Its status.
    public var status: SagaStatus
    /// Its last progress.
    public var updatedAt: Timestamp

    /// Describes an index entry.
    public init(row: SagaRowNumber, status: SagaStatus, updatedAt: Timestamp) {
        self.row = row
        self.status = status
        self.updatedAt = updatedAt
    }
}

/// A durable timer seen from the saga it belongs to, by row: what the stuck classifier needs.
public struct TimerSignal: Sendable, Hashable {
    /// The saga's row.
    public var row: SagaRowNumber
    /// The timer's kind.
    public var kind: SagaTimer.Kind
    /// When it is (or was) due.
    public var dueAt: Timestamp

    /// Describes a timer.
    public init(row: SagaRowNumber, kind: SagaTimer.Kind, dueAt: Timestamp) {
        self.row = row
        self.kind = kind
        self.dueAt = dueAt
    }
}

/// The definition and step of an unfinished saga, by row.
public struct SagaPlacement: Sendable, Hashable {
    /// The saga's row.
    public var row: SagaRowNumber
    /// The content hash of the definition it runs.
    public var definitionHash: String
    /// Its current step; `nil` past the last step.
    public var currentStep: String?

    /// Describes a placement.
    public init(row: SagaRowNumber, definitionHash: String, currentStep: String?) {
        self.row = row
        self.definitionHash = definitionHash
        self.currentStep = currentStep
    }
}
