import Foundation
import SagaEngine
import Testing
import WaybillDefinition
import WaybillTestSupport
import WaybillWorker

@testable import SagaStore
@testable import WaybillDemo

/// The chaos run's pure parts: the fault plan, the hostile mix, and the checks it makes on claim histories and
/// milestone sequences (the run itself is `scripts/chaos`, not a test).
struct ChaosChecksTests {
    /// The shipped order-fulfillment workflow.
    static func workflow() throws -> WorkflowDefinition {
        let url = Repository.workflow("order-fulfillment.yaml")
        return try WorkflowLoader.load(yaml: String(contentsOf: url, encoding: .utf8), file: url.path)
    }

    static func at(_ milliseconds: Int64) -> Timestamp { Timestamp(milliseconds: milliseconds) }

    static func claim(_ epoch: Int64, _ owner: String, at claimed: Int64, released: Int64? = nil) -> FenceClaim {
        FenceClaim(epoch: epoch, owner: owner, claimedAt: at(claimed), releasedAt: released.map(at))
    }

    static func kill(_ worker: String, at before: Int64, outage: Bool = false) -> ChaosWorkers.Kill {
        ChaosWorkers.Kill(
            worker: worker, before: at(before), after: at(before + 5), permanent: false, duringOutage: outage)
    }

    // MARK: - Claims

    @Test func claimsThatFollowAReleaseOrAKillDoNotOverlap() {
        let claims = [
            0: [Self.claim(1, "w1", at: 0, released: 100), Self.claim(2, "w2", at: 100, released: 900)],
            1: [Self.claim(1, "w1", at: 0), Self.claim(2, "w2", at: 520, released: 900)],
        ]
        #expect(ChaosChecks.claimOverlaps(claims, kills: [Self.kill("w1", at: 500)]).isEmpty)
    }

    @Test func aClaimWhileTheOwnerLivedAndHeldItIsAnOverlap() {
        let early = [0: [Self.claim(1, "w1", at: 0, released: 300), Self.claim(2, "w2", at: 200, released: 900)]]
        #expect(ChaosChecks.claimOverlaps(early, kills: []).count == 1)
        let unreleased = [0: [Self.claim(1, "w1", at: 0), Self.claim(2, "w2", at: 200, released: 900)]]
        #expect(ChaosChecks.claimOverlaps(unreleased, kills: []).count == 1)
        // Killed, but only after the next claim: still an overlap.
        #expect(ChaosChecks.claimOverlaps(unreleased, kills: [Self.kill("w1", at: 400)]).count == 1)
    }

    @Test func aClaimStillHeldAtTheEndMustBelongToAKilledWorker() {
        let claims = [3: [Self.claim(1, "w1", at: 0, released: 100), Self.claim(2, "w2", at: 150)]]
        #expect(ChaosChecks.claimOverlaps(claims, kills: []).first?.contains("still held at the end") == true)
        #expect(ChaosChecks.claimOverlaps(claims, kills: [Self.kill("w2", at: 700)]).isEmpty)
    }

    // MARK: - Takeover

    @Test func takeoverRunsFromTheKillToTheLastOfItsPartitionsClaimedAgain() {
        let claims = [
            0: [Self.claim(1, "w1", at: 0), Self.claim(2, "w2", at: 1_800)],
            1: [Self.claim(1, "w1", at: 10), Self.claim(2, "w1", at: 1_300)],
            2: [Self.claim(1, "w2", at: 0)],
            3: [Self.claim(1, "w1", at: 0, released: 400), Self.claim(2, "w2", at: 410)],
        ]
        let takeovers = ChaosChecks.takeovers([Self.kill("w1", at: 1_000)], claims: claims)
        #expect(takeovers.count == 1)
        #expect(takeovers.first?.partitions == 2)
        #expect(takeovers.first?.time == .milliseconds(800))
    }

    @Test func aPartitionNeverClaimedAgainHasNoTakeoverTime() {
        let claims = [
            0: [Self.claim(1, "w1", at: 0)], 1: [Self.claim(1, "w1", at: 0), Self.claim(2, "w2", at: 1_200)],
        ]
        let takeovers = ChaosChecks.takeovers([Self.kill("w1", at: 1_000)], claims: claims)
        #expect(takeovers.map(\.partitions) == [2])
        #expect(takeovers.first?.time == nil)
    }

    @Test func killsWithoutPartitionsOrDuringAnOutageAreLeftOut() {
        let claims = [0: [Self.claim(1, "w1", at: 0), Self.claim(2, "w2", at: 1_200)]]
        #expect(ChaosChecks.takeovers([Self.kill("w3", at: 1_000)], claims: claims).isEmpty)
        #expect(ChaosChecks.takeovers([Self.kill("w1", at: 1_000, outage: true)], claims: claims).isEmpty)
    }

    // MARK: - Milestones

    static func events(_ types: [String]) -> [ChaosMilestones.Event] {
        types.enumerated().map { ChaosMilestones.Event(id: "e\($0.offset)", type: $0.element) }
    }

    static let completed = [
        "order.accepted", "order.reserved", "order.released", "order.shipped", "order.invoiced", "order.completed",
    ]

    @Test func theFirstCopiesOfACompletedSagaAreValidEvenWithRepeatsByEventId() throws {
        var events = Self.events(Self.completed)
        events.insert(events[1], at: 3)
        events.append(events[5])
        #expect(ChaosChecks.milestoneProblem(events, status: .completed, workflow: try Self.workflow()) == nil)
    }

    /// The event bodies the worker publishes for a two-warehouse order of the shipped workflow that completes.
    static func twoWarehouseEventBodies() throws -> [Data] {
        let workflow = try Self.workflow()
        let engine = SagaEngine()
        let format = WireFormat(commandsExchange: "commands", eventsExchange: "events", replyQueue: "p00")
        let now = Self.at(1_000)
        var bodies: [Data] = []
        var waiting: [CommandMessage] = []
        func note(_ transition: Transition) {
            let messages = format.outbox(for: transition.actions, of: transition.instance)
            bodies += messages.filter { $0.exchange == "events" }.map { Data($0.body) }
            waiting += transition.actions.compactMap { if case .sendCommand(let command) = $0 { command } else { nil } }
        }
        var transition = engine.start(
            definition: workflow, definitionHash: "h", sagaId: "o-1",
            input: OrderJSON.order("o-1", lines: [("A", 1), ("B", 1)]), now: now)
        note(transition)
        while !waiting.isEmpty {
            let command = waiting.removeFirst()
            let output: JSONValue =
                command.step == "reserve" ? ["stock": OrderJSON.stock([("w1", "A", 1), ("w2", "B", 1)])] : [:]
            transition = engine.apply(
                .reply(correlationId: command.messageId, outcome: .ok(output: output)), to: transition.instance,
                definition: workflow, now: now)
            note(transition)
        }
        #expect(transition.instance.status == .completed)
        return bodies
    }

    @Test func perBranchEventsAreCountedButLeftOutOfTheStepSequence() throws {
        let workflow = try Self.workflow()
        let milestones = ChaosMilestones(queue: "q", eventsExchange: "events", milestones: workflow.milestones)
        let bodies = try Self.twoWarehouseEventBodies()
        for body in bodies { milestones.record(body) }

        #expect(bodies.count == Self.completed.count + 2, "two order.shipment.shipped events")
        #expect(milestones.received == bodies.count)
        let recorded = try #require(milestones.events["o-1"])
        #expect(recorded.map(\.type) == Self.completed)
        #expect(ChaosChecks.milestoneProblem(recorded, status: .completed, workflow: workflow) == nil)
        #expect(milestones.endedCount(of: ["o-1"]) == 1)
    }

    @Test(arguments: [
        (["order.accepted", "order.cancelled"], SagaStatus.compensated),
        (["order.cancelled"], SagaStatus.compensated),
        (
            ["order.accepted", "order.reserved", "order.released", "order.shipped", "order.failed"],
            SagaStatus.suspended
        ),
    ])
    func validEndsOtherThanCompleted(_ types: [String], _ status: SagaStatus) throws {
        let workflow = try Self.workflow()
        #expect(ChaosChecks.milestoneProblem(Self.events(types), status: status, workflow: workflow) == nil)
    }

    @Test(arguments: [
        (["order.accepted", "order.reserved"], SagaStatus.running, "no end milestone"),
        (["order.reserved", "order.accepted", "order.cancelled"], .compensated, "out of order"),
        (["order.accepted", "order.accepted", "order.cancelled"], .compensated, "out of order or repeated"),
        (["order.accepted", "order.completed"], .completed, "without every step milestone"),
        (["order.accepted", "order.cancelled", "order.completed"], .completed, "end milestone order.cancelled"),
        (["order.accepted", "order.cancelled"], .completed, "but the saga is completed"),
        (
            ["order.accepted", "order.reserved", "order.released", "order.shipped", "order.cancelled"], .compensated,
            "after its pivot"
        ),
    ])
    func invalidSequencesAreNamed(_ types: [String], _ status: SagaStatus, _ problem: String) throws {
        let found = ChaosChecks.milestoneProblem(Self.events(types), status: status, workflow: try Self.workflow())
        #expect(found?.contains(problem) == true, "\(types): \(found ?? "no problem found")")
    }

    @Test("events are judged in the order the saga published them; one that came late is named, with its redelivery")
    func lateArrivalsAreFoundByTheSequenceInTheIds() throws {
        func event(_ sequence: Int, _ type: String, redelivered: Bool = false) -> ChaosMilestones.Event {
            ChaosMilestones.Event(id: "order-fulfillment/o-1/e\(sequence)", type: type, redelivered: redelivered)
        }
        let arrived = [
            event(6, "order.reserved"), event(3, "order.accepted", redelivered: true), event(9, "order.released"),
            event(12, "order.shipped"), event(6, "order.reserved"), event(14, "order.invoiced"),
            event(15, "order.completed"),
        ]
        #expect(ChaosChecks.milestoneProblem(arrived, status: .completed, workflow: try Self.workflow()) == nil)
        #expect(ChaosChecks.lateArrivals(arrived).map(\.type) == ["order.accepted"])
        #expect(ChaosChecks.lateArrivals(arrived).allSatisfy { $0.redelivered })
        #expect(ChaosChecks.lateArrivals(arrived.sorted { ($0.sequence ?? 0) < ($1.sequence ?? 0) }).isEmpty)
        #expect(ChaosMilestones.Event(id: "e3", type: "x").sequence == nil)
    }

    // MARK: - Plans

    @Test func thePlanHasEveryFaultInOrderAndDependsOnlyOnTheSeed() {
        let plan = ChaosPlan.make(kills: 20, brokerRestarts: 3, seed: 7)
        #expect(plan == ChaosPlan.make(kills: 20, brokerRestarts: 3, seed: 7))
        #expect(plan != ChaosPlan.make(kills: 20, brokerRestarts: 3, seed: 8))
        #expect(plan.steps.map(\.at) == plan.steps.map(\.at).sorted())
        #expect(plan.steps.allSatisfy { (0...1).contains($0.at) })
        #expect(plan.steps.count { if case .kill = $0.fault { true } else { false } } == 20)
        #expect(plan.steps.count { $0.fault == .brokerRestart } == 3)
        #expect(plan.steps.contains { $0.fault == .addWorker(ChaosPlan.addedWorker) })
        #expect(plan.steps.contains { $0.fault == .killForGood(ChaosPlan.killedForGood) })
        #expect(plan.steps.contains { $0.fault == .drain(ChaosPlan.drained) })
    }

    @Test func theHostileMixHasTheCountAskedForAndEveryKind() throws {
        let inputs = HostileInputs(
            workflow: try Self.workflow(), poolName: "chaos.waybill", partitionCount: 16, answerQueue: "answers",
            maxMessageBytes: 1024, seed: 3)
        let plan = inputs.plan(count: 1_000)
        #expect(plan.count == 1_000)
        #expect(Set(plan) == Set(HostileKind.allCases))
        #expect(inputs.plan(count: 10).count == 10)
    }
}
