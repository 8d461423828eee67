import Foundation
import Testing
import WaybillTestSupport

@testable import WaybillDefinition

func loadShipped(_ name: String) throws -> WorkflowDefinition {
    let path = Repository.workflow(name).path
    return try WorkflowLoader.load(try WorkflowSource.read(file: path))
}

func path(_ root: ExpressionPath.Root, _ components: ExpressionPath.Component...) -> Template {
    .value(ExpressionPath(root: root, components: components))
}

func expression(_ root: ExpressionPath.Root, _ components: ExpressionPath.Component...) -> TemplateSegment {
    .expression(ExpressionPath(root: root, components: components))
}

@Suite("Shipped workflows")
struct ShippedWorkflowTests {
    @Test(
        "order-fulfillment: accept, reserve, split, release, ship (the pivot), invoice, then the backorder's steps")
    func orderFulfillmentShape() throws {
        let workflow = try loadShipped("order-fulfillment.yaml")
        #expect(workflow.name == "order-fulfillment")
        #expect(workflow.version == 2)
        #expect(workflow.trigger.exchange == "orders")
        #expect(workflow.trigger.routingKey == "order.placed")
        #expect(workflow.trigger.sagaId == path(.input, .member("orderId")))
        #expect(
            workflow.steps.map(\.id) == [
                "accept", "reserve", "split", "in-stock", "release", "ship", "invoice", "backordered", "hold-backorder",
                "await-stock", "release-backorder", "ship-backorder", "invoice-backorder", "cancel-backorder",
                "cancel-lines",
            ])
        #expect(workflow.steps.filter(\.pivot).map(\.id) == ["ship"])
        #expect(
            workflow.milestones
                == EndMilestones(completed: "order.completed", compensated: "order.cancelled", failed: "order.failed"))
        #expect(
            workflow.steps.map(\.milestone) == [
                "order.accepted", "order.reserved", nil, nil, "order.released", "order.shipped", "order.invoiced", nil,
                "order.backordered", nil, "order.backorder.released", "order.backorder.shipped",
                "order.backorder.invoiced", "order.backorder.cancelled", nil,
            ])
        // One shipment event per warehouse as its ship branch succeeds, before the joined order.shipped.
        #expect(
            workflow.steps.map(\.branchMilestone) == [
                nil, nil, nil, nil, nil, "order.shipment.shipped", nil, nil, nil, nil, nil,
                "order.backorder.shipment.shipped", nil, nil, nil,
            ])
    }

    @Test("defaults apply to every step and merge key by key into a step's retry")
    func orderFulfillmentDefaults() throws {
        let workflow = try loadShipped("order-fulfillment.yaml")
        let defaults = RetryPolicy(
            maxAttempts: .limited(5), initialInterval: .seconds(1), backoff: 2.0, maxInterval: .seconds(60),
            jitter: .full)
        let invoices = ["invoice", "invoice-backorder"]
        for step in workflow.steps where !invoices.contains(step.id) {
            #expect(step.timeout == .seconds(30))
            #expect(step.retry == defaults)
        }
        for invoice in workflow.steps where invoices.contains(invoice.id) {
            #expect(
                invoice.retry
                    == RetryPolicy(
                        maxAttempts: .unlimited, initialInterval: .seconds(5), backoff: 2.0, maxInterval: .seconds(600),
                        jitter: .full))
        }
    }

    @Test("command steps: routing keys, inputs and compensation as templates")
    func orderFulfillmentCommands() throws {
        let workflow = try loadShipped("order-fulfillment.yaml")
        let accept = workflow.steps[0]
        #expect(
            accept.action
                == .command(
                    CommandTemplate(
                        routingKey: .literal(.string("erp.order.accept")),
                        input: .object([
                            "orderId": path(.input, .member("orderId")), "lines": path(.input, .member("lines")),
                        ]))))
        #expect(
            accept.compensate
                == CommandTemplate(
                    routingKey: .literal(.string("erp.order.cancel")),
                    input: .object(["orderId": path(.input, .member("orderId"))])))
        let reserve = workflow.steps[1]
        // By the order id: a reserve whose reply never came is compensated too, with no reservationId to send.
        #expect(reserve.compensate?.input == .object(["orderId": path(.input, .member("orderId"))]))
        let ship = workflow.steps[5]
        #expect(ship.compensate == nil)
        #expect(ship.pivot)
    }

    @Test("the split step")
    func orderFulfillmentSplit() throws {
        let workflow = try loadShipped("order-fulfillment.yaml")
        #expect(
            workflow.steps[2].action
                == .split(
                    SplitStepSpec(
                        lines: path(.input, .member("lines")), stock: path(.stepOutput("reserve"), .member("stock")),
                        priority: nil, strategy: .fewestShipments, backorder: .allow)))
    }

    @Test("release fans out per shipment and re-plans out_of_stock through the split step")
    func orderFulfillmentRelease() throws {
        let workflow = try loadShipped("order-fulfillment.yaml")
        let release = workflow.steps[4]
        #expect(
            release.forEach
                == ForEach(items: path(.stepOutput("split"), .member("shipments")), alias: "shipment"))
        guard case .command(let command) = release.action else {
            Issue.record("release should be a command step")
            return
        }
        #expect(
            command.routingKey
                == .interpolated([
                    .text("wms."), expression(.alias("shipment"), .member("warehouse")), .text(".release"),
                ]))
        #expect(
            release.compensate?.routingKey
                == .interpolated([
                    .text("wms."), expression(.alias("shipment"), .member("warehouse")), .text(".cancel"),
                ]))
        #expect(release.reallocate == Reallocation(codes: ["out_of_stock"], splitStep: "split", max: 2))
    }

    @Test("returns: a different shape with its own trigger and a pivot at the end")
    func returnsWorkflow() throws {
        let workflow = try loadShipped("returns.yaml")
        #expect(workflow.name == "returns")
        #expect(workflow.trigger.exchange == "returns")
        #expect(workflow.trigger.routingKey == "return.requested")
        #expect(workflow.trigger.sagaId == path(.input, .member("returnId")))
        #expect(workflow.steps.map(\.id) == ["authorize", "receive", "inspect", "restock", "credit"])
        #expect(workflow.steps.filter(\.pivot).map(\.id) == ["credit"])
        #expect(workflow.steps.map { $0.compensate != nil } == [true, false, false, true, false])
        #expect(workflow.steps[1].timeout == .seconds(300))
        #expect(workflow.steps[0].timeout == .seconds(60))
        #expect(workflow.steps[3].forEach?.alias == "line")
        #expect(workflow.steps[4].retry.maxAttempts == .unlimited)
        #expect(workflow.steps[4].retry.maxInterval == .seconds(600))
        #expect(workflow.steps[0].retry.maxAttempts == .limited(4))
        #expect(workflow.milestones.compensated == "return.rejected")
    }

    @Test("every shipped workflow is valid and has no warning", arguments: shippedWorkflowNames())
    func shippedWorkflowIsValid(name: String) throws {
        let source = try WorkflowSource.read(file: Repository.workflow(name).path)
        let (_, warnings) = try WorkflowLoader.loadReportingWarnings(yaml: source.text, file: name)
        #expect(warnings.map(\.description) == [])
    }
}

func shippedWorkflowNames() -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: Repository.workflows.path)) ?? []
    return names.filter { $0.hasSuffix(".yaml") }.sorted()
}

@Suite("Loader defaults")
struct LoaderDefaultsTests {
    static let header = """
        name: demo
        version: 1
        trigger: { exchange: orders, routing_key: order.placed, saga_id: "${input.orderId}" }

        """

    @Test("built-in defaults: 30s timeout, 3 attempts, 1s..1m, backoff 2.0, full jitter, input {}")
    func builtIn() throws {
        let workflow = try WorkflowLoader.load(
            yaml: Self.header + "steps:\n  - id: accept\n    command: erp.order.accept\n", file: "t.yaml")
        let step = workflow.steps[0]
        #expect(step.timeout == .seconds(30))
        #expect(
            step.retry
                == RetryPolicy(
                    maxAttempts: .limited(3), initialInterval: .seconds(1), backoff: 2.0, maxInterval: .seconds(60),
                    jitter: .full))
        #expect(step.retry == WorkflowLoader.builtInRetry)
        #expect(step.action == .command(CommandTemplate(routingKey: .literal(.string("erp.order.accept")))))
        #expect(step.milestone == nil)
        #expect(!step.pivot)
        #expect(workflow.milestones == EndMilestones())
    }

    @Test("a step's retry keeps the keys it does not set from defaults, then from the built-in ones")
    func mergeKeyByKey() throws {
        let yaml =
            Self.header + """
                defaults:
                  timeout: 2m
                  retry: { backoff: 3.0, jitter: none }
                steps:
                  - id: accept
                    command: erp.order.accept
                    timeout: 500ms
                    retry: { max_attempts: unlimited }
                  - id: reserve
                    command: inventory.reserve
                """
        let workflow = try WorkflowLoader.load(yaml: yaml, file: "t.yaml")
        #expect(workflow.steps[0].timeout == .milliseconds(500))
        #expect(
            workflow.steps[0].retry
                == RetryPolicy(
                    maxAttempts: .unlimited, initialInterval: .seconds(1), backoff: 3.0, maxInterval: .seconds(60),
                    jitter: .none))
        #expect(workflow.steps[1].timeout == .seconds(120))
        #expect(workflow.steps[1].retry.maxAttempts == .limited(3))
        #expect(workflow.steps[1].retry.backoff == 3.0)
    }

    @Test("a compensate may use its own step's output and a for_each element; a literal list can be fanned out")
    func ownOutputInCompensate() throws {
        let yaml =
            Self.header + """
                steps:
                  - id: release
                    for_each: [eu-1, eu-2]
                    as: warehouse
                    command: wms.${warehouse}.release
                    compensate:
                      command: wms.${warehouse}.cancel
                      input: { releases: "${steps.release.output}" }
                """
        let workflow = try WorkflowLoader.load(yaml: yaml, file: "t.yaml")
        #expect(
            workflow.steps[0].forEach
                == ForEach(items: .array([.literal(.string("eu-1")), .literal(.string("eu-2"))]), alias: "warehouse"))
        #expect(workflow.steps[0].compensate?.input == .object(["releases": path(.stepOutput("release"))]))
    }

    @Test("diagnostics print as file:line:column: message; a typo of a required key is not also reported missing")
    func diagnosticFormat() {
        let yaml = Self.header + "steps:\n  - id: accept\n    comand: erp.order.accept\n    timeout: 30\n"
        #expect {
            try WorkflowLoader.load(yaml: yaml, file: "Workflows/x.yaml")
        } throws: { error in
            guard let diagnostics = error as? WorkflowDiagnostics else { return false }
            return diagnostics.description == """
                Workflows/x.yaml:6:5: unknown key 'comand' in step; did you mean 'command'?
                Workflows/x.yaml:7:14: bad duration '30'; add a unit, e.g. 30s (units: ms, s, m, h, d)
                """
                && diagnostics.diagnostics.map(\.code) == [.unknownKey, .badDuration]
                && diagnostics.diagnostics.map(\.code.rawValue) == ["workflow.unknown_key", "workflow.bad_duration"]
                && diagnostics.code == .invalidFile
                && diagnostics.message
                    == "Workflows/x.yaml has 2 problems; fix them and check with `waybill validate Workflows/x.yaml`"
        }
    }
}
