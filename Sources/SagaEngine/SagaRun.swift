import SeededRandom
import SplitPlanner
import WaybillDefinition

/// One transition in progress: the working copy of the instance and the actions collected so far.
///
/// Every path that changes the saga goes through here, so the invariants live in one place:
/// - a branch has at most one pending command and at most one live timer;
/// - a reply is matched by message id only, so late and duplicate replies find nothing and are ignored;
/// - compensation walks the steps backwards, one command at a time: in each step first the branches whose outcome is
///   unknown (an attempt timed out and none succeeded, ``BranchState/outcomeUnknown``), then the succeeded ones in
///   reverse completion order (`completions` backwards).
struct SagaRun {
    let engine: SagaEngine
    let definition: WorkflowDefinition
    var instance: SagaInstance
    let now: Timestamp
    var actions: [SagaAction] = []
    /// Step outputs by id, built on first use and dropped whenever a step output changes.
    private var outputsCache: [String: JSONValue]?
    /// `workflow/id/`, the prefix of every id this saga mints.
    private let idPrefix: String

    init(engine: SagaEngine, definition: WorkflowDefinition, instance: SagaInstance, now: Timestamp) {
        self.engine = engine
        self.definition = definition
        self.instance = instance
        self.now = now
        self.idPrefix = instance.key.workflow + "/" + instance.key.id + "/"
    }

    mutating func finish(_ outcome: Transition.Outcome) -> Transition {
        if case .applied = outcome { instance.updatedAt = now }
        return Transition(instance: instance, actions: actions, outcome: outcome)
    }

    // MARK: - Events

    mutating func handle(_ event: SagaEvent) -> Transition.Outcome {
        switch event {
        case .start:
            return .ignored("duplicate start for saga \(instance.key)")
        case .reply(let correlationId, let outcome):
            guard let ref = pendingBranch(messageId: correlationId) else {
                return .ignored("late or duplicate reply \(correlationId) (no command waits for it)")
            }
            handleReply(outcome, for: ref)
        case .commandReturned(let messageId):
            guard let ref = pendingBranch(messageId: messageId) else {
                return .ignored("return of \(messageId) for a command that no longer waits")
            }
            let routingKey = branch(ref).pending?.routingKey ?? ""
            let error = StepError(
                code: StepError.unroutableCode,
                message: "no queue is bound to routing key '\(routingKey)' on the commands exchange", retryable: true)
            handleReply(.error(error), for: ref)
        case .timerFired(let timerId):
            guard let ref = timerBranch(timerId: timerId), let timer = branch(ref).timer else {
                return .ignored("stale timer \(timerId)")
            }
            handleTimer(timer, for: ref)
        case .signal(let waitId, let message):
            guard let ref = timerBranch(timerId: waitId), branch(ref).status == .waiting,
                case .wait(let spec) = definition.steps[ref.step].action, let wait = spec.message
            else {
                return .ignored("message for wait \(waitId), which no longer waits")
            }
            guard let expected = try? Self.correlation(wait.match, in: scope()),
                let key = try? Self.correlation(
                    wait.key,
                    in: EvaluationScope(
                        input: .null, alias: (MessageWait.messageName, message), sagaId: instance.key.id,
                        workflow: instance.key.workflow)),
                key == expected
            else {
                return .ignored("message for wait \(waitId) does not carry the key the saga waits for")
            }
            clearTimer(ref)
            branchSucceeded(ref, output: message)
            advance()
        case .operatorCommand(let command):
            if case .note = command.action { return .ignored("a note changes nothing but the journal") }
            if let refusal = handleOperator(command) { return .rejected(refusal) }
        }
        return .applied
    }

    private static func awaited(_ wait: MessageWait, id: String, match: String) -> AwaitedMessage {
        AwaitedMessage(id: id, exchange: wait.exchange, routingKey: wait.routingKey, key: wait.keyText, match: match)
    }

    /// What each waiting branch of a message wait waits for, as ``startStep(_:)`` recorded it.
    mutating func awaitedMessages() -> [(branch: BranchRef, wait: AwaitedMessage)] {
        var found: [(branch: BranchRef, wait: AwaitedMessage)] = []
        for (index, step) in definition.steps.enumerated() where index < instance.steps.count {
            guard case .wait(let spec) = step.action, let wait = spec.message else { continue }
            for (branchIndex, state) in instance.steps[index].branches.enumerated() where state.status == .waiting {
                guard let timer = state.timer, let match = try? Self.correlation(wait.match, in: scope()) else {
                    continue
                }
                found.append(
                    (BranchRef(step: index, branch: branchIndex), Self.awaited(wait, id: timer.id, match: match)))
            }
        }
        return found
    }

    /// A match or key value as text; throws when it cannot correlate (null, an array, an object).
    private static func correlation(
        _ template: Template, in scope: EvaluationScope
    ) throws(EvaluationError)
        -> String
    {
        let value = try template.evaluate(in: scope)
        guard let text = MessageWait.correlationText(value) else {
            throw EvaluationError(
                .wrongType, path: "match",
                reason: "a wait correlates by a string, number or boolean, and this is \(value.typeName)")
        }
        return text
    }

    private mutating func handleReply(_ outcome: ReplyOutcome, for ref: BranchRef) {
        guard let pending = branch(ref).pending else { return }
        // A forward command of a step that is failing meanwhile is not held again: it fails like its siblings.
        if case .error(let error) = outcome, error.code == StepError.rateLimitedCode,
            engine.admission?.isLimited(pending.routingKey) == true,
            pending.kind == .compensate || instance.steps[ref.step].status == .running
        {
            // Back-pressure, not a failure: the same attempt waits for the limiter again, under a new message id.
            let messageId = nextId("m")
            modifyBranch(ref) { [now] in
                $0.pending?.messageId = messageId
                $0.pending?.sentAt = now
            }
            hold(ref)
            return
        }
        clearTimer(ref)
        modifyBranch(ref) { $0.pending = nil }
        switch (pending.kind, outcome) {
        case (.do, .ok(let output)):
            branchSucceeded(ref, output: output ?? .null)
        case (.do, .error(let error)):
            attemptFailed(ref, error: error)
        case (.compensate, .ok):
            compensationSucceeded(ref)
        case (.compensate, .error(let error)):
            compensationAttemptFailed(ref, error: error)
        }
        advance()
    }

    private mutating func handleTimer(_ timer: SagaTimer, for ref: BranchRef) {
        modifyBranch(ref) { $0.timer = nil }
        actions.append(.cancelTimer(id: timer.id))
        let state = branch(ref)
        switch (timer.kind, state.status) {
        case (.hold, _):
            release(ref)
            return
        case (.replyTimeout, _):
            guard let pending = state.pending else { return }
            modifyBranch(ref) {
                $0.pending = nil
                // The command went out and no reply came: the participant may have applied it all the same.
                if pending.kind == .do { $0.unansweredAttempts += 1 }
            }
            let waited = definition.steps[ref.step].timeout
            let error = StepError(
                code: StepError.timeoutCode, message: "no reply to \(pending.messageId) within \(waited)",
                retryable: true)
            if pending.kind == .do {
                attemptFailed(ref, error: error)
            } else {
                compensationAttemptFailed(ref, error: error)
            }
        case (.wait, .waiting):
            if case .wait(let spec) = definition.steps[ref.step].action, let wait = spec.message {
                actions.append(.cancelAwait(id: timer.id))
                waitTimedOut(ref, spec: spec, wait: wait)
            } else {
                branchSucceeded(
                    ref, output: ["waitedMs": .number(Double(now.milliseconds - (state.startedAt ?? now).milliseconds))]
                )
            }
        case (.wait, _):
            break
        case (.retry, .retryWait):
            sendAttempt(ref)
        case (.retry, .compensationRetryWait):
            sendCompensation(ref)
        case (.retry, _):
            break
        }
        advance()
    }

    // MARK: - Forward

    /// Runs forward until the saga has to wait for something.
    mutating func advance() {
        while instance.status == .running, instance.compensation == nil {
            guard instance.cursor < definition.steps.count else {
                complete()
                return
            }
            guard instance.steps[instance.cursor].status == .pending else { return }
            startStep(instance.cursor)
        }
    }

    private mutating func startStep(_ index: Int) {
        let step = definition.steps[index]
        instance.steps[index].status = .running
        instance.steps[index].startedAt = now
        switch step.action {
        case .split(let spec):
            runSplit(index, spec: spec)
        case .choice(let spec):
            runChoice(index, spec: spec)
        case .wait(let spec):
            var match: String?
            if let wait = spec.message {
                do {
                    match = try Self.correlation(wait.match, in: scope())
                } catch {
                    failStep(
                        index,
                        error: StepError(code: StepError.evaluationCode, message: error.message, retryable: false))
                    return
                }
            }
            let ref = BranchRef(step: index, branch: 0)
            instance.steps[index].branches = [BranchState(item: nil, round: instance.steps[index].round)]
            modifyBranch(ref) { [now] in
                $0.status = .waiting
                $0.startedAt = now
            }
            setTimer(ref, kind: .wait, after: spec.duration.milliseconds)
            if let wait = spec.message, let match, let timer = branch(ref).timer {
                actions.append(.awaitMessage(Self.awaited(wait, id: timer.id, match: match)))
            }
        case .command:
            var items: [JSONValue?] = [nil]
            if let forEach = step.forEach {
                do {
                    let value = try forEach.items.evaluate(in: scope())
                    guard case .array(let elements) = value else {
                        failStep(
                            index,
                            error: StepError(
                                code: StepError.evaluationCode,
                                message: "for_each must evaluate to an array, got \(value.typeName)", retryable: false))
                        return
                    }
                    items = elements.map { $0 }
                } catch {
                    failStep(
                        index,
                        error: StepError(code: StepError.evaluationCode, message: error.message, retryable: false))
                    return
                }
            }
            let round = instance.steps[index].round
            instance.steps[index].branches = items.map { BranchState(item: $0, round: round) }
            if items.isEmpty {
                stepSucceeded(index)
                return
            }
            for branchIndex in items.indices {
                sendAttempt(BranchRef(step: index, branch: branchIndex))
            }
        }
    }

    private mutating func sendAttempt(_ ref: BranchRef) {
        let step = definition.steps[ref.step]
        guard case .command = step.action else { return }
        modifyBranch(ref) { [now] in
            $0.attempt += 1
            $0.status = .inFlight
            if $0.startedAt == nil { $0.startedAt = now }
        }
        let command: (routingKey: String, body: JSONValue)
        do {
            command = try forwardCommand(ref)
        } catch {
            attemptFailed(
                ref, error: StepError(code: StepError.evaluationCode, message: error.message, retryable: false))
            return
        }
        send(ref, kind: .do, attempt: branch(ref).attempt, routingKey: command.routingKey, body: command.body)
    }

    /// The routing key and body of a branch's forward command.
    private mutating func forwardCommand(
        _ ref: BranchRef
    ) throws(EvaluationError) -> (routingKey: String, body: JSONValue) {
        let step = definition.steps[ref.step]
        guard case .command(let command) = step.action else { return ("", .null) }
        let scope = scope(alias: branch(ref).item.map { (step.forEach?.alias ?? "", $0) })
        return (try command.routingKey.evaluateString(in: scope), try command.input.evaluate(in: scope))
    }

    /// Sends a command, or holds it when the participants' limits say it must wait (no attempt is used up by waiting:
    /// `attempt` is the number it goes out with).
    private mutating func send(_ ref: BranchRef, kind: CommandKind, attempt: Int, routingKey: String, body: JSONValue) {
        let step = definition.steps[ref.step]
        let messageId = nextId("m")
        modifyBranch(ref) { [now] in
            $0.pending = PendingCommand(
                messageId: messageId, routingKey: routingKey, kind: kind, attempt: attempt, sentAt: now)
        }
        if let admission = engine.admission,
            !admission.admit(routingKey: routingKey, messageId: messageId, timeout: step.timeout, now: now)
        {
            hold(ref)
            return
        }
        emitCommand(ref, body: body)
    }

    /// Whether the branch's command is held back by a limit (never sent).
    private func isHeld(_ ref: BranchRef) -> Bool {
        branch(ref).timer?.kind == .hold && branch(ref).pending != nil
    }

    /// Holds the branch's pending command back: a hold timer instead of a reply timer, and nothing sent.
    private mutating func hold(_ ref: BranchRef) {
        guard branch(ref).pending != nil else { return }
        clearTimer(ref)
        let timer = SagaTimer(id: nextId("t"), kind: .hold, dueAt: .distantFuture)
        modifyBranch(ref) { $0.timer = timer }
        actions.append(.scheduleTimer(timer))
        if let held = heldCommand(ref) { actions.append(.holdCommand(held)) }
    }

    /// The command a branch holds back for a limit, as the limiter queues it (held since its `sentAt`); `nil` unless
    /// the branch is held.
    func heldCommand(_ ref: BranchRef) -> HeldCommand? {
        let state = branch(ref)
        guard let pending = state.pending, let timer = state.timer, timer.kind == .hold else { return nil }
        return HeldCommand(
            timerId: timer.id, messageId: pending.messageId, routingKey: pending.routingKey,
            priority: definition.priorityLane(input: instance.input), heldAt: pending.sentAt,
            timeout: definition.steps[ref.step].timeout)
    }

    /// Every command the saga holds back for a limit.
    func heldCommands() -> [HeldCommand] {
        allBranchRefs().compactMap(heldCommand)
    }

    /// Sends the branch's pending command and starts its reply timer.
    private mutating func emitCommand(_ ref: BranchRef, body: JSONValue) {
        let step = definition.steps[ref.step]
        let state = branch(ref)
        guard let pending = state.pending else { return }
        let forwardKey = IdempotencyKey.forward(
            sagaId: instance.key.id, step: step.id, branch: branchLabel(ref), round: state.round)
        let undo = pending.kind == .compensate
        actions.append(
            .sendCommand(
                CommandMessage(
                    messageId: pending.messageId, routingKey: pending.routingKey,
                    idempotencyKey: undo ? IdempotencyKey.compensation(of: forwardKey) : forwardKey, step: step.id,
                    branch: branchLabel(ref), kind: pending.kind, attempt: pending.attempt, body: body,
                    compensates: undo ? forwardKey : nil, outcomeUnknown: undo && state.outcomeUnknown)))
        setTimer(ref, kind: .replyTimeout, after: step.timeout.milliseconds)
    }

    /// The limiter released a held command: it goes out now, with the message id and attempt it was held with, and
    /// its reply timeout starts.
    private mutating func release(_ ref: BranchRef) {
        guard let pending = branch(ref).pending else { return }
        let command: (routingKey: String, body: JSONValue)
        do {
            command = pending.kind == .do ? try forwardCommand(ref) : try compensationCommand(ref)
        } catch {
            // The saga's data did not change while it waited, so this cannot happen; fail as a send would have.
            modifyBranch(ref) { $0.pending = nil }
            let failure = StepError(code: StepError.evaluationCode, message: error.message, retryable: false)
            if pending.kind == .do { attemptFailed(ref, error: failure) } else { compensationUnevaluable(ref, failure) }
            return
        }
        modifyBranch(ref) { [now] in $0.pending?.sentAt = now }
        emitCommand(ref, body: command.body)
    }

    private mutating func branchSucceeded(_ ref: BranchRef, output: JSONValue) {
        let step = definition.steps[ref.step]
        modifyBranch(ref) { [now] in
            $0.status = .succeeded
            $0.output = output
            $0.finishedAt = now
        }
        outputsCache = nil
        instance.completions.append(ref)
        if step.pivot { instance.pivotPassed = true }
        // Published whatever the siblings do later: this branch took effect. Before the pivot it may still be
        // undone, which the saga's end milestone then says.
        if let milestone = step.branchMilestone, step.forEach != nil {
            publish(
                milestone, step: step.id, output: output,
                branch: MilestoneBranch(index: ref.branch, item: branch(ref).item))
        }
        switch instance.steps[ref.step].status {
        case .running:
            // A branch an operator skipped counts as done (a retry of its step re-runs the others).
            if instance.steps[ref.step].branches.allSatisfy({ $0.status == .succeeded || $0.status == .skipped }) {
                stepSucceeded(ref.step)
            }
        case .failing:
            settleFailingStep(ref.step)
        default:
            break
        }
    }

    private mutating func attemptFailed(_ ref: BranchRef, error: StepError) {
        let step = definition.steps[ref.step]
        let attempt = branch(ref).attempt
        modifyBranch(ref) { $0.lastError = error }
        if instance.steps[ref.step].status == .running, error.retryable, step.retry.allowsAttempt(after: attempt) {
            modifyBranch(ref) { $0.status = .retryWait }
            setTimer(ref, kind: .retry, after: retryDelay(step.retry, attempt: attempt, salt: ref))
            return
        }
        modifyBranch(ref) { [now] in
            $0.status = .failed
            $0.finishedAt = now
        }
        if instance.steps[ref.step].status == .running {
            beginFailing(ref.step, failure: SagaFailure(step: step.id, branch: branchLabel(ref), error: error, at: now))
        }
        settleFailingStep(ref.step)
    }

    /// Marks the step as failing: no new attempts; siblings waiting to retry give up; in-flight ones are awaited.
    private mutating func beginFailing(_ index: Int, failure: SagaFailure) {
        instance.steps[index].status = .failing
        if instance.failure == nil { instance.failure = failure }
        for branchIndex in instance.steps[index].branches.indices {
            let ref = BranchRef(step: index, branch: branchIndex)
            if branch(ref).status == .waiting {
                // An operator stopped the saga while it waited: the wait ends, with nothing to undo.
                clearTimer(ref)
                modifyBranch(ref) { [now] in
                    $0.status = .failed
                    $0.finishedAt = now
                    $0.lastError = StepError(
                        code: StepError.abandonedCode, message: "stopped waiting because the saga failed",
                        retryable: true)
                }
                continue
            }
            if isHeld(ref), branch(ref).pending?.kind == .do {
                // Never sent: there is nothing to wait for and nothing to undo.
                clearTimer(ref)
                modifyBranch(ref) { [now] in
                    $0.pending = nil
                    $0.status = .failed
                    $0.finishedAt = now
                    $0.lastError = StepError(
                        code: StepError.abandonedCode,
                        message: "not sent (held back by a participant's limit) because another branch failed",
                        retryable: true)
                }
                continue
            }
            guard branch(ref).status == .retryWait else { continue }
            clearTimer(ref)
            let last = branch(ref).lastError?.description ?? "none"
            modifyBranch(ref) { [now] in
                $0.status = .failed
                $0.finishedAt = now
                $0.lastError = StepError(
                    code: StepError.abandonedCode,
                    message: "stopped retrying because another branch failed (last error: \(last))", retryable: true)
            }
        }
    }

    private mutating func failStep(_ index: Int, error: StepError) {
        beginFailing(
            index, failure: SagaFailure(step: definition.steps[index].id, branch: nil, error: error, at: now))
        settleFailingStep(index)
    }

    /// Once no branch of a failing step is in flight: reallocate, suspend or compensate.
    private mutating func settleFailingStep(_ index: Int) {
        guard instance.steps[index].status == .failing,
            !instance.steps[index].branches.contains(where: { $0.status == .inFlight })
        else { return }
        instance.steps[index].status = .failed
        instance.steps[index].finishedAt = now
        if let reallocation = reallocation(for: index) {
            instance.steps[index].reallocations += 1
            beginCompensation(
                .reallocate(splitStep: reallocation.splitStep, excludedWarehouses: reallocation.warehouses))
        } else if instance.pivotPassed {
            suspend()
        } else {
            beginCompensation(.abort)
        }
    }

    private func reallocation(for index: Int) -> (splitStep: Int, warehouses: [String])? {
        let step = definition.steps[index]
        guard let rule = step.reallocate, !instance.pivotPassed,
            instance.failure?.error.code != StepError.operatorCode,
            instance.steps[index].reallocations < rule.max,
            let splitIndex = definition.stepIndex(of: rule.splitStep), splitIndex < index
        else { return nil }
        var warehouses: [String] = []
        for state in instance.steps[index].branches where state.status == .failed {
            guard let error = state.lastError else { return nil }
            if error.code == StepError.abandonedCode { continue }
            guard !error.retryable, rule.codes.contains(error.code),
                let warehouse = state.item?["warehouse"]?.stringValue
            else { return nil }
            if !warehouses.contains(warehouse) { warehouses.append(warehouse) }
        }
        return warehouses.isEmpty ? nil : (splitIndex, warehouses)
    }

    /// Marks a step done; `output` defaults to its branch output (or the array of them for `for_each`).
    private mutating func stepSucceeded(
        _ index: Int, output given: JSONValue? = nil, target: StepTarget? = nil, milestone publishes: Bool = true
    ) {
        let step = definition.steps[index]
        let state = instance.steps[index]
        let output =
            given
            ?? (step.forEach == nil
                ? (state.branches.first?.output ?? .null) : .array(state.branches.map { $0.output ?? .null }))
        instance.steps[index].status = .succeeded
        instance.steps[index].output = output
        outputsCache = nil
        instance.steps[index].finishedAt = now
        if publishes, let milestone = step.milestone {
            publish(milestone, step: step.id, output: output)
        }
        moveOn(from: index, to: target ?? step.next)
    }

    /// Moves the cursor past the step at `index`: to the step after it, or to `target` (a later step, the end); the
    /// steps jumped over are bypassed.
    private mutating func moveOn(from index: Int, to target: StepTarget?) {
        var destination = index + 1
        switch target {
        case .step(let id)?:
            destination = definition.stepIndex(of: id).map { max($0, index + 1) } ?? destination
        case .end?:
            destination = definition.steps.count
        case .fail?, nil:
            break
        }
        for skipped in (index + 1)..<max(index + 1, destination) {
            instance.steps[skipped].status = .bypassed
            instance.steps[skipped].finishedAt = now
        }
        instance.cursor = destination
    }

    /// Tries the rules in order and takes the first that holds (the step's `next` when none does). The output,
    /// `{next, rule}`, says which path was taken: `rule` is the 0-based index, or null when none held.
    private mutating func runChoice(_ index: Int, spec: ChoiceSpec) {
        let scope = scope()
        var chosen: (rule: Int?, target: StepTarget?) = (nil, definition.steps[index].next)
        do {
            for (number, rule) in spec.rules.enumerated() where try rule.when.holds(in: scope) {
                chosen = (number, rule.target)
                break
            }
        } catch {
            failStep(index, error: StepError(code: StepError.evaluationCode, message: error.message, retryable: false))
            return
        }
        let output: JSONValue = [
            "next": .string(
                chosen.target?.description
                    ?? (index + 1 < definition.steps.count
                        ? definition.steps[index + 1].id : StepTarget.end.description)),
            "rule": chosen.rule.map { .number(Double($0)) } ?? .null,
        ]
        if case .fail(let code, let message)? = chosen.target {
            instance.steps[index].output = output
            outputsCache = nil
            failStep(index, error: StepError(code: code, message: message, retryable: false))
            return
        }
        stepSucceeded(index, output: output, target: chosen.target)
    }

    private mutating func runSplit(_ index: Int, spec: SplitStepSpec) {
        let state = instance.steps[index]
        let request: SplitRequest
        do {
            let scope = scope()
            request = SplitRequest(
                lines: try SplitInput.lines(try spec.lines.evaluate(in: scope)),
                stock: try SplitInput.stock(try spec.stock.evaluate(in: scope)),
                warehousePriority: try spec.priority.map { try SplitInput.priority(try $0.evaluate(in: scope)) }
                    ?? SplitInput.priorityFromStock(try spec.stock.evaluate(in: scope)),
                excludedWarehouses: Set(state.excludedWarehouses),
                backorder: spec.backorder == .allow ? .allow : .reject,
                shipmentIdPrefix: state.round == 0 ? instance.key.id : "\(instance.key.id)-r\(state.round)")
        } catch let error as EvaluationError {
            failStep(
                index, error: StepError(code: StepError.evaluationCode, message: error.message, retryable: false))
            return
        } catch let error as SplitPlanningError {
            failStep(index, error: SplitInput.stepError(error))
            return
        } catch {
            failStep(index, error: StepError(code: "invalid_split_input", message: "\(error)", retryable: false))
            return
        }
        do {
            let plan = try SplitPlanner.plan(request)
            stepSucceeded(index, output: SplitInput.json(plan))
        } catch {
            failStep(index, error: SplitInput.stepError(error))
        }
    }

    private mutating func complete() {
        instance.status = .completed
        instance.cursor = definition.steps.count
        if let milestone = definition.milestones.completed { publish(milestone, step: nil, output: nil) }
        actions.append(.finished(.completed))
    }

    private mutating func suspend() {
        instance.status = .suspended
        if let milestone = definition.milestones.failed {
            publish(milestone, step: nil, output: nil, failure: milestoneFailure())
        }
        actions.append(.finished(.suspended))
    }

    // MARK: - Compensation

    private mutating func beginCompensation(_ purpose: CompensationPlan.Purpose) {
        let floor: Int
        switch purpose {
        case .abort:
            instance.status = .compensating
            floor = -1
        case .reallocate(let splitStep, _):
            floor = splitStep
        case .reset(let step):
            floor = step - 1
        }
        instance.compensation = CompensationPlan(purpose: purpose, queue: undoQueue(above: floor))
        continueCompensation()
    }

    /// The branches of steps after `floor` that may have taken effect and have a compensation, next to undo first:
    /// the steps backwards; in each, the branches whose outcome is unknown (highest index first), then the succeeded
    /// ones in reverse completion order. Unknown ones go first because an unanswered command may have taken effect
    /// later than any reply the saga saw.
    ///
    /// Steps run one after another, so grouping by step keeps `completions` backwards for the succeeded ones.
    private func undoQueue(above floor: Int) -> [BranchRef] {
        let succeeded = instance.completions.reversed().filter { branch($0).status == .succeeded }
        var queue: [BranchRef] = []
        for index in definition.steps.indices.reversed()
        where index > floor && definition.steps[index].compensate != nil {
            let branches = instance.steps[index].branches
            queue += branches.indices.reversed()
                .filter { branches[$0].status == .failed && branches[$0].outcomeUnknown }
                .map { BranchRef(step: index, branch: $0) }
            queue += succeeded.filter { $0.step == index }
        }
        return queue
    }

    /// Sends the next compensation, or finishes the plan when nothing is left.
    mutating func continueCompensation() {
        guard var plan = instance.compensation, instance.status != .suspended else { return }
        while let head = plan.queue.first {
            switch branch(head).status {
            case .compensated, .skipped:
                plan.queue.removeFirst()
                continue
            case .compensating, .compensationRetryWait:
                instance.compensation = plan
                return
            default:
                instance.compensation = plan
                sendCompensation(head)
                return
            }
        }
        instance.compensation = nil
        switch plan.purpose {
        case .abort:
            instance.status = .compensated
            if let milestone = definition.milestones.compensated {
                publish(milestone, step: nil, output: nil, failure: milestoneFailure())
            }
            actions.append(.finished(.compensated))
        case .reallocate(let splitStep, let warehouses):
            for warehouse in warehouses where !instance.steps[splitStep].excludedWarehouses.contains(warehouse) {
                instance.steps[splitStep].excludedWarehouses.append(warehouse)
            }
            restart(from: splitStep)
        case .reset(let step):
            restart(from: step)
        }
    }

    /// Makes `step` and every step after it fresh (a new round, so new idempotency keys) and runs from `step`.
    private mutating func restart(from step: Int) {
        instance.completions.removeAll { $0.step >= step }
        for index in step...max(step, instance.cursor) where index < definition.steps.count {
            let previous = instance.steps[index]
            var fresh = StepState()
            // Past every round the step or one of its branches used (an operator retry after the pivot moves a
            // branch's round alone), so no key sent before comes back.
            fresh.round = max(previous.round, previous.branches.map(\.round).max() ?? 0) + 1
            fresh.reallocations = previous.reallocations
            fresh.excludedWarehouses = previous.excludedWarehouses
            // What the earlier rounds sent stays known, for reconciliation; branches that never sent are forgotten.
            fresh.retired =
                previous.retired
                + previous.branches.enumerated().filter { $0.element.attempt > 0 }.map {
                    RetiredBranch(index: $0.offset, state: $0.element)
                }
            instance.steps[index] = fresh
            outputsCache = nil
        }
        instance.cursor = step
        instance.failure = nil
        advance()
    }

    private mutating func sendCompensation(_ ref: BranchRef) {
        let step = definition.steps[ref.step]
        guard step.compensate != nil else { return }
        let command: (routingKey: String, body: JSONValue)
        do {
            command = try compensationCommand(ref)
        } catch {
            compensationUnevaluable(
                ref, StepError(code: StepError.evaluationCode, message: error.message, retryable: false))
            return
        }
        modifyBranch(ref) {
            $0.compensationAttempt += 1
            $0.status = .compensating
        }
        send(
            ref, kind: .compensate, attempt: branch(ref).compensationAttempt, routingKey: command.routingKey,
            body: command.body)
    }

    /// The routing key and body of a branch's compensation command.
    mutating func compensationCommand(
        _ ref: BranchRef
    ) throws(EvaluationError) -> (routingKey: String, body: JSONValue) {
        try compensationCommand(step: ref.step, state: branch(ref))
    }

    /// The compensation of a branch in `state` of step `index` (one of its branches, or a `retired` one of an
    /// earlier round, whose own output stands in for the step's: the current round's is not its).
    mutating func compensationCommand(
        step index: Int, state: BranchState, retired: Bool = false
    ) throws(EvaluationError) -> (routingKey: String, body: JSONValue) {
        let step = definition.steps[index]
        guard let compensate = step.compensate else { return ("", .null) }
        var scope = branchScope(step: index, state: state, retired: retired)
        // Without a reply there is no output to undo by: the step's own output reads as null, whatever the path.
        if state.outcomeUnknown { scope.unknownOutputs = [step.id] }
        return (try compensate.routingKey.evaluateString(in: scope), try compensate.input.evaluate(in: scope))
    }

    /// What a branch's own expressions see: the saga's scope with its element; for a `retired` branch of a plain
    /// step, its own output as the step's.
    mutating func branchScope(step index: Int, state: BranchState, retired: Bool) -> EvaluationScope {
        let step = definition.steps[index]
        var scope = scope(alias: state.item.map { (step.forEach?.alias ?? "", $0) })
        if retired, step.forEach == nil { scope.stepOutputs[step.id] = state.output }
        return scope
    }

    /// A compensation whose command cannot be evaluated: retrying cannot make the data appear, and skipping silently
    /// is not allowed, so the saga goes to an operator.
    private mutating func compensationUnevaluable(_ ref: BranchRef, _ error: StepError) {
        modifyBranch(ref) { $0.lastError = error }
        instance.failure = SagaFailure(
            step: definition.steps[ref.step].id, branch: branchLabel(ref), error: error, at: now)
        suspend()
    }

    private mutating func compensationSucceeded(_ ref: BranchRef) {
        modifyBranch(ref) { [now] in
            $0.status = .compensated
            $0.finishedAt = now
        }
        continueCompensation()
    }

    /// Compensations are retried until they succeed, whatever the error: an undo must not be dropped.
    private mutating func compensationAttemptFailed(_ ref: BranchRef, error: StepError) {
        let step = definition.steps[ref.step]
        modifyBranch(ref) {
            $0.lastError = error
            $0.status = .compensationRetryWait
        }
        setTimer(ref, kind: .retry, after: retryDelay(step.retry, attempt: branch(ref).compensationAttempt, salt: ref))
    }

    // MARK: - Operator repairs

    /// Applies an operator command, or returns why it makes no sense now.
    private mutating func handleOperator(_ command: OperatorCommand) -> String? {
        if instance.status.isTerminal {
            return "saga \(instance.key) is \(instance.status.rawValue); nothing can change it any more"
        }
        switch command.action {
        case .cancel:
            for ref in allBranchRefs() {
                clearTimer(ref)
                modifyBranch(ref) { $0.pending = nil }
            }
            instance.status = .cancelled
            if let milestone = definition.milestones.cancelled {
                let cancellation = MilestoneFailure(
                    code: StepError.operatorCancelCode, message: "cancelled by \(command.by): \(command.reason)",
                    step: stepLabel(), branch: nil)
                publish(milestone, step: nil, output: nil, failure: cancellation)
            }
            actions.append(.finished(.cancelled))
            return nil
        case .compensate:
            return operatorCompensate(command)
        case .retry(let stepId):
            return operatorRetry(stepId: stepId)
        case .skip(let stepId, let output, let branch):
            return operatorSkip(stepId: stepId, output: output, branch: branch)
        case .reset(let stepId):
            return operatorReset(stepId: stepId)
        case .migrate:
            return "a migration needs its target definition: the worker applies it (SagaEngine.migrate)"
        case .note:
            return nil
        }
    }

    private mutating func operatorReset(stepId: String) -> String? {
        guard let index = definition.stepIndex(of: stepId) else {
            return "workflow \(definition.name) v\(definition.version) has no step '\(stepId)'"
        }
        guard index <= instance.cursor else {
            return "step '\(stepId)' has not run yet; the saga is at '\(definition.steps[instance.cursor].id)'"
        }
        if instance.steps[index].status == .bypassed {
            return "step '\(stepId)' is not on the path this saga took (a choice or next jumped over it); reset to "
                + "the choice before it instead"
        }
        if instance.status == .compensating || instance.compensation != nil {
            return "the saga is compensating; let the compensation finish (or retry or skip it) before a reset"
        }
        if instance.pivotPassed, let pivot = definition.steps.firstIndex(where: \.pivot), index <= pivot {
            return "saga passed its pivot step '\(definition.steps[pivot].id)'; it can only be reset to a step after "
                + "it (completed steps up to the pivot can no longer be compensated)"
        }
        // A command held back by a limit was never sent: nothing to wait for, the reset drops it.
        let inFlight = allBranchRefs().filter { ref in
            ref.step >= index && [.inFlight, .compensating].contains(branch(ref).status) && !isHeld(ref)
        }
        if let first = inFlight.first {
            return "a command of '\(definition.steps[first.step].id)' awaits its reply; reset once it is answered "
                + "(or timed out)"
        }
        for ref in allBranchRefs() where ref.step >= index {
            let held = isHeld(ref)
            clearTimer(ref)
            // An attempt waiting to retry may follow one whose reply never came (its outcome is unknown): as when a
            // step fails, it ends failed, so the undo below includes it if it may have taken effect.
            modifyBranch(ref) { [now] in
                $0.pending = nil
                if $0.status == .retryWait || held {
                    $0.status = .failed
                    $0.finishedAt = now
                }
            }
        }
        instance.status = .running
        beginCompensation(.reset(step: index))
        return nil
    }

    private mutating func operatorCompensate(_ command: OperatorCommand) -> String? {
        if instance.pivotPassed, let pivot = definition.steps.first(where: \.pivot) {
            return "saga passed its pivot step '\(pivot.id)'; completed steps can no longer be compensated"
                + " (use retry or skip)"
        }
        if instance.status == .compensating { return "saga is already compensating" }
        let error = StepError(
            code: StepError.operatorCode, message: "compensation requested by \(command.by): \(command.reason)",
            retryable: false)
        if var plan = instance.compensation {
            // A reallocation (or a suspended compensation) becomes a full abort; the queue keeps its order.
            let queued = Set(plan.queue)
            plan.queue.append(contentsOf: undoQueue(above: -1).filter { !queued.contains($0) })
            plan.purpose = .abort
            instance.compensation = plan
            instance.status = .compensating
            if instance.failure == nil {
                instance.failure = SagaFailure(step: stepLabel(), branch: nil, error: error, at: now)
            }
            continueCompensation()
            return nil
        }
        let index = min(instance.cursor, definition.steps.count - 1)
        let failure = SagaFailure(step: definition.steps[index].id, branch: nil, error: error, at: now)
        instance.failure = failure
        if instance.steps[index].status == .running {
            beginFailing(index, failure: failure)
            settleFailingStep(index)
        } else {
            beginCompensation(.abort)
        }
        return nil
    }

    private mutating func operatorRetry(stepId: String?) -> String? {
        if let stepId, definition.stepIndex(of: stepId) == nil {
            return "workflow \(definition.name) v\(definition.version) has no step '\(stepId)'"
        }
        // A compensation that could not be built or keeps failing: try its head again now.
        if let head = instance.compensation?.queue.first {
            if let stepId, definition.steps[head.step].id != stepId {
                return "the saga is compensating step '\(definition.steps[head.step].id)', not '\(stepId)'"
            }
            if isHeld(head) {
                return "compensation of '\(definition.steps[head.step].id)' is held back by a participant's limit; "
                    + "it goes out in its turn (waybill pool status shows the limits that bind)"
            }
            if branch(head).status == .compensating {
                return "compensation of '\(definition.steps[head.step].id)' is waiting for its reply"
            }
            clearTimer(head)
            if instance.status == .suspended {
                instance.status = instance.compensation?.purpose == .abort ? .compensating : .running
            }
            sendCompensation(head)
            return nil
        }
        let index = instance.cursor
        guard index < definition.steps.count else { return "saga has no step left to retry" }
        let step = definition.steps[index]
        if let stepId, stepId != step.id {
            return "step '\(stepId)' is not the current step; the saga is at '\(step.id)'"
        }
        let state = instance.steps[index]
        let waits: Bool
        if case .wait = step.action { waits = true } else { waits = false }
        if instance.status == .suspended, state.status == .failed, state.branches.isEmpty || waits {
            // A local step (split, choice), a wait that timed out (it waits again, afresh), or a command step whose
            // for_each failed before it fanned out: run it again.
            instance.steps[index].branches = []
            instance.steps[index].status = .pending
            instance.steps[index].finishedAt = nil
            instance.steps[index].output = nil
            outputsCache = nil
            instance.status = .running
            instance.failure = nil
            advance()
            return nil
        }
        if instance.status == .suspended, state.status == .failed {
            instance.steps[index].status = .running
            instance.steps[index].finishedAt = nil
            instance.status = .running
            instance.failure = nil
            for branchIndex in state.branches.indices where state.branches[branchIndex].status == .failed {
                let ref = BranchRef(step: index, branch: branchIndex)
                // Only reachable after the pivot, where nothing is compensated: the new round's key starts afresh.
                modifyBranch(ref) {
                    $0.round += 1
                    $0.attempt = 0
                    $0.unansweredAttempts = 0
                    $0.finishedAt = nil
                }
                sendAttempt(ref)
            }
            advance()
            return nil
        }
        let waiting = state.branches.indices.filter { state.branches[$0].status == .retryWait }
        guard !waiting.isEmpty else {
            return "nothing to retry: step '\(step.id)' is \(state.status.rawValue) and no attempt waits for a retry"
        }
        for branchIndex in waiting {
            let ref = BranchRef(step: index, branch: branchIndex)
            clearTimer(ref)
            sendAttempt(ref)
        }
        advance()
        return nil
    }

    private mutating func operatorSkip(stepId: String, output: JSONValue, branch: Int?) -> String? {
        guard let index = definition.stepIndex(of: stepId) else {
            return "workflow \(definition.name) v\(definition.version) has no step '\(stepId)'"
        }
        if let head = instance.compensation?.queue.first {
            guard head.step == index else {
                return "the saga is compensating step '\(definition.steps[head.step].id)', not '\(stepId)'"
            }
            if let branch, branch != head.branch {
                return "the compensation in the way is branch \(head.branch) of step '\(stepId)', not branch \(branch)"
            }
            clearTimer(head)
            modifyBranch(head) { [now] in
                $0.pending = nil
                $0.status = .skipped
                $0.finishedAt = now
            }
            if instance.status == .suspended {
                instance.status = instance.compensation?.purpose == .abort ? .compensating : .running
            }
            continueCompensation()
            return nil
        }
        let state = instance.steps[index]
        guard instance.status == .suspended, index == instance.cursor, state.status == .failed else {
            return "step '\(stepId)' has not failed (it is \(state.status.rawValue)); only a failed step can be skipped"
        }
        let fansOut = definition.steps[index].forEach != nil
        var skipped = state.branches.indices.filter { state.branches[$0].status == .failed }
        if let branch {
            guard fansOut else { return "step '\(stepId)' has no branches; skip it without naming one" }
            guard state.branches.indices.contains(branch) else {
                return state.branches.isEmpty
                    ? "step '\(stepId)' has no branches (it failed before it fanned out); skip it without naming one"
                    : "step '\(stepId)' has no branch \(branch); its branches are 0...\(state.branches.count - 1)"
            }
            guard state.branches[branch].status == .failed else {
                return "branch \(branch) of step '\(stepId)' has not failed (it is "
                    + "\(state.branches[branch].status.rawValue)); only a failed branch can be skipped"
            }
            skipped = [branch]
        }
        for branchIndex in skipped {
            modifyBranch(BranchRef(step: index, branch: branchIndex)) { [now] in
                $0.status = .skipped
                // A branch's output stands in for what its command would have returned; a plain step's is the step's.
                if fansOut { $0.output = output }
                $0.finishedAt = now
            }
        }
        outputsCache = nil
        // Another branch still failed: the saga stays suspended at the step until it is skipped or retried too, and
        // its failure now names that branch (the skipped one no longer explains why the saga waits).
        if let remaining = instance.steps[index].branches.indices.first(where: {
            instance.steps[index].branches[$0].status == .failed
        }) {
            if let error = instance.steps[index].branches[remaining].lastError {
                instance.failure = SagaFailure(step: stepId, branch: remaining, error: error, at: now)
            }
            return nil
        }
        // The branches that succeeded keep their outputs: a for_each step's output joins every branch's, in order. A
        // step that failed before it fanned out (its for_each gave no array) has no branches: it takes the output given.
        let branches = instance.steps[index].branches
        let joined: JSONValue = fansOut && !branches.isEmpty ? .array(branches.map { $0.output ?? .null }) : output
        instance.steps[index].status = .skipped
        instance.steps[index].output = joined
        instance.steps[index].finishedAt = now
        instance.status = .running
        instance.failure = nil
        if let milestone = definition.steps[index].milestone { publish(milestone, step: stepId, output: joined) }
        moveOn(from: index, to: definition.steps[index].next)
        advance()
        return nil
    }

    // MARK: - Helpers

    private func branch(_ ref: BranchRef) -> BranchState {
        instance.steps[ref.step].branches[ref.branch]
    }

    private mutating func modifyBranch(_ ref: BranchRef, _ body: (inout BranchState) -> Void) {
        body(&instance.steps[ref.step].branches[ref.branch])
    }

    private func branchLabel(_ ref: BranchRef) -> Int? {
        definition.steps[ref.step].forEach == nil ? nil : ref.branch
    }

    private func stepLabel() -> String {
        definition.steps[min(instance.cursor, definition.steps.count - 1)].id
    }

    private func allBranchRefs() -> [BranchRef] {
        instance.steps.indices.flatMap { step in
            instance.steps[step].branches.indices.map { BranchRef(step: step, branch: $0) }
        }
    }

    private func pendingBranch(messageId: String) -> BranchRef? {
        for step in instance.steps.indices {
            for (index, state) in instance.steps[step].branches.enumerated() where state.pending?.messageId == messageId
            {
                return BranchRef(step: step, branch: index)
            }
        }
        return nil
    }

    private func timerBranch(timerId: String) -> BranchRef? {
        for step in instance.steps.indices {
            for (index, state) in instance.steps[step].branches.enumerated() where state.timer?.id == timerId {
                return BranchRef(step: step, branch: index)
            }
        }
        return nil
    }

    private mutating func setTimer(_ ref: BranchRef, kind: SagaTimer.Kind, after milliseconds: Int64) {
        clearTimer(ref)
        let timer = SagaTimer(id: nextId("t"), kind: kind, dueAt: now.adding(milliseconds: milliseconds))
        modifyBranch(ref) { $0.timer = timer }
        actions.append(.scheduleTimer(timer))
    }

    private mutating func clearTimer(_ ref: BranchRef) {
        guard let timer = branch(ref).timer else { return }
        modifyBranch(ref) { $0.timer = nil }
        actions.append(.cancelTimer(id: timer.id))
        if timer.kind == .wait, case .wait(let spec) = definition.steps[ref.step].action, spec.message != nil {
            actions.append(.cancelAwait(id: timer.id))
        }
    }

    /// A message wait's timeout: the step fails (`wait_timeout`, or `on_timeout`'s failure), or goes on to
    /// `on_timeout`'s target with output `{timedOut: true, next}`.
    private mutating func waitTimedOut(_ ref: BranchRef, spec: WaitSpec, wait: MessageWait) {
        let failure: StepError
        switch spec.onTimeout {
        case .step?, .end?:
            let target = spec.onTimeout
            let output: JSONValue = ["timedOut": true, "next": .string(target?.description ?? "")]
            modifyBranch(ref) { [now] in
                $0.status = .succeeded
                $0.output = output
                $0.finishedAt = now
            }
            // The milestone says the message came; a timeout publishes none.
            stepSucceeded(ref.step, output: output, target: target, milestone: false)
            return
        case .fail(let code, let message)?:
            failure = StepError(code: code, message: message, retryable: false)
        case nil:
            failure = StepError(
                code: StepError.waitTimeoutCode,
                message: "no message on \(wait.exchange) \(wait.routingKey) matched within \(spec.duration)",
                retryable: false)
        }
        modifyBranch(ref) { [now] in
            $0.status = .failed
            $0.finishedAt = now
            $0.lastError = failure
        }
        failStep(ref.step, error: failure)
    }

    private mutating func publish(
        _ name: String, step: String?, output: JSONValue?, branch: MilestoneBranch? = nil,
        failure: MilestoneFailure? = nil
    ) {
        actions.append(
            .publishMilestone(
                MilestoneEvent(
                    eventId: nextId("e"), name: name, step: step, output: output, status: instance.status,
                    occurredAt: now, branch: branch, failure: failure)))
    }

    /// The saga's failure as its end milestone tells it: the failing branch with its element.
    private func milestoneFailure() -> MilestoneFailure? {
        guard let failure = instance.failure else { return nil }
        let branch = failure.branch.map { index in
            let branches = definition.stepIndex(of: failure.step).map { instance.steps[$0].branches } ?? []
            return MilestoneBranch(index: index, item: branches.indices.contains(index) ? branches[index].item : nil)
        }
        return MilestoneFailure(
            code: failure.error.code, message: failure.error.message, step: failure.step, branch: branch)
    }

    private mutating func nextId(_ prefix: String) -> String {
        instance.sequence += 1
        return idPrefix + prefix + String(instance.sequence)
    }

    /// The backoff delay after `attempt`, with full jitter drawn from a hash of the seed and the branch, so the
    /// same saga replays to the same delays.
    private func retryDelay(_ policy: RetryPolicy, attempt: Int, salt: BranchRef) -> Int64 {
        let base = policy.backoffDelay(afterAttempt: attempt).milliseconds
        guard policy.jitter == .full, base > 0 else { return base }
        var hasher = StableHash(seed: engine.jitterSeed)
        hasher.combine(instance.key.workflow)
        hasher.combine(instance.key.id)
        hasher.combine(UInt64(salt.step))
        hasher.combine(UInt64(salt.branch))
        hasher.combine(UInt64(attempt))
        hasher.combine(UInt64(instance.sequence))
        return Int64(hasher.value % UInt64(base + 1))
    }

    mutating func scope(alias: (String, JSONValue)? = nil) -> EvaluationScope {
        let outputs = outputsCache ?? collectOutputs()
        outputsCache = outputs
        return EvaluationScope(
            input: instance.input, stepOutputs: outputs, alias: alias.map { (name: $0.0, value: $0.1) },
            sagaId: instance.key.id, workflow: instance.key.workflow)
    }

    /// Outputs visible to expressions: succeeded steps, and the partial branch outputs of a step in progress
    /// (so a branch's compensation can read what its siblings returned).
    private func collectOutputs() -> [String: JSONValue] {
        var outputs: [String: JSONValue] = [:]
        for (index, state) in instance.steps.enumerated() {
            if let output = state.output {
                outputs[definition.steps[index].id] = output
            } else if definition.steps[index].forEach != nil, state.branches.contains(where: { $0.output != nil }) {
                outputs[definition.steps[index].id] = .array(state.branches.map { $0.output ?? .null })
            } else if let output = state.branches.first?.output {
                outputs[definition.steps[index].id] = output
            }
        }
        return outputs
    }
}

extension StepError {
    /// A branch that stopped retrying because a sibling failed.
    public static let abandonedCode = "abandoned"
    /// An operator asked for compensation.
    public static let operatorCode = "operator_compensate"
    /// An operator cancelled the saga (only on the `cancelled` end milestone; never a step's error).
    public static let operatorCancelCode = "operator_cancel"
}
