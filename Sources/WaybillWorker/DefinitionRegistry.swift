import Foundation
import SagaEngine
import SagaStore
import Synchronization
import WaybillDefinition

/// The workflow definitions a worker runs: the files in `Workflows/` for new sagas, and every version stored by
/// content hash for sagas that started on an older file.
public final class DefinitionRegistry: Sendable {
    /// A definition and the hash it is stored under.
    public struct Entry: Sendable {
        public var definition: WorkflowDefinition
        public var hash: String
    }

    /// The newest version of each workflow, by name: new sagas start on these.
    public let current: [String: Entry]
    private let store: SagaStore
    private let byHash: Mutex<[String: WorkflowDefinition]>

    /// Loads and validates every `*.yaml` in `directory`, stores each by content hash, and keeps the newest version
    /// of each workflow name. Any invalid file stops the worker with its `file:line:column` diagnostics.
    public init(directory: String, store: SagaStore, now: Timestamp) throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        var current: [String: Entry] = [:]
        var byHash: [String: WorkflowDefinition] = [:]
        for file in files {
            let path = (directory as NSString).appendingPathComponent(file)
            let source = try WorkflowSource.read(file: path)
            let definition = try WorkflowLoader.load(source)
            let hash = try store.saveDefinition(
                name: definition.name, version: definition.version, source: source.text, at: now)
            byHash[hash] = definition
            if let existing = current[definition.name], existing.definition.version >= definition.version {
                if existing.definition.version == definition.version {
                    throw ConfigurationError(
                        .duplicateWorkflow,
                        "\(path): workflow \(definition.name) v\(definition.version) is defined twice; bump `version`")
                }
                continue
            }
            current[definition.name] = Entry(definition: definition, hash: hash)
        }
        guard !current.isEmpty else {
            throw ConfigurationError(
                .noWorkflows,
                "\(directory): no workflow files (*.yaml) found; point workflows at the folder that has them")
        }
        self.current = current
        self.store = store
        self.byHash = Mutex(byHash)
    }

    /// The definition a saga runs, loading an older version from the store when needed.
    public func definition(hash: String) throws -> WorkflowDefinition? {
        if let known = byHash.withLock({ $0[hash] }) { return known }
        guard let stored = try store.definition(hash: hash) else { return nil }
        let definition = try WorkflowLoader.load(yaml: stored.source, file: "stored:\(hash.prefix(12))")
        byHash.withLock { $0[hash] = definition }
        return definition
    }
}
