import SagaEngine
import SagaStore
import WaybillDefinition
import WaybillWire

/// What an operator asks of one saga, before it is checked.
public struct RepairRequest: Sendable, Hashable {
    /// The repair.
    public var action: ControlMessage.Action
    /// `--step`: narrows a retry, names the step a skip skips.
    public var step: String?
    /// `--output`: a skip's output.
    public var output: JSONValue?
    /// `--by`.
    public var by: String
    /// `--reason`.
    public var reason: String
    /// `--force`: send even when the local simulation shows the repair failing the saga again at once.
    public var force: Bool

    /// Describes a request.
    public init(
        action: ControlMessage.Action, step: String? = nil, output: JSONValue? = nil, by: String, reason: String,
        force: Bool = false
    ) {
        self.action = action
        self.step = step
        self.output = output
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
        if request.action == .skip, request.step == nil {
            check.refusal = "skip needs --step: the failed step to mark done (see `waybill sagas show \(reference)`)"
            return check
        }
        if row.status.isTerminal {
            check.refusal =
                "\(reference) is \(row.status.rawValue); a finished saga cannot be repaired (start a new order instead)"
            return check
        }
        let message = ControlMessage(
            workflow: row.key.workflow, sagaId: row.key.id, action: request.action, step: request.step,
            output: request.action == .skip ? (request.output ?? .object([:])) : nil, by: request.by,
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
        return check
    }

    /// `suspended → running; sends 2 commands (tms.shipment.create); publishes order.shipped`.
    static func preview(before: SagaInstance, after: SagaInstance, actions: [SagaAction]) -> String {
        var commands: [String] = []
        var milestones: [String] = []
        for action in actions {
            switch action {
            case .sendCommand(let command):
                commands.append(command.kind == .compensate ? "undo \(command.routingKey)" : command.routingKey)
            case .publishMilestone(let event): milestones.append(event.name)
            case .scheduleTimer, .cancelTimer, .finished: break
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
