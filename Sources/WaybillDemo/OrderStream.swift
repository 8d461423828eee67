import AMQPTransport
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import WaybillDefinition
import WaybillWorker

/// What `waybill-demo orders` does: the broker, the orders' shape and the steady rate they are published at.
public struct OrderStreamOptions: Sendable {
    /// The broker (and vhost) the workers run on.
    public var broker: BrokerAddress
    /// The orders' shape; the participants answering them must run the same one (`waybill-demo participants
    /// --shape`), or the split plans against stock the orders were not made for.
    public var shape: BenchShape = .twoShipment
    /// Orders published per second.
    public var rate: Double = 1
    /// Saga ids are `<prefix>-1`, `<prefix>-2`, ...: give every stream its own prefix (the default is a new random
    /// one per process), because an order whose id already has a saga starts nothing.
    public var prefix: String = OrderStreamOptions.randomPrefix()
    /// The workflow file the workers run (its shipped names: the stream uses no namespace).
    public var workflowFile: String = "Workflows/order-fulfillment.yaml"
    /// How often a progress line is printed.
    public var progressInterval: Duration = .seconds(60)

    /// The highest ``rate``: a steady demo load, not a load generator (that is `waybill-demo bench`).
    public static let maximumRate: Double = 1000

    /// Options for `broker`, every other field defaulted.
    public init(broker: BrokerAddress) {
        self.broker = broker
    }

    /// `orders-` and 8 random hexadecimal digits.
    public static func randomPrefix() -> String {
        let digits = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return "orders-" + String(repeating: "0", count: 8 - digits.count) + digits
    }

    /// Refuses a rate that is not a number above 0 and at most ``maximumRate``, a prefix that is empty or has other
    /// characters than lowercase letters, digits and `-`, and a shape without end-less stock (``BenchShape/mixed``).
    public func validate() throws(DemoError) {
        guard rate.isFinite, rate > 0, rate <= Self.maximumRate else {
            throw DemoError(
                .invalidOption,
                "--rate must be above 0 and at most \(Int(Self.maximumRate)) orders per second, got \(rate)")
        }
        guard !prefix.isEmpty,
            prefix.allSatisfy({ ($0.isLetter && $0.isLowercase && $0.isASCII) || $0.isNumber || $0 == "-" })
        else {
            throw DemoError(.invalidOption, "--prefix '\(prefix)': use lowercase letters, digits and '-' only")
        }
        try shape.checkEndless()
    }
}

extension BenchShape {
    /// Refuses ``mixed`` for a stream without end (`waybill-demo orders` and `participants`): its stock is sized for
    /// a fixed number of orders and runs out; the other shapes stock far more units than any run takes.
    public func checkEndless() throws(DemoError) {
        guard self == .mixed else { return }
        throw DemoError(
            .invalidOption,
            "--shape mixed sizes its stock for a fixed number of orders and cannot feed a stream without end; use "
                + "two-shipment or one-shipment")
    }
}

/// Publishes orders of a shape to a workflow's trigger at a steady rate, for `waybill worker` processes and
/// participants that run elsewhere (the compose file's `feeder`): it waits until a worker consumes the workflow's
/// start queue, then publishes until a graceful shutdown (SIGTERM) or cancellation, and returns normally (a publish
/// in progress is confirmed first). It does not wait for the sagas to end.
///
/// A stream that fell behind (the broker held its publishes up) resumes the rate instead of catching up in a burst.
/// A publish the broker returns as unroutable or does not confirm after retries ends the stream with an error.
public final class OrderStream: Service {
    private let options: OrderStreamOptions
    private let client: AMQPClient
    private let trigger: Trigger
    private let startQueue: String
    private let say: @Sendable (String) -> Void
    private let ready: @Sendable () -> Void
    private let count = Atomic<Int>(0)

    /// A stream publishing to `trigger` once something consumes `startQueue`; `ready` is called then, once.
    init(
        options: OrderStreamOptions, client: AMQPClient, trigger: Trigger, startQueue: String,
        say: @escaping @Sendable (String) -> Void, ready: @escaping @Sendable () -> Void
    ) {
        self.options = options
        self.client = client
        self.trigger = trigger
        self.startQueue = startQueue
        self.say = say
        self.ready = ready
    }

    /// Orders published so far.
    public var published: Int { count.load(ordering: .relaxed) }

    /// Waits for a worker, then publishes until a graceful shutdown or cancellation.
    public func run() async throws {
        // Without a limit the wait throws only when cancelled: then, as after a graceful shutdown, nothing is left
        // to do.
        let consumed =
            (try? await WorkerFeed.waitForConsumer(
                of: startQueue, on: client, broker: options.broker, within: nil, say: say)) ?? false
        guard consumed else { return }
        ready()
        let rate = Format.fixed(options.rate, options.rate == options.rate.rounded() ? 0 : 2)
        say(
            "publishing \(options.shape.rawValue) orders \(options.prefix)-1, -2, ... at \(rate) per second until "
                + "stopped")
        let publisher = OrderPublisher(client: client, trigger: trigger, monitor: nil)
        let clock = ContinuousClock()
        var start = clock.now
        var next = 0
        var lastReport = start
        let slack = max(1, Int(options.rate))
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let now = clock.now
            let due = Int(options.rate * (now - start).inSeconds) + 1
            if due - next > slack {
                start = now - .seconds(Double(next) / options.rate)
                continue
            }
            if due > next {
                let batch = options.shape.orders(due - next, prefix: options.prefix, first: next + 1)
                try await publisher.publish(batch)
                next = due
                count.store(next, ordering: .relaxed)
                continue
            }
            if now - lastReport >= options.progressInterval {
                say("published \(next) orders")
                lastReport = now
            }
            let wake = start + .seconds(Double(next) / options.rate)
            try? await cancelWhenGracefulShutdown { try await Task.sleep(until: wake, clock: clock) }
        }
    }
}

extension OrderStream {
    /// `waybill-demo orders`: connects to the broker, streams until SIGTERM or SIGINT and returns how many orders it
    /// published; `ready` is called once a worker consumes the start queue, before the first order goes out.
    public static func run(
        _ options: OrderStreamOptions, logger: Logger, say: @escaping @Sendable (String) -> Void,
        ready: @escaping @Sendable () -> Void
    ) async throws -> Int {
        try options.validate()
        let workflow = try WorkerFeed.loadWorkflow(options.workflowFile)
        let client: AMQPClient
        do {
            client = try await options.broker.connectedClients(["waybill-demo-orders"], logger: logger)[0]
        } catch {
            throw DemoError(.brokerUnreachable, "cannot connect to RabbitMQ at \(options.broker)", cause: error)
        }
        let stream = OrderStream(
            options: options, client: client, trigger: workflow.trigger,
            startQueue: WorkerTopology.startQueue(workflow.name), say: say, ready: ready)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: stream, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            await client.close()
            throw error
        }
        await client.close()
        return stream.published
    }
}

/// `waybill-demo participants`: the simulated ERP, inventory, WMS, TMS and billing participants alone, on the shipped
/// names, for `waybill worker` processes that run elsewhere (the compose file's `participants`).
public enum StandaloneParticipants {
    /// Connects, declares the participants' queue on the commands exchange, calls `ready`, then answers commands until
    /// SIGTERM or SIGINT and returns the counters. The simulated stock is the `shape`'s (``BenchShape/checkEndless()``
    /// refuses ``BenchShape/mixed``); the orders must be of the same shape. The participants remember every reply
    /// they gave (to answer a redelivered command the same way), so their memory grows with the orders.
    public static func run(
        broker: BrokerAddress, shape: BenchShape, logger: Logger, ready: @escaping @Sendable () -> Void
    ) async throws -> ParticipantService.Statistics {
        try shape.checkEndless()
        let names = try DemoNames()
        let simulator = try shape.simulator(orders: 1)
        let client: AMQPClient
        do {
            client = try await broker.connectedClients(["waybill-demo-participants"], logger: logger)[0]
        } catch {
            throw DemoError(.brokerUnreachable, "cannot connect to RabbitMQ at \(broker)", cause: error)
        }
        var configuration = ParticipantConfiguration()
        configuration.commandsExchange = names.commandsExchange
        configuration.queue = names.participantsQueue
        let participants = ParticipantService(
            client: client, configuration: configuration, logger: logger, respond: simulator.handle)
        do {
            try await participants.declare()
            ready()
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(
                    services: [.init(service: participants, successTerminationBehavior: .gracefullyShutdownGroup)],
                    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        } catch {
            await client.close()
            throw error
        }
        await client.close()
        return participants.statistics
    }
}
