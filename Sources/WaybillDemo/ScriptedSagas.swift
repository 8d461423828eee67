import AMQPTransport
import Foundation
import PlainText
import SagaEngine
import SagaStore
import SplitPlanner
import WaybillDefinition
import WaybillWire
import WaybillWorker

/// The worker's side of Workflows/order-fulfillment.yaml as a fixed script, without engine, store or broker: for each
/// message the pattern replay consumes, the messages a worker would publish for it. Pure; ``PatternReplay`` moves
/// the messages.
///
/// Per saga with k shipments it publishes what the worker publishes: the forwarded start; the commands accept,
/// reserve, release x k, ship x k and invoice (persistent, mandatory, the headers and ids of docs/wire.md, replies
/// to the saga's partition queue); and a milestone event when each step completes (accepted, reserved, released,
/// shipped, invoiced), one per shipment as each ship reply comes (the ship step's `branch_milestone`) and the
/// completed event: 3k + 10 messages, each command and event with the saga's `traceparent`. It consumes the start
/// twice (shared start queue,
/// then partition) and 2k + 3 replies. The split is planned by the real ``SplitPlanner`` from the reserve reply's
/// stock, as the workflow's `fewest-shipments` split step does, so shipment ids, lines and WMS routing keys are the
/// worker's and the simulated participants answer the replay exactly as they answer the worker.
///
/// Only the success path is scripted: a saga whose reply is an error, or whose split finds no plan, is dropped and
/// counted in ``abandoned``.
struct ScriptedSagas {
    /// Where a message was consumed.
    enum Queue: Sendable, Hashable {
        /// The workflow's shared start queue: a start to forward to its saga's partition.
        case starts
        /// A partition queue: a forwarded start or a participant's reply.
        case partition(Int)
    }

    private enum Step: Int, CaseIterable {
        case accept, reserve, release, ship, invoice

        var id: String {
            switch self {
            case .accept: "accept"
            case .reserve: "reserve"
            case .release: "release"
            case .ship: "ship"
            case .invoice: "invoice"
            }
        }
    }

    private struct Saga {
        var id: String
        var lines: JSONValue
        var replyQueue: String
        var sequence = 0
        var step = Step.accept
        var shipments: [PlannedShipment] = []
        /// Commands of the current step waiting for their reply: message id -> branch.
        var waiting: [String: Int] = [:]
        var outputs: [JSONValue] = []
        var shipOutputs: JSONValue = .null
    }

    private let workflow: WorkflowDefinition
    private let configuration: WorkerConfiguration
    private let partitionCount: Int
    private let milestones: [Step: String]
    private let branchMilestones: [Step: String]
    private var sagas: [String: Saga] = [:]

    /// Sagas that reached their completed event.
    private(set) var completed = 0
    /// Sagas dropped: an error reply, or a split without a plan.
    private(set) var abandoned = 0
    /// Sagas started and neither completed nor abandoned.
    var inFlight: Int { sagas.count }

    /// A script for `workflow` (its name, trigger and milestones) under `configuration`'s exchanges and pool name.
    init(workflow: WorkflowDefinition, configuration: WorkerConfiguration, partitionCount: Int) {
        self.workflow = workflow
        self.configuration = configuration
        self.partitionCount = partitionCount
        var milestones: [Step: String] = [:]
        var branchMilestones: [Step: String] = [:]
        for step in workflow.steps {
            guard let known = Step.allCases.first(where: { $0.id == step.id }) else { continue }
            milestones[known] = step.milestone
            branchMilestones[known] = step.branchMilestone
        }
        self.milestones = milestones
        self.branchMilestones = branchMilestones
    }

    /// The messages to publish for one consumed message, in the worker's order (a step's milestone before the next
    /// step's commands). A reply for no waiting command (a redelivery) publishes nothing.
    mutating func receive(from queue: Queue, properties: MessageProperties, body: Data) -> [OutboundMessage] {
        switch queue {
        case .starts:
            guard let start = try? WireMessages.start(body, definition: workflow) else { return [] }
            var forwarded = properties
            forwarded.persistent = true
            forwarded.headers[WireHeader.sagaId] = .string(start.sagaId)
            forwarded.headers[WireHeader.workflow] = .string(workflow.name)
            forwarded.headers[WireHeader.input] = .string(PartitionInput.start.rawValue)
            return [
                OutboundMessage(
                    exchange: "", routingKey: partitionQueue(of: start.sagaId), body: body, mandatory: true,
                    properties: forwarded)
            ]
        case .partition:
            if properties.headers[WireHeader.input]?.stringValue == PartitionInput.start.rawValue {
                return start(body)
            }
            return reply(properties, body)
        }
    }

    private func partitionQueue(of sagaId: String) -> String {
        configuration.partitionQueue(PoolDirectory.partition(of: sagaId, count: partitionCount))
    }

    private mutating func start(_ body: Data) -> [OutboundMessage] {
        guard let start = try? WireMessages.start(body, definition: workflow), sagas[start.sagaId] == nil,
            let lines = start.input["lines"]
        else { return [] }
        var saga = Saga(id: start.sagaId, lines: lines, replyQueue: partitionQueue(of: start.sagaId))
        let messages = send(.accept, [["orderId": .string(saga.id), "lines": lines]], to: &saga)
        sagas[saga.id] = saga
        return messages
    }

    private mutating func reply(_ properties: MessageProperties, _ body: Data) -> [OutboundMessage] {
        guard let correlation = properties.correlationID,
            let key = WireMessages.sagaKey(fromMessageId: correlation), var saga = sagas[key.id],
            let branch = saga.waiting.removeValue(forKey: correlation)
        else { return [] }
        guard case .ok(let output)? = try? WireMessages.reply(body) else { return abandon(saga.id) }
        saga.outputs[branch] = output ?? .null
        // A `for_each` step's branch event goes out as the branch succeeds, before the step's own.
        var messages: [OutboundMessage] = []
        if let name = branchMilestones[saga.step] {
            let item: JSONValue? =
                saga.step == .ship && branch < saga.shipments.count
                ? ["id": .string(saga.shipments[branch].id), "warehouse": .string(saga.shipments[branch].warehouse)]
                : nil
            var fields: [String: JSONValue] = ["index": .number(Double(branch))]
            if let item { fields["item"] = item }
            messages.append(
                event(
                    name, step: saga.step.id, output: output ?? .null, status: "running", branch: .object(fields),
                    of: &saga))
        }
        guard saga.waiting.isEmpty else {
            sagas[saga.id] = saga
            return messages
        }
        let fanOut = saga.step == .release || saga.step == .ship
        let stepOutput = fanOut ? JSONValue.array(saga.outputs) : saga.outputs[0]
        messages += milestone(for: saga.step, output: stepOutput, of: &saga).map { [$0] } ?? []
        switch saga.step {
        case .accept:
            messages += send(.reserve, [["orderId": .string(saga.id), "lines": saga.lines]], to: &saga)
        case .reserve:
            guard let plan = Self.plan(lines: saga.lines, stock: stepOutput["stock"], sagaId: saga.id),
                !plan.shipments.isEmpty
            else { return abandon(saga.id) }
            saga.shipments = plan.shipments
            messages += send(
                .release,
                plan.shipments.map { ["shipmentId": .string($0.id), "lines": .array($0.lines.map(Self.json))] },
                to: &saga)
        case .release:
            messages += send(
                .ship,
                saga.shipments.map { ["shipmentId": .string($0.id), "warehouse": .string($0.warehouse)] },
                to: &saga)
        case .ship:
            saga.shipOutputs = stepOutput
            messages += send(.invoice, [["orderId": .string(saga.id), "shipments": saga.shipOutputs]], to: &saga)
        case .invoice:
            if let completed = workflow.milestones.completed {
                messages.append(event(completed, step: nil, output: nil, status: "completed", of: &saga))
            }
            sagas[saga.id] = nil
            self.completed += 1
            return messages
        }
        sagas[saga.id] = saga
        return messages
    }

    private mutating func abandon(_ sagaId: String) -> [OutboundMessage] {
        sagas[sagaId] = nil
        abandoned += 1
        return []
    }

    /// The commands of `step`, one per body (one branch each for a fan-out step), waiting for their replies.
    private func send(_ step: Step, _ bodies: [JSONValue], to saga: inout Saga) -> [OutboundMessage] {
        saga.step = step
        saga.waiting = [:]
        saga.outputs = Array(repeating: .null, count: bodies.count)
        let fanOut = step == .release || step == .ship
        return bodies.enumerated().map { branch, body in
            saga.sequence += 1
            let messageId = "\(workflow.name)/\(saga.id)/m\(saga.sequence)"
            saga.waiting[messageId] = branch
            let routingKey: String
            switch step {
            case .accept: routingKey = "erp.order.accept"
            case .reserve: routingKey = "inventory.reserve"
            case .release: routingKey = "wms.\(saga.shipments[branch].warehouse).release"
            case .ship: routingKey = "tms.shipment.create"
            case .invoice: routingKey = "billing.invoice.create"
            }
            let key = IdempotencyKey.forward(
                sagaId: saga.id, step: step.id, branch: fanOut ? branch : nil, round: 0)
            return OutboundMessage(
                exchange: configuration.commandsExchange, routingKey: routingKey,
                body: Data(JSONText.encodeBytes(body)), mandatory: true,
                properties: MessageProperties(
                    contentType: WireContentType.json,
                    headers: [
                        WireHeader.idempotencyKey: .string(key), WireHeader.sagaId: .string(saga.id),
                        WireHeader.workflow: .string(workflow.name), WireHeader.step: .string(step.id),
                        WireHeader.action: "do", WireHeader.attempt: "1",
                        "traceparent": .string(Self.traceParent(saga.id)),
                    ],
                    persistent: true, correlationID: messageId, replyTo: saga.replyQueue, messageID: messageId))
        }
    }

    private func milestone(for step: Step, output: JSONValue, of saga: inout Saga) -> OutboundMessage? {
        milestones[step].map { event($0, step: step.id, output: output, status: "running", of: &saga) }
    }

    /// A milestone as the worker writes it: a CloudEvents 1.0 structured event.
    private func event(
        _ name: String, step: String?, output: JSONValue?, status: String, branch: JSONValue? = nil,
        of saga: inout Saga
    ) -> OutboundMessage {
        saga.sequence += 1
        let id = "\(workflow.name)/\(saga.id)/e\(saga.sequence)"
        var data: [String: JSONValue] = [
            "sagaId": .string(saga.id), "workflow": .string(workflow.name),
            "version": .number(Double(workflow.version)), "status": .string(status),
            "schemaVersion": .number(Double(EventSchema.version)),
        ]
        if let step { data["step"] = .string(step) }
        if let output { data["output"] = output }
        if let branch { data["branch"] = branch }
        let now = Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
        let body: JSONValue = [
            "specversion": "1.0", "id": .string(id), "source": .string("waybill/\(workflow.name)"),
            "type": .string(name), "subject": .string(saga.id),
            "time": .string(UTCTime(millisecondsSinceEpoch: now).text(.milliseconds)),
            "datacontenttype": "application/json", "dataschema": .string(EventSchema.identifier(of: name)),
            "data": .object(data),
        ]
        var properties = MessageProperties(
            contentType: WireContentType.cloudEvents, persistent: true, messageID: id)
        properties.headers = [
            WireHeader.eventType: .string(name), WireHeader.eventSchema: .string(String(EventSchema.version)),
            "traceparent": .string(Self.traceParent(saga.id)),
        ]
        return OutboundMessage(
            exchange: configuration.eventsExchange, routingKey: name, body: Data(JSONText.encodeBytes(body)),
            properties: properties)
    }

    /// A `traceparent` of the saga's trace, as long as the worker's (the script keeps no trace per saga: the bytes
    /// on the wire are what count here).
    private static func traceParent(_ sagaId: String) -> String {
        "00-\(String(repeating: "0", count: 16))\(String(repeating: "1", count: 16))-00f067aa0ba902b7-01"
    }

    /// The workflow's split step: `fewest-shipments` over the reserve reply's stock, backorders rejected, shipment
    /// ids `<saga id>-<warehouse>`; `nil` when the inputs do not parse or the stock is short.
    static func plan(lines: JSONValue, stock: JSONValue?, sagaId: String) -> SplitPlan? {
        let orderLines = (lines.arrayValue ?? []).compactMap { line -> OrderLine? in
            guard let sku = line["sku"]?.stringValue, let quantity = line["quantity"]?.intValue else { return nil }
            return OrderLine(sku: sku, quantity: quantity)
        }
        let levels = (stock?.arrayValue ?? []).compactMap { row -> StockLevel? in
            guard let warehouse = row["warehouse"]?.stringValue, let sku = row["sku"]?.stringValue,
                let quantity = row["quantity"]?.intValue
            else { return nil }
            return StockLevel(warehouse: warehouse, sku: sku, quantity: quantity)
        }
        return try? SplitPlanner.plan(SplitRequest(lines: orderLines, stock: levels, shipmentIdPrefix: sagaId))
    }

    private static func json(_ line: OrderLine) -> JSONValue {
        ["sku": .string(line.sku), "quantity": .number(Double(line.quantity))]
    }
}
