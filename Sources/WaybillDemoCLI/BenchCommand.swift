import ArgumentParser
import Foundation
import Logging
import WaybillDemo

/// `waybill bench`: the end-to-end figures (throughput, the pattern ceiling, step overhead, worker memory), measured
/// in one run on one broker.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure throughput, the pattern ceiling, step overhead and memory on a local RabbitMQ.",
        discussion: """
            Prints figures; it is not a test. In one run on the same broker (found like `waybill demo` finds it, on \
            the vhost waybill-bench of the private broker), for orders of one shape (--shape; two-shipment by \
            default: 7 commands and 7 replies per saga):
              1. end-to-end throughput: completed order sagas per second, worker (--workers N: a pool of N workers \
            on one data directory; in this process, or `waybill worker` processes with --worker-processes) and \
            simulated participants in this process, default durability (synchronous=FULL, persistent messages, \
            publisher confirms);
              2. the pattern ceiling: the same messages per saga replayed with the raw AMQP client, no engine, no \
            SQLite, in rounds alternating with 1; the ratio of 1 to 2; messages per saga of both side by side; \
            CPU per saga, the broker's CPU share and the machine's idle share during both;
              3. step overhead: a reply consumed by the worker -> its next command confirmed, p50/p99, at half the \
            rate of 1, with the workers in this process; then its floor, the same through the pattern replay;
              4. memory: peak RSS of a `waybill worker` child process holding 100,000 sagas in flight whose \
            participants never reply.
            docs/bench.md explains every figure. Build in release mode for meaningful figures: swift build -c \
            release (it builds waybill and waybill-demo).
            """
    )

    @Flag(help: "Small runs that finish within a couple of minutes (2 rounds of 3,000 orders, 8 s of step overhead).")
    var quick = false

    @Option(help: ArgumentHelp("Orders per throughput run (default 10,000; 3,000 with --quick).", valueName: "n"))
    var orders: Int?

    @Option(
        help: ArgumentHelp(
            "Sagas the memory run holds in flight (default 100,000).", valueName: "n"))
    var memorySagas: Int?

    @Option(
        help: ArgumentHelp(
            "Workers of the end-to-end and step-overhead runs, 1...16 (the memory run has one).", valueName: "n"))
    var workers: Int = 1

    @Option(
        help: ArgumentHelp(
            "The orders: two-shipment (default), one-shipment or mixed (the demo's orders; docs/bench.md).",
            valueName: "name"))
    var shape: String = BenchShape.twoShipment.rawValue

    @Flag(
        help: ArgumentHelp(
            "Run the throughput rounds' workers as `waybill worker` processes (the step-overhead run keeps them in "
                + "this process)."))
    var workerProcesses = false

    @Option(
        help: ArgumentHelp(
            "Run only the step-overhead run, at this many orders per second (and the memory run unless "
                + "--skip-memory).", valueName: "n"))
    var overheadRate: Double?

    @Flag(help: "Skip the memory run.")
    var skipMemory = false

    @Option(help: ArgumentHelp("The workflow file.", valueName: "file"))
    var workflow: String = "Workflows/order-fulfillment.yaml"

    @Option(
        help: ArgumentHelp(
            "A participants' limits file for the workers (participants.yaml; docs/limits.md): compare a run with "
                + "limits that never bind against one without.", valueName: "file"))
    var limits: String?

    @Option(help: ArgumentHelp("Folder for databases, logs and workflow copies.", valueName: "dir"))
    var directory: String = ".waybill/bench"

    func validate() throws {
        if let orders, orders < 100 { throw ValidationError("--orders must be at least 100") }
        if let memorySagas, memorySagas < 1 { throw ValidationError("--memory-sagas must be at least 1") }
        if let overheadRate, !(overheadRate >= 1) { throw ValidationError("--overhead-rate must be at least 1") }
        if let limits {
            do {
                try BenchOptions.checkLimits(limits)
            } catch {
                throw ValidationError(error.message)
            }
        }
        do {
            try DemoOptions.checkWorkers(workers)
            _ = try BenchShape(parsing: shape)
        } catch {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        let console = Console()
        let logPath = (directory as NSString).appendingPathComponent("bench.log")
        let logger = try console.startRun(
            "waybill bench", log: logPath, label: "waybill.bench", level: .warning, workflow: workflow)
        let broker = try await BrokerSession.open(
            for: "waybill bench", virtualHost: "waybill-bench", console: console, logger: logger)
        var options = BenchOptions(broker: broker.address, quick: quick)
        if let orders { options.orders = orders }
        if let memorySagas { options.memorySagas = memorySagas }
        options.workers = workers
        options.shape = (try? BenchShape(parsing: shape)) ?? .twoShipment
        options.workerProcesses = workerProcesses
        options.workflowFile = workflow
        options.limitsFile = limits
        options.directory = directory
        options.measureMemory = !skipMemory
        options.overheadRate = overheadRate
        options.waybillExecutable = Self.siblingWaybill()
        #if DEBUG
        console.say("note: this is a debug build; build with -c release for meaningful figures")
        #endif
        let flags =
            " --shape \(options.shape.rawValue)" + (quick ? " --quick" : "")
            + (workers == 1 ? "" : " --workers \(workers)")
            + (workerProcesses ? " --worker-processes" : "")
            + (overheadRate.map { " --overhead-rate \(Int($0))" } ?? "") + (limits.map { " --limits \($0)" } ?? "")
        console.say(
            "Waybill bench\(flags) on \(broker.address), \(ProcessInfo.processInfo.activeProcessorCount) CPUs; "
                + "log in \(logPath)")
        var status: Int32 = 0
        do {
            let report = try await BenchRunner.run(options, logger: logger) { console.say($0) }
            console.say("")
            console.say(report.text)
        } catch {
            console.error("waybill bench: \(error)")
            console.error("The log is in \(logPath).")
            status = 1
        }
        await broker.close(keepRunning: false, console: console)
        if status != 0 { throw ExitCode(status) }
    }
}

extension BenchCommand {
    /// The `waybill` executable built beside this one (the memory run and --worker-processes start it as `waybill
    /// worker`), or `nil`.
    static func siblingWaybill() -> String? {
        guard let own = Bundle.main.executablePath else { return nil }
        let path = ((own as NSString).deletingLastPathComponent as NSString).appendingPathComponent("waybill")
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }
}
