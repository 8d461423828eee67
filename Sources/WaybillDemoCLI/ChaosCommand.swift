import ArgumentParser
import Foundation
import Logging
import WaybillDemo

/// `waybill-demo chaos`: the worker pool under SIGKILLs, broker restarts, scale-out, a drain and hostile inputs, with
/// a steady load of orders; prints its figures and exits non-zero when a check fails (docs/chaos.md).
struct ChaosCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos",
        abstract: "Run a worker pool through crashes, broker restarts and hostile inputs; check nothing was lost.",
        discussion: """
            Not a test of the fast suite: it takes several minutes (--quick: about two) and restarts the private \
            broker, so run it alone (scripts/chaos builds and runs it). Three `waybill worker` processes (the \
            `waybill` built beside this executable) share a pool in .waybill/chaos/pool; the simulated participants \
            run in this process on the vhost waybill-chaos of the private broker (127.0.0.1:35672, \
            WAYBILL_RABBITMQ_PORT). During the load: SIGKILLs of random workers (each restarted), broker restarts \
            (scripts/rabbitmq stop, start), a fourth worker added, one killed for good, one drained with SIGTERM, \
            duplicate starts and replies, participants with latency, failures and lost replies, and hostile inputs \
            to the start, reply and control queues. Then every worker is stopped with SIGTERM and the pool's files, \
            the participants' ledger, the milestones and the dead-letter queue are checked. Exit status: 0 when \
            every check passed, 2 when one failed, 1 when the run could not be made.
            """
    )

    @Flag(help: "The smoke run: 1,000 orders at 20/s, 5 kills, 1 broker restart, 200 hostile inputs.")
    var quick = false

    @Option(help: ArgumentHelp("Orders to publish (default 10,000; 1,000 with --quick).", valueName: "n"))
    var orders: Int?

    @Option(help: ArgumentHelp("Orders published per second (default 50; 20 with --quick).", valueName: "per-second"))
    var rate: Double?

    @Option(help: ArgumentHelp("Seed of the orders, the failures, the faults and the hostile inputs.", valueName: "n"))
    var seed: UInt64 = 2025

    @Option(help: ArgumentHelp("SIGKILLs of workers, each restarted (default 20; 5 with --quick).", valueName: "n"))
    var kills: Int?

    @Option(help: ArgumentHelp("Broker restarts (default 3; 1 with --quick).", valueName: "n"))
    var brokerRestarts: Int?

    @Flag(
        help: ArgumentHelp(
            "Run on a fresh three-node RabbitMQ cluster on loopback (scripts/rabbitmq-cluster) instead of the single "
                + "private broker: the workers get every node's URL, and the node leading the most partition queues "
                + "is killed (SIGKILL) and started again instead of the broker restarts."))
    var cluster = false

    @Option(
        help: ArgumentHelp("With --cluster: kills of the leading node (default 3; 1 with --quick).", valueName: "n"))
    var nodeKills: Int?

    @Option(help: ArgumentHelp("Hostile inputs (default 1,000; 200 with --quick).", valueName: "n"))
    var hostile: Int?

    @Option(help: ArgumentHelp("Share of commands that fail by injection, 0...1.", valueName: "share"))
    var failureRate: Double = 0.05

    @Option(help: ArgumentHelp("The workflow file.", valueName: "file"))
    var workflow: String = "Workflows/order-fulfillment.yaml"

    @Option(help: ArgumentHelp("Folder for the pool, the workflow copy and the logs.", valueName: "dir"))
    var directory: String = ".waybill/chaos"

    @Option(
        help: ArgumentHelp(
            "After the load, wait this many seconds at most for every saga to end.", valueName: "seconds"))
    var settleTimeout: Int = 600

    func validate() throws {
        guard settleTimeout >= 1 else { throw ValidationError("--settle-timeout must be at least 1 second") }
    }

    func run() async throws {
        let console = Console()
        let logPath = (directory as NSString).appendingPathComponent("chaos.log")
        let logger = try console.startRun(
            "waybill-demo chaos", log: logPath, label: "waybill.chaos", level: .info, workflow: workflow)
        guard let waybill = BenchCommand.siblingWaybill() else {
            console.error(
                "waybill-demo chaos: no `waybill` executable beside this one; build both: swift build -c release "
                    + "--product waybill && swift build -c release --product waybill-demo")
            throw ExitCode(1)
        }
        let environment = ProcessInfo.processInfo.environment
        if cluster {
            try await runOnCluster(environment: environment, console: console, logger: logger, waybill: waybill)
            return
        }
        if let url = environment["WAYBILL_AMQP_URL"], !url.isEmpty, brokerRestarts ?? 1 > 0 {
            console.error(
                "waybill-demo chaos: the run restarts the private broker, not the one in WAYBILL_AMQP_URL; unset "
                    + "WAYBILL_AMQP_URL, or pass --broker-restarts 0")
            throw ExitCode(1)
        }
        let broker = try await BrokerSession.open(
            for: "waybill-demo chaos", environment: environment, virtualHost: "waybill-chaos", console: console,
            logger: logger)
        let options = options(
            broker: broker.address, brokerScript: PrivateBroker.locate(environment: environment), waybill: waybill)
        let status = await execute(options, console: console, logger: logger)
        await broker.close(keepRunning: false, console: console)
        if status != 0 { throw ExitCode(status) }
    }

    /// The run on a fresh private cluster, which is stopped afterwards.
    private func runOnCluster(
        environment: [String: String], console: Console, logger: Logger, waybill: String
    ) async throws {
        guard let script = PrivateCluster.locate(environment: environment) else {
            console.error(
                "waybill-demo chaos: --cluster needs scripts/rabbitmq-cluster; run from the repository root, or set "
                    + "WAYBILL_CLUSTER_SCRIPT")
            throw ExitCode(1)
        }
        guard brokerRestarts ?? 0 == 0 else {
            console.error("waybill-demo chaos: --broker-restarts does not apply with --cluster; use --node-kills")
            throw ExitCode(1)
        }
        console.say("Starting a fresh three-node RabbitMQ cluster: \(script.script) start")
        let say: @Sendable (String) -> Void = { console.say("  \($0)") }
        let address: BrokerAddress
        do {
            address = try await script.start(virtualHost: "waybill-chaos", output: say)
        } catch {
            console.error("waybill-demo chaos: the cluster did not start: \(error)")
            try? await script.stop(output: say)
            throw ExitCode(1)
        }
        var options = options(broker: address, brokerScript: nil, waybill: waybill)
        options.cluster = script
        options.brokerRestarts = 0
        options.nodeKills = nodeKills ?? (quick ? 1 : 3)
        let status = await execute(options, console: console, logger: logger)
        console.say("Stopping the cluster: \(script.script) stop")
        try? await script.stop(output: say)
        if status != 0 { throw ExitCode(status) }
    }

    /// The run's options from the command line, on `broker`.
    private func options(broker: BrokerAddress, brokerScript: PrivateBroker?, waybill: String) -> ChaosOptions {
        var options = ChaosOptions(broker: broker, brokerScript: brokerScript, workerExecutable: waybill)
        if quick { options.useQuickPreset() }
        if let orders { options.orders = orders }
        if let rate { options.rate = rate }
        if let kills { options.kills = kills }
        if let brokerRestarts { options.brokerRestarts = brokerRestarts }
        if let hostile { options.hostile = hostile }
        options.seed = seed
        options.failureRate = failureRate
        options.workflowFile = workflow
        options.directory = directory
        options.settleTimeout = .seconds(settleTimeout)
        return options
    }

    /// Runs it and prints the report; returns the exit status (0 passed, 2 a check failed, 1 the run failed).
    private func execute(_ options: ChaosOptions, console: Console, logger: Logger) async -> Int32 {
        let logPath = (directory as NSString).appendingPathComponent("chaos.log")
        #if DEBUG
        console.say("note: this is a debug build; scripts/chaos builds in release mode")
        #endif
        console.say(
            "Waybill chaos run\(quick ? " --quick" : "")\(cluster ? " --cluster" : "") on \(options.broker), seed "
                + "\(seed); log in \(logPath)")
        do {
            let report = try await ChaosRun.run(options, logger: logger) { console.say($0) }
            console.say("")
            console.say(report.text)
            return report.passed ? 0 : 2
        } catch {
            console.error("waybill-demo chaos: \(error)")
            console.error("The log is in \(logPath); the workers' logs are in \(directory)/logs.")
            return 1
        }
    }
}
