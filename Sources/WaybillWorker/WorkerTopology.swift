import AMQPTransport
import WaybillDefinition

/// The exchanges, queues and bindings a worker declares (all durable; work queues are quorum queues).
///
/// Starts are partitioned by saga id in two hops, so a duplicate start always reaches the worker that owns the saga:
/// 1. `<trigger exchange>` --trigger key--> `waybill.<workflow>.starts`, a queue every worker consumes; a worker
///    reads the saga id from the body and forwards the message, keyed by saga id, to
/// 2. `waybill.<workflow>.partitions` (an `x-consistent-hash` exchange, RabbitMQ's consistent-hash plugin) -->
///    `waybill.<workflow>.starts.<worker id>`, one queue per worker; the worker that consumes it owns the saga.
/// Replies come back to `waybill.replies.<worker id>`, named in every command's `reply_to`, so they reach the owner.
public struct WorkerTopology: Sendable {
    public var configuration: WorkerConfiguration
    public var workflows: [WorkflowDefinition]

    public init(configuration: WorkerConfiguration, workflows: [WorkflowDefinition]) {
        self.configuration = configuration
        self.workflows = workflows
    }

    /// The shared start queue of a workflow.
    public static func startQueue(_ workflow: String) -> String { "waybill.\(workflow).starts" }
    /// The consistent-hash exchange that partitions starts by saga id.
    public static func partitionExchange(_ workflow: String) -> String { "waybill.\(workflow).partitions" }
    /// A worker's partition of a workflow's starts.
    public static func partitionQueue(_ workflow: String, worker: String) -> String {
        "waybill.\(workflow).starts.\(worker)"
    }

    private var workQueueArguments: AMQPTable {
        [
            "x-queue-type": "quorum",
            "x-delivery-limit": .int(Int64(configuration.deliveryLimit)),
            "x-dead-letter-exchange": .string(configuration.deadLetterExchange),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        ]
    }

    /// Declares everything; safe to repeat (the client declares it again after a reconnect).
    public func declare(on client: AMQPClient) async throws {
        let configuration = configuration
        try await client.declareExchange(ExchangeDeclaration(name: configuration.commandsExchange, kind: .topic))
        try await client.declareExchange(ExchangeDeclaration(name: configuration.eventsExchange, kind: .topic))
        try await client.declareExchange(ExchangeDeclaration(name: configuration.deadLetterExchange, kind: .topic))
        _ = try await client.declareQueue(
            QueueDeclaration(name: configuration.deadLetterQueue, arguments: ["x-queue-type": "quorum"]))
        try await client.bind(
            QueueBinding(
                queue: configuration.deadLetterQueue, exchange: configuration.deadLetterExchange, bindingKey: "#"))
        _ = try await client.declareQueue(
            QueueDeclaration(name: configuration.replyQueue, arguments: workQueueArguments))
        _ = try await client.declareQueue(
            QueueDeclaration(name: configuration.controlQueue, arguments: workQueueArguments))
        for workflow in workflows {
            let trigger = workflow.trigger
            try await client.declareExchange(ExchangeDeclaration(name: trigger.exchange, kind: .topic))
            let starts = Self.startQueue(workflow.name)
            _ = try await client.declareQueue(QueueDeclaration(name: starts, arguments: workQueueArguments))
            try await client.bind(
                QueueBinding(queue: starts, exchange: trigger.exchange, bindingKey: trigger.routingKey))
            let partitions = Self.partitionExchange(workflow.name)
            do {
                try await client.declareExchange(ExchangeDeclaration(name: partitions, kind: .consistentHash))
            } catch {
                throw ConfigurationError(
                    .brokerPluginMissing,
                    "cannot declare the x-consistent-hash exchange \(partitions): enable the plugin with "
                        + "`rabbitmq-plugins enable rabbitmq_consistent_hash_exchange`",
                    cause: error)
            }
            let partition = Self.partitionQueue(workflow.name, worker: configuration.workerId)
            _ = try await client.declareQueue(QueueDeclaration(name: partition, arguments: workQueueArguments))
            // The binding key of a consistent-hash binding is the partition's weight.
            try await client.bind(QueueBinding(queue: partition, exchange: partitions, bindingKey: "10"))
        }
    }
}
