import AMQPTransport
import WaybillDefinition

/// The exchanges, queues and bindings a worker declares (all durable; work queues are quorum queues).
///
/// Starts reach their saga's partition in two hops, so a duplicate start always reaches the saga's owner:
/// 1. `<trigger exchange>` --trigger key--> `waybill.<workflow>.starts`, a queue every worker consumes; a worker
///    reads the saga id from the body, computes its partition (a stable hash of the id, never broker state) and
///    forwards the message to
/// 2. the partition's queue `<pool_name>.pNN` (``PoolQueues``), a single-active-consumer quorum queue consumed by the
///    partition's owner alone. It also receives the partition's replies (it is their commands' `reply_to`) and
///    operator repairs, so everything about one saga goes through one queue and one owner.
public struct WorkerTopology: Sendable {
    public var configuration: WorkerConfiguration
    public var workflows: [WorkflowDefinition]
    /// The pool's partition count: one queue each.
    public var partitionCount: Int
    /// The partition queues the pool ever had (more than `partitionCount` after a repartition to fewer).
    public var queueCount: Int

    public init(
        configuration: WorkerConfiguration, workflows: [WorkflowDefinition], partitionCount: Int,
        queueCount: Int? = nil
    ) {
        self.configuration = configuration
        self.workflows = workflows
        self.partitionCount = partitionCount
        self.queueCount = max(partitionCount, queueCount ?? partitionCount)
    }

    /// The exchange and binding key of every message a wait step of `workflows` waits for, without repeats.
    public var messageWaitBindings: [(exchange: String, routingKey: String)] {
        var seen = Set<[String]>()
        var bindings: [(exchange: String, routingKey: String)] = []
        for workflow in workflows {
            for step in workflow.steps {
                guard case .wait(let spec) = step.action, let wait = spec.message,
                    seen.insert([wait.exchange, wait.routingKey]).inserted
                else { continue }
                bindings.append((wait.exchange, wait.routingKey))
            }
        }
        return bindings
    }

    /// The shared start queue of a workflow.
    public static func startQueue(_ workflow: String) -> String { "waybill.\(workflow).starts" }

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
        var partitionArguments = workQueueArguments
        partitionArguments["x-single-active-consumer"] = .bool(true)
        // Every hand-off of a partition gives its unacknowledged deliveries back, which the broker counts.
        partitionArguments["x-delivery-limit"] = .int(Int64(configuration.deliveryLimit * 4))
        for partition in 0..<queueCount {
            _ = try await client.declareQueue(
                QueueDeclaration(name: configuration.partitionQueue(partition), arguments: partitionArguments))
        }
        // A wait step's message reaches every partition queue: the owner of each looks for the sagas waiting for it in
        // its own partition. Bindings of waits no definition has any more stay (sagas of older versions may wait), and
        // so do those of queues a repartition left (their owners acknowledge such copies).
        for binding in messageWaitBindings {
            try await client.declareExchange(ExchangeDeclaration(name: binding.exchange, kind: .topic))
            for partition in 0..<partitionCount {
                try await client.bind(
                    QueueBinding(
                        queue: configuration.partitionQueue(partition), exchange: binding.exchange,
                        bindingKey: binding.routingKey))
            }
        }
        for workflow in workflows {
            let trigger = workflow.trigger
            try await client.declareExchange(ExchangeDeclaration(name: trigger.exchange, kind: .topic))
            let starts = Self.startQueue(workflow.name)
            _ = try await client.declareQueue(QueueDeclaration(name: starts, arguments: workQueueArguments))
            try await client.bind(
                QueueBinding(queue: starts, exchange: trigger.exchange, bindingKey: trigger.routingKey))
        }
    }
}
