import SagaEngine
import Testing
import WaybillDefinition
import WaybillTestSupport

/// The `wait` step with a duration: a durable timer, nothing sent, and the saga goes on when it fires.
@Suite("Wait steps")
struct WaitTests {
    /// The test workflow; a file that does not load fails each test, not the whole run.
    let definition: WorkflowDefinition

    init() throws {
        definition = try WorkflowLoader.load(yaml: WorkflowTexts.paced, file: "paced.yaml")
    }

    @Test("the wait sets a durable timer and sends nothing; when it fires the saga goes on")
    func waitThenGoOn() throws {
        var saga = SagaDriver(definition, input: ["id": "o-1"])
        saga.reply(saga.last.commands[0])
        #expect(saga.last.commands.isEmpty)
        let timer = try #require(saga.last.scheduledTimers.first)
        #expect(timer.kind == .wait)
        #expect(timer.dueAt == saga.now.adding(.seconds(7_200)))
        #expect(saga.instance.steps[1].branches.map(\.status) == [.waiting])

        saga.fire(timer)
        #expect(saga.last.milestones == ["order.cooled"])
        #expect(saga.last.commands.map(\.routingKey) == ["tms.create"])
        #expect(saga.instance.steps[1].output == ["waitedMs": 7_200_000])
        saga.reply(saga.last.commands[0])
        #expect(saga.instance.status == .completed)
    }

    @Test("a saga compensated while it waits ends the wait and undoes what it did; a cancel clears the timer")
    func stoppedWhileWaiting() throws {
        var compensated = SagaDriver(definition, input: ["id": "o-2"])
        compensated.reply(compensated.last.commands[0])
        let timer = try #require(compensated.last.scheduledTimers.first)
        compensated.apply(.operatorCommand(OperatorCommand(action: .compensate, by: "ann", reason: "customer asked")))
        #expect(compensated.last.actions.contains(.cancelTimer(id: timer.id)))
        #expect(compensated.last.commands.map(\.routingKey) == ["erp.cancel"])
        compensated.reply(compensated.last.commands[0])
        #expect(compensated.instance.status == .compensated)
        let late = compensated.fire(timer)
        #expect(!late.isApplied, "the wait's timer no longer counts")

        var cancelled = SagaDriver(definition, input: ["id": "o-3"])
        cancelled.reply(cancelled.last.commands[0])
        let pending = try #require(cancelled.last.scheduledTimers.first)
        cancelled.apply(.operatorCommand(OperatorCommand(action: .cancel, by: "ann", reason: "duplicate order")))
        #expect(cancelled.instance.status == .cancelled)
        #expect(cancelled.last.actions.contains(.cancelTimer(id: pending.id)))
    }
}
