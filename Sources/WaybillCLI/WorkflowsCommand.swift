import ArgumentParser
import Foundation
import PlainText
import WaybillDefinition
import WaybillOperations

/// `waybill workflows list|show`: the workflow versions a pool's partition files (or one file) store.
struct WorkflowsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workflows",
        abstract: "The workflow versions stored in the pool (or one file), and the unfinished sagas on each.",
        discussion: """
            A saga keeps the exact definition text it started with (stored by content hash), so old versions stay \
            here while sagas still run on them.

            Examples:
              waybill workflows list
              waybill workflows show order-fulfillment@1 --source
              waybill workflows migrate --workflow order-fulfillment \\
                --from 2 --to 3 --dry-run
            """,
        subcommands: [WorkflowsListCommand.self, WorkflowsShowCommand.self, WorkflowsMigrateCommand.self]
    )
}

/// `waybill workflows list`.
struct WorkflowsListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Every stored definition: version, content hash, first seen, unfinished sagas.",
        discussion: """
            Examples:
              waybill workflows list
              waybill workflows list --json | jq '.workflows[] | select(.running > 0)'
            """
    )

    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        try Operator.run("workflows list") {
            let versions = try store.open().workflowVersions()
            Operator.print(
                output.json
                    ? PrettyJSON.render(WorkflowsView.listJSON(versions))
                    : WorkflowsView.listText(versions, now: Operator.now()))
        }
    }
}

/// `waybill workflows show`.
struct WorkflowsShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "One version: its steps, retry and timeout settings, and where its unfinished sagas are.",
        discussion: """
            WORKFLOW is NAME (the newest version), NAME@VERSION, or a content hash prefix (6+ hex digits).

            Examples:
              waybill workflows show order-fulfillment
              waybill workflows show order-fulfillment@1 --source
              waybill workflows show 3f2a9c --json
            """
    )

    @Argument(help: ArgumentHelp("NAME, NAME@VERSION or a hash prefix.", valueName: "workflow"))
    var workflow: String

    @Flag(help: "Print the stored YAML too.")
    var source = false

    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        try Operator.run("workflows show") {
            let detail = try store.open().workflowDetail(workflow)
            Operator.print(
                output.json
                    ? PrettyJSON.render(WorkflowsView.showJSON(detail))
                    : WorkflowsView.showText(detail, includeSource: source))
        }
    }
}

/// `waybill workflows migrate`.
struct WorkflowsMigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Move running and suspended sagas of one workflow version to another, through their workers.",
        discussion: """
            Each saga keeps what it did: every step of the new version takes the state of the step with the same id \
            (or the one --map names), so a command awaiting its reply, a retry timer or a wait carries on. A saga \
            can move when the step it is at exists in both versions or is mapped; new steps before it are bypassed \
            for it, new steps after it run. Refused, with nothing sent: a mapping that would lose a compensation (a \
            step that can be undone whose counterpart cannot, or has none), steps whose order changes, a target \
            version no worker stored. Refused per saga: compensating sagas, a step whose kind or fan-out changed \
            while the saga is in it, a changed wait the saga waits in, a renamed step the saga ran that can be \
            undone. --dry-run lists what would move and why the others cannot. Otherwise each saga's request goes \
            to the live worker that owns its partition (journaled there with --by and --reason), at --rate, and a \
            final re-read verifies which sagas run the new version.

            Examples:
              waybill workflows migrate --workflow order-fulfillment \\
                --from 2 --to 3 --dry-run
              waybill workflows migrate --workflow order-fulfillment \\
                --from 2 --to 3 --map await-stock=wait-for-stock \\
                --select status=suspended --reason "invoice fix (INC-7)"
            """
    )

    @Option(help: ArgumentHelp("The workflow.", valueName: "name"))
    var workflow: String

    @Option(help: ArgumentHelp("The version the sagas run now.", valueName: "version"))
    var from: Int

    @Option(help: ArgumentHelp("The version to move them to (stored by a worker that runs it).", valueName: "version"))
    var to: Int

    @Option(help: ArgumentHelp("A renamed step, OLD=NEW (repeat for more).", valueName: "old=new"))
    var map: [String] = []

    @Option(
        help: ArgumentHelp(
            "Only some sagas, KEY=VALUE: status=suspended, step=<current step>, stuck-for=1h, since=2h, owner=<worker> "
                + "(repeat to combine).", valueName: "key=value"))
    var select: [String] = []

    @Flag(help: "List what would move and why the others cannot; send nothing.")
    var dryRun = false

    @Option(help: ArgumentHelp("Why (required to migrate; written to each saga's journal).", valueName: "text"))
    var reason: String?

    @Option(help: ArgumentHelp("Who (default: your login name, else your uid).", valueName: "name"))
    var by: String?

    @Option(help: ArgumentHelp("At most this many sagas per second, e.g. 20/s.", valueName: "rate"))
    var rate: String = "20/s"

    @OptionGroup var store: StoreOptions
    @OptionGroup var broker: BrokerOptions
    @OptionGroup var format: OutputOptions

    func run() async throws {
        try await Operator.run("workflows migrate") {
            guard dryRun || !(reason ?? "").allSatisfy(\.isWhitespace) else {
                throw OperationsError(
                    .badArgument, "--reason is required to migrate: say why (it goes to each journal)")
            }
            let now = Operator.now()
            let selection = MigrationSelection(
                workflow: workflow, from: from, to: to, mapping: try MigrationSelection.mapping(map),
                filter: try MigrationSelection.filter(select, now: now))
            var options = RepairOptions()
            options.rate = rate
            let perSecond = try options.perSecond()
            let database = try store.open()
            let plan = try database.migrationPlan(
                selection, by: by ?? Operator.user, reason: reason ?? "dry run", now: now)
            if dryRun || plan.sendable.isEmpty {
                Operator.print(
                    format.json ? PrettyJSON.render(RepairView.planJSON(plan)) : RepairView.planText(plan))
                if !dryRun, !plan.refused.isEmpty { throw ExitCode(4) }
                return
            }
            let route = try store.repairRoute(database)
            let settings = try broker.settings(store: store)
            let wait = try broker.wait()
            try await route.awaitOwners(of: plan.sendable.map(\.record.row.key))
            let reporter = ProgressReporter(isTerminal: Operator.stderrIsTerminal, write: Operator.note)
            let json = format.json
            let run = try await AMQPControlChannel.with(broker: settings) { channel in
                var runner = RepairRunner(
                    inspector: database, channel: channel, route: route, timeout: wait, rate: perSecond,
                    now: Operator.now)
                runner.skipsChanged = false
                return try await runner.run(plan) { progress in
                    guard !json else { return }
                    reporter.show(progress.bar())
                    if progress.done == progress.total { reporter.finish() }
                }
            }
            let targetHash = plan.request.migration?.targetHash ?? ""
            let verified = database.verifyMigration(run, targetHash: targetHash)
            if json {
                var body: [String: JSONValue] = [:]
                if case .object(let members) = RepairView.runJSON(run) { body = members }
                body["verified"] = [
                    "migrated": .array(verified.migrated.map { .string($0.description) }),
                    "notMigrated": .array(verified.notMigrated.map { .string($0.description) }),
                ]
                Operator.print(PrettyJSON.render(.object(body)))
            } else {
                Operator.print(
                    RepairView.runText(run)
                        + "Verify: \(verified.migrated.count) of \(verified.migrated.count + verified.notMigrated.count) "
                        + "sent sagas run v\(to) now"
                        + (verified.notMigrated.isEmpty
                            ? ".\n"
                            : "; still on another version: "
                                + verified.notMigrated.prefix(10).map(\.description).joined(separator: ", ") + "\n"))
            }
            // Every selected saga runs the new version, or the exit status says some did not.
            if verified.migrated.count != plan.checks.count { throw ExitCode(4) }
        }
    }
}
