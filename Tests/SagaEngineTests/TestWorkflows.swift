import SagaEngine
import WaybillDefinition

/// Builds templates for hand-written definitions; a bad template in a test is a test bug.
func template(_ text: String) -> Template {
    do {
        return try Template.parse(string: text)
    } catch {
        preconditionFailure("bad test template \(text): \(error)")
    }
}

func objectTemplate(_ members: [String: String]) -> Template {
    .object(members.mapValues(template))
}

func command(_ routingKey: String, _ input: [String: String] = [:]) -> CommandTemplate {
    CommandTemplate(routingKey: template(routingKey), input: objectTemplate(input))
}

/// Workflows the engine tests drive, written in code so they do not depend on the YAML front end.
enum TestWorkflows {
    static let noJitter = RetryPolicy(
        maxAttempts: .limited(3), initialInterval: .seconds(1), backoff: 2.0, maxInterval: .seconds(60), jitter: .none)

    /// The order-fulfillment saga of `Workflows/order-fulfillment.yaml` (docs/workflows.md).
    static func orderFulfillment(
        retry: RetryPolicy = noJitter, compensationOnShip: Bool = false, reallocateMax: Int = 2,
        backorder: BackorderPolicy = .reject, creditCheck: Bool = false, paymentWait: Bool = false
    ) -> WorkflowDefinition {
        let shipments = ForEach(items: template("${steps.split.output.shipments}"), alias: "shipment")
        var definition = WorkflowDefinition(
            name: "order-fulfillment", version: 1,
            trigger: Trigger(exchange: "orders", routingKey: "order.placed", sagaId: template("${input.orderId}")),
            steps: [
                StepDefinition(
                    id: "accept",
                    action: .command(
                        command("erp.order.accept", ["orderId": "${input.orderId}", "lines": "${input.lines}"])),
                    compensate: command("erp.order.cancel", ["orderId": "${input.orderId}"]),
                    timeout: .seconds(30), retry: retry, milestone: "order.accepted"),
                StepDefinition(
                    id: "reserve",
                    action: .command(
                        command("inventory.reserve", ["orderId": "${input.orderId}", "lines": "${input.lines}"])),
                    compensate: command("inventory.release", ["orderId": "${input.orderId}"]),
                    timeout: .seconds(30), retry: retry, milestone: "order.reserved"),
                StepDefinition(
                    id: "split",
                    action: .split(
                        SplitStepSpec(
                            lines: template("${input.lines}"), stock: template("${steps.reserve.output.stock}"),
                            backorder: backorder))),
                StepDefinition(
                    id: "release",
                    action: .command(
                        command(
                            "wms.${shipment.warehouse}.release",
                            ["shipmentId": "${shipment.id}", "lines": "${shipment.lines}"])),
                    forEach: shipments,
                    compensate: command("wms.${shipment.warehouse}.cancel", ["shipmentId": "${shipment.id}"]),
                    timeout: .seconds(30), retry: retry, milestone: "order.released",
                    reallocate: Reallocation(codes: ["out_of_stock"], splitStep: "split", max: reallocateMax)),
                StepDefinition(
                    id: "ship",
                    action: .command(
                        command(
                            "tms.shipment.create",
                            ["shipmentId": "${shipment.id}", "warehouse": "${shipment.warehouse}"])),
                    forEach: shipments, timeout: .seconds(30), retry: retry, milestone: "order.shipped",
                    branchMilestone: "order.shipment.shipped", pivot: true),
                StepDefinition(
                    id: "invoice",
                    action: .command(
                        command(
                            "billing.invoice.create",
                            ["orderId": "${input.orderId}", "shipments": "${steps.ship.output}"])),
                    timeout: .seconds(30),
                    retry: RetryPolicy(
                        maxAttempts: .unlimited, initialInterval: .seconds(5), backoff: 2.0, maxInterval: .seconds(600),
                        jitter: .none),
                    milestone: "order.invoiced"),
            ],
            milestones: EndMilestones(
                completed: "order.completed", compensated: "order.cancelled", failed: "order.failed"))
        if creditCheck {
            // Orders of one line skip the credit hold: a choice jumps over it to reserve.
            definition.steps.insert(
                contentsOf: [
                    StepDefinition(
                        id: "route",
                        action: .choice(
                            ChoiceSpec(rules: [
                                ChoiceSpec.Rule(
                                    when: .compare(template("${input.lines[1]}"), .present(false)),
                                    target: .step("reserve"))
                            ]))),
                    StepDefinition(
                        id: "credit", action: .command(command("finance.credit.hold", ["orderId": "${input.orderId}"])),
                        compensate: command("finance.credit.cancel", ["orderId": "${input.orderId}"]),
                        timeout: .seconds(30), retry: retry),
                ], at: 1)
        }
        if paymentWait {
            // After accepting, wait up to 10 minutes for the payment of the order; without it the saga compensates.
            let payment = MessageWait(
                exchange: "payments", routingKey: "payment.confirmed", match: template("${input.orderId}"),
                key: template("${message.orderId}"), keyText: "${message.orderId}")
            definition.steps.insert(
                StepDefinition(
                    id: "payment", action: .wait(WaitSpec(duration: .seconds(600), message: payment)),
                    milestone: "order.paid"),
                at: 1)
        }
        return definition
    }

    /// A plain three-step saga with compensations on the first two.
    static func linear(retry: RetryPolicy = noJitter) -> WorkflowDefinition {
        WorkflowDefinition(
            name: "linear", version: 3,
            trigger: Trigger(exchange: "things", routingKey: "thing.created", sagaId: template("${input.id}")),
            steps: [
                StepDefinition(
                    id: "a", action: .command(command("sys.a.do", ["id": "${input.id}"])),
                    compensate: command("sys.a.undo", ["id": "${input.id}"]), timeout: .seconds(10), retry: retry,
                    milestone: "thing.a"),
                StepDefinition(
                    id: "b", action: .command(command("sys.b.do", ["from": "${steps.a.output.token}"])),
                    compensate: command("sys.b.undo", ["id": "${input.id}"]), timeout: .seconds(10), retry: retry),
                StepDefinition(
                    id: "c", action: .command(command("sys.c.do", ["id": "${saga.id}"])), timeout: .seconds(10),
                    retry: retry, milestone: "thing.c"),
            ],
            milestones: EndMilestones(completed: "thing.done", compensated: "thing.undone", failed: "thing.failed"))
    }
}

extension Transition {
    var commands: [CommandMessage] {
        actions.compactMap { if case .sendCommand(let command) = $0 { command } else { nil } }
    }

    var milestones: [String] {
        events.map(\.name)
    }

    var events: [MilestoneEvent] {
        actions.compactMap { if case .publishMilestone(let event) = $0 { event } else { nil } }
    }

    var scheduledTimers: [SagaTimer] {
        actions.compactMap { if case .scheduleTimer(let timer) = $0 { timer } else { nil } }
    }

    var isApplied: Bool {
        if case .applied = outcome { return true }
        return false
    }
}

/// Drives one saga by hand in tests.
struct SagaDriver {
    let engine: SagaEngine
    let definition: WorkflowDefinition
    var instance: SagaInstance
    var now = Timestamp(milliseconds: 1_000_000)
    var last: Transition

    init(
        _ definition: WorkflowDefinition, input: JSONValue, id: String = "o-1",
        engine: SagaEngine = SagaEngine(jitterSeed: 42)
    ) {
        self.engine = engine
        self.definition = definition
        last = engine.start(
            definition: definition, definitionHash: "test", sagaId: id, input: input, now: now)
        instance = last.instance
    }

    @discardableResult
    mutating func apply(_ event: SagaEvent, after milliseconds: Int64 = 10) -> Transition {
        now = now.adding(milliseconds: milliseconds)
        last = engine.apply(event, to: instance, definition: definition, now: now)
        instance = last.instance
        return last
    }

    @discardableResult
    mutating func reply(_ command: CommandMessage, _ output: JSONValue? = nil) -> Transition {
        apply(.reply(correlationId: command.messageId, outcome: .ok(output: output)))
    }

    @discardableResult
    mutating func fail(_ command: CommandMessage, code: String, retryable: Bool) -> Transition {
        apply(
            .reply(
                correlationId: command.messageId,
                outcome: .error(StepError(code: code, message: "\(code) from test", retryable: retryable))))
    }

    @discardableResult
    mutating func fire(_ timer: SagaTimer) -> Transition {
        apply(.timerFired(timerId: timer.id), after: max(0, timer.dueAt.milliseconds - now.milliseconds))
    }
}
