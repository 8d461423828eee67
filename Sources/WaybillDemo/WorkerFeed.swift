import AMQPTransport
import Foundation
import Logging
import ServiceLifecycle
import WaybillDefinition
import WaybillWorker

/// What `waybill-demo feed` does: the orders, the broker, how long to wait.
public struct FeedOptions: Sendable {
    /// The broker (and vhost) the worker runs on.
    public var broker: BrokerAddress
    /// The orders' shape.
    public var shape: BenchShape = .twoShipment
    /// Orders to feed.
    public var orders: Int = 1000
    /// Sagas in flight at once.
    public var inFlight: Int = 200
    /// The workflow file the worker runs (its shipped names: the feed uses no namespace).
    public var workflowFile: String = "Workflows/order-fulfillment.yaml"
    /// How long to wait for a worker to consume the workflow's start queue.
    public var workerWait: Duration = .seconds(600)
    /// Give up waiting for the sagas to end after this long.
    public var timeout: Duration = .seconds(7200)

    /// Options for `broker`, every other field defaulted.
    public init(broker: BrokerAddress) {
        self.broker = broker
    }
}

/// How a feed ended.
public struct FeedResult: Sendable, Hashable {
    /// Orders fed.
    public var orders: Int
    /// Sagas that completed.
    public var completed: Int
    /// Sagas that ended in any way (completed, compensated, suspended); fewer than ``orders`` after a timeout.
    public var ended: Int
    /// From the first order published to the last end.
    public var elapsed: Duration
}

/// Feeds orders of a shape to `waybill worker` processes the caller runs on the shipped names (give the run a vhost
/// of its own), with the simulated participants and a monitor in this process, and waits for the sagas to end; for
/// measuring a worker from outside, e.g. under `valgrind --tool=callgrind` (scripts/callgrind-worker).
public enum WorkerFeed {
    /// Waits for a worker on the workflow's start queue, feeds the orders and returns once every saga ended (or the
    /// timeout passed); `say` gets progress lines.
    public static func run(
        _ options: FeedOptions, logger: Logger, say: @escaping @Sendable (String) -> Void
    ) async throws -> FeedResult {
        let names = try DemoNames()
        let workflow = try loadWorkflow(options.workflowFile)
        let simulator = try options.shape.simulator(orders: options.orders)
        let clients: [AMQPClient]
        do {
            clients = try await options.broker.connectedClients(
                ["waybill-feed-driver", "waybill-feed-participants"], logger: logger)
        } catch {
            throw DemoError(.brokerUnreachable, "cannot connect to RabbitMQ at \(options.broker)", cause: error)
        }
        func closeAll() async {
            for client in clients { await client.close() }
        }
        let (driver, participantsClient) = (clients[0], clients[1])
        let result: Result<FeedResult, any Error>
        do {
            var configuration = ParticipantConfiguration()
            configuration.commandsExchange = names.commandsExchange
            configuration.queue = names.participantsQueue
            let participants = ParticipantService(
                client: participantsClient, configuration: configuration, logger: logger, respond: simulator.handle)
            try await participants.declare()
            _ = await QueueDrain.drain(names.participantsQueue, on: driver)
            let monitor = SagaMonitor(
                client: driver, eventsExchange: names.eventsExchange, queue: names.monitorQueue,
                milestones: workflow.milestones, logger: logger)
            try await monitor.declare()
            _ = try await waitForConsumer(
                of: WorkerTopology.startQueue(workflow.name), on: driver, broker: options.broker,
                within: options.workerWait, say: say)
            let feed = OrderFeed(
                publisher: OrderPublisher(client: driver, trigger: workflow.trigger, monitor: monitor),
                monitor: monitor, isRunning: { true }, rate: nil, maxInFlight: options.inFlight,
                timeout: options.timeout, progressInterval: .seconds(10))
            let orders = options.shape.orders(options.orders, prefix: "feed")
            result = await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await participants.run() }
                group.addTask { await monitor.run() }
                defer { group.cancelAll() }
                do {
                    say(
                        "feeding \(orders.count) \(options.shape.rawValue) orders, at most \(options.inFlight) in flight"
                    )
                    _ = try await feed.run(orders) { tally, elapsed in
                        say("  \(elapsed.readable): \(tally.ended)/\(orders.count) ended")
                    }
                    let timings = monitor.timings
                    let elapsed =
                        if let first = timings.firstSent, let last = timings.lastEnded { last - first } else {
                            Duration.zero
                        }
                    let tally = monitor.tally
                    return .success(
                        FeedResult(
                            orders: orders.count, completed: tally.completed, ended: tally.ended, elapsed: elapsed))
                } catch {
                    return .failure(error)
                }
            }
        } catch {
            result = .failure(error)
        }
        await closeAll()
        return try result.get()
    }

    /// The workflow in `file`, as the worker loads it; an unreadable file is a `fileProblem` error.
    static func loadWorkflow(_ file: String) throws -> WorkflowDefinition {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw DemoError(.fileProblem, "cannot read the workflow \(file)", cause: error)
        }
        return try WorkflowLoader.load(yaml: text, file: file)
    }

    /// Waits until something consumes `queue` (a worker, on a workflow's start queue): returns `true` then, `false`
    /// when a graceful shutdown began first, and throws a `stoppedEarly` error once `limit` (when given) passed.
    static func waitForConsumer(
        of queue: String, on client: AMQPClient, broker: BrokerAddress, within limit: Duration?,
        say: @escaping @Sendable (String) -> Void
    ) async throws -> Bool {
        let deadline = limit.map { ContinuousClock.now + $0 }
        var told = false
        while !Task.isShuttingDownGracefully {
            if let info = try? await client.inspectQueue(queue), info.consumerCount > 0 { return true }
            if let limit, let deadline, ContinuousClock.now >= deadline {
                throw DemoError(
                    .stoppedEarly,
                    "no worker consumed \(queue) within \(limit.readable); start `waybill worker` on \(broker) with "
                        + "the shipped names first")
            }
            if !told {
                say("waiting for a worker to consume \(queue) ...")
                told = true
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        return false
    }
}
