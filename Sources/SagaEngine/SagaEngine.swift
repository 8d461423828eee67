import SplitPlanner
import WaybillDefinition

/// The saga state machine: `(definition, instance, event, now) -> (instance, actions)`. docs/workflows.md ("How a
/// saga runs") describes the behaviour it implements.
///
/// Pure: it does no I/O and reads no clock or random source it was not given. The caller stores the new instance
/// and performs the actions (in order) in one unit of work; replaying the same events gives the same result.
public struct SagaEngine: Sendable {
    /// Seeds the full-jitter delays; the same seed and saga give the same delays.
    public var jitterSeed: UInt64
    /// The participants' limits: asked before each command is sent, it may hold the command back
    /// (``SagaAction/holdCommand(_:)``). `nil` sends every command at once. It is the one input the engine does not
    /// own: a transition is then only replayable with the same answers.
    public var admission: (any CommandAdmission)?

    /// An engine; it holds no saga state, so one value serves every saga. Replaying recorded events reproduces the
    /// same retry timers only with the same `jitterSeed`.
    public init(jitterSeed: UInt64 = 0x5741_5942_494C_4C21, admission: (any CommandAdmission)? = nil) {
        self.jitterSeed = jitterSeed
        self.admission = admission
    }

    /// Evaluates the trigger's `saga_id` expression over a start message body. Throws when the body lacks the path;
    /// such a start cannot become a saga (dead-letter it, do not retry it).
    public func sagaId(for input: JSONValue, in definition: WorkflowDefinition) throws(EvaluationError) -> String {
        try definition.trigger.sagaId.evaluateString(
            in: EvaluationScope(input: input, sagaId: "", workflow: definition.name))
    }

    /// Creates a saga from its start message and runs it up to its first wait.
    ///
    /// Call it only for a saga id that has no stored instance: a second start would make a fresh saga and send its
    /// first commands again. Applying ``SagaEvent/start(input:)`` to an existing instance reports the duplicate.
    public func start(
        definition: WorkflowDefinition, definitionHash: String, sagaId: String, input: JSONValue, now: Timestamp
    ) -> Transition {
        var run = SagaRun(
            engine: self, definition: definition,
            instance: SagaInstance(
                key: SagaKey(workflow: definition.name, id: sagaId), version: definition.version,
                definitionHash: definitionHash, status: .running, input: input,
                steps: Array(repeating: StepState(), count: definition.steps.count), cursor: 0, completions: [],
                compensation: nil, pivotPassed: false, failure: nil, startedAt: now, updatedAt: now, sequence: 0),
            now: now)
        run.advance()
        return run.finish(.applied)
    }

    /// Applies `event` to `instance`, which must have been started with `definition` (the version and hash it
    /// records): another definition's step indices point at other steps.
    public func apply(
        _ event: SagaEvent, to instance: SagaInstance, definition: WorkflowDefinition, now: Timestamp
    ) -> Transition {
        var run = SagaRun(engine: self, definition: definition, instance: instance, now: now)
        let outcome = run.handle(event)
        return run.finish(outcome)
    }

    /// The commands `instance` holds back for a participant's limit, as ``SagaAction/holdCommand(_:)`` announced them:
    /// what a partition's new owner queues again.
    public func heldCommands(of instance: SagaInstance, definition: WorkflowDefinition) -> [HeldCommand] {
        SagaRun(engine: self, definition: definition, instance: instance, now: instance.updatedAt).heldCommands()
    }

    /// The messages `instance` waits for, by the branch that waits (what its wait steps recorded in the store):
    /// for views that say what a saga waits for.
    public func awaitedMessages(
        of instance: SagaInstance, definition: WorkflowDefinition
    ) -> [(branch: BranchRef, wait: AwaitedMessage)] {
        var run = SagaRun(engine: self, definition: definition, instance: instance, now: instance.updatedAt)
        return run.awaitedMessages()
    }
}
