import Foundation
import Testing
import WaybillDefinition

@testable import SagaEngine
@testable import SagaStore

@Suite struct JournalDetailTests {
    static let now = Timestamp(milliseconds: 1_700_000_005_000)

    static let definition = WorkflowDefinition(
        name: "order-fulfillment", version: 1,
        trigger: Trigger(exchange: "orders", routingKey: "order.placed", sagaId: .literal("x")),
        steps: [
            StepDefinition(id: "accept", action: .command(CommandTemplate(routingKey: .literal("erp.order.accept")))),
            StepDefinition(
                id: "release", action: .command(CommandTemplate(routingKey: .literal("wms.release"))),
                forEach: ForEach(items: .literal([]), alias: "shipment")),
        ])

    /// A saga waiting for `release[1]` (message `m-41`, timer `t-42`).
    static var waiting: SagaInstance {
        var instance = Fixtures.runningInstance(id: "ord-1", step: 1)
        var steps = [StepState(), StepState()]
        var idle = BranchState(item: ["id": "s0"], round: 0)
        idle.status = .succeeded
        var busy = BranchState(item: ["id": "s1"], round: 0)
        busy.pending = PendingCommand(
            messageId: "m-41", routingKey: "wms.release", kind: .do, attempt: 1, sentAt: now)
        busy.timer = Fixtures.timer("t-42", due: 1_700_000_035_000)
        steps[1].branches = [idle, busy]
        instance.steps = steps
        return instance
    }

    static func command(
        _ id: String, _ kind: CommandKind = .do, step: String = "release", branch: Int? = 1,
        outcomeUnknown: Bool = false
    ) -> SagaAction {
        .sendCommand(
            CommandMessage(
                messageId: id, routingKey: "r", idempotencyKey: kind == .compensate ? "k/compensate" : "k", step: step,
                branch: branch, kind: kind, attempt: 1, body: ["secret": "order payload"],
                compensates: kind == .compensate ? "k" : nil, outcomeUnknown: outcomeUnknown))
    }

    static func line(_ event: SagaEvent, _ outcome: Transition.Outcome, actions: [SagaAction] = []) -> JournalEntry? {
        var after = waiting
        after.status = .compensating
        let transition = Transition(instance: after, actions: actions, outcome: outcome)
        return JournalEntry.describing(event, before: waiting, transition: transition, definition: definition, at: now)
            .first
    }

    @Test func replyOkNamesTheBranchTheNewStatusAndTheEffects() throws {
        let entry = try #require(
            Self.line(
                .reply(correlationId: "m-41", outcome: .ok(output: ["released": true])), .applied,
                actions: [Self.command("m-50"), .scheduleTimer(Fixtures.timer("t-51", due: 1))]))
        #expect(entry.kind == .reply)
        #expect(entry.step == "release[1]")
        #expect(entry.actor == nil)
        #expect(entry.at == Self.now)
        #expect(
            entry.detail
                == #"reply ok for release[1] output {"released":true} → compensating; "#
                + "sent 1 command, scheduled 1 timer"
        )
    }

    @Test func replyErrorQuotesACutMessageAndNeverTheCommandBody() throws {
        let long = String(repeating: "stock missing ", count: 30)
        let entry = try #require(
            Self.line(
                .reply(
                    correlationId: "m-41",
                    outcome: .error(StepError(code: "out_of_stock", message: "line1\n" + long, retryable: false))),
                .applied,
                actions: [
                    Self.command("c-1", .compensate), Self.command("c-2", .compensate), .cancelTimer(id: "t-42"),
                    .publishMilestone(
                        MilestoneEvent(
                            eventId: "e", name: "order.failed", step: nil, output: nil, status: .compensating,
                            occurredAt: Self.now)),
                ]))
        #expect(entry.detail.hasPrefix(#"reply error out_of_stock (not retryable) for release[1]: "line1 stock"#))
        #expect(
            entry.detail.contains("…\" → compensating; sent 2 compensations, published order.failed, cancelled 1 timer")
        )
        #expect(!entry.detail.contains("order payload"))
        #expect(!entry.detail.contains("\n"))
        #expect(entry.detail.count < 300)
        #expect(
            entry.facts
                == [
                    "event": "reply", "correlationId": "m-41", "reply": "error", "code": "out_of_stock",
                    "retryable": false, "step": "release", "branch": 1, "attempt": 1, "command": "do",
                    "outcome": "applied",
                    "status": "compensating", "compensations": 2, "milestones": ["order.failed"],
                ])
    }

    @Test func aCompensationOfAStepWhoseReplyNeverCameSaysTheOutcomeIsUnknown() throws {
        let one = try #require(
            Self.line(
                .timerFired(timerId: "t-42"), .applied,
                actions: [Self.command("c-1", .compensate, outcomeUnknown: true)]))
        #expect(
            one.detail
                == "timer replyTimeout fired for release[1] → compensating; sent 1 compensation, "
                + "outcome unknown: compensating release[1] in case it took effect")
        let plain = try #require(
            Self.line(
                .reply(correlationId: "m-41", outcome: .ok(output: nil)), .applied,
                actions: [Self.command("c-2", .compensate, step: "accept", branch: nil, outcomeUnknown: true)]))
        #expect(plain.detail.hasSuffix("outcome unknown: compensating accept in case it took effect"))
        let known = try #require(
            Self.line(
                .reply(correlationId: "m-41", outcome: .ok(output: nil)), .applied,
                actions: [Self.command("c-3", .compensate)]))
        #expect(!known.detail.contains("outcome unknown"))
    }

    @Test func lateRepliesAreNotedAsIgnored() throws {
        let entry = try #require(
            Self.line(.reply(correlationId: "m-17", outcome: .ok(output: nil)), .ignored("late reply m-17")))
        #expect(entry.kind == .ignored)
        #expect(entry.step == nil)
        #expect(entry.detail == "ignored: late reply m-17 (reply ok m-17)")
        #expect(
            entry.facts
                == [
                    "event": "reply", "correlationId": "m-17", "reply": "ok", "outcome": "ignored",
                    "why": "late reply m-17",
                ])
    }

    @Test func timersAreTracedToTheirBranch() throws {
        let entry = try #require(Self.line(.timerFired(timerId: "t-42"), .applied, actions: [Self.command("m-52")]))
        #expect(entry.kind == .timer)
        #expect(entry.step == "release[1]")
        #expect(entry.detail == "timer replyTimeout fired for release[1] → compensating; sent 1 command")
        #expect(entry.facts?["timer"] == "replyTimeout")
        #expect(entry.facts?["step"] == "release" && entry.facts?["branch"] == 1)
        #expect(entry.facts?["commands"] == 1)
    }

    @Test func operatorCommandsRecordWhoAndWhy() throws {
        let retry = OperatorCommand(action: .retry(step: "release"), by: "alice", reason: "WMS fixed")
        let applied = try #require(Self.line(.operatorCommand(retry), .applied, actions: [Self.command("m-60")]))
        #expect(applied.kind == .operatorCommand)
        #expect(applied.actor == "alice")
        #expect(applied.step == "release")
        #expect(applied.detail == #"operator retry release by alice: "WMS fixed" → compensating; sent 1 command"#)
        #expect(
            applied.facts
                == [
                    "event": "operator", "action": "retry", "reason": "WMS fixed", "step": "release",
                    "outcome": "applied", "status": "compensating", "commands": 1,
                ])

        let cancel = OperatorCommand(action: .cancel, by: "bob", reason: "customer called")
        let rejected = try #require(Self.line(.operatorCommand(cancel), .rejected("the saga already completed")))
        #expect(rejected.kind == .rejected)
        #expect(rejected.actor == "bob")
        #expect(rejected.detail == #"rejected: the saga already completed (operator cancel by bob: "customer called")"#)
    }

    @Test func changeFromATransitionCarriesTimersOnlyWhenApplied() throws {
        let actions: [SagaAction] = [
            .scheduleTimer(Fixtures.timer("t-9", due: 5)), .cancelTimer(id: "t-42"), Self.command("m-9"),
        ]
        let applied = SagaChange(
            event: .timerFired(timerId: "t-42"), before: Self.waiting,
            transition: Transition(instance: Self.waiting, actions: actions, outcome: .applied),
            definition: Self.definition, at: Self.now, owner: "w1", inboxMessageId: "timer:t-42",
            outbox: [Fixtures.outbox("m-9")])
        #expect(applied.instance == Self.waiting)
        #expect(applied.currentStep == "release")
        #expect(applied.scheduleTimers.map(\.id) == ["t-9"])
        #expect(applied.cancelTimerIds == ["t-42"])
        #expect(applied.outbox.count == 1)
        #expect(applied.journal.count == 1)

        let ignored = SagaChange(
            event: .timerFired(timerId: "t-1"), before: Self.waiting,
            transition: Transition(instance: Self.waiting, actions: actions, outcome: .ignored("stale timer")),
            definition: Self.definition, at: Self.now, owner: "w1", inboxMessageId: "timer:t-1",
            outbox: [Fixtures.outbox("m-9")])
        #expect(ignored.instance == nil)
        #expect(ignored.scheduleTimers.isEmpty && ignored.cancelTimerIds.isEmpty && ignored.outbox.isEmpty)
        #expect(ignored.journal.first?.kind == .ignored)
        #expect(ignored.inboxMessageId == "timer:t-1")
    }
}

/// Journal lines quote text on one line and cut it at the summary limit, the same for ASCII and for any other text.
struct JournalTextCutTests {
    static let limit = JournalEntry.summaryLimit

    @Test(
        "cut keeps short text, replaces line breaks, and cuts at the limit with an ellipsis",
        arguments: [
            ("short", "short"),
            (String(repeating: "a", count: limit), String(repeating: "a", count: limit)),
            (String(repeating: "a", count: limit + 1), String(repeating: "a", count: limit - 1) + "…"),
            ("two\nlines\r\nand\u{2028}more", "two lines and more"),
            ("ünï ✓ 😀", "ünï ✓ 😀"),
            (String(repeating: "é", count: limit + 5), String(repeating: "é", count: limit - 1) + "…"),
            (String(repeating: "a", count: limit - 3) + "\n😀😀", String(repeating: "a", count: limit - 3) + " 😀😀"),
            (String(repeating: "a", count: limit - 2) + "\n😀😀", String(repeating: "a", count: limit - 2) + " …"),
            (String(repeating: "a", count: limit) + "\n", String(repeating: "a", count: limit - 1) + "…"),
        ])
    func cut(text: String, expected: String) {
        #expect(JournalText.cut(text) == expected)
        #expect(JournalText.cut(text).count <= Self.limit)
    }
}
