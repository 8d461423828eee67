import SagaEngine
import Testing
import WaybillDefinition
import WaybillTestSupport

/// Steps and branches whose reply never came may have taken effect: when their scope compensates, they are
/// compensated too, with their own idempotency key and the forward key in `compensates` (docs/workflows.md,
/// "Unknown outcomes").
@Suite("Unknown outcomes")
struct UnknownOutcomeTests {
    let input: JSONValue = ["id": "t-7"]

    /// Answers ok every compensation the saga sends, one at a time, until it sends something else or nothing; returns
    /// them in order.
    static func undoAll(_ saga: inout SagaDriver) -> [CommandMessage] {
        var undone: [CommandMessage] = []
        while let next = saga.last.commands.first, next.kind == .compensate {
            #expect(saga.last.commands.count == 1, "one compensation at a time")
            undone.append(next)
            saga.reply(next)
        }
        return undone
    }

    @Test("a step that timed out and then failed for good is compensated in case the timed-out attempt took effect")
    func timedOutThenRefusedStepIsCompensated() throws {
        var saga = SagaDriver(TestWorkflows.linear(), input: input, id: "t-7")
        saga.reply(saga.last.commands[0], ["token": "tok"])
        let first = saga.last.commands[0]
        #expect(first.idempotencyKey == "t-7/b")
        saga.fire(try #require(saga.last.scheduledTimers.first { $0.kind == .replyTimeout }))
        #expect(saga.instance.steps[1].branches[0].unansweredAttempts == 1)
        saga.fire(try #require(saga.last.scheduledTimers.first { $0.kind == .retry }))
        let second = saga.last.commands[0]
        #expect(second.attempt == 2 && second.idempotencyKey == first.idempotencyKey)
        saga.fail(second, code: "rejected", retryable: false)

        // Attempt 2's error says nothing about attempt 1, which shares its key: b is possibly done, and the latest.
        #expect(saga.instance.status == .compensating)
        #expect(saga.instance.steps[1].branches[0].outcomeUnknown)
        let undoB = try #require(saga.last.commands.first)
        #expect(undoB.kind == .compensate)
        #expect(undoB.routingKey == "sys.b.undo")
        #expect(undoB.idempotencyKey == "t-7/b/compensate")
        #expect(undoB.compensates == "t-7/b")
        #expect(undoB.outcomeUnknown)
        #expect(undoB.branch == nil)
        #expect(undoB.body == ["id": "t-7"])

        saga.reply(undoB)
        let undoA = try #require(saga.last.commands.first)
        #expect(undoA.routingKey == "sys.a.undo")
        #expect(undoA.compensates == "t-7/a")
        #expect(!undoA.outcomeUnknown)
        saga.reply(undoA)
        #expect(saga.instance.status == .compensated)
        #expect(saga.last.milestones == ["thing.undone"])
        #expect(saga.instance.steps[1].branches[0].status == .compensated)
    }

    @Test("a compensation of a step whose reply never came reads the step's own output as null")
    func ownOutputIsNullWhenTheOutcomeIsUnknown() throws {
        var definition = TestWorkflows.linear(retry: RetryPolicy(maxAttempts: .limited(1), jitter: .none))
        definition.steps[1].compensate = command(
            "sys.b.undo.${steps.b.output.kind}",
            [
                "token": "${steps.b.output.token}", "deep": "${steps.b.output.items[3].id}",
                "from": "${steps.a.output.token}",
            ])
        var saga = SagaDriver(definition, input: input, id: "t-7")
        saga.reply(saga.last.commands[0], ["token": "tok-a"])
        saga.fire(try #require(saga.last.scheduledTimers.first))

        let undo = try #require(saga.last.commands.first)
        #expect(undo.routingKey == "sys.b.undo.null")
        #expect(undo.body == ["token": .null, "deep": .null, "from": "tok-a"])
        #expect(undo.outcomeUnknown)
        #expect(saga.instance.status == .compensating)
    }

    @Test("a timed-out attempt followed by a successful retry is compensated with its output, as a completed step")
    func retrySucceededAfterTimeout() throws {
        var definition = TestWorkflows.linear()
        definition.steps[1].compensate = command("sys.b.undo", ["token": "${steps.b.output.token}"])
        var saga = SagaDriver(definition, input: input, id: "t-7")
        saga.reply(saga.last.commands[0], ["token": "tok-a"])
        saga.fire(try #require(saga.last.scheduledTimers.first { $0.kind == .replyTimeout }))
        saga.fire(try #require(saga.last.scheduledTimers.first { $0.kind == .retry }))
        saga.reply(saga.last.commands[0], ["token": "tok-b"])
        saga.fail(saga.last.commands[0], code: "rejected", retryable: false)

        let undone = Self.undoAll(&saga)
        #expect(undone.map(\.routingKey) == ["sys.b.undo", "sys.a.undo"])
        #expect(undone[0].body == ["token": "tok-b"])
        #expect(undone.allSatisfy { !$0.outcomeUnknown })
    }

    /// How an attempt of step b ended before it failed for good.
    enum Answer: String, CaseIterable, Sendable {
        case retryableError
        case unroutable
    }

    @Test(
        "an explicit error or an unroutable return is not a possible effect: the step is not compensated",
        arguments: Answer.allCases)
    func answeredAttemptsAreNotCompensated(_ answer: Answer) throws {
        var saga = SagaDriver(TestWorkflows.linear(), input: input, id: "t-7")
        saga.reply(saga.last.commands[0], ["token": "tok"])
        let first = saga.last.commands[0]
        switch answer {
        case .retryableError: saga.fail(first, code: "busy", retryable: true)
        case .unroutable: saga.apply(.commandReturned(messageId: first.messageId))
        }
        saga.fire(try #require(saga.last.scheduledTimers.first { $0.kind == .retry }))
        saga.fail(saga.last.commands[0], code: "rejected", retryable: false)

        #expect(saga.instance.steps[1].branches[0].unansweredAttempts == 0)
        #expect(!saga.instance.steps[1].branches[0].outcomeUnknown)
        let undone = Self.undoAll(&saga)
        #expect(undone.map(\.routingKey) == ["sys.a.undo"])
        #expect(saga.instance.status == .compensated)
    }

    @Test("a for_each branch whose reply never came is compensated with the succeeded ones, latest first")
    func lostBranchReplyIsCompensated() throws {
        var saga = FulfillmentSagaTests.released()
        let releases = saga.last.commands
        saga.reply(releases[0])
        saga.fail(releases[2], code: "rejected", retryable: false)
        #expect(saga.instance.steps[3].status == .failing)
        // release[1]'s reply is lost: the step waits for its timeout, which does not retry a failing step.
        let timeout = try #require(saga.instance.steps[3].branches[1].timer)
        saga.fire(timeout)
        #expect(saga.instance.steps[3].branches[1].status == .compensating, "undone first")
        #expect(saga.instance.steps[3].branches[1].outcomeUnknown)

        let undone = Self.undoAll(&saga)
        #expect(
            undone.map { "\($0.routingKey) \($0.idempotencyKey) \($0.compensates ?? "-")" } == [
                "wms.w2.cancel o-1/release/1/compensate o-1/release/1",
                "wms.w1.cancel o-1/release/0/compensate o-1/release/0",
                "inventory.release o-1/reserve/compensate o-1/reserve",
                "erp.order.cancel o-1/accept/compensate o-1/accept",
            ])
        #expect(undone.map(\.outcomeUnknown) == [true, false, false, false])
        #expect(undone[0].branch == 1)
        #expect(undone[0].body == ["shipmentId": "o-1-w2"])
        #expect(saga.instance.steps[3].branches[2].status == .failed, "the refused branch did nothing to undo")
        #expect(saga.instance.status == .compensated)
    }

    @Test("a branch that timed out and was waiting to retry when a sibling failed is compensated")
    func abandonedAfterTimeoutIsCompensated() throws {
        var saga = FulfillmentSagaTests.released()
        let releases = saga.last.commands
        saga.reply(releases[1])
        saga.fire(try #require(saga.instance.steps[3].branches[0].timer))
        #expect(saga.instance.steps[3].branches[0].status == .retryWait)
        saga.fail(releases[2], code: "rejected", retryable: false)
        #expect(saga.instance.steps[3].branches[0].lastError?.code == StepError.abandonedCode)

        let undone = Self.undoAll(&saga)
        #expect(
            undone.map(\.idempotencyKey) == [
                "o-1/release/0/compensate", "o-1/release/1/compensate", "o-1/reserve/compensate",
                "o-1/accept/compensate",
            ])
        #expect(undone.map(\.outcomeUnknown) == [true, false, false, false])
        #expect(saga.instance.status == .compensated)
    }

    @Test("a reallocation undoes a branch whose outcome is unknown before it re-plans")
    func reallocationUndoesUnknownBranches() throws {
        var saga = FulfillmentSagaTests.released()
        let releases = saga.last.commands
        saga.reply(releases[2])
        saga.fire(try #require(saga.instance.steps[3].branches[0].timer))
        saga.fail(releases[1], code: "out_of_stock", retryable: false)
        #expect(saga.instance.compensation?.purpose == .reallocate(splitStep: 2, excludedWarehouses: ["w2"]))

        let first = try #require(saga.last.commands.first)
        saga.reply(first)
        let second = try #require(saga.last.commands.first)
        saga.reply(second)
        #expect([first, second].map(\.idempotencyKey) == ["o-1/release/0/compensate", "o-1/release/2/compensate"])
        #expect([first, second].map(\.outcomeUnknown) == [true, false])
        // Only w2 had B: the new plan finds no stock, so the saga goes on to undo the rest.
        #expect(saga.instance.steps[2].round == 1)
        #expect(saga.instance.failure?.error.code == "insufficient_stock")
        #expect(Self.undoAll(&saga).map(\.routingKey) == ["inventory.release", "erp.order.cancel"])
        #expect(saga.instance.status == .compensated)
    }

    @Test("an unknown outcome survives a restart: the state keeps the unanswered attempts")
    func unansweredAttemptsAreState() throws {
        var saga = SagaDriver(TestWorkflows.linear(), input: input, id: "t-7")
        saga.reply(saga.last.commands[0], ["token": "tok"])
        saga.fire(try #require(saga.last.scheduledTimers.first { $0.kind == .replyTimeout }))
        saga.fire(try #require(saga.last.scheduledTimers.first { $0.kind == .retry }))
        saga.fire(try #require(saga.last.scheduledTimers.first { $0.kind == .replyTimeout }))
        #expect(saga.instance.steps[1].branches[0].unansweredAttempts == 2)
        #expect(saga.instance.steps[1].branches[0].attempt == 2)
    }
}
