import AMQPTransport
import ChildProcess
import Foundation
import Logging
import SagaStore
import Synchronization
import WaybillDefinition
import WaybillWire
import WaybillWorker

/// The benchmark's memory run: a `waybill worker` child process takes `memorySagas` orders whose first command
/// nobody answers, so every saga stays in flight (waiting for its reply, then retrying); the probe reads the child's
/// peak resident set from `/proc/<pid>/status` (VmHWM) once every saga has sent its first command.
struct MemoryProbe {
    var options: BenchOptions
    var executable: String
    var logger: Logger

    struct Result {
        var peak: Int?
        var sagas: Int
        var rampUp: Duration?
    }

    func run(say: @escaping @Sendable (String) -> Void) async throws -> Result {
        let names = try DemoNames(namespace: "bench-memory")
        let directory = (options.directory as NSString).appendingPathComponent("memory")
        let workflowsDirectory = (directory as NSString).appendingPathComponent("workflows")
        let dataDirectory = (directory as NSString).appendingPathComponent("pool")
        let logPath = (directory as NSString).appendingPathComponent("worker.log")
        let source = try String(contentsOfFile: options.workflowFile, encoding: .utf8)
        let text = try names.rewrite(workflowText: source, file: options.workflowFile)
        let workflow = try WorkflowLoader.load(yaml: text, file: options.workflowFile)
        let manager = FileManager.default
        if manager.fileExists(atPath: directory) { try manager.removeItem(atPath: directory) }
        try manager.createDirectory(atPath: workflowsDirectory, withIntermediateDirectories: true)
        try text.write(
            toFile: (workflowsDirectory as NSString).appendingPathComponent("order-fulfillment.yaml"), atomically: true,
            encoding: .utf8)

        let client = try AMQPClient(
            configuration: try options.broker.amqpConfiguration(name: "waybill-bench-memory"), logger: logger)
        try await client.connect()
        let silentQueue = names.participantsQueue
        let queues =
            [WorkerTopology.startQueue(workflow.name)]
            + names.partitionQueues(count: PoolDirectory.defaultPartitionCount) + [silentQueue]
        func removeTopology() async {
            for queue in queues { _ = try? await client.deleteQueue(queue) }
            for exchange in [
                workflow.trigger.exchange, names.commandsExchange,
                names.eventsExchange, names.deadLetterExchange,
            ] {
                try? await client.deleteExchange(exchange)
            }
            _ = try? await client.deleteQueue(names.deadLetterQueue)
        }
        // Drained, not deleted, at the start: see `DemoStage.clearLeftovers()`.
        for queue in queues {
            _ = await QueueDrain.drain(queue, on: client)
        }
        try await client.declareExchange(ExchangeDeclaration(name: names.commandsExchange, kind: .topic))
        _ = try await client.declareQueue(QueueDeclaration(name: silentQueue))
        try await client.bind(QueueBinding(queue: silentQueue, exchange: names.commandsExchange, bindingKey: "#"))

        let child = try startWorker(
            names: names, dataDirectory: dataDirectory, workflowsDirectory: workflowsDirectory, logPath: logPath)
        do {
            let result = try await measure(
                child: child, client: client, workflow: workflow, silentQueue: silentQueue, logPath: logPath, say: say)
            await Self.stop(child)
            await removeTopology()
            await client.close()
            try? manager.removeItem(atPath: directory)
            return result
        } catch {
            await Self.stop(child)
            await removeTopology()
            await client.close()
            throw error
        }
    }

    private func startWorker(
        names: DemoNames, dataDirectory: String, workflowsDirectory: String, logPath: String
    ) throws -> ChildProcess {
        var environment = ProcessInfo.processInfo.environment
        environment["WAYBILL_AMQP_URL"] = options.broker.url
        if let password = options.broker.password { environment["WAYBILL_AMQP_PASSWORD"] = password }
        environment["WAYBILL_WORKER_ID"] = names.workerId(1)
        environment["WAYBILL_DATA_DIRECTORY"] = dataDirectory
        environment["WAYBILL_POOL_NAME"] = names.poolName
        environment["WAYBILL_WORKFLOWS"] = workflowsDirectory
        environment["WAYBILL_COMMANDS_EXCHANGE"] = names.commandsExchange
        environment["WAYBILL_EVENTS_EXCHANGE"] = names.eventsExchange
        environment["WAYBILL_DEAD_LETTER_EXCHANGE"] = names.deadLetterExchange
        environment["WAYBILL_DEAD_LETTER_QUEUE"] = names.deadLetterQueue
        environment["WAYBILL_HTTP_ADDRESS"] = "127.0.0.1:0"
        do {
            return try ChildProcess(
                executable: executable, arguments: ["worker", "--log-level", "warning"], environment: environment,
                output: logPath)
        } catch {
            throw DemoError(.childProcess, "cannot start \(executable) worker", cause: error)
        }
    }

    private func measure(
        child: ChildProcess, client: AMQPClient, workflow: WorkflowDefinition, silentQueue: String, logPath: String,
        say: @escaping @Sendable (String) -> Void
    ) async throws -> Result {
        // Wait for the worker to declare its topology and consume its start queue.
        let startQueue = WorkerTopology.startQueue(workflow.name)
        let ready = ContinuousClock.now + .seconds(60)
        while true {
            if let ended = child.ended {
                throw DemoError(
                    .childProcess, "the worker child exited early (\(ended)); see \(logPath):\n\(Self.tail(logPath))")
            }
            if let info = try? await client.inspectQueue(startQueue), info.consumerCount > 0 { break }
            guard ContinuousClock.now < ready else {
                throw DemoError(.childProcess, "the worker child did not start consuming within 60 s; see \(logPath)")
            }
            try await Task.sleep(for: .milliseconds(200))
        }

        let started = SagaIdSet()
        let consumer = try await client.consume(queue: silentQueue, prefetch: 5000)
        let target = options.memorySagas
        let clock = ContinuousClock()
        let begin = clock.now
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await delivery in consumer {
                    if let saga = delivery.properties.headers[WireHeader.sagaId]?.stringValue {
                        started.insert(saga)
                    }
                    client.ack(delivery.deliveryTag, multiple: true)
                }
            }
            defer { group.cancelAll() }
            let publisher = OrderPublisher(client: client, trigger: workflow.trigger, monitor: nil)
            let orders = options.shape.orders(target, prefix: "mem")
            var next = 0
            var lastReport = clock.now
            let deadline = begin + options.phaseTimeout
            while true {
                let count = started.count
                if count >= target { break }
                if let ended = child.ended {
                    throw DemoError(
                        .childProcess, "the worker child exited (\(ended)); see \(logPath):\n\(Self.tail(logPath))")
                }
                if clock.now >= deadline { break }
                // Keep the broker's start queue short: publish ahead of the worker by at most 5,000 orders.
                if next < orders.count && next - count < 5000 {
                    let end = min(orders.count, next + 1000)
                    try await publisher.publish(Array(orders[next..<end]))
                    next = end
                    continue
                }
                if clock.now - lastReport >= .seconds(10) {
                    let rss = Self.status(child.pid)["VmRSS"].map { " · RSS \($0 / 1024) MB" } ?? ""
                    say("      \(count) sagas in flight\(rss)")
                    lastReport = clock.now
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            let count = started.count
            let peak = Self.status(child.pid)["VmHWM"].map { $0 * 1024 }
            let rampUp = clock.now - begin
            if let peak {
                say("      \(count) sagas in flight after \(rampUp.readable) · peak RSS \(peak / 1_048_576) MB")
            }
            return Result(peak: peak, sagas: count, rampUp: count >= target ? rampUp : nil)
        }
    }

    /// The `kB` fields of `/proc/<pid>/status` (VmRSS, VmHWM, ...).
    static func status(_ pid: Int32) -> [String: Int] {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return [:] }
        var fields: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let value = parts[1].trimmingCharacters(in: .whitespaces)
            guard value.hasSuffix(" kB"), let kilobytes = Int(value.dropLast(3)) else { continue }
            fields[String(parts[0])] = kilobytes
        }
        return fields
    }

    /// SIGTERM, then SIGKILL after 30 s; returns once the child has ended, or at once when the task is cancelled (the
    /// child then got SIGKILL).
    static func stop(_ child: ChildProcess) async {
        guard child.ended == nil else { return }
        child.send(SIGTERM)
        if (try? await child.waitForExit(timeout: .seconds(30))) == nil {
            child.send(SIGKILL)
            _ = try? await child.waitForExit()
        }
    }

    static func tail(_ path: String) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "" }
        return text.split(separator: "\n").suffix(15).joined(separator: "\n")
    }
}

/// Saga ids seen, shared between the consuming task and the probe.
private final class SagaIdSet: Sendable {
    private let ids = Mutex(Set<String>())

    func insert(_ id: String) {
        ids.withLock { _ = $0.insert(id) }
    }

    var count: Int { ids.withLock { $0.count } }
}
