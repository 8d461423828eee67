import SagaEngine
import Testing
import WaybillDefinition
import WaybillTestSupport

/// Moving running and suspended sagas to another version of their workflow: what carries over, what is bypassed,
/// and what is refused.
@Suite("Migrating sagas between versions")
struct MigrationTests {
    let v1: WorkflowDefinition
    /// v2 adds a fraud check before the payment, renames the payment wait, changes ship's command and adds a step.
    let v2: WorkflowDefinition

    init() throws {
        v1 = try WorkflowLoader.load(yaml: WorkflowTexts.awaitingPayment, file: "v1.yaml")
        v2 = try WorkflowLoader.load(yaml: Self.v2Text, file: "v2.yaml")
    }

    static let v2Text = """
        name: awaiting-payment
        version: 3
        trigger: { exchange: orders, routing_key: order.placed, saga_id: "${input.id}" }
        steps:
          - id: accept
            command: erp.accept
            compensate: { command: erp.cancel }
          - id: fraud-check
            command: risk.check
          - id: await-payment
            wait:
              message: { exchange: payments, routing_key: payment.*.confirmed }
              match: "${input.id}"
              key: "${message.orderId}"
              timeout: 1d
            milestone: order.paid
          - id: ship
            command: tms.create.v2
            input: { amount: "${steps.await-payment.output.amount}" }
          - id: notify
            command: crm.notify
        milestones: { completed: done, compensated: undone, cancelled: stopped }
        """

    private func migration(
        _ mapping: [String: String] = ["payment": "await-payment"], to target: WorkflowDefinition? = nil
    )
        -> SagaMigration
    {
        SagaMigration(source: v1, target: target ?? v2, targetHash: "v2-hash", mapping: mapping)
    }

    /// A v1 saga accepted and waiting for its payment.
    private func waiting() -> SagaDriver {
        var saga = SagaDriver(v1, input: ["id": "o-1"], id: "o-1")
        saga.reply(saga.last.commands[0])
        return saga
    }

    @Test("a waiting saga moves: its wait carries on, the new step before it is bypassed, the new steps after it run")
    func waitingSagaMoves() throws {
        let saga = waiting()
        let wait = try #require(saga.instance.steps[1].branches.first?.timer)
        let moved = SagaEngine().migrate(saga.instance, migration(), now: saga.now.adding(milliseconds: 5))
        #expect(moved.outcome == .applied)
        #expect(moved.actions.isEmpty, "nothing is sent: the saga carries on where it is")
        let instance = moved.instance
        #expect(instance.version == 3 && instance.definitionHash == "v2-hash")
        #expect(instance.currentStepId(in: v2) == "await-payment")
        #expect(instance.steps.map(\.status) == [.succeeded, .bypassed, .running, .pending, .pending])
        #expect(instance.steps[2].branches.first?.timer == wait, "the same timer, so the same wait row")
        #expect(instance.completions == [BranchRef(step: 0, branch: 0)])

        var after = SagaDriver(v2, input: ["id": "o-1"], id: "o-1")
        after.instance = instance
        after.apply(.signal(waitId: wait.id, message: ["orderId": "o-1", "amount": 9]))
        #expect(after.last.milestones == ["order.paid"])
        #expect(after.last.commands.map(\.routingKey) == ["tms.create.v2"])
        #expect(after.last.commands.first?.body == ["amount": 9])
        after.reply(after.last.commands[0])
        #expect(after.last.commands.map(\.routingKey) == ["crm.notify"])
        after.reply(after.last.commands[0])
        #expect(after.instance.status == .completed)
    }

    @Test("a saga at a step the new version lacks is refused until that step is mapped")
    func unmappedStep() {
        let saga = waiting()
        let refused = SagaEngine().migrate(saga.instance, migration([:]), now: saga.now)
        #expect(
            refused.outcome
                == .rejected(
                    "saga awaiting-payment/o-1 waits at 'payment', which v3 does not have; map it with "
                        + "--map payment=<step>"))
        #expect(refused.instance == saga.instance)
    }

    @Test("mappings that would lose a compensation, name no step, merge steps or reorder them are refused outright")
    func badMappings() throws {
        let noUndo = try WorkflowLoader.load(
            yaml: Self.v2Text.replacingOccurrences(of: "    compensate: { command: erp.cancel }\n", with: ""),
            file: "no-undo.yaml")
        #expect(
            migration(to: noUndo).validate() == [
                "step 'accept' can be undone and its counterpart 'accept' in v3 cannot: sagas that ran it could no "
                    + "longer be compensated"
            ])
        let other = try WorkflowLoader.load(
            yaml: Self.v2Text.replacingOccurrences(of: "name: awaiting-payment", with: "name: other"), file: "o.yaml")
        #expect(migration(to: other).validate().first == "v3 is a version of 'other', not of 'awaiting-payment'")
        #expect(
            migration(["payment": "await-payment", "accept": "confirm"]).validate().first
                == "--map accept=confirm: v3 has no step 'confirm'")
        #expect(
            migration(["payment": "await-payment", "ship": "await-payment"]).validate()
                == ["two steps of v1 would become 'await-payment'"])
        #expect(
            migration(["payment": "notify", "ship": "fraud-check"]).validate()
                == [
                    "step 'ship' comes after 'notify' in v1 and before it in v3: a saga only moves forward, so the "
                        + "order must stay"
                ])
        let saga = waiting()
        let refused = SagaEngine().migrate(saga.instance, migration(to: noUndo), now: saga.now)
        #expect(!(refused.outcome == .applied))
    }

    @Test("a renamed step the saga ran that can be undone, a changed wait it waits in, and a compensating saga stay")
    func refusedSagas() throws {
        let renamed = try WorkflowLoader.load(
            yaml: Self.v2Text.replacingOccurrences(of: "- id: accept", with: "- id: accept-order"), file: "r.yaml")
        let saga = waiting()
        let renaming = SagaMigration(
            source: v1, target: renamed, targetHash: "h",
            mapping: ["accept": "accept-order", "payment": "await-payment"])
        #expect(renaming.refusal(for: saga.instance)?.hasPrefix("sent 'accept', which v3 calls 'accept-order'") == true)

        let longer = try WorkflowLoader.load(
            yaml: Self.v2Text.replacingOccurrences(of: "timeout: 1d", with: "timeout: 2d"), file: "l.yaml")
        #expect(
            migration(to: longer).refusal(for: saga.instance)
                == "'payment' waits, and its wait changed between the versions; migrate once it moved on")

        // A step sent under one id keeps it: renaming it would change the idempotency key of its retry.
        var shipping = waiting()
        let payment = try #require(shipping.instance.steps[1].branches.first?.timer)
        shipping.apply(.signal(waitId: payment.id, message: ["orderId": "o-1", "amount": 1]))
        let shipRenamed = try WorkflowLoader.load(
            yaml: Self.v2Text.replacingOccurrences(of: "- id: ship\n", with: "- id: ship-it\n")
                .replacingOccurrences(of: "${steps.await-payment.output.amount}", with: "1"),
            file: "s.yaml")
        let renamingShip = SagaMigration(
            source: v1, target: shipRenamed, targetHash: "h", mapping: ["payment": "await-payment", "ship": "ship-it"])
        #expect(
            renamingShip.refusal(for: shipping.instance)?.hasPrefix("sent 'ship', which v3 calls 'ship-it'") == true)

        var compensating = waiting()
        compensating.apply(.operatorCommand(OperatorCommand(action: .compensate, by: "ann", reason: "fraud")))
        #expect(compensating.instance.status == .compensating)
        #expect(migration().refusal(for: compensating.instance)?.hasPrefix("is compensating") == true)
        #expect(migration().refusal(for: waiting().instance) == nil)
        var stuck = compensating.instance
        stuck.status = .suspended
        #expect(migration().refusal(for: stuck)?.hasPrefix("is undoing what it did") == true)
    }

    @Test("a suspended saga moves with its failure on the new step's id, and a retry runs the new version's step")
    func suspendedSagaMoves() throws {
        // With accept as the pivot, a failed ship suspends the saga.
        let pivoted = try WorkflowLoader.load(
            yaml: WorkflowTexts.awaitingPayment.replacingOccurrences(
                of: "    compensate: { command: erp.cancel }\n", with: "    pivot: true\n"), file: "p1.yaml")
        let target = try WorkflowLoader.load(
            yaml: Self.v2Text.replacingOccurrences(
                of: "    compensate: { command: erp.cancel }\n", with: "    pivot: true\n"),
            file: "p3.yaml")
        var suspended = SagaDriver(pivoted, input: ["id": "o-2"], id: "o-2")
        suspended.reply(suspended.last.commands[0])
        let paymentWait = try #require(suspended.instance.steps[1].branches.first?.timer)
        suspended.apply(.signal(waitId: paymentWait.id, message: ["orderId": "o-2", "amount": 4]))
        suspended.fail(suspended.last.commands[0], code: "carrier_down", retryable: false)
        #expect(suspended.instance.status == .suspended)
        let moved = SagaEngine().migrate(
            suspended.instance,
            SagaMigration(source: pivoted, target: target, targetHash: "t", mapping: ["payment": "await-payment"]),
            now: suspended.now)
        #expect(moved.outcome == .applied)
        #expect(moved.instance.status == .suspended && moved.instance.failure?.step == "ship")
        var fixed = SagaDriver(target, input: ["id": "o-2"], id: "o-2")
        fixed.instance = moved.instance
        fixed.apply(.operatorCommand(OperatorCommand(action: .retry(step: nil), by: "ann", reason: "new carrier")))
        #expect(fixed.last.commands.map(\.routingKey) == ["tms.create.v2"])
    }
}
