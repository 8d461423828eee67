import ArgumentParser
import Foundation
import Logging
import WaybillDemo

/// `waybill-demo feed`: orders and simulated participants for a `waybill worker` someone else runs, e.g. under
/// valgrind (scripts/callgrind-worker).
struct FeedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feed",
        abstract: "Feed orders to a `waybill worker` you run, with the simulated participants; wait until they end.",
        discussion: """
            For measuring a worker from outside (scripts/callgrind-worker runs one under valgrind). Start \
            `waybill worker` with the shipped names (exchanges, pool name, Workflows/order-fulfillment.yaml) on a \
            vhost of its own; this command runs the simulated participants and a monitor on the same broker (found \
            like `waybill demo` finds it, on the vhost waybill-callgrind of the private broker), waits until a \
            worker consumes the workflow's start queue, feeds the orders and waits until every saga ended. The last \
            line reads `completed N of M sagas in T s`; the exit status is 1 when not every saga completed.
            """
    )

    @Option(help: ArgumentHelp("Orders to feed.", valueName: "n"))
    var orders: Int = 1000

    @Option(help: ArgumentHelp("Sagas in flight at once.", valueName: "n"))
    var inFlight: Int = 200

    @Option(
        help: ArgumentHelp(
            "The orders: two-shipment (default), one-shipment or mixed (docs/bench.md).", valueName: "name"))
    var shape: String = BenchShape.twoShipment.rawValue

    @Option(help: ArgumentHelp("The workflow file the worker runs.", valueName: "file"))
    var workflow: String = "Workflows/order-fulfillment.yaml"

    @Option(help: ArgumentHelp("Folder for the log.", valueName: "dir"))
    var directory: String = ".waybill/feed"

    func validate() throws {
        guard orders >= 1 else { throw ValidationError("--orders must be at least 1") }
        guard inFlight >= 1 else { throw ValidationError("--in-flight must be at least 1") }
        do {
            _ = try BenchShape(parsing: shape)
        } catch {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        let console = Console()
        let logPath = (directory as NSString).appendingPathComponent("feed.log")
        let logger = try console.startRun(
            "waybill-demo feed", log: logPath, label: "waybill.feed", level: .warning, workflow: workflow)
        let broker = try await BrokerSession.open(
            for: "waybill-demo feed", virtualHost: BrokerSession.feedVirtualHost, console: console, logger: logger)
        var options = FeedOptions(broker: broker.address)
        options.shape = (try? BenchShape(parsing: shape)) ?? .twoShipment
        options.orders = orders
        options.inFlight = inFlight
        options.workflowFile = workflow
        var status: Int32 = 0
        do {
            let result = try await WorkerFeed.run(options, logger: logger) { console.say($0) }
            let seconds =
                Double(result.elapsed.components.seconds) + Double(result.elapsed.components.attoseconds) / 1e18
            console.say(
                "completed \(result.completed) of \(result.orders) sagas in \(Console.number((seconds * 10).rounded() / 10)) s"
            )
            if result.completed != result.orders { status = 1 }
        } catch {
            console.error("waybill-demo feed: \(error)")
            console.error("The log is in \(logPath).")
            status = 1
        }
        await broker.close(keepRunning: false, console: console)
        if status != 0 { throw ExitCode(status) }
    }
}
