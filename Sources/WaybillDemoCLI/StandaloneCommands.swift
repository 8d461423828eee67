import ArgumentParser
import Foundation
import Logging
import WaybillDemo

/// `waybill-demo participants`: the simulated participants alone, until SIGTERM, for workers that run elsewhere (the
/// compose file's `participants` service).
struct ParticipantsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "participants",
        abstract: "Run only the simulated ERP, inventory, WMS, TMS and billing participants, until SIGTERM or Ctrl-C.",
        discussion: """
            For `waybill worker` processes that run elsewhere with the shipped names (Docker/compose.yaml runs it \
            as its `participants` service). The broker: WAYBILL_AMQP_URL (password in WAYBILL_AMQP_PASSWORD), or \
            the private one on the vhost waybill-callgrind, as `waybill-demo feed` finds it. They answer at once and \
            inject no failures; feed them orders of the same --shape (`waybill-demo orders`). SIGTERM stops them \
            after the replies in progress went out, with exit status 0. They remember every reply they gave, so \
            their memory grows with the orders answered. Logs go to standard error.
            """
    )

    @Option(help: ArgumentHelp("The stock to answer from: two-shipment (default) or one-shipment.", valueName: "name"))
    var shape: String = BenchShape.twoShipment.rawValue

    @Option(
        help: ArgumentHelp("Create this file once the participants' queue is bound (health checks).", valueName: "file")
    )
    var readyFile: String?

    @Option(help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error.", valueName: "level"))
    var logLevel: String = "warning"

    func validate() throws {
        try Logger.Level.parse(logLevel)
        do {
            try BenchShape(parsing: shape).checkEndless()
        } catch {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        let stock = try BenchShape(parsing: shape)
        try await ReadyFile(path: readyFile).runOnFeedBroker(
            "waybill-demo participants", label: "waybill.participants", logLevel: logLevel
        ) { broker, console, logger, ready in
            let statistics = try await StandaloneParticipants.run(
                broker: broker, shape: stock, logger: logger,
                ready: {
                    ready.create()
                    console.say("answering commands on \(broker) until stopped")
                })
            console.say(
                "stopped: answered \(statistics.commands) commands (\(statistics.replies) replies, "
                    + "\(statistics.silences) silences)")
        }
    }
}

/// `waybill-demo orders`: orders at a steady rate until SIGTERM, without participants and without waiting for the
/// sagas (the compose file's `feeder` service).
struct OrdersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "orders",
        abstract: "Publish orders at a steady rate until SIGTERM or Ctrl-C; no participants, no waiting for sagas.",
        discussion: """
            For `waybill worker` processes and `waybill-demo participants` that run elsewhere with the shipped \
            names (Docker/compose.yaml runs it as its `feeder` service). The broker is found as `waybill-demo \
            participants` finds it. It waits until a worker consumes the workflow's start queue, then publishes \
            --rate orders per second, each with a saga id of its own (<prefix>-1, -2, ...; a new random prefix per \
            run unless --prefix), and prints a line a minute. SIGTERM stops it, with exit status 0, once the \
            publish in progress is confirmed. Logs go to standard error.
            """
    )

    @Option(help: ArgumentHelp("Orders per second (above 0, at most 1000).", valueName: "per-second"))
    var rate: Double = 1

    @Option(help: ArgumentHelp("The orders: two-shipment (default) or one-shipment.", valueName: "name"))
    var shape: String = BenchShape.twoShipment.rawValue

    @Option(
        help: ArgumentHelp(
            "Saga ids are <prefix>-1, -2, ... (default: orders-<8 random hex digits>).", valueName: "prefix"))
    var prefix: String?

    @Option(help: ArgumentHelp("The workflow file the workers run.", valueName: "file"))
    var workflow: String = "Workflows/order-fulfillment.yaml"

    @Option(
        help: ArgumentHelp(
            "Create this file once a worker consumes the start queue (health checks).", valueName: "file"))
    var readyFile: String?

    @Option(help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error.", valueName: "level"))
    var logLevel: String = "warning"

    /// The stream's options on `broker`.
    func streamOptions(broker: BrokerAddress) throws(DemoError) -> OrderStreamOptions {
        var options = OrderStreamOptions(broker: broker)
        options.rate = rate
        options.shape = try BenchShape(parsing: shape)
        if let prefix { options.prefix = prefix }
        options.workflowFile = workflow
        return options
    }

    func validate() throws {
        try Logger.Level.parse(logLevel)
        do {
            // The broker is found in run(); the options' checks do not look at it.
            try streamOptions(broker: BrokerAddress(url: "")).validate()
        } catch {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        try await ReadyFile(path: readyFile).runOnFeedBroker(
            "waybill-demo orders", label: "waybill.orders", logLevel: logLevel
        ) { broker, console, logger, ready in
            let published = try await OrderStream.run(
                try streamOptions(broker: broker), logger: logger, say: { console.say($0) },
                ready: { ready.create() })
            console.say("stopped: published \(published) orders")
        }
    }
}

/// A file whose existence says that a long-running command is ready, for a container's health check (the images
/// have no client to ask the command itself); removed when the command ends. No path: nothing is written.
struct ReadyFile: Sendable {
    var path: String?

    /// Creates the file (empty), and its folder; a failure is printed and does not stop the command.
    func create() {
        guard let path else { return }
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty {
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
        if !FileManager.default.createFile(atPath: path, contents: nil) {
            Console().error("cannot create the ready file \(path); health checks will report the command unhealthy")
        }
    }

    /// Removes the file, if it is there.
    func remove() {
        guard let path else { return }
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Runs a long-running command on the feed vhost of the broker `waybill-demo` finds: opens the session, runs
    /// `body` until it returns (SIGTERM ends it), prints its error as `command: error`, removes this file, closes
    /// the session, and exits 1 when `body` failed.
    func runOnFeedBroker(
        _ command: String, label: String, logLevel: String,
        _ body: (BrokerAddress, Console, Logger, ReadyFile) async throws -> Void
    ) async throws {
        // A file left by an earlier run (a container restarted) must not report this one ready before it is.
        remove()
        let console = Console()
        let logger = Logger.standardError(label: label, level: logLevel)
        let broker = try await BrokerSession.open(
            for: command, virtualHost: BrokerSession.feedVirtualHost, console: console, logger: logger)
        var status: Int32 = 0
        do {
            try await body(broker.address, console, logger, self)
        } catch {
            console.error("\(command): \(error)")
            status = 1
        }
        remove()
        await broker.close(keepRunning: false, console: console)
        if status != 0 { throw ExitCode(status) }
    }
}

extension Logger.Level {
    /// Refuses a name that is not a level, as a one-line usage error.
    static func parse(_ name: String) throws {
        guard Logger.Level(rawValue: name) != nil else {
            throw ValidationError("unknown log level '\(name)'; use trace, debug, info, notice, warning or error")
        }
    }
}

extension Logger {
    /// A logger writing to standard error at `level` (a name ``Logger/Level/parse(_:)`` accepted), for commands that
    /// run as services and print their progress on standard output.
    static func standardError(label: String, level: String) -> Logger {
        var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = Logger.Level(rawValue: level) ?? .warning
        return logger
    }
}
