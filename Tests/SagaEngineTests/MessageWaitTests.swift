import SagaEngine
import Testing
import WaybillDefinition
import WaybillTestSupport

/// The `wait` step that waits for a correlated message: recorded for the store, ended by a matching message, by its
/// timeout (failing, or on to `on_timeout`), or by an operator.
@Suite("Message waits")
struct MessageWaitTests {
    let failing: WorkflowDefinition
    let reminding: WorkflowDefinition

    init() throws {
        failing = try WorkflowLoader.load(yaml: WorkflowTexts.awaitingPayment, file: "awaiting-payment.yaml")
        reminding = try WorkflowLoader.load(yaml: WorkflowTexts.awaitingPaymentOrRemind, file: "remind.yaml")
    }

    /// A saga of `definition` accepted and now waiting for its payment (``awaited(by:)`` is the wait it recorded).
    private func waiting(_ definition: WorkflowDefinition, id: String = "o-1") -> SagaDriver {
        var saga = SagaDriver(definition, input: ["id": .string(id)], id: id)
        saga.reply(saga.last.commands[0])
        return saga
    }

    /// The wait the saga's last transition recorded.
    private func awaited(by saga: SagaDriver) throws -> AwaitedMessage {
        try #require(
            saga.last.actions.lazy.compactMap { if case .awaitMessage(let wait) = $0 { wait } else { nil } }.first)
    }

    @Test("the wait records what it waits for; the matching message ends it, with the message as the step's output")
    func matchingMessage() throws {
        var saga = waiting(failing)
        let wait = try awaited(by: saga)
        let timer = try #require(saga.last.scheduledTimers.first)
        #expect(
            wait
                == AwaitedMessage(
                    id: timer.id, exchange: "payments", routingKey: "payment.*.confirmed", key: "${message.orderId}",
                    match: "o-1"))
        #expect(timer.kind == .wait)
        #expect(timer.dueAt == saga.now.adding(.seconds(86_400)))
        #expect(saga.last.commands.isEmpty)

        let message: JSONValue = ["orderId": "o-1", "amount": 120]
        saga.apply(.signal(waitId: wait.id, message: message))
        #expect(saga.last.isApplied)
        #expect(saga.last.actions.contains(.cancelTimer(id: timer.id)))
        #expect(saga.last.actions.contains(.cancelAwait(id: wait.id)))
        #expect(saga.last.milestones == ["order.paid"])
        #expect(saga.instance.steps[1].output == message)
        #expect(saga.last.commands.map(\.body) == [["amount": 120]])
        saga.reply(saga.last.commands[0])
        #expect(saga.instance.status == .completed)

        let again = saga.apply(.signal(waitId: wait.id, message: message))
        #expect(!again.isApplied, "a second copy finds no wait")
    }

    @Test("a message whose key is another saga's, or missing, leaves the saga waiting")
    func otherMessages() throws {
        var saga = waiting(failing)
        let wait = try awaited(by: saga)
        for message: JSONValue in [["orderId": "o-2"], ["amount": 5], ["orderId": ["o-1"]], "o-1"] {
            let transition = saga.apply(.signal(waitId: wait.id, message: message))
            #expect(!transition.isApplied, "\(message)")
            #expect(saga.instance.steps[1].branches.map(\.status) == [.waiting])
        }
        let stale = saga.apply(.signal(waitId: "t-unknown", message: ["orderId": "o-1"]))
        #expect(!stale.isApplied)
    }

    @Test("a number or boolean correlates as its JSON text, so 42 matches 42.0")
    func numericKeys() throws {
        let text = WorkflowTexts.awaitingPayment.replacingOccurrences(
            of: "match: \"${input.id}\"", with: "match: \"${input.number}\"")
        let definition = try WorkflowLoader.load(yaml: text, file: "numeric.yaml")
        var saga = SagaDriver(definition, input: ["id": "o-1", "number": 42], id: "o-1")
        saga.reply(saga.last.commands[0])
        let wait = try awaited(by: saga)
        #expect(wait.match == "42")
        saga.apply(.signal(waitId: wait.id, message: ["orderId": 42.0]))
        #expect(saga.instance.steps[1].status == .succeeded)
    }

    @Test("a match that cannot correlate (an object) fails the step before anything waits")
    func unmatchable() throws {
        let text = WorkflowTexts.awaitingPayment.replacingOccurrences(
            of: "match: \"${input.id}\"", with: "match: \"${input.customer}\"")
        let definition = try WorkflowLoader.load(yaml: text, file: "object.yaml")
        var saga = SagaDriver(definition, input: ["id": "o-1", "customer": ["id": "c-1"]], id: "o-1")
        saga.reply(saga.last.commands[0])
        #expect(!saga.last.actions.contains { if case .awaitMessage = $0 { true } else { false } })
        #expect(saga.instance.failure?.error.code == StepError.evaluationCode)
        #expect(saga.last.commands.map(\.routingKey) == ["erp.cancel"])
    }

    @Test("without on_timeout the timeout fails the step with wait_timeout, and the saga compensates")
    func timeoutFails() throws {
        var saga = waiting(failing)
        let wait = try awaited(by: saga)
        let timer = try #require(saga.last.scheduledTimers.first)
        saga.fire(timer)
        #expect(saga.last.actions.contains(.cancelAwait(id: wait.id)))
        #expect(saga.instance.failure?.error.code == StepError.waitTimeoutCode)
        #expect(saga.instance.failure?.step == "payment")
        #expect(saga.instance.steps[1].branches.map(\.status) == [.failed])
        #expect(saga.last.commands.map(\.routingKey) == ["erp.cancel"])
        saga.reply(saga.last.commands[0])
        #expect(saga.instance.status == .compensated)
        let late = saga.apply(.signal(waitId: wait.id, message: ["orderId": "o-1"]))
        #expect(!late.isApplied, "a message after the timeout finds no wait")
    }

    @Test("on_timeout sends the saga to its target; the steps between are bypassed")
    func timeoutGoesOn() throws {
        var saga = waiting(reminding)
        let wait = try awaited(by: saga)
        let timer = try #require(saga.last.scheduledTimers.first)
        saga.fire(timer)
        #expect(saga.last.actions.contains(.cancelAwait(id: wait.id)))
        #expect(saga.instance.steps[1].status == .succeeded)
        #expect(saga.instance.steps[1].output == ["timedOut": true, "next": "remind"])
        #expect(saga.instance.steps[2].status == .bypassed)
        #expect(saga.last.milestones.isEmpty, "order.paid says the payment came; a timeout publishes none")
        #expect(saga.last.commands.map(\.routingKey) == ["crm.remind"])
        saga.reply(saga.last.commands[0])
        #expect(saga.instance.status == .completed)

        var paid = waiting(reminding, id: "o-2")
        let paidWait = try awaited(by: paid)
        paid.apply(.signal(waitId: paidWait.id, message: ["orderId": "o-2"]))
        #expect(paid.last.milestones == ["order.paid"])
        #expect(paid.last.commands.map(\.routingKey) == ["tms.create"])
        paid.reply(paid.last.commands[0])
        #expect(paid.instance.status == .completed)
        #expect(paid.instance.steps[3].status == .bypassed, "ship's next: end jumps over remind")
    }

    @Test("after the pivot a timeout suspends the saga; an operator's retry waits again, afresh, for the message")
    func retryAfterTimeout() throws {
        let text = WorkflowTexts.awaitingPayment.replacingOccurrences(
            of: "    compensate: { command: erp.cancel }\n", with: "    pivot: true\n")
        let definition = try WorkflowLoader.load(yaml: text, file: "pivot.yaml")
        var saga = waiting(definition)
        let first = try awaited(by: saga)
        let timer = try #require(saga.last.scheduledTimers.first)
        saga.fire(timer)
        #expect(saga.instance.status == .suspended)
        #expect(saga.instance.failure?.error.code == StepError.waitTimeoutCode)

        saga.apply(.operatorCommand(OperatorCommand(action: .retry(step: nil), by: "ann", reason: "payment is late")))
        #expect(saga.instance.status == .running)
        let again = try awaited(by: saga)
        #expect(again.id != first.id && again.match == "o-1")
        #expect(saga.last.scheduledTimers.map(\.dueAt) == [saga.now.adding(.seconds(86_400))])
        saga.apply(.signal(waitId: again.id, message: ["orderId": "o-1", "amount": 3]))
        #expect(saga.last.commands.map(\.routingKey) == ["tms.create"])
    }

    @Test("an operator's cancel or compensate ends the wait and forgets it")
    func operatorEndsWait() throws {
        var cancelled = waiting(failing)
        let wait = try awaited(by: cancelled)
        cancelled.apply(.operatorCommand(OperatorCommand(action: .cancel, by: "ann", reason: "duplicate")))
        #expect(cancelled.instance.status == .cancelled)
        #expect(cancelled.last.actions.contains(.cancelAwait(id: wait.id)))

        var compensated = waiting(failing, id: "o-2")
        let other = try awaited(by: compensated)
        compensated.apply(.operatorCommand(OperatorCommand(action: .compensate, by: "ann", reason: "fraud")))
        #expect(compensated.last.actions.contains(.cancelAwait(id: other.id)))
        #expect(compensated.last.commands.map(\.routingKey) == ["erp.cancel"])
    }

    @Test("the engine says what a waiting saga waits for, as the store recorded it")
    func awaitedMessagesOfInstance() throws {
        let saga = waiting(failing)
        let wait = try awaited(by: saga)
        let found = SagaEngine(jitterSeed: 0).awaitedMessages(of: saga.instance, definition: failing)
        #expect(found.map(\.wait) == [wait])
        #expect(found.map(\.branch) == [BranchRef(step: 1, branch: 0)])
    }

    @Test("topic binding keys match routing keys word by word")
    func topicMatching() {
        #expect(MessageWait.topic("payment.*.confirmed", matches: "payment.card.confirmed"))
        #expect(!MessageWait.topic("payment.*.confirmed", matches: "payment.confirmed"))
        #expect(!MessageWait.topic("payment.*.confirmed", matches: "payment.card.sepa.confirmed"))
        #expect(MessageWait.topic("stock.#", matches: "stock"))
        #expect(MessageWait.topic("stock.#", matches: "stock.available.wh-01"))
        #expect(MessageWait.topic("#.available", matches: "stock.wh-01.available"))
        #expect(!MessageWait.topic("stock.available", matches: "stock.availablex"))
        #expect(MessageWait.topic("#", matches: ""))
        #expect(MessageWait.topic("a.#.b.#", matches: "a.b"))
        #expect(!MessageWait.topic("*", matches: "a.b"))
        // Many #s against a long key answer at once (no backtracking).
        let key = Array(repeating: "w", count: 200).joined(separator: ".")
        #expect(!MessageWait.topic(Array(repeating: "#", count: 60).joined(separator: ".") + ".x", matches: key))
    }
}
