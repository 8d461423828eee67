import SagaEngine
import SagaStore
import WaybillDefinition
import WaybillWire

/// What an operator asks of one saga, before it is checked.
public struct RepairRequest: Sendable, Hashable {
    /// The repair.
    public var action: ControlMessage.Action
    /// `--step`: narrows a retry, names the step a skip skips; for a reset, `--to`: the step to run again.
    public var step: String?
    /// `--output`: a skip's output (each skipped branch's, for a `for_each` step).
    public var output: JSONValue?
    /// `--branch`: the one branch of a `for_each` step a skip skips, as the operator names it: its index, or its
    /// item's `id` or `warehouse` (what `waybill sagas show` prints beside it).
    public var branch: String?
    /// `--by`.
    public var by: String
    /// `--reason`.
    public var reason: String
    /// `--force`: send even when the local simulation shows the repair failing the saga again at once.
    public var force: Bool
    /// A migration's source and target definitions and mapping (`waybill workflows migrate`); `nil` otherwise.
    public var migration: SagaMigration?

    /// Describes a request.
    public init(
        action: ControlMessage.Action, step: String? = nil, output: JSONValue? = nil, branch: String? = nil,
        by: String, reason: String, force: Bool = false, migration: SagaMigration? = nil
    ) {
        self.migration = migration
        self.action = action
        self.step = step
        self.output = output
        self.branch = branch
        self.by = by
        self.reason = reason
        self.force = force
    }

    /// The command name operators type (`resume` is a retry without a step).
    public var verb: String { action == .retry && step == nil ? "retry" : action.rawValue }
}

/// The outcome of checking a repair locally, before anything is sent.
public struct RepairCheck: Sendable, Hashable {
    /// The saga checked.
    public var record: SagaRecord
    /// The message to send, or `nil` when the repair is refused.
    public var message: ControlMessage?
    /// Why it is refused (one line, with what to do instead), or `nil`.
    public var refusal: String?
    /// What the worker would do, as the local engine predicts it: `suspended → running; sends tms.shipment.create`.
    public var preview: String?
    /// The saga's status the engine predicts.
    public var predictedStatus: SagaStatus?

    /// Whether the repair will be sent.
    public var willSend: Bool { message != nil }

    /// Describes a check (``RepairPlanner/check(_:record:definition:now:)`` makes them).
    public init(
        record: SagaRecord, message: ControlMessage?, refusal: String?, preview: String?, predictedStatus: SagaStatus?
    ) {
        self.record = record
        self.message = message
        self.refusal = refusal
        self.preview = preview
        self.predictedStatus = predictedStatus
    }
}

/// Checks repairs locally by running the same engine transition the worker will run, on the saga as this file
/// holds it. A repair the engine would reject is refused here with the engine's reason, before anything is sent;
/// the worker still decides on its own copy (it may have moved on since).
public enum RepairPlanner {
    /// Checks `request` against `record` at `now`.
    public static func check(
        _ request: RepairRequest, record: SagaRecord, definition: WorkflowDefinition?, now: Timestamp
    ) -> RepairCheck {
        var check = RepairCheck(record: record, message: nil, refusal: nil, preview: nil, predictedStatus: nil)
        let row = record.row
        let reference = row.key.description
        if request.reason.allSatisfy(\.isWhitespace) {
            check.refusal = "--reason is empty: say why (it goes to the saga's journal)"
            return check
        }
        if request.action == .reset, request.step == nil {
            check.refusal = "reset needs --to: the step to run again (see `waybill sagas show \(reference)`)"
            return check
        }
        if request.action == .skip, request.step == nil {
            check.refusal = "skip needs --step: the failed step to mark done (see `waybill sagas show \(reference)`)"
            return check
        }
        if row.status.isTerminal {
            check.refusal =
                "\(reference) is \(row.status.rawValue); a finished saga cannot be repaired (start a new order instead)"
            return check
        }
        var branch: Int?
        if let named = request.branch {
            guard request.action == .skip, let step = request.step else {
                check.refusal = "--branch goes with skip --step: the one branch of a for_each step to skip"
                return check
            }
            switch branchIndex(named, step: step, in: record.instance, definition: definition) {
            case .success(let index): branch = index
            case .failure(let refusal):
                check.refusal = "\(refusal.message) (see `waybill sagas show \(reference)`)"
                return check
            }
        }
        if request.action == .migrate {
            return migrationCheck(request, check: check)
        }
        let message = ControlMessage(
            workflow: row.key.workflow, sagaId: row.key.id, action: request.action, step: request.step,
            output: request.action == .skip ? (request.output ?? .object([:])) : nil, branch: branch, by: request.by,
            reason: request.reason)
        guard let definition else {
            check.message = message
            check.preview =
                "cannot predict: definition \(row.definitionHash.prefix(12)) is not in this file; the worker decides"
            return check
        }
        let command: OperatorCommand
        do {
            command = try message.operatorCommand()
        } catch {
            check.refusal = error.message
            return check
        }
        let transition = SagaEngine().apply(
            .operatorCommand(command), to: record.instance, definition: definition, now: now)
        switch transition.outcome {
        case .rejected(let reason):
            check.refusal = "refused: \(reason)\(hint(request, record: record, definition: definition))"
            return check
        case .ignored(let reason):
            check.refusal = "refused: \(reason)"
            return check
        case .applied:
            break
        }
        let after = transition.instance
        if !request.force, let error = after.failure?.error, error.code == StepError.evaluationCode,
            record.instance.failure?.error != error
        {
            let step = after.failure?.step ?? "a later step"
            check.refusal =
                "refused: after this \(request.verb) step '\(step)' would fail at once: \(Words.cut(error.message, 160)); "
                + (request.action == .skip
                    ? "give --output the fields later steps read" : "fix the data first")
                + " (or add --force to send it anyway)"
            return check
        }
        check.message = message
        check.predictedStatus = after.status
        check.preview = preview(before: record.instance, after: after, actions: transition.actions)
        if request.action == .reset, let step = request.step {
            let names = SagaNames(instance: after, definition: definition)
            let undo = (after.compensation?.queue ?? []).map(names.branch)
            check.preview =
                (check.preview ?? "")
                + (undo.isEmpty
                    ? "; nothing to undo: runs '\(step)' again now"
                    : "; undoes, one at a time: \(undo.joined(separator: ", ")); then runs '\(step)' again")
        }
        return check
    }

    /// A migration checked by the engine's own rules (``SagaMigration/refusal(for:)``) on the saga as this file has
    /// it; the preview says where the saga lands and which new steps it will not run.
    private static func migrationCheck(_ request: RepairRequest, check: RepairCheck) -> RepairCheck {
        var check = check
        let row = check.record.row
        guard let migration = request.migration else {
            check.refusal = "a migration needs its source and target definitions"
            return check
        }
        let transition = SagaEngine().migrate(check.record.instance, migration, now: row.updatedAt)
        guard transition.outcome == .applied else {
            if case .rejected(let reason) = transition.outcome { check.refusal = "refused: \(reason)" }
            return check
        }
        let after = transition.instance
        var message = ControlMessage(
            workflow: row.key.workflow, sagaId: row.key.id, action: .migrate, by: request.by, reason: request.reason)
        message.targetHash = migration.targetHash
        message.mapping = migration.mapping
        check.message = message
        check.predictedStatus = after.status
        let place =
            after.cursor < migration.target.steps.count
            ? "at '\(migration.target.steps[after.cursor].id)'" : "past the end"
        let bypassed = migration.target.steps.indices.filter { index in
            after.steps[index].status == .bypassed
                && !migration.source.steps.indices.contains { source in
                    migration.counterpart(of: source) == index
                }
        }.map { migration.target.steps[$0].id }
        check.preview =
            "v\(migration.source.version) → v\(migration.target.version) \(place), \(after.status.rawValue)"
            + (bypassed.isEmpty ? "" : "; will not run the new \(bypassed.joined(separator: ", "))")
        return check
    }

    /// Why a `--branch` names no branch.
    struct BranchRefusal: Error {
        var message: String
    }

    /// The index of the branch of `step` that `name` names: the index itself, or the `id` or `warehouse` of its item
    /// (a string item: the item itself).
    static func branchIndex(
        _ name: String, step: String, in instance: SagaInstance, definition: WorkflowDefinition?
    ) -> Result<Int, BranchRefusal> {
        guard let stepIndex = definition?.stepIndex(of: step) ?? nil, stepIndex < instance.steps.count else {
            return .failure(BranchRefusal(message: "--branch: the saga has no step '\(step)' to look for it in"))
        }
        let branches = instance.steps[stepIndex].branches
        if let index = Int(name) {
            guard branches.indices.contains(index) else {
                return .failure(
                    BranchRefusal(
                        message: "--branch \(index): step '\(step)' has branches 0...\(max(0, branches.count - 1))"))
            }
            return .success(index)
        }
        let matching = branches.indices.filter { index in
            guard let item = branches[index].item else { return false }
            return item.stringValue == name || item["id"]?.stringValue == name || item["warehouse"]?.stringValue == name
        }
        switch matching.count {
        case 1: return .success(matching[0])
        case 0:
            let labels = branches.indices.map { "\($0) (\(branches[$0].item.flatMap(SagaNames.itemLabel) ?? "-"))" }
            return .failure(
                BranchRefusal(
                    message: "--branch '\(name)' names no branch of step '\(step)'; its branches: "
                        + labels.joined(separator: ", ")))
        default:
            return .failure(
                BranchRefusal(
                    message:
                        "--branch '\(name)' names branches \(matching.map(String.init).joined(separator: ", ")) of "
                        + "step '\(step)'; give the index"))
        }
    }

    /// `suspended → running; sends 2 commands (tms.shipment.create); publishes order.shipped`.
    static func preview(before: SagaInstance, after: SagaInstance, actions: [SagaAction]) -> String {
        var commands: [String] = []
        var milestones: [String] = []
        for action in actions {
            switch action {
            case .sendCommand(let command):
                commands.append(command.kind == .compensate ? "undo \(command.routingKey)" : command.routingKey)
            case .holdCommand(let command): commands.append(command.routingKey + " (held for its limit)")
            case .publishMilestone(let event): milestones.append(event.name)
            case .scheduleTimer, .cancelTimer, .awaitMessage, .cancelAwait, .finished: break
            }
        }
        var parts = ["\(before.status.rawValue) → \(after.status.rawValue)"]
        if !commands.isEmpty {
            parts.append("sends \(Words.count(commands.count, "command")) (\(commands.joined(separator: ", ")))")
        }
        if !milestones.isEmpty { parts.append("publishes \(milestones.joined(separator: ", "))") }
        return parts.joined(separator: "; ")
    }

    /// What to try instead of a rejected repair.
    private static func hint(_ request: RepairRequest, record: SagaRecord, definition: WorkflowDefinition) -> String {
        let reference = record.row.key.description
        let diagnosis = Diagnosis(
            record: record, definition: definition, now: record.row.updatedAt, policy: StuckPolicy())
        switch diagnosis.stuckClass {
        case .suspended? where request.action == .retry || request.action == .skip:
            if let step = record.instance.failure?.step, step != request.step {
                return "; the failed step is '\(step)' (waybill sagas show \(reference))"
            }
        case .compensationFailing?:
            if let head = StuckClassifier.compensationHead(of: record.instance) {
                let step = SagaNames(instance: record.instance, definition: definition).step(head.ref.step)
                return "; the saga is undoing '\(step)': retry or skip that"
            }
        default:
            break
        }
        return ""
    }
}
