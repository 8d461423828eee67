import ArgumentParser
import Foundation
import PlainText
import SagaEngine
import WaybillDefinition
import WaybillOperations
import WaybillWorker

/// `waybill reconcile`: compare what ended sagas say with what the participants say.
struct ReconcileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: "Ask the participants whether the effects of ended sagas are what the sagas say, and report drift.",
        discussion: """
            Each step with a `verify` query is asked about its effect, by the forward command's idempotency key: a \
            completed saga expects every effect it kept applied, a compensated or cancelled saga every effect it \
            undid (or whose step failed) undone or absent; a suspended saga's answers are reported, not judged. \
            Every finding is written to its saga's journal (through the worker that owns it) and kept with the pass \
            in the pool's reconcile/ folder, so `waybill reconcile report` shows it again. With --repair, an effect \
            a saga undid that is still applied gets its compensation again, under its idempotency key; the rest is \
            for an operator.

            Queries go straight to the participants, at most --rate per second and never more than half of a \
            participant's limits (participants.yaml beside the workflows), so the workers' own commands keep the \
            rest.

            Examples:
              waybill reconcile --since 24h --dry-run
              waybill reconcile --since 24h --workflow order-fulfillment --rate 50/s
              waybill reconcile --since 2h --repair
              waybill reconcile report --json | jq '.groups'
            """,
        subcommands: [ReconcileRunCommand.self, ReconcileReportCommand.self],
        defaultSubcommand: ReconcileRunCommand.self
    )
}

/// `waybill reconcile [run]`.
struct ReconcileRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a reconciliation pass (the default).")

    @Option(
        help: ArgumentHelp(
            "Sagas that ended (or were suspended) since then: a duration ago (24h) or a UTC time (default 24h).",
            valueName: "time"))
    var since = "24h"

    @Option(help: ArgumentHelp("Only this workflow's sagas.", valueName: "name"))
    var workflow: String?

    @Option(help: ArgumentHelp("At most this many queries per second (default 100/s).", valueName: "rate"))
    var rate = "100/s"

    @Option(help: ArgumentHelp("How long to wait for each answer (default 10s).", valueName: "duration"))
    var wait = "10s"

    @Flag(help: "Count the sagas and queries a pass would send; send nothing.")
    var dryRun = false

    @Flag(help: "Send the compensation again for every effect a saga undid that is still applied.")
    var repair = false

    @Option(help: ArgumentHelp("Who runs it (default: your login name, else your uid).", valueName: "name"))
    var by: String?

    @Flag(help: "Print the report as JSON.")
    var json = false

    @OptionGroup var store: StoreOptions
    @OptionGroup var broker: BrokerOptions

    func run() async throws {
        try await Operator.run("reconcile") {
            let now = Operator.now()
            let inspector = try store.open()
            guard inspector.pool != nil else {
                throw OperationsError(
                    .badArgument,
                    "a reconciliation reads a pool and keeps its report there: give its data directory with "
                        + "--data-dir instead of --db")
            }
            let configuration = try store.workerConfiguration()
            let reconciler = Reconciler(
                inspector: inspector, route: try store.repairRoute(inspector),
                commandsExchange: configuration.commandsExchange,
                since: try TimeText.parseTime(since, option: "--since", now: now), workflow: workflow,
                rate: try TimeText.parseRate(rate, option: "--rate"),
                timeout: try TimeText.parseDuration(wait, option: "--wait"),
                limits: try Self.limits(in: configuration.workflowsDirectory), repair: repair,
                by: by ?? Operator.user, now: Operator.now)
            let report: ReconcileReport
            if dryRun {
                report = try await reconciler.plan()
            } else {
                let reporter = ProgressReporter(isTerminal: Operator.stderrIsTerminal, write: Operator.note)
                let showProgress = !json
                report = try await reconciler.run(broker: try broker.settings(store: store)) { done, total in
                    guard showProgress else { return }
                    reporter.show(ProgressBar.text(done: done, total: total, width: 30) + " sagas")
                }
                reporter.finish()
                try ReconcileReports(dataDirectory: inspector.path).save(report)
            }
            Operator.print(json ? PrettyJSON.render(ReconcileView.json(report)) : ReconcileView.text(report))
            // Drift left for an operator exits 4, like a repair that did not apply.
            if report.findings.contains(where: { $0.repair != "repaired" }) { throw ExitCode(4) }
        }
    }

    /// The participants' limits beside the workflows, read as the workers read them (a pass takes at most half of
    /// each); none when the folder has no limits file.
    static func limits(in directory: String) throws(OperationsError) -> ParticipantLimits? {
        guard FileManager.default.fileExists(atPath: directory) else { return nil }
        do {
            return try DefinitionRegistry(directory: directory).limits
        } catch {
            throw OperationsError(
                .badArgument,
                "cannot read the workflows and limits in \(directory) as the workers do; check them with waybill "
                    + "validate, or give the workers' config with --config",
                cause: error)
        }
    }
}

/// `waybill reconcile report`.
struct ReconcileReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Show a reconciliation pass again: the latest, or --pass ID.",
        discussion: """
            Findings are grouped by workflow, step, participant and kind, then listed one by one with what to do.

            Examples:
              waybill reconcile report
              waybill reconcile report --pass 20261206T174000.123Z --json
            """
    )

    @Option(help: ArgumentHelp("The pass to show (default: the latest).", valueName: "id"))
    var pass: String?

    @Flag(help: "List the passes kept.")
    var list = false

    @Flag(help: "Print the report as JSON.")
    var json = false

    @OptionGroup var pool: PoolOptions

    func run() throws {
        try Operator.run("reconcile report") {
            let reports = ReconcileReports(dataDirectory: try pool.dataDirectory())
            if list {
                Operator.print(reports.ids().map { $0 + "\n" }.joined())
                return
            }
            let report = try reports.load(pass)
            Operator.print(json ? PrettyJSON.render(ReconcileView.json(report)) : ReconcileView.text(report))
        }
    }
}
