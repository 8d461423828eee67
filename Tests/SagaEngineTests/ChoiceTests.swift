import SagaEngine
import Testing
import WaybillDefinition

/// `choice` steps and `next:` through the reader and the engine: the path a saga takes, what it bypasses, and that
/// compensation and repairs follow the path taken.
@Suite("Choice steps")
struct ChoiceTests {
    static let yaml = """
        name: routed
        version: 1
        trigger: { exchange: orders, routing_key: order.placed, saga_id: "${input.id}" }
        defaults: { retry: { max_attempts: 1 } }
        steps:
          - id: accept
            command: erp.accept
            compensate: { command: erp.cancel }
          - id: route
            choice:
              - when: { value: "${input.hold}", equals: true }
                fail: { code: credit_hold, message: the customer is on credit hold }
              - when:
                  all:
                    - { value: "${input.express}", present: true }
                    - { value: "${input.total}", at_least: 100 }
                next: express
              - when: { value: "${input.lines}", empty: true }
                next: end
            milestone: order.routed
          - id: standard
            command: tms.standard
            compensate: { command: tms.cancel }
            next: invoice
          - id: express
            command: tms.express
            compensate: { command: tms.cancel-express }
          - id: invoice
            command: billing.invoice
        milestones: { completed: done, compensated: undone }
        """

    /// The test workflow; a file that does not load fails each test, not the whole run.
    let definition: WorkflowDefinition

    init() throws {
        definition = try WorkflowLoader.load(yaml: Self.yaml, file: "routed.yaml")
    }

    func status(_ saga: SagaDriver, _ step: String) -> StepState.Status? {
        definition.stepIndex(of: step).map { saga.instance.steps[$0].status }
    }

    func output(_ saga: SagaDriver, _ step: String) -> JSONValue? {
        definition.stepIndex(of: step).flatMap { saga.instance.steps[$0].output }
    }

    /// An express order (saga `id`) whose accept and express shipment succeeded: its invoice command is in flight.
    func atInvoice(_ id: String, definition given: WorkflowDefinition? = nil) -> SagaDriver {
        var saga = SagaDriver(
            given ?? definition, input: ["id": .string(id), "express": true, "total": 500, "lines": [1]], id: id)
        saga.reply(saga.last.commands[0])
        saga.reply(saga.last.commands[0])
        return saga
    }

    /// Answers every command with ok until the saga sends none, and returns the routing keys in order.
    func runToEnd(_ saga: inout SagaDriver) -> [String] {
        var sent: [String] = []
        while let command = saga.last.commands.first {
            sent.append(command.routingKey)
            saga.reply(command)
        }
        return sent
    }

    @Test("no rule holds: the next step runs, and its next: jumps over the express step")
    func defaultPath() {
        var saga = SagaDriver(definition, input: ["id": "o-1", "lines": [["sku": "a"]]])
        #expect(runToEnd(&saga) == ["erp.accept", "tms.standard", "billing.invoice"])
        #expect(saga.instance.status == .completed)
        #expect(output(saga, "route") == ["next": "standard", "rule": .null])
        #expect(status(saga, "express") == .bypassed)
        #expect(status(saga, "standard") == .succeeded)
    }

    @Test("the first rule that holds picks the path; the steps before its target are bypassed")
    func rulePicksPath() {
        var saga = SagaDriver(
            definition, input: ["id": "o-2", "express": true, "total": 150, "lines": [["sku": "a"]]])
        #expect(runToEnd(&saga) == ["erp.accept", "tms.express", "billing.invoice"])
        #expect(saga.instance.status == .completed)
        #expect(output(saga, "route") == ["next": "express", "rule": 1])
        #expect(status(saga, "standard") == .bypassed)

        var small = SagaDriver(definition, input: ["id": "o-3", "express": true, "total": 20, "lines": [1]])
        #expect(runToEnd(&small) == ["erp.accept", "tms.standard", "billing.invoice"])
    }

    @Test("next: end completes the saga at once; the choice's milestone says which path")
    func endCompletes() {
        var saga = SagaDriver(definition, input: ["id": "o-4", "lines": []])
        let accept = saga.last.commands[0]
        saga.reply(accept)
        #expect(saga.instance.status == .completed)
        #expect(saga.last.milestones == ["order.routed", "done"])
        #expect(["standard", "express", "invoice"].map { status(saga, $0) } == [.bypassed, .bypassed, .bypassed])
    }

    @Test("a fail target fails the choice: the saga compensates what it did, with the rule's code")
    func failTargetCompensates() {
        var saga = SagaDriver(definition, input: ["id": "o-5", "hold": true, "lines": [1]])
        #expect(runToEnd(&saga) == ["erp.accept", "erp.cancel"])
        #expect(saga.instance.status == .compensated)
        #expect(saga.instance.failure?.error.code == "credit_hold")
        #expect(saga.instance.failure?.error.message == "the customer is on credit hold")
        #expect(saga.instance.failure?.step == "route")
        #expect(output(saga, "route") == ["next": "fail credit_hold", "rule": 0])
    }

    @Test("a numeric comparison on a path that does not resolve fails the choice")
    func missingPathFails() {
        var saga = SagaDriver(definition, input: ["id": "o-6", "express": true, "lines": [1]])
        #expect(runToEnd(&saga) == ["erp.accept", "erp.cancel"])
        #expect(saga.instance.failure?.error.code == StepError.evaluationCode)
        #expect(saga.instance.failure?.error.message.contains("input.total") == true)
    }

    @Test("compensation undoes only the steps on the path taken, last first")
    func compensationFollowsThePath() {
        var saga = atInvoice("o-7")
        let invoice = saga.last.commands[0]
        #expect(invoice.routingKey == "billing.invoice")
        saga.fail(invoice, code: "rejected", retryable: false)
        #expect(runToEnd(&saga) == ["tms.cancel-express", "erp.cancel"])
        #expect(saga.instance.status == .compensated)
    }

    @Test("a reset to a step the saga's path bypassed is refused")
    func resetToBypassedStepRefused() {
        var waiting = atInvoice("o-10")
        let invoice = waiting.last.commands[0]
        let refused = waiting.apply(
            .operatorCommand(OperatorCommand(action: .reset(step: "standard"), by: "ann", reason: "test")))
        guard case .rejected(let reason) = refused.outcome else {
            Issue.record("a reset to a bypassed step was not refused: \(refused.outcome)")
            return
        }
        #expect(reason.contains("not on the path"))
        waiting.reply(invoice)
        #expect(waiting.instance.status == .completed)
    }

    @Test("a reset to the choice undoes the path it took and decides again")
    func resetToChoiceDecidesAgain() throws {
        let retrying = try WorkflowLoader.load(
            yaml: Self.yaml.replacingOccurrences(of: "max_attempts: 1", with: "max_attempts: 3"), file: "routed.yaml")
        var saga = atInvoice("o-11", definition: retrying)
        saga.fail(saga.last.commands[0], code: "busy", retryable: true)  // invoice waits to retry
        saga.apply(.operatorCommand(OperatorCommand(action: .reset(step: "route"), by: "ann", reason: "re-route")))
        #expect(saga.last.isApplied)
        let undo = try #require(saga.last.commands.first)
        #expect(undo.routingKey == "tms.cancel-express")
        saga.reply(undo)
        let again = try #require(saga.last.commands.first)
        #expect(again.routingKey == "tms.express")
        #expect(again.idempotencyKey == "o-11/express/r1", "a new round, so a new key")
        #expect(output(saga, "route") == ["next": "express", "rule": 1])
        #expect(status(saga, "standard") == .bypassed)
    }

    @Test("after the pivot a fail target suspends the saga; retry decides again, skip goes on to the choice's next")
    func failAfterThePivotSuspends() throws {
        let definition = try WorkflowLoader.load(
            yaml: """
                name: late
                version: 1
                trigger: { exchange: orders, routing_key: order.placed, saga_id: "${input.id}" }
                steps:
                  - id: charge
                    command: billing.charge
                    pivot: true
                  - id: route
                    choice:
                      - when: { value: "${input.hold}", equals: true }
                        fail: { code: held, message: on hold }
                    next: ship
                  - id: gift
                    command: crm.gift
                  - id: ship
                    command: tms.create
                """, file: "late.yaml")
        var saga = SagaDriver(definition, input: ["id": "o-12", "hold": true])
        saga.reply(saga.last.commands[0])
        #expect(saga.instance.status == .suspended)
        #expect(saga.instance.failure?.error.code == "held")
        #expect(saga.last.commands.isEmpty, "nothing is compensated after the pivot")

        saga.apply(.operatorCommand(OperatorCommand(action: .retry(step: nil), by: "ann", reason: "still held?")))
        #expect(saga.last.isApplied)
        #expect(saga.instance.status == .suspended, "the same data decides the same way")

        saga.apply(
            .operatorCommand(
                OperatorCommand(action: .skip(step: "route", output: [:]), by: "ann", reason: "released by hand")))
        #expect(saga.last.commands.map(\.routingKey) == ["tms.create"])
        #expect(saga.instance.steps[2].status == .bypassed)
        saga.reply(saga.last.commands[0])
        #expect(saga.instance.status == .completed)
    }
}
