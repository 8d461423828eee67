import ArgumentParser
import Foundation
import Logging
import PlainText
import WaybillDemo

/// `waybill demo`: the main job on one machine. Finds or starts RabbitMQ, runs a pool of workers with the shipped
/// workflow and simulated ERP/WMS/TMS/billing participants in this process, feeds them orders, shows progress and a
/// summary.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a pool of workers, simulated participants and orders on a local RabbitMQ; print a summary.",
        discussion: """
            The broker: WAYBILL_AMQP_URL (password in WAYBILL_AMQP_PASSWORD) when set; otherwise the project's \
            private RabbitMQ on 127.0.0.1:35672 (WAYBILL_RABBITMQ_PORT), which is started with scripts/rabbitmq \
            when nothing answers there (and stopped at the end unless --keep-running). On the private broker the \
            demo uses a vhost of its own, waybill-demo.

            The workers (3 by default, --workers) run in this process on one pool: a fresh data directory, \
            .waybill/demo/pool, whose partitions they share; each is a worker of its own (demo-1, demo-2, ...), as \
            separate `waybill worker` processes would be. Each run drains the demo's own queues on that vhost, \
            replaces the pool and logs to .waybill/demo/demo.log. Once the orders ended, customers return part of \
            the completed ones (one in ten orders by default, --returns): the returns workflow runs on a pool of its \
            own, .waybill/demo/returns/pool, with the same participants; --keep-running then keeps that pool's \
            workers running. Run it from the repository root (it reads \
            Workflows/order-fulfillment.yaml and Workflows/returns.yaml), or use scripts/demo, which also installs \
            what is missing and builds.
            """
    )

    @Option(help: ArgumentHelp("Orders to publish.", valueName: "n"))
    var orders: Int = 1000

    @Option(help: ArgumentHelp("Returns sent after the orders (default: one in ten orders).", valueName: "n"))
    var returns: Int?

    @Option(
        help: ArgumentHelp(
            "Orders published per second (default: as fast as the workers keep up).", valueName: "per-second"))
    var rate: Double?

    @Option(help: ArgumentHelp("Share of commands that fail by injection, 0...1.", valueName: "share"))
    var failureRate: Double = 0.02

    @Option(
        help: ArgumentHelp(
            "Share of undos the participants drop (and a twentieth of it of effects they lose), 0...1: the drift the "
                + "reconciliation at the end finds.", valueName: "share"))
    var driftRate: Double = 0.05

    @Flag(help: "Skip the reconciliation with the participants' records once the orders ended.")
    var noReconcile = false

    @Option(help: ArgumentHelp("Warehouses in the catalogue, 3...5.", valueName: "n"))
    var warehouses: Int = 4

    @Option(help: ArgumentHelp("Seed of the catalogue, the orders and the injected failures.", valueName: "n"))
    var seed: UInt64 = 2025

    @Option(help: ArgumentHelp("Workers in the pool, 1...16.", valueName: "n"))
    var workers: Int = 3

    @Flag(help: "After the summary, keep the workers, the participants and the broker running until Ctrl-C.")
    var keepRunning = false

    @Option(help: ArgumentHelp("The workflow file to run.", valueName: "file"))
    var workflow: String = "Workflows/order-fulfillment.yaml"

    @Option(help: ArgumentHelp("Folder for the pool, the log and the workflow copy.", valueName: "dir"))
    var directory: String = ".waybill/demo"

    @Option(help: ArgumentHelp("Give up waiting for the sagas after this many seconds.", valueName: "seconds"))
    var timeout: Int = 600

    @Option(
        help: ArgumentHelp(
            "How long a backorder waits for stock before its lines are cancelled (the shipped workflow says 7d).",
            valueName: "seconds"))
    var backorderDeadline: Int = 15

    @Option(
        help: ArgumentHelp("Level of the log file: trace, debug, info, notice, warning, error.", valueName: "level"))
    var logLevel: String = "info"

    func validate() throws {
        try Logger.Level.parse(logLevel)
        guard timeout >= 1 else { throw ValidationError("--timeout must be at least 1 second") }
        guard backorderDeadline >= 1 else {
            throw ValidationError("--backorder-deadline must be at least 1 second, got \(backorderDeadline)")
        }
        if let returns, returns < 0 { throw ValidationError("--returns must be 0 or more, got \(returns)") }
        do {
            try DemoOptions.checkWorkers(workers)
        } catch {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        let console = Console()
        let logPath = (directory as NSString).appendingPathComponent("demo.log")
        let logger = try console.startRun(
            "waybill demo", log: logPath, label: "waybill.demo", level: Logger.Level(rawValue: logLevel) ?? .info,
            workflow: workflow)
        let environment = ProcessInfo.processInfo.environment
        let broker = try await BrokerSession.open(
            for: "waybill demo", environment: environment, virtualHost: BrokerSession.demoVirtualHost, console: console,
            logger: logger)

        var options = DemoOptions(broker: broker.address)
        options.orders = orders
        options.returns = returns
        options.workers = workers
        options.rate = rate
        options.failureRate = failureRate
        options.driftRate = driftRate
        options.reconcile = !noReconcile
        options.warehouses = warehouses
        options.seed = seed
        options.keepRunning = keepRunning
        options.workflowFile = workflow
        options.directory = directory
        options.timeout = .seconds(timeout)
        options.backorderDeadline = .seconds(backorderDeadline)
        options.handleSignals = true
        options.progressInterval = console.isTerminal ? .milliseconds(200) : .seconds(2)
        let names = try DemoNames()
        let workerIds = (1...workers).map { names.workerId($0) }.joined(separator: ", ")
        console.say(
            "Running \(workers == 1 ? "1 worker" : "\(workers) workers") (\(workerIds)) on one pool "
                + "(\(options.dataDirectory)/; workflow copy in \(directory)/, log in \(logPath)) and simulated ERP, "
                + "inventory, \(warehouses) WMS, TMS and billing participants in this process.")
        let rateText = rate.map { "\(Console.number($0)) per second" } ?? "as fast as the workers keep up"
        console.say(
            "Publishing \(orders) orders (1-6 lines over \(warehouses) warehouses, some short stock, "
                + "\(Console.number(failureRate * 100))% of commands failing by injection), \(rateText).")
        if failureRate > 0 {
            console.say(
                "Some injected failures are lost replies: those sagas wait for the 30 s reply timeout, then retry.")
        }
        if options.reconcile {
            console.say(
                "Participants drop \(Console.number(driftRate * 100))% of undos and lose a few effects on purpose; "
                    + "once the orders ended, a reconciliation asks them about every effect, repairs what it can and "
                    + "reports the rest.")
        }
        if options.returnCount > 0 {
            console.say(
                "Then customers return up to \(options.returnCount) of the completed orders (every tenth has a "
                    + "closed account, so its credit is refused and the return is undone).")
        }
        console.say("")

        let progress = ProgressReporter(isTerminal: console.isTerminal, write: Console.write)
        var status: Int32 = 0
        do {
            let summary = try await DemoRunner.run(
                options, logger: logger, progress: { progress.show(progress.isTerminal ? $0.bar() : $0.plainLine) },
                summary: { summary in
                    progress.finish()
                    console.say(summary.text)
                    if keepRunning {
                        console.say("")
                        console.say(
                            "Keeping the workers and participants running (--keep-running); Ctrl-C stops them.")
                    }
                })
            if !summary.everySagaEnded || summary.leakedReservations > 0 || summary.duplicateEffects > 0
                || summary.returns.map({ !$0.everyReturnEnded || !$0.leaks.isEmpty || !$0.duplicateEffects.isEmpty })
                    == true
            {
                status = 2
            }
        } catch {
            progress.finish()
            console.error("waybill demo: \(error)")
            console.error("The log is in \(logPath).")
            status = 1
        }
        await broker.close(keepRunning: keepRunning, console: console)
        if status != 0 { throw ExitCode(status) }
    }
}

/// The broker the demo runs on, and whether the demo started it.
struct BrokerSession {
    /// The demo's vhost on the private broker.
    static let demoVirtualHost = "waybill-demo"
    /// The vhost of the private broker for `waybill-demo feed`, `participants` and `orders`, which serve a `waybill
    /// worker` someone else runs there (scripts/callgrind-worker).
    static let feedVirtualHost = "waybill-callgrind"

    var address: BrokerAddress
    var started: PrivateBroker?

    /// ``open(environment:virtualHost:console:logger:)`` for the command named `command`: a failure is printed as
    /// `<command>: <error>` and ends the command with exit code 1.
    static func open(
        for command: String, environment: [String: String] = ProcessInfo.processInfo.environment,
        virtualHost: String, console: Console, logger: Logger
    ) async throws -> BrokerSession {
        do {
            return try await open(environment: environment, virtualHost: virtualHost, console: console, logger: logger)
        } catch {
            console.error("\(command): \(error)")
            throw ExitCode(1)
        }
    }

    /// Uses `WAYBILL_AMQP_URL`, or the private broker (started when it does not answer) with `virtualHost` (created
    /// with `scripts/rabbitmq ctl` when missing).
    static func open(
        environment: [String: String], virtualHost: String, console: Console, logger: Logger
    ) async throws -> BrokerSession {
        if let url = environment["WAYBILL_AMQP_URL"], !url.isEmpty {
            let address = BrokerAddress(url: url, password: environment["WAYBILL_AMQP_PASSWORD"])
            console.say("Using the RabbitMQ at \(address) (WAYBILL_AMQP_URL).")
            guard await address.isReachable(logger: logger) else {
                throw DemoError(
                    .brokerUnreachable,
                    "no RabbitMQ answers at \(address); check WAYBILL_AMQP_URL and WAYBILL_AMQP_PASSWORD, or unset "
                        + "WAYBILL_AMQP_URL to use the private broker")
            }
            return BrokerSession(address: address)
        }
        let port = PrivateBroker.port(environment: environment)
        let script = PrivateBroker.locate(environment: environment)
        var session = BrokerSession(address: PrivateBroker.address(port: port, virtualHost: virtualHost))
        if await PrivateBroker.address(port: port).isReachable(logger: logger) {
            console.say("Using the RabbitMQ that answers on 127.0.0.1:\(port).")
        } else {
            guard let script else {
                throw DemoError(
                    .brokerUnreachable,
                    "no RabbitMQ answers on 127.0.0.1:\(port), and scripts/rabbitmq is not here to start one: run "
                        + "from the repository root (or set WAYBILL_RABBITMQ_SCRIPT), or set WAYBILL_AMQP_URL")
            }
            console.say("No RabbitMQ answers on 127.0.0.1:\(port); starting the private one: \(script.script) start")
            try await script.start { console.say("  \($0)") }
            session.started = script
        }
        if await !session.address.isReachable(logger: logger) {
            guard let script else {
                throw DemoError(
                    .brokerUnreachable,
                    "the vhost '\(virtualHost)' is not usable on 127.0.0.1:\(port) and scripts/rabbitmq is not here "
                        + "to create it (rabbitmqctl add_vhost \(virtualHost); set_permissions -p \(virtualHost) "
                        + "guest '.*' '.*' '.*')")
            }
            console.say("Creating the demo's vhost: \(script.script) ctl add_vhost \(virtualHost) (+ set_permissions)")
            try await script.ensureVirtualHost(virtualHost) { console.say("  \($0)") }
        }
        return session
    }

    /// Stops the broker the demo started, unless asked to keep it.
    func close(keepRunning: Bool, console: Console) async {
        guard let started else { return }
        if keepRunning {
            console.say("The private RabbitMQ keeps running (--keep-running); stop it with: \(started.script) stop")
            return
        }
        console.say("Stopping the private RabbitMQ the demo started: \(started.script) stop")
        do {
            try await started.stop { console.say("  \($0)") }
        } catch {
            console.error("waybill demo: \(error)")
        }
    }
}

/// Standard output and error for people.
final class Console: Sendable {
    /// Whether standard output is a terminal (then progress is a bar redrawn in place).
    let isTerminal = isatty(STDOUT_FILENO) == 1

    /// Prints a line to standard output.
    func say(_ line: String) {
        Self.write(line + "\n")
    }

    /// Prints a line to standard error.
    func error(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// The start every `waybill-demo` command shares: opens the run's log file and checks that the workflow file can
    /// be read. On failure it prints `command: reason` on standard error and exits with status 1.
    func startRun(
        _ command: String, log path: String, label: String, level: Logger.Level, workflow: String
    ) throws -> Logger {
        let logger: Logger
        do {
            let handler = try FileLogHandler(path: path, label: label, level: level)
            logger = Logger(label: label) { handler.withLabel($0) }
        } catch {
            self.error("\(command): \(error)")
            throw ExitCode(1)
        }
        guard FileManager.default.isReadableFile(atPath: workflow) else {
            self.error(
                "\(command): cannot read the workflow \(workflow); run from the repository root or pass --workflow FILE"
            )
            throw ExitCode(1)
        }
        return logger
    }

    /// Writes `text` to standard output as it is.
    @Sendable static func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    /// `2`, `2.5`, `0.25`: a number without trailing zeros.
    static func number(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e15 { return String(Int(value)) }
        var text = String(format: "%.3f", value)
        while text.hasSuffix("0") { text.removeLast() }
        return text
    }
}
