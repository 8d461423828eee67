import ArgumentParser
import Foundation
import SagaEngine
import SagaStore
import WaybillDefinition
import WaybillOperations

/// `waybill sagas ...`: find why an order is stuck and repair it.
struct SagasCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sagas",
        abstract: "Find stuck orders, see why, and repair them.",
        discussion: """
            Reads open every partition file of the pool's data directory read-only (--data-dir, default \
            .waybill/pool), so they work while the workers are stopped; --db FILE reads one file instead. Repairs \
            are sent to the live worker that owns the saga's partition, which applies them and records who did it \
            and why; without an owner they are refused within 2s.

            Start here:
              waybill sagas stuck          unfinished sagas by why they wait
              waybill sagas show o-1001    timeline, pending command, why stuck
              waybill sagas retry o-1001 --reason "TMS is back"
            """,
        subcommands: [
            SagasListCommand.self, SagasShowCommand.self, SagasHistoryCommand.self, SagasStuckCommand.self,
            SagasStatsCommand.self, SagasRetryCommand.self, SagasSkipCommand.self, SagasCompensateCommand.self,
            SagasCancelCommand.self, SagasResumeCommand.self, SagasResetCommand.self,
        ]
    )
}

/// `waybill sagas list`.
struct SagasListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List sagas, oldest progress first, with filters.",
        discussion: """
            Rows are sorted by last progress, then workflow, then saga id, so the same query gives the same order. \
            --step is the step at the saga's cursor (where it is now).

            Examples:
              waybill sagas list --status suspended
              waybill sagas list --status active --stuck-for 15m --owner w1
              waybill sagas list --workflow order-fulfillment --step release --json
            """
    )

    @OptionGroup var store: StoreOptions
    @OptionGroup var filters: CommonFilterOptions

    @Option(help: ArgumentHelp("Only sagas whose current step is this one.", valueName: "step"))
    var step: String?

    @Option(help: ArgumentHelp("At most this many rows (default 50).", valueName: "n"))
    var limit: String?

    @OptionGroup var output: OutputOptions

    func run() throws {
        try Operator.run("sagas list") {
            let now = Operator.now()
            let filter = try filters.filter(step: step, limit: limit, defaultLimit: 50, now: now)
            let page = try store.open().list(filter, now: now)
            Operator.print(
                output.json
                    ? PrettyJSON.render(ListView.json(page, filter: filter, now: now))
                    : ListView.text(page, filter: filter, now: now))
        }
    }
}

/// `waybill sagas show`.
struct SagasShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show one saga: header, step timeline, compensation, and why it is stuck.",
        discussion: """
            SAGA is the saga id (the order id) or workflow/ID when the id exists in two workflows. The timeline \
            shows each step and branch with its status, attempts (n of max), time taken, last error, the pending \
            command (routing key, message id, sent at, reply queue) and the next timer. A saga archived after \
            archive_after is read from the pool's archive; the header names its day file.

            --json prints {schemaVersion, saga, input, diagnosis, steps[] (with output and branches[] with output), \
            compensation, strayTimers, recentJournal}; under one schemaVersion fields are only added.

            Examples:
              waybill sagas show o-1001
              waybill sagas show order-fulfillment/o-1001 --json | jq .diagnosis
            """
    )

    @Argument(help: ArgumentHelp("The saga: ID or workflow/ID.", valueName: "saga"))
    var saga: String

    @OptionGroup var store: StoreOptions

    @Option(help: ArgumentHelp("Journal lines to include at the end (default 5).", valueName: "n"))
    var journal = 5

    @Option(help: ArgumentHelp("No progress for this long counts as stuck (default 15m).", valueName: "duration"))
    var stuckFor = "15m"

    @OptionGroup var output: OutputOptions

    func run() throws {
        try Operator.run("sagas show") {
            let now = Operator.now()
            let policy = StuckPolicy(noProgressAfter: try TimeText.parseDuration(stuckFor, option: "--stuck-for"))
            let database = try store.open()
            let detail = try SagaShow.detail(
                database, reference: try SagaReference(parsing: saga), journal: max(0, journal), now: now,
                policy: policy, store: store)
            Operator.print(output.json ? PrettyJSON.render(ShowView.json(detail)) : ShowView.text(detail))
        }
    }
}

/// Loading what `show` needs.
enum SagaShow {
    static func detail(
        _ database: SagaInspector, reference: SagaReference, journal: Int, now: Timestamp,
        policy: StuckPolicy = StuckPolicy(), store: StoreOptions
    ) throws(OperationsError) -> SagaDetail {
        try database.detail(
            reference, journal: journal, now: now, policy: policy,
            poolName: database.pool == nil ? nil : try store.resolvedPoolName())
    }
}

/// `waybill sagas history`.
struct SagasHistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Print a saga's journal, oldest first; --follow keeps printing new lines.",
        discussion: """
            The journal is the audit trail: every start, reply, timer, operator repair (with who and why) and \
            ignored or rejected event. With --follow the command polls the file and stops once the saga has \
            finished; with --json it prints one JSON object per line.

            Examples:
              waybill sagas history o-1001
              waybill sagas history o-1001 --follow
              waybill sagas history o-1001 --json | jq '.entries[].actor'
            """
    )

    @Argument(help: ArgumentHelp("The saga: ID or workflow/ID.", valueName: "saga"))
    var saga: String

    @OptionGroup var store: StoreOptions

    @Flag(help: "Keep printing new journal lines until the saga finishes (Ctrl-C to stop earlier).")
    var follow = false

    @Option(help: ArgumentHelp("How often --follow polls (default 1s).", valueName: "duration"))
    var interval = "1s"

    @OptionGroup var output: OutputOptions

    func run() throws {
        try Operator.run("sagas history") {
            let pause = try TimeText.parseDuration(interval, option: "--interval")
            let database = try store.open()
            let key: SagaKey
            switch try database.locate(try SagaReference(parsing: saga)) {
            case .stored(let stored):
                key = stored
            case .archived(let archived, _):
                // A saga that finished long ago is in the pool's archive, journal and all; it will not move again.
                let lines = archived.journalLines
                Operator.print(
                    output.json
                        ? PrettyJSON.render(HistoryView.json(lines, key: archived.key))
                        : HistoryView.text(lines, key: archived.key, now: Operator.now()))
                return
            }
            var lines = try database.journal(of: key)
            if !follow {
                Operator.print(
                    output.json
                        ? PrettyJSON.render(HistoryView.json(lines, key: key))
                        : HistoryView.text(lines, key: key, now: Operator.now()))
                return
            }
            if output.json {
                for line in lines { Operator.print(PrettyJSON.line(HistoryView.lineJSON(line, key: key))) }
            } else {
                Operator.print(HistoryView.table(lines, now: Operator.now()))
            }
            var last = lines.last?.id ?? 0
            while true {
                if let record = try database.saga(key), record.row.status.isTerminal {
                    lines = try database.journal(of: key, afterId: last)
                    emit(lines, key: key)
                    if !output.json {
                        Operator.note("saga \(key) is \(record.row.status.rawValue); stopped following\n")
                    }
                    return
                }
                Thread.sleep(forTimeInterval: Double(pause.milliseconds) / 1000)
                lines = try database.journal(of: key, afterId: last)
                emit(lines, key: key)
                last = lines.last?.id ?? last
            }
        }
    }

    private func emit(_ lines: [JournalLine], key: SagaKey) {
        guard !lines.isEmpty else { return }
        if output.json {
            for line in lines { Operator.print(PrettyJSON.line(HistoryView.lineJSON(line, key: key))) }
        } else {
            Operator.print(HistoryView.followLines(lines))
        }
    }
}

/// `waybill sagas stuck`.
struct SagasStuckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stuck",
        abstract: "Classify every unfinished saga by why it waits; count and oldest per class.",
        discussion: """
            Classes, first match wins: compensation failing; retries exhausted / suspended; waiting for a reply \
            past its timeout; timer overdue (is a worker running?); retrying; no progress for longer than \
            --stuck-for; on schedule (not stuck). --class lists the sagas of one class with why each is there. \
            --group-by puts every stuck saga in groups by the error code that keeps it stuck, its step or its \
            workflow, largest first. --code and --since narrow --class or --group-by to one error code, or to \
            sagas whose last progress is recent (a new problem rather than an old one).

            Examples:
              waybill sagas stuck
              waybill sagas stuck --class suspended --limit 100
              waybill sagas stuck --group-by code
              waybill sagas stuck --group-by step --code carrier_rejected --since 1h
              waybill sagas stuck --stuck-for 5m --json | jq '.classes[] | {class, count}'
            """
    )

    @OptionGroup var store: StoreOptions

    @Option(
        name: .customLong("class"),
        help: ArgumentHelp(
            "List the sagas of this class: compensation-failing, suspended, reply-overdue, timer-overdue, "
                + "retrying, no-progress, on-schedule.", valueName: "class"))
    var stuckClass: String?

    @Option(help: ArgumentHelp("No progress for this long counts as stuck (default 15m).", valueName: "duration"))
    var stuckFor = "15m"

    @Option(
        help: ArgumentHelp("How late a timer may be before it counts as overdue (default 30s).", valueName: "duration"))
    var grace = "30s"

    @Option(help: ArgumentHelp("At most this many sagas with --class (default 20).", valueName: "n"))
    var limit = "20"

    @Option(
        help: ArgumentHelp(
            "Group the stuck sagas by code (the error that keeps them stuck), step or workflow.", valueName: "key"))
    var groupBy: String?

    @Option(
        help: ArgumentHelp("Only sagas this error code keeps stuck (with --class or --group-by).", valueName: "code"))
    var code: String?

    @Option(
        help: ArgumentHelp(
            "Only sagas whose last progress is since then: a duration ago (1h) or a UTC time (with --class or "
                + "--group-by).", valueName: "time"))
    var since: String?

    @OptionGroup var output: OutputOptions

    func run() throws {
        try Operator.run("sagas stuck") {
            let now = Operator.now()
            let policy = StuckPolicy(
                grace: try TimeText.parseDuration(grace, option: "--grace"),
                noProgressAfter: try TimeText.parseDuration(stuckFor, option: "--stuck-for"))
            let only = try stuckClass.map { text throws(OperationsError) in try StuckClass.parse(text) }
            let grouping = try groupBy.map { text throws(OperationsError) in try StuckGrouping.parse(text) }
            let count = try SagaFilter.parseLimit(limit)
            let selection = StuckSelection(
                code: code,
                since: try since.map { text throws(OperationsError) in
                    try TimeText.parseTime(text, option: "--since", now: now)
                })
            if only != nil && grouping != nil {
                throw OperationsError(.badArgument, "--class and --group-by do not go together: give one")
            }
            if only == nil && grouping == nil && selection.narrows {
                throw OperationsError(
                    .badArgument, "--code and --since narrow a list: add --group-by code or --class suspended")
            }
            let database = try store.open()
            if let grouping {
                let groups = try database.stuckGroups(
                    now: now, policy: policy, grouping: grouping, selection: selection)
                Operator.print(output.json ? PrettyJSON.render(StuckView.json(groups)) : StuckView.text(groups))
            } else {
                var report = try database.stuckReport(
                    now: now, policy: policy, only: only, limit: selection.narrows ? Int.max - 1 : count)
                if selection.narrows {
                    let kept = report.members.filter(selection.keeps)
                    report.members = Array(kept.prefix(count))
                    report.hasMore = kept.count > count
                }
                // Drift reconciliation found and nobody resolved: ended sagas, so in no class, but not done.
                let drift = database.pool.map { ReconcileReports(dataDirectory: $0.path).openDrift() } ?? []
                if output.json {
                    var json = StuckView.json(report)
                    if case .object(var fields) = json {
                        fields["drift"] = .array(
                            drift.map {
                                [
                                    "workflow": .string($0.workflow), "sagaId": .string($0.sagaId),
                                    "sagaStatus": .string($0.sagaStatus), "step": .string($0.step),
                                    "kind": .string($0.kind.rawValue), "message": .string($0.message),
                                    "idempotencyKey": .string($0.idempotencyKey),
                                    "firstFound": $0.firstFound.map(JSONValue.string) ?? .null,
                                ]
                            })
                        json = .object(fields)
                    }
                    Operator.print(PrettyJSON.render(json))
                } else {
                    Operator.print(StuckView.text(report) + ReconcileView.stuckSection(drift))
                }
            }
        }
    }
}

/// `waybill sagas stats`.
struct SagasStatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Counts by status and by current step, the oldest unfinished saga, and recent throughput.",
        discussion: """
            Examples:
              waybill sagas stats
              waybill sagas stats --window 1h --json
            """
    )

    @OptionGroup var store: StoreOptions

    @Option(help: ArgumentHelp("How far back throughput looks (default 15m).", valueName: "duration"))
    var window = "15m"

    @OptionGroup var output: OutputOptions

    func run() throws {
        try Operator.run("sagas stats") {
            let span = try TimeText.parseDuration(window, option: "--window")
            let stats = try store.open().stats(now: Operator.now(), window: span)
            Operator.print(output.json ? PrettyJSON.render(StatsView.json(stats)) : StatsView.text(stats))
        }
    }
}
