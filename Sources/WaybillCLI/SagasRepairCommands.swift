import ArgumentParser
import Foundation
import PlainText
import SagaEngine
import SagaStore
import WaybillDefinition
import WaybillOperations
import WaybillWire

/// The options every repair takes: who, why, and how (one saga, or `--where` filters in bulk).
struct RepairOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Why (required; written to the saga's journal).", valueName: "text"))
    var reason: String?

    @Option(
        help: ArgumentHelp(
            "Who (default: your login name, else your uid); written to the saga's journal.", valueName: "name"))
    var by: String?

    @Flag(help: "Show exactly what would be sent and what the engine predicts; send nothing.")
    var dryRun = false

    @Flag(
        name: .customLong("where"),
        help: "Bulk: repair every saga the filters select (frozen when the command starts) instead of one SAGA.")
    var bulk = false

    @Flag(help: "Bulk: really send (without it a bulk repair only shows what it would do).")
    var yes = false

    @Option(
        help: ArgumentHelp(
            "Bulk: at most this many requests per second, e.g. 5/s (default: no limit).", valueName: "rate"))
    var rate: String?

    @Flag(help: "Send even when the local check predicts the saga failing again at once.")
    var force = false

    @Option(help: ArgumentHelp("Bulk: only sagas whose current step is this one.", valueName: "step"))
    var atStep: String?

    @Option(help: ArgumentHelp("Bulk: at most this many sagas (default: all that match).", valueName: "n"))
    var limit: String?

    func perSecond() throws(OperationsError) -> Double? {
        try rate.map { text throws(OperationsError) in try TimeText.parseRate(text, option: "--rate") }
    }
}

/// What every repair command takes besides its own options: the saga (or `--where` filters), who and why, the pool,
/// the broker and the output format.
struct RepairTarget: ParsableArguments {
    @Argument(help: ArgumentHelp("The saga: ID or workflow/ID (omit with --where).", valueName: "saga"))
    var saga: String?

    @OptionGroup var repair: RepairOptions
    @OptionGroup var filters: CommonFilterOptions
    @OptionGroup var store: StoreOptions
    @OptionGroup var broker: BrokerOptions
    @OptionGroup var format: OutputOptions
}

/// Runs one repair command: checks locally, sends to the live owner of the saga's partition (refused at once when
/// none owns it), waits, prints the new state.
struct RepairFlow {
    var command: String
    var action: ControlMessage.Action
    var step: String?
    var output: JSONValue?
    /// `skip --branch`.
    var branch: String? = nil
    var target: RepairTarget

    var saga: String? { target.saga }
    var store: StoreOptions { target.store }
    var filters: CommonFilterOptions { target.filters }
    var broker: BrokerOptions { target.broker }
    var repair: RepairOptions { target.repair }
    var json: Bool { target.format.json }

    func run() async throws {
        try await Operator.run(command) {
            guard let reason = repair.reason, !reason.allSatisfy(\.isWhitespace) else {
                throw OperationsError(
                    .badArgument, "--reason is required: say why (it goes to the saga's journal with --by)")
            }
            let request = RepairRequest(
                action: action, step: step, output: output, branch: branch, by: repair.by ?? Operator.user,
                reason: reason, force: repair.force)
            let now = Operator.now()
            let database = try store.open()
            if repair.bulk {
                try await bulk(request, database: database, now: now)
            } else {
                try await single(request, database: database, now: now)
            }
        }
    }

    private func single(_ request: RepairRequest, database: SagaInspector, now: Timestamp) async throws {
        guard let saga else {
            throw OperationsError(
                .badArgument, "name the saga (ID or workflow/ID), or use --where with filters for a bulk repair")
        }
        if filters.narrowsAnything || repair.atStep != nil || repair.limit != nil {
            throw OperationsError(
                .badArgument, "filters select sagas in bulk: add --where, or drop them and name one saga")
        }
        let key: SagaKey
        switch try database.locate(try SagaReference(parsing: saga)) {
        case .stored(let stored):
            key = stored
        case .archived(let archived, let file):
            throw OperationsError(
                .refused,
                "saga \(archived.key) is \(archived.status.rawValue) and was archived to \(file); a finished saga has "
                    + "nothing left to repair")
        }
        guard let record = try database.saga(key) else {
            throw OperationsError(.notFound, "saga \(key) vanished; try again")
        }
        let plan = database.plan(request, records: [record], filter: nil, now: now)
        if let refusal = plan.checks.first?.refusal { throw OperationsError(.refused, refusal) }
        if repair.dryRun {
            Operator.print(json ? PrettyJSON.render(RepairView.planJSON(plan)) : RepairView.planText(plan))
            return
        }
        let wait = try broker.wait()
        let route = try store.repairRoute(database)
        let settings = try broker.settings(store: store)
        let partition = PoolDirectory.name(ofPartition: route.partition(of: key))
        try await route.awaitOwners(of: [key])
        if !json {
            Operator.note(
                "sending \(request.verb) for \(key) to the owner of partition \(partition) (\(route.queue(of: key)))…\n"
            )
        }
        let run = try await AMQPControlChannel.with(broker: settings) { channel in
            try await RepairRunner(
                inspector: database, channel: channel, route: route, timeout: wait, now: Operator.now
            )
            .run(plan)
        }
        let outcome = run.outcomes.first?.outcome ?? .failed("nothing was sent")
        let detail = try SagaShow.detail(
            database, reference: SagaReference(key), journal: 5, now: Operator.now(), store: store)
        if json {
            Operator.print(
                PrettyJSON.render([
                    "outcome": .string(outcome.label), "message": .string(outcome.message),
                    "saga": ShowView.json(detail),
                ]))
        } else {
            Operator.print("\(outcome.label) (partition \(partition)): \(outcome.message)\n\n" + ShowView.text(detail))
        }
        switch outcome {
        case .replied(let reply) where reply.status == .applied: return
        case .replied, .refusedLocally, .changedSinceSnapshot: throw ExitCode(4)
        case .timedOut, .failed: throw ExitCode(5)
        }
    }

    private func bulk(_ request: RepairRequest, database: SagaInspector, now: Timestamp) async throws {
        if let saga {
            throw OperationsError(.badArgument, "--where selects sagas by filters; drop '\(saga)' or drop --where")
        }
        let filter = try filters.filter(step: repair.atStep, limit: repair.limit, defaultLimit: nil, now: now)
        guard filter.narrows else {
            throw OperationsError(
                .badArgument,
                "--where needs at least one filter (--status, --workflow, --at-step, --stuck-for, --since, --owner) so "
                    + "it cannot sweep every saga")
        }
        let records = try database.snapshot(filter, now: now)
        let plan = database.plan(request, records: records, filter: filter, now: now)
        if repair.dryRun || plan.sendable.isEmpty {
            Operator.print(json ? PrettyJSON.render(RepairView.planJSON(plan)) : RepairView.planText(plan))
            return
        }
        guard repair.yes else {
            Operator.print(RepairView.planText(plan))
            throw OperationsError(
                .badArgument,
                "a bulk \(request.verb) sends \(plan.sendable.count) requests: check the list above, then add --yes")
        }
        let wait = try broker.wait()
        let rate = try repair.perSecond()
        let route = try store.repairRoute(database)
        let settings = try broker.settings(store: store)
        try await route.awaitOwners(of: plan.sendable.map(\.record.row.key))
        let showProgress = !json
        let reporter = ProgressReporter(isTerminal: Operator.stderrIsTerminal, write: Operator.note)
        let run = try await AMQPControlChannel.with(broker: settings) { channel in
            try await RepairRunner(
                inspector: database, channel: channel, route: route, timeout: wait, rate: rate, now: Operator.now
            ).run(plan) { progress in
                guard showProgress else { return }
                let finished = progress.done == progress.total
                // Elsewhere than on a terminal, one line per tenth of the work.
                if reporter.isTerminal || finished || progress.done % max(1, progress.total / 10) == 0 {
                    reporter.show(progress.bar())
                }
                if finished { reporter.finish() }
            }
        }
        Operator.print(json ? PrettyJSON.render(RepairView.runJSON(run)) : RepairView.runText(run))
        if run.outcomes.contains(where: { $0.outcome.label != "applied" }) { throw ExitCode(4) }
    }
}

extension CommonFilterOptions {
    /// Whether any filter was given (one-saga repairs refuse filters, to avoid a silent mix-up with --where).
    var narrowsAnything: Bool {
        status != nil || workflow != nil || stuckFor != nil || since != nil || owner != nil || newestFirst
    }
}

/// `waybill sagas retry`.
struct SagasRetryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry",
        abstract: "Retry the failed or waiting step now (or the compensation that keeps failing).",
        discussion: """
            Without --step the saga's obvious step is retried: the failed step of a suspended saga, the attempt \
            waiting for its retry timer, or the head of a failing compensation. The request goes to the live worker \
            that owns the saga's partition (refused within 2s when none does); the command waits for its answer and \
            prints the saga's new state. A retry the \
            engine would refuse in the saga's state is refused here, before anything is sent.

            Examples:
              waybill sagas retry o-1001 --reason "TMS is back (INC-123)"
              waybill sagas retry o-1001 --step ship --reason "address fixed" --by alice
              waybill sagas retry --where --status suspended --at-step ship \\
                --reason "TMS is back" --dry-run
              waybill sagas retry --where --status suspended --at-step ship \\
                --reason "TMS is back" --rate 5/s --yes
            """
    )

    @Option(help: ArgumentHelp("The step to retry (default: the obvious one).", valueName: "step"))
    var step: String?

    @OptionGroup var target: RepairTarget

    func run() async throws {
        try await RepairFlow(command: "sagas retry", action: .retry, step: step, output: nil, target: target).run()
    }
}

/// `waybill sagas skip`.
struct SagasSkipCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "skip",
        abstract: "Mark a failed step as done with a given output (or skip a compensation done by hand).",
        discussion: """
            Only a failed step of a suspended saga, or the compensation at the head of the undo queue, can be \
            skipped. --output is the JSON the step would have returned; later steps read it as \
            steps.<step>.output, so give them what they need. The local check refuses an output that makes a \
            later step fail at once (override with --force).

            A for_each step (ship, per warehouse) is skipped per branch: --output is what the skipped branch \
            would have returned, the branches that succeeded keep their outputs, and the step's output joins them \
            all. --branch names one branch (its index, or its shipment id or warehouse as `waybill sagas show` \
            prints them); without it every failed branch is skipped. The step goes on once no branch is left \
            failed. (Upgrade every worker of the pool before using --branch: an older worker skips the whole step.)

            Examples:
              waybill sagas skip o-1001 --step ship --branch wh-01 \\
                --output '{"trackingId":"MANUAL-1"}' --reason "shipped by hand"
              waybill sagas skip o-1001 --step reserve --reason "released by hand, OPS-42"
            """
    )

    @Option(help: ArgumentHelp("The step to skip.", valueName: "step"))
    var step: String

    @Option(
        help: ArgumentHelp(
            "The step's output as JSON (default {}); for a for_each step, the branch's.", valueName: "json"))
    var output: String?

    @Option(
        help: ArgumentHelp(
            "The one branch of a for_each step to skip: its index, or its item's id or warehouse.", valueName: "branch")
    )
    var branch: String?

    @OptionGroup var target: RepairTarget

    func run() async throws {
        var value: JSONValue?
        if let output {
            do {
                value = try JSONText.decode(output)
            } catch {
                Operator.note(
                    "waybill sagas skip: --output is not JSON (\(error.description)); e.g. '{\"trackingId\":\"T-1\"}'\n"
                )
                throw ExitCode(2)
            }
        }
        try await RepairFlow(
            command: "sagas skip", action: .skip, step: step, output: value, branch: branch, target: target
        ).run()
    }
}

/// `waybill sagas compensate`.
struct SagasCompensateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compensate",
        abstract: "Undo the saga now: run the compensations of its completed steps (only before the pivot).",
        discussion: """
            Examples:
              waybill sagas compensate o-1001 --reason "customer cancelled by phone"
              waybill sagas compensate --where --status running --at-step reserve \\
                --stuck-for 1h --reason "ERP outage" --dry-run
            """
    )

    @OptionGroup var target: RepairTarget

    func run() async throws {
        try await RepairFlow(command: "sagas compensate", action: .compensate, step: nil, output: nil, target: target)
            .run()
    }
}

/// `waybill sagas cancel`.
struct SagasCancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Stop the saga where it is; nothing is undone (use compensate to undo).",
        discussion: """
            Examples:
              waybill sagas cancel o-1001 --reason "duplicate order, handled in ERP"
            """
    )

    @OptionGroup var target: RepairTarget

    func run() async throws {
        try await RepairFlow(command: "sagas cancel", action: .cancel, step: nil, output: nil, target: target).run()
    }
}

/// `waybill sagas resume`.
struct SagasResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Resume a suspended or waiting saga (a retry of its obvious step).",
        discussion: """
            Examples:
              waybill sagas resume o-1001 --reason "participant fixed"
              waybill sagas resume --where --status suspended --workflow returns \\
                --reason "billing is back" --yes
            """
    )

    @OptionGroup var target: RepairTarget

    func run() async throws {
        try await RepairFlow(command: "sagas resume", action: .retry, step: nil, output: nil, target: target).run()
    }
}

/// `waybill sagas reset`.
struct SagasResetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reset",
        abstract: "Run a saga again from a step, undoing first what that step and the later ones did.",
        discussion: """
            The owner of the saga's partition undoes, last first and one at a time, every branch of STEP and of the \
            steps after it that took effect and has a compensation, then runs STEP again with new idempotency keys \
            (the participants see new commands, not repeats). Use it when a step succeeded with wrong data (a \
            reservation at the wrong warehouse, a split to redo) and the saga should go through it again. Refused \
            across a pivot already passed (those effects cannot be undone), while the saga compensates, and while \
            a command awaits its reply. --dry-run lists what would be undone.

            Examples:
              waybill sagas reset o-1001 --to reserve --reason "stock moved to wh-02, OPS-51" --dry-run
              waybill sagas reset o-1001 --to reserve --reason "stock moved to wh-02, OPS-51"
            """
    )

    @Option(help: ArgumentHelp("The step to run again.", valueName: "step"))
    var to: String

    @OptionGroup var target: RepairTarget

    func run() async throws {
        try await RepairFlow(command: "sagas reset", action: .reset, step: to, output: nil, target: target).run()
    }
}
