import WaybillDefinition

/// One `verify` query a reconciliation sends for a saga that ended: which effect (the step and branch, by the forward
/// command's idempotency key), the query itself, and what the saga says the participant should answer.
public struct Verification: Sendable, Hashable {
    /// What the saga's own record says about the effect.
    public enum Expectation: String, Sendable, Hashable, Codable {
        /// The saga kept it: the participant should answer `applied`.
        case applied
        /// The saga undid it, or it never took effect: `undone` or `absent`.
        case notApplied = "not_applied"
        /// The saga is suspended: the answer is reported, not judged.
        case unjudged
    }

    /// The step id.
    public var step: String
    /// The `for_each` branch index; `nil` for a plain step.
    public var branch: Int?
    /// The forward command's idempotency key: the query carries it, and the participant answers about its effect.
    public var idempotencyKey: String
    /// The routing key of the query (the step's `verify.command`, evaluated).
    public var routingKey: String
    /// The query's body (its `verify.input`, evaluated).
    public var body: JSONValue
    /// What the answer should be.
    public var expectation: Expectation
    /// For an effect the saga undid: its compensation, as the saga sent it (what a repair sends again when the
    /// effect is still in place); `nil` otherwise.
    public var undo: CommandMessage?

    public init(
        step: String, branch: Int?, idempotencyKey: String, routingKey: String, body: JSONValue,
        expectation: Expectation, undo: CommandMessage? = nil
    ) {
        self.step = step
        self.branch = branch
        self.idempotencyKey = idempotencyKey
        self.routingKey = routingKey
        self.body = body
        self.expectation = expectation
        self.undo = undo
    }

    /// `reserve` or `release[1]`.
    public var label: String { branch.map { "\(step)[\($0)]" } ?? step }
}

/// A `verify` query that could not be built: its template did not evaluate on the saga's data.
public struct UnbuildableVerification: Sendable, Hashable {
    public var step: String
    public var branch: Int?
    public var idempotencyKey: String
    /// The evaluation error.
    public var message: String

    /// `reserve` or `release[1]`.
    public var label: String { branch.map { "\(step)[\($0)]" } ?? step }
}

extension SagaEngine {
    /// The `verify` queries for `instance`, one per branch of each step with a `verify` whose command ran: for a
    /// completed saga a kept effect should be `applied` and an undone or failed one not; for a compensated or
    /// cancelled saga every undone or failed effect should be `undone` or `absent`, and one the workflow does not undo
    /// `applied`; a suspended saga's are unjudged. Skipped branches (an operator stood in for them) and branches
    /// still in flight are not checked; neither is a saga that is still running or compensating.
    public func verifications(
        of instance: SagaInstance, definition: WorkflowDefinition
    ) -> (queries: [Verification], unbuildable: [UnbuildableVerification]) {
        var run = SagaRun(engine: self, definition: definition, instance: instance, now: instance.updatedAt)
        return run.verifications()
    }
}

extension SagaRun {
    mutating func verifications() -> (queries: [Verification], unbuildable: [UnbuildableVerification]) {
        let judged: Bool
        switch instance.status {
        case .completed, .compensated, .cancelled: judged = true
        case .suspended: judged = false
        case .running, .compensating: return ([], [])
        }
        var queries: [Verification] = []
        var unbuildable: [UnbuildableVerification] = []
        for (index, step) in definition.steps.enumerated() {
            guard let verify = step.verify, index < instance.steps.count else { continue }
            // Earlier rounds' branches first (a reallocation or reset replaced them), then this round's.
            let branches =
                instance.steps[index].retired.map { ($0.index, $0.state, true) }
                + instance.steps[index].branches.enumerated().map { ($0.offset, $0.element, false) }
            for (position, state, retired) in branches {
                let expectation: Verification.Expectation
                switch state.status {
                case .succeeded: expectation = .applied
                case .compensated, .failed: expectation = .notApplied
                case .skipped, .waiting, .inFlight, .retryWait, .compensating, .compensationRetryWait: continue
                }
                let branch = step.forEach == nil ? nil : position
                let key = IdempotencyKey.forward(
                    sagaId: instance.key.id, step: step.id, branch: branch, round: state.round)
                var scope = branchScope(step: index, state: state, retired: retired)
                if state.outcomeUnknown { scope.unknownOutputs = [step.id] }
                var undo: CommandMessage?
                if state.status == .compensated, step.compensate != nil,
                    let command = try? compensationCommand(step: index, state: state, retired: retired)
                {
                    undo = CommandMessage(
                        messageId: "", routingKey: command.routingKey,
                        idempotencyKey: IdempotencyKey.compensation(of: key), step: step.id, branch: branch,
                        kind: .compensate, attempt: state.compensationAttempt + 1, body: command.body,
                        compensates: key, outcomeUnknown: state.outcomeUnknown)
                }
                do {
                    queries.append(
                        Verification(
                            step: step.id, branch: branch, idempotencyKey: key,
                            routingKey: try verify.routingKey.evaluateString(in: scope),
                            body: try verify.input.evaluate(in: scope),
                            expectation: judged ? expectation : .unjudged, undo: undo))
                } catch {
                    unbuildable.append(
                        UnbuildableVerification(
                            step: step.id, branch: branch, idempotencyKey: key, message: error.description))
                }
            }
        }
        return (queries, unbuildable)
    }
}
