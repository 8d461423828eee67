import PlainText
import SagaEngine
import SagaStore
import WaybillDefinition

/// `waybill workflows migrate`: moving the unfinished sagas of one workflow version to another, through the workers
/// that own them, checked saga by saga before anything is sent and verified after.
public struct MigrationSelection: Sendable, Hashable {
    /// The workflow.
    public var workflow: String
    /// The version the sagas run now, and the one they move to.
    public var from: Int
    public var to: Int
    /// Source step id → target step id (`--map old=new`).
    public var mapping: [String: String]
    /// More filters (`--select key=value`); the workflow and the statuses that can move are always applied.
    public var filter: SagaFilter

    /// Describes a selection.
    public init(workflow: String, from: Int, to: Int, mapping: [String: String], filter: SagaFilter = SagaFilter()) {
        self.workflow = workflow
        self.from = from
        self.to = to
        self.mapping = mapping
        self.filter = filter
    }

    /// `--map old=new` arguments as a mapping; a malformed or repeated one is a bad argument.
    public static func mapping(_ arguments: [String]) throws(OperationsError) -> [String: String] {
        var mapping: [String: String] = [:]
        for argument in arguments {
            let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw OperationsError(.badArgument, "--map '\(argument)': expected OLD=NEW, two step ids")
            }
            guard mapping[parts[0]] == nil else {
                throw OperationsError(.badArgument, "--map maps '\(parts[0])' twice; keep one")
            }
            mapping[parts[0]] = parts[1]
        }
        return mapping
    }

    /// `--select key=value` terms as a filter: `status=running,suspended`, `step=<current step>`,
    /// `stuck-for=<duration>`, `since=<time>`, `owner=<worker>`.
    public static func filter(_ terms: [String], now: Timestamp) throws(OperationsError) -> SagaFilter {
        var filter = SagaFilter()
        for term in terms {
            let parts = term.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[1].isEmpty else {
                throw OperationsError(
                    .badArgument, "--select '\(term)': expected KEY=VALUE (status, step, stuck-for, since, owner)")
            }
            let option = "--select \(parts[0])"
            switch parts[0] {
            case "status": filter.statuses = try SagaFilter.parseStatuses(parts[1])
            case "step": filter.step = parts[1]
            case "stuck-for": filter.stuckFor = try TimeText.parseDuration(parts[1], option: option)
            case "since": filter.since = try TimeText.parseTime(parts[1], option: option, now: now)
            case "owner": filter.owner = parts[1]
            default:
                throw OperationsError(
                    .badArgument,
                    "--select '\(term)': unknown key '\(parts[0])'; use status, step, stuck-for, since or owner")
            }
        }
        return filter
    }
}

/// What the re-read after a migration shows: which sent sagas run the target now.
public struct MigrationVerification: Sendable, Hashable {
    /// Sagas the workers migrated that run the target definition now.
    public var migrated: [SagaKey]
    /// Sagas sent a migration that still run another definition (refused by the worker, or not answered).
    public var notMigrated: [SagaKey]
}

extension SagaInspector {
    /// Checks the migration of every selected saga of `selection.workflow` at version `from` (running or suspended)
    /// to version `to`, as stored in the pool: refuses a target version no worker stored, a source version with no
    /// stored definition, and a mapping that is wrong whatever the saga (``SagaMigration/validate()``), with nothing
    /// sent; each saga then gets the engine's own check (``SagaMigration/refusal(for:)``).
    public func migrationPlan(
        _ selection: MigrationSelection, by: String, reason: String, now: Timestamp
    ) throws(OperationsError) -> RepairPlan {
        guard selection.from != selection.to else {
            throw OperationsError(.badArgument, "--from and --to are both \(selection.from); nothing to move")
        }
        let target = try workflowDetail("\(selection.workflow)@\(selection.to)")
        guard target.version.definition.version == selection.to, let targetDefinition = target.definition else {
            throw OperationsError(
                .notFound,
                "\(selection.workflow) v\(selection.to) is not stored in this pool (or does not load here): start the "
                    + "workers with it first, they store each definition they run")
        }
        var filter = selection.filter
        filter.workflow = selection.workflow
        let movable: [SagaStatus] = [.running, .suspended]
        if !filter.statuses.isEmpty, !filter.statuses.contains(where: movable.contains) {
            throw OperationsError(
                .badArgument, "--select status: only running and suspended sagas move; select those, or none")
        }
        filter.statuses = filter.statuses.isEmpty ? movable : filter.statuses.filter(movable.contains)
        let records = try snapshot(filter, now: now).filter { $0.row.version == selection.from }
        var migrations: [String: SagaMigration] = [:]
        for hash in Set(records.map(\.row.definitionHash)).sorted() {
            guard let source = try definition(hash: hash) else {
                throw OperationsError(
                    .notFound, "definition \(hash.prefix(12)) of \(selection.workflow) v\(selection.from) is not stored"
                )
            }
            let migration = SagaMigration(
                source: source, target: targetDefinition, targetHash: target.version.definition.hash,
                mapping: selection.mapping)
            let problems = migration.validate()
            if !problems.isEmpty {
                throw OperationsError(
                    .refused,
                    "refused: the mapping from v\(selection.from) to v\(selection.to) would lose what sagas did:\n  "
                        + problems.joined(separator: "\n  "))
            }
            migrations[hash] = migration
        }
        let base = RepairRequest(action: .migrate, by: by, reason: reason)
        let checks = records.map { record in
            var request = base
            request.migration = migrations[record.row.definitionHash]
            return RepairPlanner.check(request, record: record, definition: nil, now: now)
        }
        var request = base
        request.migration = migrations.values.first
        return RepairPlan(request: request, snapshotAt: now, filter: filter, checks: checks)
    }

    /// Re-reads what `run` sent and says which sagas run `targetHash` now.
    public func verifyMigration(_ run: RepairRun, targetHash: String) -> MigrationVerification {
        let sent = run.outcomes.compactMap { entry -> SagaKey? in
            switch entry.outcome {
            case .replied, .timedOut: entry.key
            default: nil
            }
        }
        let rows = (try? rows(sent)) ?? [:]
        return MigrationVerification(
            migrated: sent.filter { rows[$0]?.definitionHash == targetHash },
            notMigrated: sent.filter { rows[$0]?.definitionHash != targetHash })
    }
}
