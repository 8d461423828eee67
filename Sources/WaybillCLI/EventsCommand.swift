import ArgumentParser
import Foundation
import PlainText
import SagaEngine
import WaybillDefinition
import WaybillOperations

/// `waybill events replay`: milestone events again, for a consumer that missed them.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "The milestone events the pool published; replay them for consumers that missed them.",
        subcommands: [EventsReplayCommand.self]
    )
}

/// `waybill events replay`.
struct EventsReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Publish stored milestone events again, in their original order, with their original ids.",
        discussion: """
            Every milestone event is kept in its saga's partition file, and in the archive with the saga. A replay \
            publishes the events the filters take, oldest first (one saga's in the order it published them), each \
            with its original CloudEvents id and marked as a replay (the `waybillreplay` attribute and the \
            `waybill-replay` header), one at a time, each confirmed by the broker before the next. A consumer that \
            dedupes by id sees nothing new when it already had an event.

            Without --to-queue the events go to their exchange with their routing key, so every consumer bound to \
            them gets them again: check the counts with --dry-run, then add --yes.

            Examples:
              waybill events replay --since 3h --until 1h --type 'order.#' --to-queue billing.events --dry-run
              waybill events replay --saga o-1001 --to-queue billing.events
              waybill events replay --workflow order-fulfillment --from 2026-12-01 --until 2026-12-02 --yes
            """
    )

    @Option(help: ArgumentHelp("Only this saga's events (ID or workflow/ID).", valueName: "saga"))
    var saga: String?

    @Option(help: ArgumentHelp("Only this workflow's events.", valueName: "name"))
    var workflow: String?

    @Option(
        name: .customLong("since"),
        help: ArgumentHelp(
            "Events committed since then: a duration ago (2h) or a UTC time (2026-12-01T10:00Z).", valueName: "time"))
    var since: String?

    @Option(name: .customLong("from"), help: ArgumentHelp("The same as --since.", valueName: "time"))
    var from: String?

    @Option(help: ArgumentHelp("Events committed before then (default: now).", valueName: "time"))
    var until: String?

    @Option(
        name: .customLong("type"),
        help: ArgumentHelp(
            "Only these event types; a topic pattern (order.shipped, order.*, shipment.#), repeatable or comma "
                + "separated.", valueName: "pattern"))
    var types: [String] = []

    @Option(
        help: ArgumentHelp(
            "Send to this one queue (through the default exchange) instead of the events exchange.",
            valueName: "queue"))
    var toQueue: String?

    @Option(help: ArgumentHelp("At most this many events per second (default 500/s).", valueName: "rate"))
    var rate = "500/s"

    @Flag(help: "Count what would be replayed, by type; send nothing.")
    var dryRun = false

    @Flag(help: "Really send to the events exchange (every consumer bound to them gets the events again).")
    var yes = false

    @Flag(help: "Print the counts as JSON.")
    var json = false

    @OptionGroup var store: StoreOptions
    @OptionGroup var broker: BrokerOptions

    func run() async throws {
        try await Operator.run("events replay") {
            let selection = try selection(now: Operator.now())
            let target: EventReplay.Target = toQueue.map(EventReplay.Target.queue) ?? .original
            let perSecond = try TimeText.parseRate(rate, option: "--rate")
            let inspector = try store.open()
            let counts = try await inspector.storedEventCounts(selection)
            let total = counts.values.reduce(0, +)
            guard !dryRun else {
                Operator.print(
                    json ? Self.countsJSON(counts, sent: false) : Self.countsText(counts, verb: "would replay"))
                return
            }
            guard total > 0 else {
                Operator.print(json ? Self.countsJSON(counts, sent: true) : "no stored events match; nothing sent\n")
                return
            }
            if target == .original, selection.saga == nil, !yes {
                Operator.print(Self.countsText(counts, verb: "would replay"))
                throw OperationsError(
                    .badArgument,
                    "a replay to the events exchange reaches every consumer bound to it: check the counts above, "
                        + "then add --yes (or send to one consumer with --to-queue)")
            }
            let replay = EventReplay(
                target: target, rate: perSecond, replayId: EventReplay.replayId(at: Operator.now()))
            let reporter = ProgressReporter(isTerminal: Operator.stderrIsTerminal, write: Operator.note)
            let settings = try broker.settings(store: store)
            let run = try await replay.run(selection, from: inspector, broker: settings) { done in
                guard !json else { return }
                if reporter.isTerminal || done == total || done % max(1, total / 10) == 0 {
                    reporter.show(ProgressBar.text(done: done, total: total, width: 30))
                }
            }
            reporter.finish()
            Operator.print(
                json
                    ? Self.countsJSON(run.published, sent: true, replayId: replay.replayId)
                    : Self.countsText(run.published, verb: "replayed") + "replay id \(replay.replayId)\n")
            if let stop = run.stopped {
                throw OperationsError(
                    .broker,
                    "stopped at event \(stop.eventId): \(stop.reason); \(total - run.total) events not sent, run the "
                        + "replay again (consumers that dedupe by id skip the ones they have)")
            }
        }
    }

    /// The filters as a selection.
    func selection(now: Timestamp) throws(OperationsError) -> EventSelection {
        if since != nil, from != nil {
            throw OperationsError(.badArgument, "--since and --from mean the same; give one")
        }
        var selection = EventSelection(workflow: workflow)
        if let saga { selection.saga = try SagaReference(parsing: saga) }
        if let start = since ?? from {
            selection.from = try TimeText.parseTime(start, option: since == nil ? "--from" : "--since", now: now)
        }
        // Until now by default: events committed while the replay runs are not part of it (nor of its count).
        selection.until =
            try until.map { text throws(OperationsError) in
                try TimeText.parseTime(text, option: "--until", now: now)
            } ?? now
        if let from = selection.from, let until = selection.until, until <= from {
            throw OperationsError(.badArgument, "--until must be after --since: the window is empty")
        }
        selection.types = types.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        return selection
    }

    /// `order.shipped  120` lines, then the total.
    static func countsText(_ counts: [String: Int], verb: String) -> String {
        let total = counts.values.reduce(0, +)
        let width = counts.keys.map(\.count).max() ?? 0
        var text = ""
        for (type, count) in counts.sorted(by: { $0.key < $1.key }) {
            text += "  " + type.padded(to: width) + "  \(count)\n"
        }
        return text + "\(verb) \(total) event\(total == 1 ? "" : "s")\n"
    }

    static func countsJSON(_ counts: [String: Int], sent: Bool, replayId: String? = nil) -> String {
        var fields: [String: JSONValue] = [
            "total": .number(Double(counts.values.reduce(0, +))),
            "byType": .object(counts.mapValues { .number(Double($0)) }),
            "sent": .bool(sent),
        ]
        if let replayId { fields["replayId"] = .string(replayId) }
        return PrettyJSON.render(.object(fields))
    }
}
