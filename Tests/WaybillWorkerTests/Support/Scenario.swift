import AMQPTransport
import Foundation
import Logging
import SagaEngine
import SagaStore
import ServiceLifecycle
import Synchronization
import Testing
import Tracing
import WaybillDefinition
import WaybillHTTP
import WaybillTestSupport
import WaybillWire

@testable import WaybillWorker

/// Names that isolate one test on the shared broker: its own workflow name (hence its own start and partition
/// queues), trigger, commands, events and dead-letter exchanges, and worker ids.
struct TestNames: Sendable {
    let tag: String

    init() {
        tag = String(UUID().uuidString.prefix(8).lowercased())
    }

    var workflow: String { "of-\(tag)" }
    var triggerExchange: String { "waybill.test.\(tag).orders" }
    var commandsExchange: String { "waybill.test.\(tag).commands" }
    var eventsExchange: String { "waybill.test.\(tag).events" }
    var deadLetterExchange: String { "waybill.test.\(tag).dead-letter" }
    /// Where the test publishes the messages its wait steps wait for.
    var signalExchange: String { "waybill.test.\(tag).signals" }
    var deadLetterQueue: String { "waybill.test.\(tag).dead-letter" }
    var participantQueue: String { "waybill.test.\(tag).participant" }
    var observerQueue: String { "waybill.test.\(tag).observer" }
    func workerId(_ index: Int) -> String { "w\(index)-\(tag)" }
    /// The prefix of the test pool's partition queues.
    var poolName: String { "waybill.test.\(tag)" }
    /// The test pool's partition count: a few, so that two workers share them and tests declare few queues.
    static let partitions = 4
    /// The test pool's partition queues.
    var partitionQueues: [String] { (0..<Self.partitions).map { PoolQueues.partition($0, pool: poolName) } }
}

/// Changes to the test's copy of `Workflows/order-fulfillment.yaml`.
struct WorkflowEdits: Sendable {
    /// Extra keys per step id, inserted right after `- id: <step>` (e.g. `timeout: 300ms`).
    var stepKeys: [String: [String]] = [:]
    /// Text replacements applied first; each must match.
    var replacements: [(old: String, new: String)] = []

    static let none = WorkflowEdits()

    /// These edits with more keys for some steps.
    func adding(_ keys: [String: [String]]) -> WorkflowEdits {
        var edits = self
        edits.stepKeys.merge(keys) { $0 + $1 }
        return edits
    }

    /// The order-fulfillment workflow with the test's name and trigger exchange, and these edits.
    func apply(to text: String, names: TestNames) throws -> String {
        var text = text
        for replacement in replacements {
            try #require(text.contains(replacement.old), "the workflow contains '\(replacement.old)'")
            text = text.replacingOccurrences(of: replacement.old, with: replacement.new)
        }
        var lines = text.components(separatedBy: "\n")
        let name = try #require(lines.firstIndex { $0.hasPrefix("name:") }, "the workflow has a name line")
        lines[name] = "name: \(names.workflow)"
        let exchange = try #require(
            lines.firstIndex { $0.trimmingCharacters(in: .whitespaces).hasPrefix("exchange:") },
            "the workflow has a trigger exchange line")
        lines[exchange] = "  exchange: \(names.triggerExchange)"
        for (step, keys) in stepKeys {
            let line = try #require(
                lines.firstIndex { $0.trimmingCharacters(in: .whitespaces).hasPrefix("- id: \(step)") },
                "the workflow has a step \(step)")
            lines.insert(contentsOf: keys.map { "    \($0)" }, at: line + 1)
        }
        return lines.joined(separator: "\n")
    }
}

/// A worker running in this process under a `ServiceGroup`, and a read-only view of its pool's files.
final class RunningWorker: Sendable {
    let configuration: WorkerConfiguration
    let worker: SagaWorker
    let group: ServiceGroup
    let task: Task<Void, any Error>
    /// The pool's sagas (every worker of a scenario shares the pool).
    let store: PoolReader

    var id: String { configuration.workerId }

    /// Starts a worker and returns once it consumes (or throws if it stops or takes more than 60 s to get there).
    /// With `endpoints`, the worker's metrics go to `endpoints.registry` and the endpoints run in its group.
    static func start(
        _ configuration: WorkerConfiguration, batchObserver: (@Sendable (WorkerBatchTiming) -> Void)? = nil,
        endpoints: (@Sendable (SagaWorker) -> WorkerEndpoints)? = nil, metrics: WorkerMetrics = WorkerMetrics(),
        tracer: any Tracer = NoOpTracer()
    ) async throws -> RunningWorker {
        let logger = TestBroker.logger("worker.\(configuration.workerId)")
        let worker = SagaWorker(
            configuration: configuration, logger: logger, metrics: metrics, tracer: tracer,
            batchObserver: batchObserver)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: worker)]
        if let endpoints { services.append(.init(service: endpoints(worker))) }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [], logger: logger))
        let (exits, exited) = AsyncStream<String>.makeStream()
        let task = Task {
            do {
                try await group.run()
                exited.yield("the worker returned before it was running")
            } catch {
                exited.yield("the worker failed: \(error)")
                throw error
            }
        }
        do {
            try await within(60, "worker \(configuration.workerId) to run") {
                try await withThrowingTaskGroup(of: Void.self) { waits in
                    waits.addTask { await worker.waitUntilRunning() }
                    waits.addTask {
                        for await reason in exits { throw WorkerFailure(message: reason) }
                    }
                    defer { waits.cancelAll() }
                    try await waits.next()
                }
            }
        } catch {
            task.cancel()
            throw error
        }
        let store = PoolReader(directory: configuration.dataDirectory, partitions: TestNames.partitions)
        return RunningWorker(configuration: configuration, worker: worker, group: group, task: task, store: store)
    }

    private init(
        configuration: WorkerConfiguration, worker: SagaWorker, group: ServiceGroup, task: Task<Void, any Error>,
        store: PoolReader
    ) {
        self.configuration = configuration
        self.worker = worker
        self.group = group
        self.task = task
        self.store = store
    }

    /// Stops the worker gracefully (as SIGTERM would) and waits for it to finish.
    func stop() async throws {
        await group.triggerGracefulShutdown()
        let task = task
        try await within(60, "worker \(id) to stop") { try await task.value }
        store.close()
    }
}

struct WorkerFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// One end-to-end test's world: unique names, a workflow directory, a publishing client, the participant, the events
/// observer and the workers. ``Scenario/run(edits:stock:script:_:)`` builds it, runs the test and tears it all down.
final class Scenario: Sendable {
    let names: TestNames
    /// The test's files: the workflow copy, the pool's data directory, worker logs. Removed when the scenario is released.
    let scratch: TemporaryDirectory
    let client: AMQPClient
    let participant: Participant
    let observer: EventObserver
    private let background: Task<Void, Never>
    private let workers = Mutex<[RunningWorker]>([])

    /// Builds the world, runs `body`, stops every worker and deletes what the test declared.
    ///
    /// `bindings` are the participant's binding keys on the commands exchange (`#`: it takes every command).
    static func run<T: Sendable>(
        edits: WorkflowEdits = .none, stock: @escaping Participant.Stock = Participant.oneWarehouse,
        bindings: [String] = ["#"], script: @escaping Participant.Script = { _ in nil },
        _ body: (Scenario) async throws -> T
    ) async throws -> T {
        let scenario = try await Scenario(edits: edits, stock: stock, bindings: bindings, script: script)
        do {
            let result = try await body(scenario)
            try await scenario.tearDown()
            return result
        } catch {
            try? await scenario.tearDown()
            throw error
        }
    }

    private init(
        edits: WorkflowEdits, stock: @escaping Participant.Stock, bindings: [String],
        script: @escaping Participant.Script
    ) async throws {
        let names = TestNames()
        self.names = names
        scratch = try TemporaryDirectory()
        let workflows = scratch.url.appendingPathComponent("Workflows")
        try FileManager.default.createDirectory(at: workflows, withIntermediateDirectories: true)
        try Self.writeWorkflow(edits, names: names, to: workflows)

        client = try await TestBroker.connectedClient("waybill-test-\(names.tag)")
        for exchange in [names.commandsExchange, names.eventsExchange] {
            try await client.declareExchange(ExchangeDeclaration(name: exchange, kind: .topic))
        }
        participant = Participant(client: client, queue: names.participantQueue, script: script, stock: stock)
        observer = EventObserver(client: client, queue: names.observerQueue)
        let (participant, observer, commands, events) = (
            participant, observer, names.commandsExchange, names.eventsExchange
        )
        background = Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await participant.run(bindingTo: commands, keys: bindings) }
                group.addTask { try? await observer.run(bindingTo: events) }
            }
        }
        // The participant and the observer must be bound before the first command or event is published.
        try await eventually("participant and observer consuming") { [client] in
            let queues = [names.participantQueue, names.observerQueue]
            for queue in queues {
                guard let info = try? await client.inspectQueue(queue), info.consumerCount > 0 else { return false }
            }
            return true
        }
    }

    var workflowsDirectory: String { scratch.file("Workflows") }
    /// The pool's data directory, shared by the scenario's workers.
    var dataDirectory: String { scratch.file("pool") }
    /// The pool's sagas, read from its partition files.
    var pool: PoolReader { PoolReader(directory: dataDirectory, partitions: TestNames.partitions) }

    /// The index of step `id` in the shipped order-fulfillment workflow (the tests' workflow).
    static func stepIndex(_ id: String) throws -> Int {
        let url = Repository.workflow("order-fulfillment.yaml")
        let definition = try WorkflowLoader.load(yaml: String(contentsOf: url, encoding: .utf8), file: url.path)
        return try #require(definition.stepIndex(of: id), "the workflow has a step \(id)")
    }

    /// Replaces the test's workflow file (workers read it when they start).
    func rewriteWorkflow(_ edits: WorkflowEdits) throws {
        try Self.writeWorkflow(edits, names: names, to: scratch.url.appendingPathComponent("Workflows"))
    }

    private static func writeWorkflow(_ edits: WorkflowEdits, names: TestNames, to directory: URL) throws {
        let original = try String(contentsOf: Repository.workflow("order-fulfillment.yaml"), encoding: .utf8)
        try edits.apply(to: original, names: names).write(
            to: directory.appendingPathComponent("order-fulfillment.yaml"), atomically: true, encoding: .utf8)
    }

    /// The configuration of worker number `index` of this test.
    func configuration(worker index: Int = 1) throws -> WorkerConfiguration {
        var configuration = WorkerConfiguration()
        configuration.workerId = names.workerId(index)
        configuration.amqpURL = try #require(TestBroker.url)
        configuration.dataDirectory = dataDirectory
        configuration.partitions = TestNames.partitions
        configuration.poolName = names.poolName
        configuration.rebalanceInterval = .milliseconds(200)
        configuration.workflowsDirectory = workflowsDirectory
        configuration.commandsExchange = names.commandsExchange
        configuration.eventsExchange = names.eventsExchange
        configuration.deadLetterExchange = names.deadLetterExchange
        configuration.deadLetterQueue = names.deadLetterQueue
        configuration.timerPollInterval = .milliseconds(20)
        return configuration
    }

    /// Starts worker number `index` in this process.
    @discardableResult
    func startWorker(
        _ index: Int = 1, batchObserver: (@Sendable (WorkerBatchTiming) -> Void)? = nil,
        endpoints: (@Sendable (SagaWorker) -> WorkerEndpoints)? = nil, metrics: WorkerMetrics = WorkerMetrics(),
        tracer: any Tracer = NoOpTracer(), adjust: (inout WorkerConfiguration) -> Void = { _ in }
    ) async throws -> RunningWorker {
        var configuration = try configuration(worker: index)
        adjust(&configuration)
        let worker = try await RunningWorker.start(
            configuration, batchObserver: batchObserver, endpoints: endpoints, metrics: metrics, tracer: tracer)
        workers.withLock { $0.append(worker) }
        return worker
    }

    /// Waits until `workers` share the pool's partitions evenly, and returns each partition's owner.
    @discardableResult
    func waitForSharing(_ workers: [RunningWorker]) async throws -> [Int: String] {
        let share = TestNames.partitions / workers.count
        try await eventually("\(workers.count) workers sharing the partitions") {
            workers.allSatisfy { $0.worker.ownedPartitions.count == share }
        }
        var owners: [Int: String] = [:]
        for worker in workers {
            for partition in worker.worker.ownedPartitions { owners[partition] = worker.id }
        }
        return owners
    }

    /// Takes `count` messages off the test's dead-letter queue (waiting up to 30 s) and acknowledges them.
    func deadLetters(_ count: Int) async throws -> [InboundDelivery] {
        let consumer = try await client.consume(queue: names.deadLetterQueue, prefetch: UInt16(max(1, count)))
        let dead = try await within(30, "\(count) dead letters") {
            var received: [InboundDelivery] = []
            for try await delivery in consumer {
                received.append(delivery)
                if received.count == count { break }
            }
            return received
        }
        for delivery in dead { client.ack(delivery.deliveryTag) }
        await client.cancel(consumer)
        return dead
    }

    /// Publishes start messages (one confirm wait for all of them) to the test's trigger exchange.
    func publishStarts(_ bodies: [Data], messageIds: [String?]? = nil) async throws {
        let messages = bodies.enumerated().map { index, body in
            OutboundMessage(
                exchange: names.triggerExchange, routingKey: "order.placed", body: body, mandatory: true,
                persistent: true, contentType: "application/json", messageID: messageIds?[index] ?? nil)
        }
        for chunk in stride(from: 0, to: messages.count, by: 500) {
            let outcomes = try await client.publish(Array(messages[chunk..<min(chunk + 500, messages.count)]))
            let confirmed = outcomes.allSatisfy { $0.isConfirmed }
            #expect(confirmed, "start messages confirmed: \(outcomes)")
        }
    }

    /// Places one order.
    func placeOrder(_ id: String, lines: [(String, Int)] = [("sku-1", 1)], messageId: String? = nil) async throws {
        try await publishStarts(
            [Data(JSONText.encode(OrderJSON.order(id, lines: lines)).utf8)], messageIds: [messageId])
    }

    func key(_ sagaId: String) -> SagaKey { SagaKey(workflow: names.workflow, id: sagaId) }

    /// Waits until the saga is stored with `status` in `worker`'s database, and returns it.
    @discardableResult
    func waitForStatus(
        _ sagaId: String, _ status: SagaStatus, in worker: RunningWorker, seconds: Double = 30
    ) async throws -> StoredSaga {
        let key = key(sagaId)
        do {
            try await eventually("saga \(sagaId) to be \(status.rawValue)", seconds: seconds) {
                try worker.store.saga(key)?.instance.status == status
            }
        } catch let error as TimedOut {
            let saga = try? worker.store.saga(key)
            let journal = (try? worker.store.journal(of: key))?.map {
                "\($0.entry.kind) \($0.entry.step ?? "-") \($0.entry.detail)"
            }
            Issue.record(
                """
                \(error): it is \(saga?.instance.status.rawValue ?? "not stored") at \(saga?.currentStep ?? "-")
                journal: \(journal?.joined(separator: "\n  ") ?? "-")
                participant saw: \(participant.received(saga: sagaId).map(\.summary))
                events: \(observer.types(of: sagaId))
                """)
            throw error
        }
        return try #require(try worker.store.saga(key))
    }

    /// Waits until the saga's events include its terminal milestone `type`, so every event before it has arrived.
    func waitForEvent(_ type: String, of sagaId: String, seconds: Double = 30) async throws {
        try await observer.waitFor(type, of: sagaId, seconds: seconds)
    }

    /// Stops the workers, cancels the participant and the observer, and deletes the test's queues and exchanges (its
    /// files go with ``scratch``).
    func tearDown() async throws {
        let running = workers.withLock { workers in
            defer { workers.removeAll() }
            return workers
        }
        var failure: (any Error)?
        for worker in running {
            do {
                try await worker.stop()
            } catch {
                failure = failure ?? error
            }
        }
        background.cancel()
        let queues =
            [
                names.participantQueue, names.observerQueue, names.deadLetterQueue,
                WorkerTopology.startQueue(names.workflow),
            ] + names.partitionQueues
        for queue in queues {
            // Deleting a queue that was never declared closes the declaring channel; it is reopened on next use.
            if (try? await client.inspectQueue(queue)) != nil { _ = try? await client.deleteQueue(queue) }
        }
        for exchange in [
            names.commandsExchange, names.eventsExchange, names.deadLetterExchange, names.triggerExchange,
            names.signalExchange,
        ] {
            try? await client.deleteExchange(exchange)
        }
        await client.close()
        if let failure { throw failure }
    }
}
