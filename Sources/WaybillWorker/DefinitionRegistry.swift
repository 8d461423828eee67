import Foundation
import SagaEngine
import SagaStore
import Synchronization
import WaybillDefinition

/// The workflow definitions a worker runs: the files in `Workflows/` for new sagas, and every version stored by
/// content hash (in each partition's file) for sagas that started on an older file.
public final class DefinitionRegistry: Sendable {
    /// A definition and the hash it is stored under.
    public struct Entry: Sendable {
        public var definition: WorkflowDefinition
        public var hash: String
        /// The file's text, stored in every partition the worker claims.
        public var source: String
    }

    /// The newest version of each workflow, by name: new sagas start on these.
    public let current: [String: Entry]
    /// Every file read, newest or not, to store in each claimed partition.
    private let files: [Entry]
    private let byHash: Mutex<[String: WorkflowDefinition]>
    /// The participants' limits (`participants.yaml` beside the workflows), or `nil` when there is no such file.
    public let limits: ParticipantLimits?

    /// Loads and validates every `*.yaml` in `directory` and keeps the newest version of each workflow name. Any
    /// invalid file stops the worker with its `file:line:column` diagnostics.
    public init(directory: String) throws {
        // The participants' limits file sits beside the workflows and is not one.
        let all = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        let names = all.filter {
            ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) && !ParticipantLimits.isLimitsFile($0)
        }
        if let limitsFile = all.first(where: ParticipantLimits.isLimitsFile) {
            let path = (directory as NSString).appendingPathComponent(limitsFile)
            limits = try ParticipantLimitsLoader.load(yaml: WorkflowSource.read(file: path).text, file: path)
        } else {
            limits = nil
        }
        var current: [String: Entry] = [:]
        var files: [Entry] = []
        var byHash: [String: WorkflowDefinition] = [:]
        for name in names {
            let path = (directory as NSString).appendingPathComponent(name)
            let source = try WorkflowSource.read(file: path)
            let definition = try WorkflowLoader.load(source)
            let entry = Entry(
                definition: definition, hash: ContentHash.sha256Hex(Array(source.text.utf8)), source: source.text)
            files.append(entry)
            byHash[entry.hash] = definition
            if let existing = current[definition.name], existing.definition.version >= definition.version {
                if existing.definition.version == definition.version {
                    throw ConfigurationError(
                        .duplicateWorkflow,
                        "\(path): workflow \(definition.name) v\(definition.version) is defined twice; bump `version`")
                }
                continue
            }
            current[definition.name] = entry
        }
        guard !current.isEmpty else {
            throw ConfigurationError(
                .noWorkflows,
                "\(directory): no workflow files (*.yaml) found; point workflows at the folder that has them")
        }
        self.current = current
        self.files = files
        self.byHash = Mutex(byHash)
    }

    /// Stores every definition file in `store` (by content hash; a stored text stays as it was), so the partition's
    /// file holds the definition of every saga it has. Call it when claiming a partition.
    public func register(in store: any PartitionStore, now: Timestamp) throws {
        for file in files {
            try store.saveDefinition(
                name: file.definition.name, version: file.definition.version, source: file.source, at: now)
        }
    }

    /// The definition a saga runs, loading an older version from the saga's store when needed.
    public func definition(hash: String, in store: any PartitionStore) throws -> WorkflowDefinition? {
        if let known = byHash.withLock({ $0[hash] }) { return known }
        guard let stored = try store.definition(hash: hash) else { return nil }
        let definition = try WorkflowLoader.load(yaml: stored.source, file: "stored:\(hash.prefix(12))")
        byHash.withLock { $0[hash] = definition }
        return definition
    }
}
