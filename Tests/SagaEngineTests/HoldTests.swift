import SagaEngine
import Synchronization
import Testing
import WaybillDefinition

/// A limiter stand-in: commands whose routing key starts with `prefix` are limited, and go only while `open`.
final class Gate: CommandAdmission {
    let prefix: String
    let open = Mutex(false)
    let asked = Mutex<[String]>([])

    init(limiting prefix: String) {
        self.prefix = prefix
    }

    func isLimited(_ routingKey: String) -> Bool { routingKey.hasPrefix(prefix) }

    func admit(routingKey: String, messageId: String, timeout: Duration, now: Timestamp) -> Bool {
        asked.withLock { $0.append(routingKey) }
        return !isLimited(routingKey) || open.withLock { $0 }
    }
}

extension Transition {
    var held: [HeldCommand] {
        actions.compactMap { if case .holdCommand(let command) = $0 { command } else { nil } }
    }
}

@Suite("Commands held back by a participant's limit")
struct HoldTests {
    let input: JSONValue = ["id": "t-7"]

    /// Ships each item to its `to` participant, with an undo.
    static let fan = WorkflowDefinition(
        name: "fan", version: 1,
        trigger: Trigger(exchange: "x", routingKey: "fan.start", sagaId: template("${input.id}")),
        steps: [
            StepDefinition(
                id: "ship",
                action: .command(
                    CommandTemplate(
                        routingKey: template("${item.to}.ship"), input: objectTemplate(["n": "${item.n}"]))),
                forEach: ForEach(items: template("${input.items}"), alias: "item"),
                compensate: CommandTemplate(
                    routingKey: template("${item.to}.unship"), input: objectTemplate(["n": "${item.n}"])),
                timeout: .seconds(10), retry: TestWorkflows.noJitter)
        ],
        milestones: EndMilestones(compensated: "fan.undone"))

    @Test("a held command is not sent and has no reply timer; its release sends it with the same id and attempt")
    func holdAndRelease() throws {
        let gate = Gate(limiting: "sys.a")
        var saga = SagaDriver(TestWorkflows.linear(), input: input, engine: SagaEngine(jitterSeed: 42, admission: gate))
        #expect(saga.last.commands.isEmpty)
        let held = try #require(saga.last.held.first)
        #expect(held.routingKey == "sys.a.do")
        #expect(held.priority == PriorityLane.normal)
        #expect(held.timeout == .seconds(10))
        #expect(saga.last.scheduledTimers.map(\.kind) == [.hold])
        #expect(saga.last.scheduledTimers[0].dueAt == .distantFuture)
        #expect(held.timerId == saga.last.scheduledTimers[0].id)
        // What a partition's new owner reads back from the stored saga is what the transition announced.
        #expect(saga.engine.heldCommands(of: saga.instance, definition: saga.definition) == [held])
        let branch = saga.instance.steps[0].branches[0]
        #expect(branch.pending?.messageId == held.messageId)
        #expect(branch.attempt == 1)

        gate.open.withLock { $0 = true }
        saga.apply(.timerFired(timerId: held.timerId), after: 5_000)
        let sent = try #require(saga.last.commands.first)
        #expect(sent.messageId == held.messageId)
        #expect(sent.attempt == 1)
        #expect(sent.body == ["id": "t-7"])
        // The reply timeout starts when the command goes out, not when it was held.
        #expect(saga.last.scheduledTimers.map(\.kind) == [.replyTimeout])
        #expect(saga.last.scheduledTimers[0].dueAt == saga.now.adding(.seconds(10)))
        #expect(saga.instance.steps[0].branches[0].pending?.sentAt == saga.now)

        saga.reply(sent, ["token": "tok"])
        #expect(saga.last.milestones == ["thing.a"])
        #expect(saga.last.commands.map(\.routingKey) == ["sys.b.do"])
    }

    @Test("a rate_limited reply to a limited command holds it again: no attempt used, no failure recorded")
    func rateLimitedHoldsAgain() throws {
        let gate = Gate(limiting: "sys.a")
        gate.open.withLock { $0 = true }
        var saga = SagaDriver(TestWorkflows.linear(), input: input, engine: SagaEngine(jitterSeed: 42, admission: gate))
        let first = try #require(saga.last.commands.first)
        gate.open.withLock { $0 = false }
        saga.fail(first, code: StepError.rateLimitedCode, retryable: true)
        #expect(saga.last.commands.isEmpty)
        let held = try #require(saga.last.held.first)
        #expect(held.messageId != first.messageId)
        // Its reply timer is gone: a hold timer stands in its place.
        #expect(saga.last.actions.contains { if case .cancelTimer = $0 { true } else { false } })
        let branch = saga.instance.steps[0].branches[0]
        #expect(branch.status == .inFlight)
        #expect(branch.attempt == 1)
        #expect(branch.lastError == nil)
        #expect(branch.timer?.kind == .hold)

        // The first command's late reply finds nothing: the saga waits for the held one.
        #expect(saga.reply(first).outcome != .applied)
        gate.open.withLock { $0 = true }
        saga.apply(.timerFired(timerId: held.timerId))
        let again = try #require(saga.last.commands.first)
        #expect(again.messageId == held.messageId)
        #expect(again.attempt == 1)
        #expect(again.idempotencyKey == first.idempotencyKey)
    }

    @Test("a rate_limited reply to a command under no limit is a failed attempt like any retryable error")
    func rateLimitedWithoutLimit() throws {
        let gate = Gate(limiting: "other.")
        var saga = SagaDriver(TestWorkflows.linear(), input: input, engine: SagaEngine(jitterSeed: 42, admission: gate))
        let first = try #require(saga.last.commands.first)
        saga.fail(first, code: StepError.rateLimitedCode, retryable: true)
        #expect(saga.last.held.isEmpty)
        #expect(saga.last.scheduledTimers.map(\.kind) == [.retry])
        #expect(saga.instance.steps[0].branches[0].lastError?.code == StepError.rateLimitedCode)
    }

    @Test("a held branch of a failing step is abandoned unsent and not compensated")
    func heldBranchAbandoned() throws {
        let definition = Self.fan
        let gate = Gate(limiting: "slow.")
        var saga = SagaDriver(
            definition, input: ["id": "f-1", "items": [["to": "fast", "n": 1], ["to": "slow", "n": 2]]],
            engine: SagaEngine(jitterSeed: 42, admission: gate))
        let fast = try #require(saga.last.commands.first)
        #expect(saga.last.commands.map(\.routingKey) == ["fast.ship"])
        let held = try #require(saga.last.held.first)
        #expect(held.routingKey == "slow.ship")

        saga.fail(fast, code: "refused", retryable: false)
        // The held branch never went out: nothing waits for it, and there is nothing of it to undo.
        #expect(saga.instance.status == .compensated)
        #expect(saga.last.actions.contains(.cancelTimer(id: held.timerId)))
        #expect(saga.instance.steps[0].branches[1].status == .failed)
        #expect(saga.instance.steps[0].branches[1].lastError?.code == StepError.abandonedCode)
        #expect(saga.instance.steps[0].branches[1].pending == nil)
        #expect(saga.last.commands.isEmpty)
        // Its hold timer, fired late by a limiter that had it queued, changes nothing.
        #expect(saga.apply(.timerFired(timerId: held.timerId)).outcome != .applied)
    }

    @Test("a rate_limited reply to a branch of a step that is failing is not held again: the branch fails too")
    func rateLimitedWhileFailing() throws {
        let gate = Gate(limiting: "slow.")
        gate.open.withLock { $0 = true }
        var saga = SagaDriver(
            Self.fan, input: ["id": "f-2", "items": [["to": "fast", "n": 1], ["to": "slow", "n": 2]]],
            engine: SagaEngine(jitterSeed: 42, admission: gate))
        let fast = try #require(saga.last.commands.first { $0.routingKey == "fast.ship" })
        let slow = try #require(saga.last.commands.first { $0.routingKey == "slow.ship" })
        saga.fail(fast, code: "refused", retryable: false)
        #expect(saga.instance.steps[0].status == .failing, "the step waits for the slow branch's answer")
        saga.fail(slow, code: StepError.rateLimitedCode, retryable: true)
        #expect(saga.last.held.isEmpty)
        #expect(saga.instance.steps[0].branches[1].status == .failed)
        #expect(saga.instance.status == .compensated)
        #expect(saga.last.commands.isEmpty, "neither branch took effect: nothing to undo")
    }

    @Test("a reset drops a held command: it was never sent, so nothing waits for it")
    func resetDropsHeld() throws {
        let gate = Gate(limiting: "sys.b")
        var saga = SagaDriver(TestWorkflows.linear(), input: input, engine: SagaEngine(jitterSeed: 42, admission: gate))
        saga.reply(saga.last.commands[0], ["token": "tok"])
        let held = try #require(saga.last.held.first)
        let reset = saga.apply(.operatorCommand(OperatorCommand(action: .reset(step: "a"), by: "ops", reason: "redo")))
        #expect(reset.isApplied, "\(reset.outcome)")
        #expect(reset.actions.contains(.cancelTimer(id: held.timerId)))
        #expect(reset.commands.map(\.routingKey) == ["sys.a.undo"])
        saga.reply(reset.commands[0])
        #expect(saga.last.commands.map(\.routingKey) == ["sys.a.do"])
        #expect(saga.apply(.timerFired(timerId: held.timerId)).outcome != .applied, "the old hold is gone")
    }

    @Test("an undo is held and released like a forward command")
    func compensationHeld() throws {
        let gate = Gate(limiting: "sys.a.undo")
        var saga = SagaDriver(TestWorkflows.linear(), input: input, engine: SagaEngine(jitterSeed: 42, admission: gate))
        saga.reply(saga.last.commands[0], ["token": "tok"])
        saga.fail(saga.last.commands[0], code: "rejected", retryable: false)
        #expect(saga.instance.status == .compensating)
        let held = try #require(saga.last.held.first)
        #expect(held.routingKey == "sys.a.undo")
        #expect(saga.instance.steps[0].branches[0].status == .compensating)

        gate.open.withLock { $0 = true }
        saga.apply(.timerFired(timerId: held.timerId))
        let undo = try #require(saga.last.commands.first)
        #expect(undo.kind == .compensate)
        #expect(undo.messageId == held.messageId)
        #expect(undo.attempt == 1)
        saga.reply(undo)
        #expect(saga.instance.status == .compensated)
    }

    @Test("an operator's cancel forgets the held command")
    func cancelWhileHeld() throws {
        let gate = Gate(limiting: "sys.a")
        var saga = SagaDriver(TestWorkflows.linear(), input: input, engine: SagaEngine(jitterSeed: 42, admission: gate))
        let held = try #require(saga.last.held.first)
        saga.apply(.operatorCommand(OperatorCommand(action: .cancel, by: "ops", reason: "test")))
        #expect(saga.instance.status == .cancelled)
        #expect(saga.last.actions.contains(.cancelTimer(id: held.timerId)))
        gate.open.withLock { $0 = true }
        #expect(saga.apply(.timerFired(timerId: held.timerId)).outcome != .applied)
    }

    @Test(
        "the trigger's priority rule gives held commands their lane",
        arguments: [
            ("b2b", PriorityLane.high), ("marketplace", PriorityLane.low), ("web", PriorityLane.normal),
        ])
    func priorityLane(channel: String, lane: Int) throws {
        var definition = TestWorkflows.linear()
        definition.trigger.priority = PriorityRule(
            value: template("${input.channel}"), map: ["b2b": PriorityLane.high, "marketplace": PriorityLane.low])
        let gate = Gate(limiting: "sys.")
        let saga = SagaDriver(
            definition, input: ["id": "t-1", "channel": .string(channel)],
            engine: SagaEngine(jitterSeed: 42, admission: gate))
        #expect(try #require(saga.last.held.first).priority == lane)
        #expect(definition.priorityLane(input: ["id": "t-1", "channel": .string(channel)]) == lane)
    }
}
