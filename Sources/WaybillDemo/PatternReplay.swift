import AMQPTransport
import Foundation
import Logging
import WaybillDefinition
import WaybillWire
import WaybillWorker

/// The benchmark's pattern ceiling: the messages the worker exchanges for one order-fulfillment saga with one
/// shipment, replayed with the raw AMQP client and nothing else: no saga engine, no SQLite, no journal.
///
/// It has the worker's shape: the same queues (quorum, same arguments), the two-hop start (shared start queue, then a
/// consistent-hash partition), the same consumers and prefetch, batches of up to 256 deliveries, one confirmed publish
/// per batch, then one `multiple` ack per consumer. Per saga it publishes what the worker publishes — the forwarded
/// start, five commands (accept, reserve, release, ship, invoice; persistent, mandatory, the headers of
/// docs/wire.md) and six milestone events — and consumes the start twice and five replies. Bodies are built like the
/// worker's (the order lines, the reserve output's warehouse), so the simulated participants answer them exactly as
/// they answer the worker.
final class PatternReplay: Sendable {
    /// The names of the replay's topology; derived from a namespace like a worker's.
    struct Names: Sendable {
        var workflow: String
        var triggerExchange: String
        var triggerKey: String
        var commandsExchange: String
        var eventsExchange: String
        var deadLetterExchange: String
        var workerId: String

        var startQueue: String { WorkerTopology.startQueue(workflow) }
        /// Where the router forwards starts, as a worker forwards them to a partition queue.
        var partitionQueue: String { "waybill.replay.\(workerId).p00" }
        var replyQueue: String { "waybill.replies.\(workerId)" }
        /// Every queue of the replay.
        var queues: [String] { [startQueue, partitionQueue, replyQueue] }
    }

    private enum Source: Sendable {
        case router
        case start
        case reply
    }

    /// One replayed saga: where it is and what later commands need.
    private struct Saga {
        var orderId: String
        var lines: JSONValue
        var step = 0
        var messages = 0
        var warehouse = ""
        var shipmentOutput: JSONValue = .null
    }

    private let client: AMQPClient
    private let names: Names
    private let milestones: [String]
    private let completed: String
    private let batchSize = 256
    private let prefetch: UInt16 = 1000
    private let logger: Logger

    /// A replay for `workflow` (its step milestones and completed milestone are the events it publishes).
    init(client: AMQPClient, names: Names, workflow: WorkflowDefinition, logger: Logger) {
        self.client = client
        self.names = names
        milestones = workflow.steps.compactMap(\.milestone)
        completed = workflow.milestones.completed ?? "order.completed"
        self.logger = logger
    }

    /// Declares the worker's topology under the replay's names.
    func declare() async throws {
        let workQueue: AMQPTable = [
            "x-queue-type": "quorum", "x-delivery-limit": 5,
            "x-dead-letter-exchange": .string(names.deadLetterExchange), "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        ]
        for exchange in [names.commandsExchange, names.eventsExchange, names.deadLetterExchange, names.triggerExchange]
        {
            try await client.declareExchange(ExchangeDeclaration(name: exchange, kind: .topic))
        }
        for queue in [names.startQueue, names.partitionQueue, names.replyQueue] {
            _ = try await client.declareQueue(QueueDeclaration(name: queue, arguments: workQueue))
        }
        try await client.bind(
            QueueBinding(queue: names.startQueue, exchange: names.triggerExchange, bindingKey: names.triggerKey))
    }

    /// Deletes the replay's queues and exchanges (best effort).
    func remove() async {
        for queue in [names.startQueue, names.partitionQueue, names.replyQueue] {
            _ = try? await client.deleteQueue(queue)
        }
        for exchange in [
            names.triggerExchange, names.commandsExchange, names.eventsExchange,
            names.deadLetterExchange,
        ] {
            try? await client.deleteExchange(exchange)
        }
    }

    /// Replays until the task is cancelled.
    func run() async throws {
        let consumers: [(Source, AMQPConsumer)] = [
            (.router, try await client.consume(queue: names.startQueue, prefetch: prefetch)),
            (.start, try await client.consume(queue: names.partitionQueue, prefetch: prefetch)),
            (.reply, try await client.consume(queue: names.replyQueue, prefetch: prefetch)),
        ]
        let inbox = WorkQueue<(Source, InboundDelivery)>()
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                for (source, consumer) in consumers {
                    group.addTask {
                        do {
                            for try await delivery in consumer { inbox.push((source, delivery)) }
                        } catch {
                            inbox.finish()
                        }
                    }
                }
                var sagas: [String: Saga] = [:]
                while let batch = await inbox.nextBatch(max: batchSize) {
                    await process(batch, sagas: &sagas)
                }
                group.cancelAll()
            }
        } onCancel: {
            inbox.finish()
        }
    }

    private func process(_ batch: [(Source, InboundDelivery)], sagas: inout [String: Saga]) async {
        var outgoing: [OutboundMessage] = []
        outgoing.reserveCapacity(batch.count * 2)
        for (source, delivery) in batch {
            switch source {
            case .router:
                guard let order = try? JSONText.decode(delivery.body), let id = order["orderId"]?.stringValue else {
                    continue
                }
                var properties = delivery.properties
                properties.persistent = true
                properties.headers[WireHeader.sagaId] = .string(id)
                outgoing.append(
                    OutboundMessage(
                        exchange: "", routingKey: names.partitionQueue, body: delivery.body, mandatory: true,
                        properties: properties))
            case .start:
                guard let order = try? JSONText.decode(delivery.body), let id = order["orderId"]?.stringValue,
                    let lines = order["lines"]
                else { continue }
                var saga = Saga(orderId: id, lines: lines)
                outgoing.append(command(for: &saga))
                sagas[id] = saga
            case .reply:
                guard let correlation = delivery.properties.correlationID,
                    let key = WireMessages.sagaKey(fromMessageId: correlation), var saga = sagas[key.id],
                    let reply = try? JSONText.decode(delivery.body), reply["status"] == "ok"
                else { continue }
                let output = reply["output"] ?? .null
                if saga.step == 1 { saga.warehouse = Self.warehouse(for: saga.lines, stock: output["stock"]) }
                if saga.step == 3 { saga.shipmentOutput = output }
                outgoing.append(milestone(milestones[min(saga.step, milestones.count - 1)], of: saga, output: output))
                saga.step += 1
                if saga.step < 5 {
                    outgoing.append(command(for: &saga))
                    sagas[key.id] = saga
                } else {
                    outgoing.append(milestone(completed, of: saga, output: nil))
                    sagas[key.id] = nil
                }
            }
        }
        if !outgoing.isEmpty {
            do {
                _ = try await client.publish(outgoing)
            } catch {
                logger.error("pattern replay: publish failed: \(error)")
            }
        }
        var highest: [String: DeliveryTag] = [:]
        for (_, delivery) in batch {
            highest[delivery.consumerTag] = delivery.deliveryTag
        }
        for tag in highest.values { client.ack(tag, multiple: true) }
    }

    private func command(for saga: inout Saga) -> OutboundMessage {
        let shipmentId = "\(saga.orderId)-1"
        let (step, routingKey, body): (String, String, JSONValue)
        switch saga.step {
        case 0:
            (step, routingKey, body) = (
                "accept", "erp.order.accept", ["orderId": .string(saga.orderId), "lines": saga.lines]
            )
        case 1:
            (step, routingKey, body) = (
                "reserve", "inventory.reserve", ["orderId": .string(saga.orderId), "lines": saga.lines]
            )
        case 2:
            (step, routingKey, body) = (
                "release/0", "wms.\(saga.warehouse).release", ["shipmentId": .string(shipmentId), "lines": saga.lines]
            )
        case 3:
            (step, routingKey, body) = (
                "ship/0", "tms.shipment.create",
                ["shipmentId": .string(shipmentId), "warehouse": .string(saga.warehouse)]
            )
        default:
            (step, routingKey, body) = (
                "invoice", "billing.invoice.create",
                ["orderId": .string(saga.orderId), "shipments": [saga.shipmentOutput]]
            )
        }
        saga.messages += 1
        let messageId = "\(names.workflow)/\(saga.orderId)/m\(saga.messages)"
        return OutboundMessage(
            exchange: names.commandsExchange, routingKey: routingKey, body: Data(JSONText.encodeBytes(body)),
            mandatory: true,
            properties: MessageProperties(
                contentType: "application/json",
                headers: [
                    WireHeader.idempotencyKey: .string("\(saga.orderId)/\(step)"),
                    WireHeader.sagaId: .string(saga.orderId),
                    WireHeader.workflow: .string(names.workflow),
                    WireHeader.step: .string(String(step.prefix { $0 != "/" })),
                    WireHeader.action: "do",
                    WireHeader.attempt: "1",
                ],
                persistent: true, correlationID: messageId, replyTo: names.replyQueue, messageID: messageId))
    }

    private func milestone(_ name: String, of saga: Saga, output: JSONValue?) -> OutboundMessage {
        var data: [String: JSONValue] = [
            "sagaId": .string(saga.orderId), "workflow": .string(names.workflow), "version": 1,
            "status": output == nil ? "completed" : "running",
        ]
        if let output { data["output"] = output }
        let id = "\(names.workflow)/\(saga.orderId)/e\(saga.step)"
        let body: JSONValue = [
            "specversion": "1.0", "id": .string(id), "source": .string("waybill/\(names.workflow)"),
            "type": .string(name), "subject": .string(saga.orderId), "time": "2026-01-01T00:00:00.000Z",
            "datacontenttype": "application/json", "data": .object(data),
        ]
        return OutboundMessage(
            exchange: names.eventsExchange, routingKey: name,
            body: Data(JSONText.encodeBytes(body)), persistent: true, contentType: "application/cloudevents+json",
            messageID: id)
    }

    /// The first warehouse (by name) that holds every line, as a fewest-shipments split picks when one suffices.
    private static func warehouse(for lines: JSONValue, stock: JSONValue?) -> String {
        var held: [String: [String: Int]] = [:]
        for row in stock?.arrayValue ?? [] {
            guard let warehouse = row["warehouse"]?.stringValue, let sku = row["sku"]?.stringValue,
                let quantity = row["quantity"]?.intValue
            else { continue }
            held[warehouse, default: [:]][sku] = quantity
        }
        let wanted = (lines.arrayValue ?? []).compactMap { line -> (String, Int)? in
            guard let sku = line["sku"]?.stringValue, let quantity = line["quantity"]?.intValue else { return nil }
            return (sku, quantity)
        }
        for warehouse in held.keys.sorted() where wanted.allSatisfy({ (held[warehouse]?[$0.0] ?? 0) >= $0.1 }) {
            return warehouse
        }
        return held.keys.sorted().first ?? "wh-01"
    }
}
