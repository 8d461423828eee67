import SagaEngine
import SagaStore
import Synchronization
import WaybillDefinition

/// The offline side of the operator commands: reads one worker's store file for `waybill sagas list|show|history|
/// stuck|stats` and `waybill workflows`, through the store's typed read API (``SagaStoreReader``), never by SQL of
/// its own. It works while the worker is stopped and never blocks it. Repairs, which need the live worker, go through
/// ``RepairRunner``.
///
/// Each method reads one consistent snapshot. Store failures become ``OperationsError`` values whose message says
/// what to do.
public final class SagaInspector: Sendable {
    /// The file.
    public var path: String { reader.path }
    /// The store's read API; views that need several queries in one snapshot read through it.
    public let reader: SagaStoreReader
    private let definitions = Mutex<[String: WorkflowDefinition]>([:])

    /// Opens `path` read-only and checks that its schema is the one this binary reads.
    ///
    /// `memoryMapSize` lets SQLite map that much of the file instead of reading it page by page (see
    /// ``SagaStoreReader/init(path:memoryMapSize:)``).
    public init(path: String, memoryMapSize: Int64 = 0) throws(OperationsError) {
        do {
            reader = try SagaStoreReader(path: path, memoryMapSize: memoryMapSize)
        } catch {
            throw Self.translate(error)
        }
    }

    // MARK: - Sagas

    /// The saga a command-line reference names.
    ///
    /// `workflow/ID` looks in that workflow; a bare `ID` looks in every workflow stored in the file and fails with
    /// ``OperationsError/Code/ambiguous`` (listing each `workflow/ID`) when more than one has it.
    public func resolve(_ reference: SagaReference) throws(OperationsError) -> SagaKey {
        let keys: [SagaKey] = try read("looking up saga \(reference)") { snapshot in
            if let workflow = reference.workflow {
                let key = SagaKey(workflow: workflow, id: reference.id)
                if try snapshot.contains(key) { return [key] }
            }
            // A bare id, or an id that itself contains '/': probe each known workflow through the primary key.
            let whole = reference.description
            return try snapshot.definedWorkflowNames().map { SagaKey(workflow: $0, id: whole) }.filter(
                snapshot.contains)
        }
        guard let first = keys.first else {
            throw OperationsError(
                .notFound,
                "no saga '\(reference)' in \(path); check the id (and the workflow), or the --db of the worker that "
                    + "owns it (`waybill sagas list` shows what this file holds)")
        }
        guard keys.count == 1 else {
            throw OperationsError(
                .ambiguous,
                "saga id '\(reference.id)' exists in \(keys.count) workflows; name one: "
                    + keys.map(\.description).joined(separator: ", "))
        }
        return first
    }

    /// The saga stored under `key`, with its state decoded, or `nil`.
    public func saga(_ key: SagaKey) throws(OperationsError) -> SagaRecord? {
        try sagas([key])[key]
    }

    /// The sagas stored under `keys` (absent ones are missing from the result), in one snapshot.
    public func sagas(_ keys: [SagaKey]) throws(OperationsError) -> [SagaKey: SagaRecord] {
        try read("loading \(keys.count) sagas") { snapshot in try snapshot.records(keys) }
    }

    /// The rows of `keys` now, without state (the check before each repair and the final re-check).
    public func rows(_ keys: [SagaKey]) throws(OperationsError) -> [SagaKey: SagaRow] {
        try read("re-reading \(keys.count) sagas") { snapshot in try snapshot.rows(keys) }
    }

    /// One page of sagas matching `filter` at `now`, in its stable order.
    public func list(_ filter: SagaFilter, now: Timestamp) throws(OperationsError) -> SagaPage {
        try read("listing sagas") { snapshot in try snapshot.list(filter.query(now: now)) }
    }

    /// Freezes the sagas `filter` selects (with their state) in one snapshot, in the filter's order: the selection
    /// of a bulk repair.
    public func snapshot(_ filter: SagaFilter, now: Timestamp) throws(OperationsError) -> [SagaRecord] {
        try read("selecting sagas") { snapshot in
            let page = try snapshot.list(filter.query(now: now))
            let records = try snapshot.records(page.rows.map(\.key))
            return page.rows.compactMap { records[$0.key] }
        }
    }

    /// The timers of one saga, earliest first.
    public func timers(of key: SagaKey) throws(OperationsError) -> [StoredTimer] {
        try read("reading the timers of \(key)") { snapshot in try snapshot.timers(of: key) }
    }

    /// Journal lines of one saga with an id above `afterId`, oldest first, at most `limit`.
    public func journal(
        of key: SagaKey, afterId: Int64 = 0, limit: Int? = nil
    ) throws(OperationsError)
        -> [JournalLine]
    {
        try read("reading the journal of \(key)") { snapshot in
            try snapshot.journal(of: key, afterId: afterId, limit: limit)
        }
    }

    /// The journal lines of one saga, the newest `count` of them, oldest first.
    public func journalTail(of key: SagaKey, count: Int) throws(OperationsError) -> [JournalLine] {
        try read("reading the journal of \(key)") { snapshot in try snapshot.journalTail(of: key, count: count) }
    }

    // MARK: - Definitions

    /// Every stored definition (without sources), by name, version and first sighting.
    public func definitionRecords() throws(OperationsError) -> [DefinitionRecord] {
        try read("listing workflow definitions") { snapshot in try snapshot.definitionRecords() }
    }

    /// The stored definition under `hash`, with its source, or `nil`.
    public func definitionRecord(hash: String) throws(OperationsError) -> DefinitionRecord? {
        try read("reading definition \(hash.prefix(12))") { snapshot in try snapshot.definitionRecord(hash: hash) }
    }

    /// The parsed definition a saga runs (cached per hash), or `nil` when the file does not hold it.
    ///
    /// Throws ``OperationsError/Code/corrupt`` when the stored source no longer loads with this binary.
    public func definition(hash: String) throws(OperationsError) -> WorkflowDefinition? {
        if let known = definitions.withLock({ $0[hash] }) { return known }
        return try read("reading definition \(hash.prefix(12))") { snapshot in
            try loadDefinition(snapshot, hash: hash)
        }
    }

    /// ``definition(hash:)`` inside a snapshot that is already open.
    func loadDefinition(_ snapshot: StoreSnapshot, hash: String) throws -> WorkflowDefinition? {
        if let known = definitions.withLock({ $0[hash] }) { return known }
        guard let record = try snapshot.definitionRecord(hash: hash) else { return nil }
        let definition: WorkflowDefinition
        do {
            definition = try WorkflowLoader.load(yaml: record.source, file: "stored:\(hash.prefix(12))")
        } catch {
            throw OperationsError(
                .corrupt,
                "the stored definition \(record.name) v\(record.version) (\(hash.prefix(12))) does not load with this "
                    + "waybill binary: \(error.description.split(separator: "\n").first ?? ""); use the binary the "
                    + "worker runs")
        }
        definitions.withLock { $0[hash] = definition }
        return definition
    }

    // MARK: - Internals

    /// Reads one snapshot; store failures become ``OperationsError`` values.
    func read<T>(_ operation: String, _ body: (StoreSnapshot) throws -> T) throws(OperationsError) -> T {
        do {
            return try reader.read(operation, body)
        } catch {
            throw Self.translate(error)
        }
    }

    /// What an error from the store means to an operator: damaged state or an unloadable definition is
    /// ``OperationsError/Code/corrupt``, anything else about the file ``OperationsError/Code/database``; the
    /// store's message already names the file and what to do.
    static func translate(_ error: any Error) -> OperationsError {
        switch error {
        case let error as OperationsError: error
        case let error as SagaStoreError where error.code == .corruptState:
            OperationsError(.corrupt, error.message, cause: error)
        case let error as SagaStoreError: OperationsError(.database, error.message, cause: error)
        default: OperationsError(.database, "reading the saga store failed", cause: error)
        }
    }
}
