import AMQPTransport
import Foundation
import Logging
import ServiceLifecycle
import WaybillDefinition
import WaybillSimulator

/// Stock arriving at the simulated warehouses on a schedule: every `interval` it asks the participants what arrived
/// and what that filled (``ParticipantSimulator/receiveStock()``), and publishes each event, persistent and confirmed,
/// to the exchanges of the workflow's wait steps whose binding key matches the event's routing key.
final class StockArrivals: Service, Sendable {
    private let client: AMQPClient
    private let workflow: WorkflowDefinition
    private let interval: Duration
    private let produce: @Sendable () -> [SimulatedEvent]
    private let logger: Logger

    init(
        client: AMQPClient, workflow: WorkflowDefinition, interval: Duration, logger: Logger,
        produce: @escaping @Sendable () -> [SimulatedEvent]
    ) {
        self.client = client
        self.workflow = workflow
        self.interval = interval
        self.produce = produce
        self.logger = logger
    }

    /// The exchanges of the workflow's message waits that a message with `routingKey` reaches.
    static func exchanges(for routingKey: String, in workflow: WorkflowDefinition) -> [String] {
        var found: [String] = []
        for step in workflow.steps {
            guard case .wait(let spec) = step.action, let wait = spec.message,
                MessageWait.topic(wait.routingKey, matches: routingKey), !found.contains(wait.exchange)
            else { continue }
            found.append(wait.exchange)
        }
        return found
    }

    func run() async throws {
        // Declared as the workers declare them, so an event published before any worker did is not refused.
        for step in workflow.steps {
            guard case .wait(let spec) = step.action, let wait = spec.message else { continue }
            try await client.declareExchange(ExchangeDeclaration(name: wait.exchange, kind: .topic))
        }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.interval)
                if Task.isCancelled { return }
                await self.publish(self.produce())
            }
        }
    }

    private func publish(_ events: [SimulatedEvent]) async {
        let messages = events.flatMap { event in
            Self.exchanges(for: event.routingKey, in: workflow).map { exchange in
                OutboundMessage(
                    exchange: exchange, routingKey: event.routingKey, body: Data(JSONText.encodeBytes(event.body)),
                    persistent: true, contentType: "application/json")
            }
        }
        guard !messages.isEmpty else { return }
        do {
            let outcomes = try await client.publish(messages)
            let lost = outcomes.filter { !$0.isConfirmed }.count
            if lost > 0 { logger.warning("\(lost) of \(messages.count) stock events were not confirmed") }
        } catch {
            logger.warning("cannot publish \(messages.count) stock events: \(error)")
        }
    }
}
