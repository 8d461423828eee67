import SagaEngine
import Testing
import WaybillDefinition
import WaybillTestSupport

/// What milestone events say (docs/events.md): one event per `for_each` branch before the joined one, and why a
/// saga that failed ended.
@Suite("Milestone events")
struct MilestoneEventTests {
    static let twoWarehouses = OrderJSON.stock([("w1", "A", 5), ("w2", "B", 5)])
    static let order = OrderJSON.order("o-1", lines: [("A", 1), ("B", 2)])

    /// The shipment the split plans for `warehouse` in ``order``.
    static func shipment(_ warehouse: String, _ sku: String, _ quantity: Int) -> JSONValue {
        [
            "id": .string("o-1-\(warehouse)"), "warehouse": .string(warehouse),
            "lines": OrderJSON.lines([(sku, quantity)]),
        ]
    }

    /// Runs accept and reserve of a two-warehouse order: its release branches are in flight.
    static func releasing(_ workflow: WorkflowDefinition = TestWorkflows.orderFulfillment()) -> SagaDriver {
        var saga = SagaDriver(workflow, input: order)
        saga.reply(saga.last.commands[0])
        saga.reply(saga.last.commands[0], ["reservationId": "r-1", "stock": twoWarehouses])
        return saga
    }

    /// Runs to the ship step of a two-warehouse order: its branches are in flight (branch 0 ships from w1).
    static func shipping() -> (SagaDriver, [CommandMessage]) {
        var saga = releasing()
        for release in saga.last.commands { saga.reply(release) }
        return (saga, saga.last.commands)
    }

    /// Replies ok to every command, in the order they were sent, until the saga sends no more.
    static func replyToEverything(_ saga: inout SagaDriver) {
        var waiting = saga.last.commands
        while !waiting.isEmpty {
            saga.reply(waiting.removeFirst())
            waiting += saga.last.commands
        }
    }

    // MARK: - Per-branch milestones

    @Test("each ship branch publishes its event as it succeeds, with its shipment and output, then the joined one")
    func perBranchEventsThenTheJoinedOne() {
        var (saga, ships) = Self.shipping()
        #expect(ships.map { $0.body["warehouse"] } == ["w1", "w2"])
        saga.reply(ships[1], ["trackingId": "T-2"])
        let first = saga.last.events
        saga.reply(ships[0], ["trackingId": "T-1"])
        let second = saga.last.events

        #expect(first.map(\.name) == ["order.shipment.shipped"])
        #expect(first[0].branch == MilestoneBranch(index: 1, item: Self.shipment("w2", "B", 2)))
        #expect(first[0].output == ["trackingId": "T-2"], "the branch's own output")
        #expect(first[0].step == "ship")
        #expect(first[0].status == .running)

        #expect(second.map(\.name) == ["order.shipment.shipped", "order.shipped"])
        #expect(second[0].branch == MilestoneBranch(index: 0, item: Self.shipment("w1", "A", 1)))
        #expect(second[0].output == ["trackingId": "T-1"])
        #expect(second[1].branch == nil, "the joined event is about the whole step")
        #expect(second[1].output == [["trackingId": "T-1"], ["trackingId": "T-2"]], "branch outputs in element order")

        let events = first + second
        #expect(Set(events.map(\.eventId)).count == events.count)
        #expect(events.allSatisfy { $0.failure == nil })
    }

    @Test("a step without branch_milestone publishes only its joined event, and a completed saga no failure")
    func joinedOnlyWithoutBranchMilestone() {
        var saga = Self.releasing()
        let releases = saga.last.commands
        saga.reply(releases[0])
        #expect(saga.last.events.isEmpty)
        saga.reply(releases[1])
        #expect(saga.last.milestones == ["order.released"])
        Self.replyToEverything(&saga)
        #expect(saga.instance.status == .completed)
        #expect(saga.last.milestones == ["order.invoiced", "order.completed"])
        #expect(saga.last.events.allSatisfy { $0.failure == nil && $0.branch == nil })
    }

    // MARK: - Failure reasons

    @Test("order.failed after the pivot says why: the code, the message, the step and the failed branch's shipment")
    func suspendedSagaNamesTheFailedBranch() {
        var (saga, ships) = Self.shipping()
        saga.reply(ships[0], ["trackingId": "T-1"])
        #expect(saga.last.milestones == ["order.shipment.shipped"], "the branch that shipped says so")
        saga.fail(ships[1], code: "no_carrier", retryable: false)

        #expect(saga.instance.status == .suspended)
        let events = saga.last.events
        #expect(events.map(\.name) == ["order.failed"])
        #expect(events.first?.status == .suspended)
        #expect(
            events.first?.failure
                == MilestoneFailure(
                    code: "no_carrier", message: "no_carrier from test", step: "ship",
                    branch: MilestoneBranch(index: 1, item: Self.shipment("w2", "B", 2))))
        #expect(events.first?.step == nil)
        #expect(events.first?.branch == nil)
    }

    @Test("order.cancelled after a failed release branch names that branch, once its sibling is undone")
    func compensatedSagaNamesTheFailedBranch() {
        var saga = Self.releasing()
        let releases = saga.last.commands
        saga.reply(releases[0])
        saga.fail(releases[1], code: "damaged", retryable: false)
        Self.replyToEverything(&saga)

        #expect(saga.instance.status == .compensated)
        #expect(
            saga.last.events.map(\.failure) == [
                MilestoneFailure(
                    code: "damaged", message: "damaged from test", step: "release",
                    branch: MilestoneBranch(index: 1, item: Self.shipment("w2", "B", 2)))
            ])
        #expect(saga.last.milestones == ["order.cancelled"])
    }

    @Test("a plain step's failure names no branch")
    func compensatedSagaOfAPlainStep() {
        var saga = SagaDriver(TestWorkflows.orderFulfillment(), input: Self.order)
        saga.reply(saga.last.commands[0])
        saga.fail(saga.last.commands[0], code: "credit_refused", retryable: false)
        Self.replyToEverything(&saga)

        #expect(saga.instance.status == .compensated)
        #expect(
            saga.last.events.map(\.failure) == [
                MilestoneFailure(
                    code: "credit_refused", message: "credit_refused from test", step: "reserve", branch: nil)
            ])
    }

    @Test("retries used up by timeouts: the code is timeout and the message says which command went unanswered")
    func compensatedAfterTimeouts() throws {
        var saga = SagaDriver(TestWorkflows.linear(), input: ["id": "x-1"])
        while saga.instance.status == .running, let timer = saga.last.scheduledTimers.last {
            saga.fire(timer)
        }
        Self.replyToEverything(&saga)

        #expect(saga.instance.status == .compensated)
        let failure = try #require(saga.last.events.first?.failure)
        #expect(failure.code == StepError.timeoutCode)
        #expect(failure.step == "a")
        #expect(failure.branch == nil)
        #expect(failure.message.hasPrefix("no reply to linear/o-1/m"), "\(failure.message)")
    }

    @Test("an operator's compensate and cancel say so in the code, with who asked and why in the message")
    func operatorEnds() throws {
        var workflow = TestWorkflows.orderFulfillment()
        workflow.milestones.cancelled = "order.aborted"

        var cancelled = SagaDriver(workflow, input: Self.order)
        cancelled.reply(cancelled.last.commands[0])
        cancelled.apply(.operatorCommand(OperatorCommand(action: .cancel, by: "ann", reason: "customer called")))
        #expect(cancelled.last.milestones == ["order.aborted"])
        #expect(
            cancelled.last.events.first?.failure
                == MilestoneFailure(
                    code: StepError.operatorCancelCode, message: "cancelled by ann: customer called", step: "reserve",
                    branch: nil))

        var compensated = SagaDriver(workflow, input: Self.order, id: "o-2")
        compensated.reply(compensated.last.commands[0])
        let reserve = try #require(compensated.last.commands.first)
        compensated.apply(.operatorCommand(OperatorCommand(action: .compensate, by: "ann", reason: "fraud")))
        compensated.reply(reserve, ["reservationId": "r-2", "stock": Self.twoWarehouses])
        Self.replyToEverything(&compensated)
        #expect(compensated.instance.status == .compensated)
        #expect(
            compensated.last.events.map(\.failure) == [
                MilestoneFailure(
                    code: StepError.operatorCode, message: "compensation requested by ann: fraud", step: "reserve",
                    branch: nil)
            ])
    }
}
