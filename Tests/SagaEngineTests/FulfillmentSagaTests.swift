import SagaEngine
import Testing
import WaybillDefinition
import WaybillTestSupport

/// The order-fulfillment saga (`Workflows/order-fulfillment.yaml`, docs/workflows.md): fan-out across warehouses,
/// reallocation, the pivot and operator repairs.
@Suite("Order fulfillment sagas")
struct FulfillmentSagaTests {
    static let threeWarehouses = OrderJSON.stock([("w1", "A", 5), ("w2", "B", 5), ("w3", "C", 5)])
    static let order = OrderJSON.order("o-1", lines: [("A", 1), ("B", 2), ("C", 3)])

    /// Runs accept and reserve, returning the saga waiting on its release branches.
    static func released(stock: JSONValue = threeWarehouses, order: JSONValue = order) -> SagaDriver {
        var saga = SagaDriver(TestWorkflows.orderFulfillment(), input: order)
        saga.reply(saga.last.commands[0])
        saga.reply(saga.last.commands[0], ["reservationId": "r-9", "stock": stock])
        return saga
    }

    @Test("a three-warehouse fan-out runs branches in parallel and completes with every milestone in order")
    func threeWarehouseFanOut() {
        var saga = SagaDriver(TestWorkflows.orderFulfillment(), input: Self.order)
        var milestones = saga.last.milestones
        saga.reply(saga.last.commands[0])
        milestones += saga.last.milestones
        saga.reply(saga.last.commands[0], ["reservationId": "r-9", "stock": Self.threeWarehouses])
        milestones += saga.last.milestones
        let releases = saga.last.commands
        #expect(releases.map(\.routingKey) == ["wms.w1.release", "wms.w2.release", "wms.w3.release"])
        #expect(releases.map(\.idempotencyKey) == ["o-1/release/0", "o-1/release/1", "o-1/release/2"])
        #expect(releases.map(\.branch) == [0, 1, 2])
        #expect(releases[1].body == ["shipmentId": "o-1-w2", "lines": [["sku": "B", "quantity": 2]]])

        for release in releases.reversed() {
            saga.reply(release)
            milestones += saga.last.milestones
        }
        let ships = saga.last.commands
        #expect(ships.map(\.routingKey) == Array(repeating: "tms.shipment.create", count: 3))
        for (index, ship) in ships.enumerated() {
            saga.reply(ship, ["tracking": .string("T\(index)")])
            milestones += saga.last.milestones
        }
        let invoice = saga.last.commands[0]
        #expect(invoice.body["shipments"] == [["tracking": "T0"], ["tracking": "T1"], ["tracking": "T2"]])
        saga.reply(invoice, ["invoiceId": "inv-1"])
        milestones += saga.last.milestones
        #expect(
            milestones == [
                "order.accepted", "order.reserved", "order.released", "order.shipment.shipped",
                "order.shipment.shipped", "order.shipment.shipped", "order.shipped", "order.invoiced",
                "order.completed",
            ])
        #expect(saga.instance.status == .completed)
    }

    @Test("a failed branch waits for its in-flight siblings, then everything completed is undone in reverse")
    func branchFailureAwaitsSiblings() {
        var saga = Self.released()
        let releases = saga.last.commands
        saga.reply(releases[2])
        saga.fail(releases[0], code: "damaged", retryable: false)
        #expect(saga.last.commands.isEmpty)
        #expect(saga.instance.steps[3].status == .failing)
        saga.reply(releases[1])

        var undone: [String] = []
        while let next = saga.last.commands.first {
            undone.append("\(next.routingKey) \(next.idempotencyKey)")
            saga.reply(next)
        }
        #expect(
            undone == [
                "wms.w2.cancel o-1/release/1/compensate", "wms.w3.cancel o-1/release/2/compensate",
                "inventory.release o-1/reserve/compensate", "erp.order.cancel o-1/accept/compensate",
            ])
        #expect(saga.instance.status == .compensated)
        #expect(saga.last.milestones == ["order.cancelled"])
    }

    @Test("a sibling waiting to retry gives up when another branch fails")
    func retryingSiblingAbandoned() {
        var saga = Self.released()
        let releases = saga.last.commands
        saga.fail(releases[1], code: "busy", retryable: true)
        let retryTimer = saga.last.scheduledTimers[0]
        saga.reply(releases[2])
        saga.fail(releases[0], code: "damaged", retryable: false)
        #expect(saga.last.actions.contains(.cancelTimer(id: retryTimer.id)))
        #expect(saga.instance.steps[3].branches[1].lastError?.code == StepError.abandonedCode)
        #expect(saga.last.commands.map(\.routingKey) == ["wms.w3.cancel"])
    }

    @Test("out_of_stock re-plans the split without the failed warehouse")
    func reallocation() {
        let stock = OrderJSON.stock([("w1", "A", 2), ("w2", "A", 2)])
        var saga = Self.released(stock: stock, order: OrderJSON.order("o-1", lines: [("A", 2)]))
        let first = saga.last.commands
        #expect(first.map(\.routingKey) == ["wms.w1.release"])
        saga.fail(first[0], code: "out_of_stock", retryable: false)

        let second = saga.last.commands
        #expect(second.map(\.routingKey) == ["wms.w2.release"])
        #expect(second[0].idempotencyKey == "o-1/release/0/r1")
        #expect(second[0].body["shipmentId"] == "o-1-r1-w2")
        #expect(saga.instance.steps[2].excludedWarehouses == ["w1"])
        #expect(saga.instance.status == .running)
        saga.reply(second[0])
        saga.reply(saga.last.commands[0])
        saga.reply(saga.last.commands[0])
        #expect(saga.instance.status == .completed)
    }

    @Test("reallocation undoes the step's completed branches before re-planning")
    func reallocationUndoesCompletedBranches() {
        let stock = OrderJSON.stock([("w1", "A", 1), ("w2", "B", 1), ("w3", "A", 1), ("w3", "B", 1)])
        var saga = Self.released(stock: stock, order: OrderJSON.order("o-1", lines: [("A", 1), ("B", 1)]))
        // Fewest shipments: w3 alone can ship both lines.
        #expect(saga.last.commands.map(\.routingKey) == ["wms.w3.release"])
        saga.fail(saga.last.commands[0], code: "out_of_stock", retryable: false)
        let replanned = saga.last.commands
        #expect(replanned.map(\.routingKey) == ["wms.w1.release", "wms.w2.release"])
        saga.reply(replanned[1])
        saga.fail(replanned[0], code: "out_of_stock", retryable: false)
        #expect(saga.last.commands.map(\.routingKey) == ["wms.w2.cancel"])
        #expect(saga.last.commands[0].idempotencyKey == "o-1/release/1/r1/compensate")
        saga.reply(saga.last.commands[0])
        // No warehouse is left for A: the split fails and the saga compensates as usual.
        #expect(saga.instance.steps[2].excludedWarehouses == ["w3", "w1"])
        #expect(saga.instance.failure?.error.code == "insufficient_stock")
        #expect(saga.last.commands.map(\.routingKey) == ["inventory.release"])
    }

    @Test("reallocation stops after its maximum and compensates")
    func reallocationLimit() {
        let stock = OrderJSON.stock([("w1", "A", 1), ("w2", "A", 1), ("w3", "A", 1), ("w4", "A", 1)])
        var saga = Self.released(stock: stock, order: OrderJSON.order("o-1", lines: [("A", 1)]))
        for expected in ["wms.w1.release", "wms.w2.release", "wms.w3.release"] {
            #expect(saga.last.commands.map(\.routingKey) == [expected])
            saga.fail(saga.last.commands[0], code: "out_of_stock", retryable: false)
        }
        #expect(saga.instance.status == .compensating)
        #expect(saga.last.commands.map(\.routingKey) == ["inventory.release"])
    }

    @Test("short stock with backorder reject fails the split and compensates")
    func splitRejectsShortStock() {
        let saga = Self.released(
            stock: OrderJSON.stock([("w1", "A", 1)]), order: OrderJSON.order("o-1", lines: [("A", 3)]))
        #expect(saga.instance.steps[2].status == .failed)
        #expect(saga.instance.failure?.error.code == "insufficient_stock")
        #expect(saga.last.commands.map(\.routingKey) == ["inventory.release"])
        #expect(saga.last.commands[0].body == ["orderId": "o-1"])
    }

    /// Runs to the ship step with three branches.
    static func shipping() -> (SagaDriver, [CommandMessage]) {
        var saga = released()
        for release in saga.last.commands { saga.reply(release) }
        return (saga, saga.last.commands)
    }

    @Test("the pivot failing before any branch succeeded still compensates")
    func pivotFailsFirst() {
        var (saga, ships) = Self.shipping()
        saga.fail(ships[0], code: "no_carrier", retryable: false)
        saga.fail(ships[1], code: "no_carrier", retryable: false)
        saga.fail(ships[2], code: "no_carrier", retryable: false)
        #expect(saga.instance.status == .compensating)
        #expect(saga.last.commands.map(\.routingKey) == ["wms.w3.cancel"])
    }

    @Test("a failure after the pivot suspends without compensating, and an operator retry completes it")
    func pivotSuspendsThenRetry() {
        var (saga, ships) = Self.shipping()
        saga.reply(ships[0])
        saga.reply(ships[2])
        saga.fail(ships[1], code: "no_carrier", retryable: false)
        #expect(saga.instance.status == .suspended)
        #expect(saga.last.commands.isEmpty)
        #expect(saga.last.milestones == ["order.failed"])
        #expect(saga.last.actions.last == .finished(.suspended))

        let refused = saga.apply(.operatorCommand(OperatorCommand(action: .compensate, by: "ann", reason: "undo")))
        #expect(
            refused.outcome
                == .rejected(
                    "saga passed its pivot step 'ship'; completed steps can no longer be compensated (use retry or skip)"
                ))

        saga.apply(.operatorCommand(OperatorCommand(action: .retry(step: "ship"), by: "ann", reason: "carrier back")))
        #expect(saga.instance.status == .running)
        #expect(saga.last.commands.map(\.idempotencyKey) == ["o-1/ship/1/r1"])
        saga.reply(saga.last.commands[0])
        saga.reply(saga.last.commands[0])
        #expect(saga.instance.status == .completed)
    }

    @Test("skip marks a failed step done with the operator's output")
    func skipFailedStep() {
        var (saga, ships) = Self.shipping()
        for ship in ships { saga.reply(ship) }
        let invoice = saga.last.commands[0]
        let skipEarly = saga.apply(
            .operatorCommand(OperatorCommand(action: .skip(step: "ship", output: [:]), by: "ann", reason: "x")))
        #expect(
            skipEarly.outcome
                == .rejected("step 'ship' has not failed (it is succeeded); only a failed step can be skipped"))
        saga.fail(invoice, code: "account_closed", retryable: false)
        #expect(saga.instance.status == .suspended)
        saga.apply(
            .operatorCommand(
                OperatorCommand(
                    action: .skip(step: "invoice", output: ["invoiceId": "manual-1"]), by: "ann",
                    reason: "invoiced by hand")))
        #expect(saga.instance.status == .completed)
        #expect(saga.instance.steps[5].status == .skipped)
        #expect(saga.instance.steps[5].output == ["invoiceId": "manual-1"])
        #expect(saga.last.milestones == ["order.invoiced", "order.completed"])
    }

    @Test("skip of a for_each step keeps the branches that shipped and joins their outputs with the skipped one's")
    func skipForEachKeepsTheGoodBranches() {
        var (saga, ships) = Self.shipping()
        saga.reply(ships[0], ["trackingId": "T-0"])
        saga.reply(ships[2], ["trackingId": "T-2"])
        saga.fail(ships[1], code: "no_carrier", retryable: false)
        #expect(saga.instance.status == .suspended)
        saga.apply(
            .operatorCommand(
                OperatorCommand(
                    action: .skip(step: "ship", output: ["trackingId": "MANUAL-1"]), by: "ann", reason: "by hand")))
        #expect(saga.instance.status == .running)
        #expect(saga.instance.steps[4].status == .skipped)
        #expect(saga.instance.steps[4].branches.map(\.status) == [.succeeded, .skipped, .succeeded])
        #expect(
            saga.instance.steps[4].output == [
                ["trackingId": "T-0"], ["trackingId": "MANUAL-1"], ["trackingId": "T-2"],
            ])
        // order.shipped once, now, with every shipment; no per-branch event for the skipped branch.
        #expect(saga.last.milestones == ["order.shipped"])
        #expect(saga.last.commands.map(\.routingKey) == ["billing.invoice.create"])
    }

    @Test("skip --branch skips one failed branch; the saga waits while another is failed, and a retry finishes it")
    func skipOneBranch() {
        var (saga, ships) = Self.shipping()
        saga.reply(ships[0], ["trackingId": "T-0"])
        // Both fail at once, so the step fails with two failed branches (the second is abandoned).
        saga.fail(ships[1], code: "no_carrier", retryable: false)
        saga.fail(ships[2], code: "no_carrier", retryable: false)
        #expect(saga.instance.status == .suspended)
        let wrong = saga.apply(
            .operatorCommand(
                OperatorCommand(action: .skip(step: "ship", output: [:], branch: 0), by: "ann", reason: "x")))
        #expect(
            wrong.outcome
                == .rejected(
                    "branch 0 of step 'ship' has not failed (it is succeeded); only a failed branch can be skipped"))
        let missing = saga.apply(
            .operatorCommand(
                OperatorCommand(action: .skip(step: "ship", output: [:], branch: 7), by: "ann", reason: "x")))
        #expect(missing.outcome == .rejected("step 'ship' has no branch 7; its branches are 0...2"))

        saga.apply(
            .operatorCommand(
                OperatorCommand(
                    action: .skip(step: "ship", output: ["trackingId": "MANUAL-1"], branch: 1), by: "ann",
                    reason: "by hand")))
        #expect(saga.instance.status == .suspended, "branch 2 is still failed")
        #expect(saga.instance.failure?.branch == 2, "the failure names the branch still failed, not the skipped one")
        #expect(saga.last.milestones.isEmpty && saga.last.commands.isEmpty)
        #expect(saga.instance.steps[4].branches.map(\.status) == [.succeeded, .skipped, .failed])

        saga.apply(.operatorCommand(OperatorCommand(action: .retry(step: "ship"), by: "ann", reason: "carrier back")))
        #expect(saga.last.commands.map(\.idempotencyKey) == ["o-1/ship/2/r1"], "only the failed branch runs again")
        saga.reply(saga.last.commands[0], ["trackingId": "T-2"])
        #expect(
            saga.instance.steps[4].output == [
                ["trackingId": "T-0"], ["trackingId": "MANUAL-1"], ["trackingId": "T-2"],
            ])
        #expect(saga.last.milestones.suffix(1) == ["order.shipped"])
        saga.reply(saga.last.commands[0])
        #expect(saga.instance.status == .completed)
    }

    @Test("cancel stops the saga and drops its timers; later replies are ignored")
    func cancel() {
        var saga = Self.released()
        let releases = saga.last.commands
        let timers = saga.instance.steps[3].branches.compactMap(\.timer?.id)
        saga.apply(.operatorCommand(OperatorCommand(action: .cancel, by: "ann", reason: "customer called")))
        #expect(saga.instance.status == .cancelled)
        #expect(
            Set(saga.last.actions.compactMap { if case .cancelTimer(let id) = $0 { id } else { nil } }) == Set(timers))
        #expect(!saga.reply(releases[0]).isApplied)
        let again = saga.apply(.operatorCommand(OperatorCommand(action: .cancel, by: "ann", reason: "again")))
        #expect(again.outcome == .rejected("saga order-fulfillment/o-1 is cancelled; nothing can change it any more"))
    }

    @Test("compensate now awaits in-flight branches, then undoes what completed")
    func operatorCompensate() {
        var saga = Self.released()
        let releases = saga.last.commands
        saga.reply(releases[0])
        saga.apply(.operatorCommand(OperatorCommand(action: .compensate, by: "ann", reason: "fraud")))
        #expect(saga.last.commands.isEmpty)
        saga.reply(releases[1])
        saga.reply(releases[2])
        #expect(saga.instance.status == .compensating)
        #expect(saga.instance.failure?.error.code == StepError.operatorCode)
        #expect(saga.last.commands.map(\.routingKey) == ["wms.w3.cancel"])
    }

    @Test("retry of a step that has not failed is refused")
    func retryRefused() {
        var saga = Self.released()
        let refused = saga.apply(.operatorCommand(OperatorCommand(action: .retry(step: nil), by: "ann", reason: "x")))
        #expect(
            refused.outcome == .rejected("nothing to retry: step 'release' is running and no attempt waits for a retry")
        )
        let skip = saga.apply(
            .operatorCommand(OperatorCommand(action: .skip(step: "accept", output: [:]), by: "ann", reason: "x")))
        #expect(
            skip.outcome
                == .rejected("step 'accept' has not failed (it is succeeded); only a failed step can be skipped"))
    }

    @Test("reset to a step undoes what it and the later steps did, last first, then runs it again with new keys")
    func resetToAStep() {
        var saga = Self.released()
        let releases = saga.last.commands
        saga.reply(releases[0])
        saga.reply(releases[1])
        saga.fail(releases[2], code: "wms_busy", retryable: true)
        #expect(saga.instance.status == .running)

        let unknown = saga.apply(
            .operatorCommand(OperatorCommand(action: .reset(step: "audit"), by: "ann", reason: "x")))
        #expect(unknown.outcome == .rejected("workflow order-fulfillment v1 has no step 'audit'"))
        let ahead = saga.apply(.operatorCommand(OperatorCommand(action: .reset(step: "ship"), by: "ann", reason: "x")))
        #expect(ahead.outcome == .rejected("step 'ship' has not run yet; the saga is at 'release'"))

        saga.apply(
            .operatorCommand(OperatorCommand(action: .reset(step: "reserve"), by: "ann", reason: "stock moved")))
        #expect(saga.instance.status == .running)
        #expect(saga.instance.compensation?.purpose == .reset(step: 1))
        var undone: [String] = []
        while let next = saga.last.commands.first, next.kind == .compensate {
            undone.append("\(next.routingKey) \(next.idempotencyKey)")
            saga.reply(next)
        }
        #expect(
            undone == [
                "wms.w2.cancel o-1/release/1/compensate", "wms.w1.cancel o-1/release/0/compensate",
                "inventory.release o-1/reserve/compensate",
            ])
        #expect(saga.instance.compensation == nil)
        #expect(saga.instance.failure == nil)
        let again = saga.last.commands
        #expect(again.map(\.routingKey) == ["inventory.reserve"])
        #expect(again.first?.idempotencyKey == "o-1/reserve/r1")
        saga.reply(again[0], ["reservationId": "r-10", "stock": Self.threeWarehouses])
        #expect(
            saga.last.commands.map(\.idempotencyKey) == ["o-1/release/0/r1", "o-1/release/1/r1", "o-1/release/2/r1"])
    }

    @Test("reset is refused while a command awaits its reply, and across a pivot already passed")
    func resetRefusals() {
        var (saga, ships) = Self.shipping()
        let busy = saga.apply(
            .operatorCommand(OperatorCommand(action: .reset(step: "release"), by: "ann", reason: "x")))
        #expect(
            busy.outcome
                == .rejected("a command of 'ship' awaits its reply; reset once it is answered (or timed out)"))
        saga.reply(ships[0])
        saga.reply(ships[2])
        saga.fail(ships[1], code: "no_carrier", retryable: false)
        #expect(saga.instance.status == .suspended)
        let pivot = saga.apply(
            .operatorCommand(OperatorCommand(action: .reset(step: "ship"), by: "ann", reason: "x")))
        #expect(
            pivot.outcome
                == .rejected(
                    "saga passed its pivot step 'ship'; it can only be reset to a step after it (completed steps up to "
                        + "the pivot can no longer be compensated)"))
    }

    @Test("a reset undoes an attempt whose reply never came, in case it took effect")
    func resetUndoesAnUnansweredAttempt() throws {
        var saga = Self.released()
        let releases = saga.last.commands
        saga.reply(releases[1])
        saga.reply(releases[2])
        let timer = try #require(saga.instance.steps[3].branches[0].timer)
        saga.fire(timer)
        #expect(saga.instance.steps[3].branches[0].status == .retryWait)
        #expect(saga.instance.steps[3].branches[0].unansweredAttempts == 1)
        saga.apply(.operatorCommand(OperatorCommand(action: .reset(step: "release"), by: "ann", reason: "redo")))
        var undone: [String] = []
        while let next = saga.last.commands.first, next.kind == .compensate {
            undone.append(next.idempotencyKey)
            saga.reply(next)
        }
        #expect(
            undone == [
                "o-1/release/0/compensate", "o-1/release/2/compensate", "o-1/release/1/compensate",
            ])
        #expect(
            saga.last.commands.map(\.idempotencyKey) == ["o-1/release/0/r1", "o-1/release/1/r1", "o-1/release/2/r1"])
    }

    @Test("a reset after an operator retry past the pivot never sends a key used before")
    func resetAfterARetryUsesANewRound() {
        var definition = TestWorkflows.linear()
        definition.steps[0].pivot = true
        var saga = SagaDriver(definition, input: ["id": "o-1"])
        saga.reply(saga.last.commands[0], ["token": "t"])
        saga.fail(saga.last.commands[0], code: "bad", retryable: false)
        #expect(saga.instance.status == .suspended)
        saga.apply(.operatorCommand(OperatorCommand(action: .retry(step: "b"), by: "ann", reason: "fixed")))
        let retried = saga.last.commands[0]
        #expect(retried.idempotencyKey == "o-1/b/r1")
        saga.reply(retried)
        saga.fail(saga.last.commands[0], code: "bad", retryable: false)
        #expect(saga.instance.status == .suspended)

        saga.apply(.operatorCommand(OperatorCommand(action: .reset(step: "b"), by: "ann", reason: "redo b")))
        let undo = saga.last.commands[0]
        #expect(undo.idempotencyKey == "o-1/b/r1/compensate")
        saga.reply(undo)
        let again = saga.last.commands[0]
        #expect(again.routingKey == "sys.b.do")
        #expect(again.idempotencyKey == "o-1/b/r2", "the undone command's key is not reused")
    }
}
