import WaybillDefinition

/// The SPEC §1 order saga, built in code so the benchmark needs no files.
enum BenchmarkWorkflow {
    static let orderFulfillment: WorkflowDefinition = {
        func t(_ text: String) -> Template {
            (try? Template.parse(string: text)) ?? .literal(.string(text))
        }
        func command(_ key: String, _ input: [String: String]) -> CommandTemplate {
            CommandTemplate(routingKey: t(key), input: .object(input.mapValues(t)))
        }
        let shipments = ForEach(items: t("${steps.split.output.shipments}"), alias: "shipment")
        let retry = RetryPolicy(maxAttempts: .limited(5), jitter: .full)
        return WorkflowDefinition(
            name: "order-fulfillment", version: 1,
            trigger: Trigger(exchange: "orders", routingKey: "order.placed", sagaId: t("${input.orderId}")),
            steps: [
                StepDefinition(
                    id: "accept",
                    action: .command(
                        command("erp.order.accept", ["orderId": "${input.orderId}", "lines": "${input.lines}"])),
                    compensate: command("erp.order.cancel", ["orderId": "${input.orderId}"]), retry: retry,
                    milestone: "order.accepted"),
                StepDefinition(
                    id: "reserve",
                    action: .command(
                        command("inventory.reserve", ["orderId": "${input.orderId}", "lines": "${input.lines}"])),
                    compensate: command(
                        "inventory.release", ["reservationId": "${steps.reserve.output.reservationId}"]),
                    retry: retry, milestone: "order.reserved"),
                StepDefinition(
                    id: "split",
                    action: .split(SplitStepSpec(lines: t("${input.lines}"), stock: t("${steps.reserve.output.stock}")))
                ),
                StepDefinition(
                    id: "release",
                    action: .command(
                        command(
                            "wms.${shipment.warehouse}.release",
                            ["shipmentId": "${shipment.id}", "lines": "${shipment.lines}"])),
                    forEach: shipments,
                    compensate: command("wms.${shipment.warehouse}.cancel", ["shipmentId": "${shipment.id}"]),
                    retry: retry, milestone: "order.released",
                    reallocate: Reallocation(codes: ["out_of_stock"], splitStep: "split", max: 2)),
                StepDefinition(
                    id: "ship",
                    action: .command(
                        command(
                            "tms.shipment.create",
                            ["shipmentId": "${shipment.id}", "warehouse": "${shipment.warehouse}"])),
                    forEach: shipments, retry: retry, milestone: "order.shipped", pivot: true),
                StepDefinition(
                    id: "invoice",
                    action: .command(
                        command(
                            "billing.invoice.create",
                            ["orderId": "${input.orderId}", "shipments": "${steps.ship.output}"])),
                    retry: RetryPolicy(
                        maxAttempts: .unlimited, initialInterval: .seconds(5), maxInterval: .seconds(600)),
                    milestone: "order.invoiced"),
            ],
            milestones: EndMilestones(
                completed: "order.completed", compensated: "order.cancelled", failed: "order.failed"))
    }()
}
