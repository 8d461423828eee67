import CodedError
import SagaEngine
import WaybillDefinition

// The operator control protocol between the `waybill` CLI and a worker. This file depends only on JSONValue /
// JSONText (WaybillDefinition) and OperatorCommand (SagaEngine) so it can move to wherever the worker's side lives.
//
// Request: published by the CLI to the default exchange with routing key the saga's partition queue
// (`PoolQueues.partition`, e.g. `waybill.p07`) and the header `waybill-input: control`, once a live worker holds the
// partition's lock; persistent, `content_type: application/json`, `message_id` and `correlation_id` the same fresh
// UUID, `reply_to` an exclusive auto-delete queue of the CLI, `expiration` the CLI's wait (so a request nobody
// consumed in time is dropped rather than applied long after the operator gave up). Body:
//
//     {"workflow": "order-fulfillment", "sagaId": "o-1001", "action": "skip", "step": "ship", "branch": 1,
//      "output": {"trackingId": "manual-1"}, "by": "alice", "reason": "shipped by hand, ticket OPS-42"}
//
// `action` is `retry`, `skip`, `compensate`, `cancel`, `reset` or `migrate` (with `targetHash`, the content hash of
// the stored definition to move to, and `mapping`, an object of source step id → target step id); `step` is optional for `retry` (none = the obvious one;
// `waybill sagas resume` sends a retry without a step), required for `skip`, absent otherwise; `output` only for
// `skip` (default `{}`); `branch` only for `skip` of a `for_each` step: the index of the one branch to skip. `by` and `reason` are required and non-empty; the worker journals them with the result.
// `note` (`waybill reconcile` recording a finding) writes one journal line, with `facts` (an object) as its data and
// `step` optional, and changes nothing else; it is answered `applied` once the line is committed.
//
// Reply: published by the worker, after the transaction that applied (or journaled the refusal of) the command
// committed, to the default exchange with routing key = `reply_to` and the request's `correlation_id`. Body:
//
//     {"status": "applied", "message": "operator skip ship by alice → running; sent 1 command",
//      "sagaStatus": "running"}
//
// `status` is `applied` (the saga moved), `rejected` (the engine refused: `message` says why; nothing changed but
// the journal line) or `error` (the worker could not process the request: unknown saga, bad body, not the owner).
// `sagaStatus` is the saga's status after the request, or absent when there is no such saga.

/// An operator repair sent to the owning worker (the request body of the control protocol).
public struct ControlMessage: Sendable, Hashable {
    /// What the operator asks for: the four engine repairs.
    public enum Action: String, Sendable, Hashable, CaseIterable {
        case retry
        case skip
        case compensate
        case cancel
        /// `waybill sagas reset --to STEP` (`step` names it).
        case reset
        /// `waybill workflows migrate` (`targetHash` and `mapping` say where to).
        case migrate
        /// A journal line and nothing else (`waybill reconcile` records a finding): `step` optional, `facts` the
        /// line's data.
        case note
    }

    /// The saga's workflow.
    public var workflow: String
    /// The saga id.
    public var sagaId: String
    /// The repair.
    public var action: Action
    /// The step a `retry` narrows to, or the step a `skip` skips; `nil` otherwise.
    public var step: String?
    /// The output a `skip` gives the skipped step (later steps read it as `steps.<id>.output`), or each skipped branch
    /// of a `for_each` step; `nil` otherwise.
    public var output: JSONValue?
    /// The one branch a `skip` of a `for_each` step skips (its index); `nil` skips every failed branch.
    public var branch: Int?
    /// Who asks (journaled as the actor).
    public var by: String
    /// Why (journaled).
    public var reason: String
    /// A migration's target: the content hash of the stored definition; `nil` otherwise.
    public var targetHash: String?
    /// A migration's renamed steps, source id → target id; empty otherwise.
    public var mapping: [String: String] = [:]
    /// A note's data (journaled as the line's facts); empty otherwise.
    public var facts: [String: JSONValue] = [:]

    /// The AMQP `content_type` of requests and replies.
    public static let contentType = "application/json"

    /// Describes a request.
    public init(
        workflow: String, sagaId: String, action: Action, step: String? = nil, output: JSONValue? = nil,
        branch: Int? = nil, by: String, reason: String
    ) {
        self.workflow = workflow
        self.sagaId = sagaId
        self.action = action
        self.step = step
        self.output = output
        self.branch = branch
        self.by = by
        self.reason = reason
    }

    /// The request for `command` on the saga `workflow`/`sagaId`.
    public init(workflow: String, sagaId: String, command: OperatorCommand) {
        self.workflow = workflow
        self.sagaId = sagaId
        by = command.by
        reason = command.reason
        switch command.action {
        case .retry(let step):
            action = .retry
            self.step = step
        case .skip(let step, let output, let branch):
            action = .skip
            self.step = step
            self.output = output
            self.branch = branch
        case .compensate:
            action = .compensate
        case .cancel:
            action = .cancel
        case .reset(let step):
            action = .reset
            self.step = step
        case .migrate(let hash, let mapping):
            action = .migrate
            targetHash = hash
            self.mapping = mapping
        case .note(let step, let facts):
            action = .note
            self.step = step
            self.facts = facts
        }
    }

    /// The engine command this request asks for (a `skip` without `output` skips with `{}`).
    ///
    /// Throws when a `skip` has no step, or `by` or `reason` is empty.
    public func operatorCommand() throws(ControlMessageError) -> OperatorCommand {
        guard !by.isEmpty else { throw ControlMessageError(.badRequest, "`by` is empty: say who asks") }
        guard !reason.isEmpty else { throw ControlMessageError(.badRequest, "`reason` is empty: say why") }
        switch action {
        case .retry:
            return OperatorCommand(action: .retry(step: step), by: by, reason: reason)
        case .skip:
            guard let step else { throw ControlMessageError(.badRequest, "a skip needs `step`: the step to skip") }
            return OperatorCommand(
                action: .skip(step: step, output: output ?? .object([:]), branch: branch), by: by, reason: reason)
        case .compensate:
            return OperatorCommand(action: .compensate, by: by, reason: reason)
        case .cancel:
            return OperatorCommand(action: .cancel, by: by, reason: reason)
        case .reset:
            guard let step else {
                throw ControlMessageError(.badRequest, "a reset needs `step`: the step to run again")
            }
            return OperatorCommand(action: .reset(step: step), by: by, reason: reason)
        case .migrate:
            guard let targetHash, !targetHash.isEmpty else {
                throw ControlMessageError(.badRequest, "a migrate needs `targetHash`: the definition to move to")
            }
            return OperatorCommand(action: .migrate(targetHash: targetHash, mapping: mapping), by: by, reason: reason)
        case .note:
            return OperatorCommand(action: .note(step: step, facts: facts), by: by, reason: reason)
        }
    }

    /// The body as a JSON value (optional members absent when `nil`).
    public var json: JSONValue {
        var members: [String: JSONValue] = [
            "workflow": .string(workflow), "sagaId": .string(sagaId), "action": .string(action.rawValue),
            "by": .string(by), "reason": .string(reason),
        ]
        if let step { members["step"] = .string(step) }
        if let output { members["output"] = output }
        if let branch { members["branch"] = .number(Double(branch)) }
        if let targetHash { members["targetHash"] = .string(targetHash) }
        if !mapping.isEmpty { members["mapping"] = .object(mapping.mapValues(JSONValue.string)) }
        if !facts.isEmpty { members["facts"] = .object(facts) }
        return .object(members)
    }

    /// The body bytes: compact JSON, keys sorted.
    public func encoded() -> [UInt8] {
        JSONText.encodeBytes(json)
    }

    /// Reads a request body; unknown members are ignored (newer CLIs may add some).
    public static func decode(_ bytes: some Collection<UInt8>) throws(ControlMessageError) -> ControlMessage {
        let value: JSONValue
        do {
            value = try JSONText.decode(bytes)
        } catch {
            throw ControlMessageError(.badRequest, "the body is not JSON", cause: error)
        }
        guard case .object(let members) = value else {
            throw ControlMessageError(.badRequest, "the body must be a JSON object")
        }
        func text(_ key: String) throws(ControlMessageError) -> String {
            guard let value = members[key] else { throw ControlMessageError(.badRequest, "`\(key)` is missing") }
            guard let string = value.stringValue else {
                throw ControlMessageError(.badRequest, "`\(key)` must be a string")
            }
            return string
        }
        let actionText = try text("action")
        guard let action = Action(rawValue: actionText) else {
            throw ControlMessageError(
                .badRequest,
                "unknown action '\(actionText)': expected \(Action.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var step: String?
        if let value = members["step"], value != .null {
            guard let string = value.stringValue else {
                throw ControlMessageError(.badRequest, "`step` must be a string")
            }
            step = string
        }
        let output = members["output"].flatMap { $0 == .null ? nil : $0 }
        var branch: Int?
        if let value = members["branch"], value != .null {
            guard let index = value.intValue, index >= 0 else {
                throw ControlMessageError(.badRequest, "`branch` must be a branch index: a whole number from 0")
            }
            branch = index
        }
        var message = ControlMessage(
            workflow: try text("workflow"), sagaId: try text("sagaId"), action: action, step: step, output: output,
            branch: branch, by: try text("by"), reason: try text("reason"))
        if let value = members["targetHash"], value != .null {
            guard let hash = value.stringValue else {
                throw ControlMessageError(.badRequest, "`targetHash` must be a string")
            }
            message.targetHash = hash
        }
        if let value = members["mapping"], value != .null {
            guard case .object(let pairs) = value, pairs.values.allSatisfy({ $0.stringValue != nil }) else {
                throw ControlMessageError(.badRequest, "`mapping` must be an object of step ids")
            }
            message.mapping = pairs.compactMapValues(\.stringValue)
        }
        if let value = members["facts"], value != .null {
            guard case .object(let facts) = value else {
                throw ControlMessageError(.badRequest, "`facts` must be an object")
            }
            message.facts = facts
        }
        return message
    }
}

/// The worker's answer to a ``ControlMessage`` (the reply body of the control protocol).
public struct ControlReply: Sendable, Hashable {
    /// What became of the request.
    public enum Status: String, Sendable, Hashable, CaseIterable {
        /// The saga moved; the transition is committed.
        case applied
        /// The engine refused the repair in the saga's state; only the journal line was written.
        case rejected
        /// The worker could not process the request (unknown saga, unreadable body, not the owner).
        case error
    }

    /// What became of the request.
    public var status: Status
    /// One human line: the journal line of the result, or why it was refused.
    public var message: String
    /// The saga's status after the request (`running`, `suspended`, ...), if the saga exists.
    public var sagaStatus: String?

    /// Describes a reply.
    public init(status: Status, message: String, sagaStatus: String? = nil) {
        self.status = status
        self.message = message
        self.sagaStatus = sagaStatus
    }

    /// The body as a JSON value (`sagaStatus` absent when `nil`).
    public var json: JSONValue {
        var members: [String: JSONValue] = ["status": .string(status.rawValue), "message": .string(message)]
        if let sagaStatus { members["sagaStatus"] = .string(sagaStatus) }
        return .object(members)
    }

    /// The body bytes: compact JSON, keys sorted.
    public func encoded() -> [UInt8] {
        JSONText.encodeBytes(json)
    }

    /// Reads a reply body.
    public static func decode(_ bytes: some Collection<UInt8>) throws(ControlMessageError) -> ControlReply {
        let value: JSONValue
        do {
            value = try JSONText.decode(bytes)
        } catch {
            throw ControlMessageError(.badReply, "the reply is not JSON", cause: error)
        }
        guard let statusText = value["status"]?.stringValue else {
            throw ControlMessageError(.badReply, "the reply has no `status` string")
        }
        guard let status = Status(rawValue: statusText) else {
            throw ControlMessageError(
                .badReply, "unknown reply status '\(statusText)': expected applied, rejected or error")
        }
        return ControlReply(
            status: status, message: value["message"]?.stringValue ?? "", sagaStatus: value["sagaStatus"]?.stringValue)
    }
}

/// A control request or reply that cannot be used; the message says which member is wrong and what it must hold,
/// and the cause is the ``JSONTextError`` when the body is not JSON. Match on the code, not on the message.
public typealias ControlMessageError = CodedError<ControlMessageErrorDomain>

/// The control messages' error family (``ControlMessageError``): its codes are `control.<snake_case>`.
public enum ControlMessageErrorDomain: ErrorDomain {}

/// Which side is wrong: the raw values (`control.<snake_case>`) are stable.
extension ErrorCode where Domain == ControlMessageErrorDomain {
    /// A request body the worker cannot use (not JSON, a missing or wrong member, an unknown action).
    public static let badRequest = Self(rawValue: "control.bad_request")
    /// A reply body the CLI cannot read.
    public static let badReply = Self(rawValue: "control.bad_reply")
}
