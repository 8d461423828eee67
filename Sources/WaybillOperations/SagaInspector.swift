import Foundation
import SagaEngine
import SagaStore
import Synchronization
import WaybillDefinition

/// The offline side of the operator commands: reads a pool's partition files (or one store file) for `waybill sagas
/// list|show|history|stuck|stats` and `waybill workflows`, through the store's typed read API
/// (``SagaStoreReader``), never by SQL of its own. It works while the workers are stopped and never blocks them.
/// Repairs, which need the live owner of a saga's partition, go through ``RepairRunner``.
///
/// A pool reads as one store: listings are merged and paged in their stable order across the partition files,
/// counts are summed, and one saga is looked up in the file of its partition (``PoolDirectory/partition(of:)``). A
/// partition whose file does not exist yet is empty. Each method reads one consistent snapshot per file; the files
/// of a pool are not read at one instant, so a saga a worker commits meanwhile may show in one count and not another.
/// Store failures become ``OperationsError`` values whose message says what to do.
public final class SagaInspector: Sendable {
    /// One file read: a partition of the pool, or the single file.
    struct Source: Sendable {
        /// The partition, or `nil` for a file read on its own.
        let partition: Int?
        let reader: SagaStoreReader
    }

    /// What is read: the pool's data directory, or the one file.
    public let path: String
    /// The pool, or `nil` when one file is read (`--db`).
    public let pool: PoolDirectory?
    /// The files read, in partition order: the existing partition files of a pool, or the one file.
    let sources: [Source]
    private let definitions = Mutex<[String: WorkflowDefinition]>([:])

    /// Opens `path`, one store file, read-only and checks that its schema is one this binary reads.
    ///
    /// `memoryMapSize` lets SQLite map that much of the file instead of reading it page by page (see
    /// ``SagaStoreReader/init(path:memoryMapSize:)``).
    public init(path: String, memoryMapSize: Int64 = 0) throws(OperationsError) {
        do {
            sources = [Source(partition: nil, reader: try SagaStoreReader(path: path, memoryMapSize: memoryMapSize))]
        } catch {
            throw Self.translate(error)
        }
        self.path = path
        pool = nil
    }

    /// Opens every partition file of `pool` read-only (a partition without a file, or with an empty one a worker is
    /// creating, is empty) and checks each schema.
    public init(pool: PoolDirectory, memoryMapSize: Int64 = 0) throws(OperationsError) {
        var sources: [Source] = []
        for partition in pool.partitions {
            let file = pool.databasePath(partition: partition)
            let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
            guard size > 0 else { continue }
            do {
                sources.append(
                    Source(partition: partition, reader: try SagaStoreReader(path: file, memoryMapSize: memoryMapSize))
                )
            } catch {
                throw Self.translate(error)
            }
        }
        self.sources = sources
        self.pool = pool
        path = pool.path
    }

    /// Opens the pool in the data directory `dataDirectory` (see ``init(pool:memoryMapSize:)``).
    ///
    /// Throws ``OperationsError/Code/database`` when the directory is not a pool (it has no `pool.json`).
    public convenience init(dataDirectory: String, memoryMapSize: Int64 = 0) throws(OperationsError) {
        try self.init(pool: try Self.openPool(dataDirectory), memoryMapSize: memoryMapSize)
    }

    /// The pool in `dataDirectory`, or an ``OperationsError/Code/database`` that says how to point at one.
    public static func openPool(_ dataDirectory: String) throws(OperationsError) -> PoolDirectory {
        do {
            return try PoolDirectory.open(dataDirectory)
        } catch let error as SagaStoreError where error.code == .cannotOpen {
            throw OperationsError(
                .database,
                "\(dataDirectory) is not a Waybill pool (it has no \(PoolDirectory.descriptionFile)); give the workers' "
                    + "data directory with --data-dir (or data_directory in --config, or WAYBILL_DATA_DIRECTORY), "
                    + "create one with `waybill pool init`, or read one file with --db FILE",
                cause: error)
        } catch {
            throw translate(error)
        }
    }

    /// The readers of the files read, in partition order (one for a single file; none for a pool whose partitions
    /// have no file yet). Views that need several queries in one snapshot read through them.
    public var readers: [SagaStoreReader] { sources.map(\.reader) }

    /// `pool <dir>` or the file, for messages.
    var place: String { pool == nil ? path : "the pool \(path)" }

    // MARK: - Sagas

    /// The saga a command-line reference names.
    ///
    /// `workflow/ID` looks in that workflow; a bare `ID` looks in every workflow stored with it and fails with
    /// ``OperationsError/Code/ambiguous`` (listing each `workflow/ID`) when more than one has it. In a pool only the
    /// file of the id's partition is read.
    public func resolve(_ reference: SagaReference) throws(OperationsError) -> SagaKey {
        if let workflow = reference.workflow {
            let key = SagaKey(workflow: workflow, id: reference.id)
            let found = try read("looking up saga \(reference)", in: sources(forSagaId: reference.id)) { snapshot in
                try snapshot.contains(key)
            }
            if found.contains(true) { return key }
        }
        // A bare id, or an id that itself contains '/': probe each known workflow through the primary key.
        let whole = reference.description
        let keys = try read("looking up saga \(reference)", in: sources(forSagaId: whole)) { snapshot in
            try snapshot.definedWorkflowNames().map { SagaKey(workflow: $0, id: whole) }.filter(snapshot.contains)
        }.flatMap { $0 }
        guard let first = keys.first else {
            throw OperationsError(
                .notFound,
                "no saga '\(reference)' in \(place); check the id (and the workflow), and "
                    + (pool == nil
                        ? "--db (a single file holds one partition or one old worker's sagas)" : "--data-dir")
                    + " (`waybill sagas list` shows what it holds)")
        }
        guard keys.count == 1 else {
            throw OperationsError(
                .ambiguous,
                "saga id '\(reference.id)' exists in \(keys.count) workflows; name one: "
                    + keys.map(\.description).joined(separator: ", "))
        }
        return first
    }

    /// Where the saga `reference` names is: in its partition file, or in the pool's archive.
    public enum Location: Sendable {
        case stored(SagaKey)
        /// The archived saga and the day file that holds it.
        case archived(ArchivedSaga, file: String)
    }

    /// Finds the saga `reference` names: in the files first (``resolve(_:)``), then in the pool's archive. Throws
    /// like ``resolve(_:)`` when it is in neither.
    public func locate(_ reference: SagaReference) throws(OperationsError) -> Location {
        let missing: OperationsError
        do {
            return .stored(try resolve(reference))
        } catch {
            guard error.code == .notFound else { throw error }
            missing = error
        }
        guard let (saga, file) = try archived(reference) else { throw missing }
        return .archived(saga, file: file)
    }

    /// The archived saga `reference` names, read from the pool's archive (finished sagas older than the workers'
    /// `archive_after` leave the partition files for it); `nil` when it is not there, or when one file is read.
    ///
    /// Throws ``OperationsError/Code/ambiguous`` when a bare id was archived in several workflows.
    public func archived(_ reference: SagaReference) throws(OperationsError) -> (ArchivedSaga, file: String)? {
        guard let pool else { return nil }
        do {
            let archive = try SagaArchive(dataDirectory: pool.path, readOnly: true)
            defer { try? archive.close() }
            var locations = try archive.locate(sagaId: reference.id, workflow: reference.workflow)
            if locations.isEmpty && reference.workflow != nil {
                // An id that itself contains '/'.
                locations = try archive.locate(sagaId: reference.description)
            }
            guard let location = locations.first else { return nil }
            guard locations.count == 1 else {
                throw OperationsError(
                    .ambiguous,
                    "saga id '\(reference.id)' was archived in \(locations.count) workflows; name one: "
                        + locations.map(\.key.description).joined(separator: ", "))
            }
            return (try archive.load(location), archive.path(day: location.day))
        } catch let error as OperationsError {
            throw error
        } catch {
            throw Self.translate(error)
        }
    }

    /// The saga stored under `key`, with its state decoded, or `nil`.
    public func saga(_ key: SagaKey) throws(OperationsError) -> SagaRecord? {
        try sagas([key])[key]
    }

    /// The sagas stored under `keys` (absent ones are missing from the result), one snapshot per file.
    public func sagas(_ keys: [SagaKey]) throws(OperationsError) -> [SagaKey: SagaRecord] {
        try byFile(keys, "loading \(keys.count) sagas") { snapshot, keys in try snapshot.records(keys) }
    }

    /// The rows of `keys` now, without state (the check before each repair and the final re-check).
    public func rows(_ keys: [SagaKey]) throws(OperationsError) -> [SagaKey: SagaRow] {
        try byFile(keys, "re-reading \(keys.count) sagas") { snapshot, keys in try snapshot.rows(keys) }
    }

    /// One page of sagas matching `filter` at `now`, in its stable order across every file.
    public func list(_ filter: SagaFilter, now: Timestamp) throws(OperationsError) -> SagaPage {
        let query = filter.query(now: now)
        let pages = try read("listing sagas") { snapshot in try snapshot.list(query) }
        return Self.merge(pages, limit: query.limit, newestFirst: query.newestFirst)
    }

    /// Freezes the sagas `filter` selects (with their state), one snapshot per file, in the filter's order: the
    /// selection of a bulk repair.
    public func snapshot(_ filter: SagaFilter, now: Timestamp) throws(OperationsError) -> [SagaRecord] {
        let query = filter.query(now: now)
        let selections = try read("selecting sagas") { snapshot in
            let page = try snapshot.list(query)
            let records = try snapshot.records(page.rows.map(\.key))
            return (page, records)
        }
        let page = Self.merge(selections.map(\.0), limit: query.limit, newestFirst: query.newestFirst)
        var records: [SagaKey: SagaRecord] = [:]
        for selection in selections { records.merge(selection.1) { first, _ in first } }
        return page.rows.compactMap { records[$0.key] }
    }

    /// The timers of one saga, earliest first.
    public func timers(of key: SagaKey) throws(OperationsError) -> [StoredTimer] {
        try read("reading the timers of \(key)", in: sources(forSagaId: key.id)) { snapshot in
            try snapshot.timers(of: key)
        }.flatMap { $0 }
    }

    /// Journal lines of one saga with an id above `afterId`, oldest first, at most `limit`.
    public func journal(
        of key: SagaKey, afterId: Int64 = 0, limit: Int? = nil
    ) throws(OperationsError)
        -> [JournalLine]
    {
        try read("reading the journal of \(key)", in: sources(forSagaId: key.id)) { snapshot in
            try snapshot.journal(of: key, afterId: afterId, limit: limit)
        }.flatMap { $0 }
    }

    /// The journal lines of one saga, the newest `count` of them, oldest first.
    public func journalTail(of key: SagaKey, count: Int) throws(OperationsError) -> [JournalLine] {
        try read("reading the journal of \(key)", in: sources(forSagaId: key.id)) { snapshot in
            try snapshot.journalTail(of: key, count: count)
        }.flatMap { $0 }
    }

    // MARK: - Definitions

    /// Every stored definition (without sources), by name, version and first sighting; a definition stored in
    /// several partition files is listed once, with its earliest sighting.
    public func definitionRecords() throws(OperationsError) -> [DefinitionRecord] {
        let lists = try read("listing workflow definitions") { snapshot in try snapshot.definitionRecords() }
        guard lists.count > 1 else { return lists.first ?? [] }
        var byHash: [String: DefinitionRecord] = [:]
        for record in lists.joined() {
            if let known = byHash[record.hash], known.firstSeenAt <= record.firstSeenAt { continue }
            byHash[record.hash] = record
        }
        return byHash.values.sorted {
            ($0.name, $0.version, $0.firstSeenAt, $0.hash) < ($1.name, $1.version, $1.firstSeenAt, $1.hash)
        }
    }

    /// The stored definition under `hash`, with its source, or `nil`.
    public func definitionRecord(hash: String) throws(OperationsError) -> DefinitionRecord? {
        for source in sources {
            let found = try read("reading definition \(hash.prefix(12))", in: [source]) { snapshot in
                try snapshot.definitionRecord(hash: hash)
            }
            if let record = found.first ?? nil { return record }
        }
        return nil
    }

    /// The parsed definition a saga runs (cached per hash), or `nil` when no file holds it.
    ///
    /// Throws ``OperationsError/Code/corrupt`` when the stored source no longer loads with this binary.
    public func definition(hash: String) throws(OperationsError) -> WorkflowDefinition? {
        if let known = definitions.withLock({ $0[hash] }) { return known }
        guard let record = try definitionRecord(hash: hash) else { return nil }
        return try parse(record)
    }

    /// ``definition(hash:)`` inside a snapshot that is already open: from the cache or that snapshot's file only
    /// (reading the other files from inside a read could re-enter the open one).
    func loadDefinition(_ snapshot: StoreSnapshot, hash: String) throws -> WorkflowDefinition? {
        if let known = definitions.withLock({ $0[hash] }) { return known }
        guard let record = try snapshot.definitionRecord(hash: hash) else { return nil }
        return try parse(record)
    }

    private func parse(_ record: DefinitionRecord) throws(OperationsError) -> WorkflowDefinition {
        let definition: WorkflowDefinition
        do {
            definition = try WorkflowLoader.load(yaml: record.source, file: "stored:\(record.hash.prefix(12))")
        } catch {
            throw OperationsError(
                .corrupt,
                "the stored definition \(record.name) v\(record.version) (\(record.hash.prefix(12))) does not load "
                    + "with this waybill binary: \(error.description.split(separator: "\n").first ?? ""); use the "
                    + "binary the worker runs")
        }
        definitions.withLock { $0[record.hash] = definition }
        return definition
    }

    // MARK: - Internals

    /// The files a saga id can be in: its partition's (if it has a file yet), or the single file.
    func sources(forSagaId id: String) -> [Source] {
        guard let pool else { return sources }
        let partition = pool.partition(of: id)
        return sources.filter { $0.partition == partition }
    }

    /// Reads `sources` (every file by default), one snapshot each, in partition order; store failures become
    /// ``OperationsError`` values.
    ///
    /// The files of a pool are read at once, each on a thread of its own (at most one per core), so `body` must only
    /// read the snapshot it is given and values it captured (every caller's does); the answers come back in the
    /// files' order.
    func read<T: Sendable>(
        _ operation: String, in sources: [Source]? = nil, _ body: @Sendable (StoreSnapshot) throws -> T
    ) throws(OperationsError) -> [T] {
        let chosen = sources ?? self.sources
        let answers = Mutex([Result<T, any Error>?](repeating: nil, count: chosen.count))
        if chosen.count == 1 {
            answers.withLock { $0[0] = Result { try chosen[0].reader.read(operation, body) } }
        } else {
            DispatchQueue.concurrentPerform(iterations: chosen.count) { index in
                let answer = Result { try chosen[index].reader.read(operation, body) }
                answers.withLock { $0[index] = answer }
            }
        }
        var results: [T] = []
        results.reserveCapacity(chosen.count)
        for answer in answers.withLock({ $0 }) {
            switch answer {
            case .success(let value)?: results.append(value)
            case .failure(let error)?: throw Self.translate(error)
            case nil: break
            }
        }
        return results
    }

    /// Reads `keys` from the files they are in, and merges what each file answers.
    private func byFile<Value: Sendable>(
        _ keys: [SagaKey], _ operation: String, _ body: @Sendable (StoreSnapshot, [SagaKey]) throws -> [SagaKey: Value]
    ) throws(OperationsError) -> [SagaKey: Value] {
        guard !keys.isEmpty else { return [:] }
        guard let pool else {
            return try read(operation) { snapshot in try body(snapshot, keys) }.first ?? [:]
        }
        let byPartition = Dictionary(grouping: keys) { pool.partition(of: $0.id) }
        var result: [SagaKey: Value] = [:]
        for source in sources {
            guard let partition = source.partition, let mine = byPartition[partition] else { continue }
            for answer in try read(operation, in: [source], { snapshot in try body(snapshot, mine) }) {
                result.merge(answer) { first, _ in first }
            }
        }
        return result
    }

    /// One page out of the pages of several files, each already in the query's order and cut at its limit.
    static func merge(_ pages: [SagaPage], limit: Int?, newestFirst: Bool) -> SagaPage {
        guard pages.count > 1 else { return pages.first ?? SagaPage(rows: [], hasMore: false) }
        var rows = pages.flatMap(\.rows)
        rows.sort(by: newestFirst ? { SagaRow.precedes($1, $0) } : SagaRow.precedes)
        let more = pages.contains(where: \.hasMore)
        guard let limit, rows.count > limit else { return SagaPage(rows: rows, hasMore: more) }
        return SagaPage(rows: Array(rows.prefix(limit)), hasMore: true)
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
