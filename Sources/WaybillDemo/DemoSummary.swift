import Foundation
import PlainText
import SagaEngine
import WaybillSimulator

/// What a demo run did: how the sagas ended, how fast, what the participants applied, and what is left.
public struct DemoSummary: Sendable {
    /// One participant's counters (ERP, inventory, WMS, TMS, billing, and the returns' QA).
    public struct Participant: Sendable, Hashable {
        /// `erp`, `inventory`, `wms`, `tms` or `billing` (the first word of the routing keys).
        public var name: String
        /// The counters over its routing keys.
        public var counts: SimulationLedger.CommandCounts
    }

    /// One worker's share of the pool at the end of the run.
    public struct WorkerShare: Sendable, Hashable {
        /// The worker's id (`demo-1`, ...).
        public var worker: String
        /// The partitions it owned when the summary was taken, ascending.
        public var partitions: [Int]
        /// This run's sagas whose row it wrote last (the row's `owner`): the sagas it ran, unless a partition
        /// changed hands while they ran.
        public var sagas: Int
    }

    /// `finished`, `timed out` or `interrupted`.
    public var outcome: String
    /// Orders the run was asked to publish.
    public var orders: Int
    /// Orders published.
    public var published: Int
    /// Sagas by status, as the pool's partition files have them.
    public var byStatus: [SagaStatus: Int]
    /// Why sagas compensated or were suspended: status to error code to count.
    public var reasons: [SagaStatus: [String: Int]]
    /// Published orders no partition file has a saga for.
    public var notStarted: Int
    /// From publishing an order to seeing its end milestone on the events exchange.
    public var latency: LatencySummary?
    /// From the first order published to the last end milestone seen.
    public var duration: Duration
    /// Sagas ended per second over ``duration``.
    public var throughput: Double
    /// Sagas ended per second between 10% and 90% of the ends: the rate without ramp-up and the tail of sagas
    /// waiting for a reply timeout.
    public var steadyThroughput: Double
    /// Counters per participant.
    public var participants: [Participant]
    /// Effects the ledgers show applied more than once (must be 0); ``duplicateEffectDetails`` says where.
    public var duplicateEffects: Int
    /// One line per mismatch behind ``duplicateEffects``.
    public var duplicateEffectDetails: [String]
    /// Reservations still held for sagas that ended compensated or cancelled (must be 0).
    public var leakedReservations: Int
    /// Other things held for such sagas (shipments, accepted ERP orders), one line each.
    public var otherLeaks: [String]
    /// Warehouse units unaccounted for (must be 0).
    public var stockImbalances: Int
    /// The pool's data directory.
    public var dataDirectory: String
    /// The pool's partition count.
    public var partitionCount: Int
    /// Each worker's share, worker 1 first. Together they own every partition of the pool once (unless a handoff was
    /// under way when the summary was taken), and their ``WorkerShare/sagas`` add up to the stored sagas, less
    /// ``unknownOwnerSagas``.
    public var workers: [WorkerShare]
    /// Stored sagas of this run whose `owner` is none of ``workers`` (must be 0).
    public var unknownOwnerSagas: Int
    /// The returns that followed the orders, when the run sent any.
    public var returns: ReturnsSummary?
    /// The orders' backorders and how their waits ended.
    public var backorders: BackorderSummary
    /// The reconciliation after the orders ended; `nil` when it did not run.
    public var reconciliation: ReconciliationSummary?

    /// Sagas in an end state (suspended included: it stays put until an operator acts).
    public var ended: Int {
        byStatus.filter { $0.key != .running && $0.key != .compensating }.values.reduce(0, +)
    }

    /// Whether every published saga reached an end state.
    public var everySagaEnded: Bool { notStarted == 0 && ended == published && published == orders }

    /// The commands that list what is left: suspended sagas (they need an operator) and, after a timeout or an
    /// interruption, sagas still running; then the web view of the same pool.
    public var inspectCommands: [String] {
        let database = dataDirectory.shellQuoted
        var commands = ["waybill sagas list --data-dir \(database) --status suspended"]
        if (byStatus[.running] ?? 0) > 0 {
            commands.append("waybill sagas list --data-dir \(database) --status running")
        }
        if (byStatus[.compensating] ?? 0) > 0 {
            commands.append("waybill sagas list --data-dir \(database) --status compensating")
        }
        commands.append("waybill ui --data-dir \(database)    # the same in a browser, at http://127.0.0.1:8080/")
        return commands
    }

    init(
        stage: DemoStage, sagaIds: [String], simulator: ParticipantSimulator, outcome: OrderFeed.Outcome,
        options: DemoOptions
    ) throws {
        let tally = stage.monitor.tally
        let stored = try stage.storedSagas(sagaIds)
        let statuses = StatusTally(stored)
        let timings = stage.monitor.timings
        let ledger = simulator.ledger()
        let leaks = ledger.leaks(finishedSagas: statuses.finished)

        self.outcome = outcome.text
        orders = sagaIds.count
        published = tally.published
        byStatus = statuses.byStatus
        reasons = statuses.reasons
        notStarted = max(0, tally.published - stored.count)
        latency = LatencySummary(timings.latencies)
        if let first = timings.firstSent, let last = timings.lastEnded, last > first {
            duration = last - first
        } else {
            duration = .zero
        }
        throughput = duration > .zero ? Double(tally.ended) / duration.inSeconds : 0
        steadyThroughput = stage.monitor.steadyRate()
        participants = Self.participants(ledger)
        (duplicateEffects, duplicateEffectDetails) = Self.duplicateEffects(ledger)
        leakedReservations =
            leaks.filter {
                if case .reservation = $0.resource { true } else { false }
            }.count
        otherLeaks = leaks.filter {
            if case .reservation = $0.resource { false } else { true }
        }.map(\.description)
        stockImbalances = ledger.stockImbalances.count
        dataDirectory = stage.dataDirectory
        partitionCount = try stage.partitionCount
        var sagasByOwner: [String?: Int] = [:]
        for saga in stored.values { sagasByOwner[saga.owner, default: 0] += 1 }
        workers = stage.ownedPartitions.map { owned in
            WorkerShare(
                worker: owned.worker, partitions: owned.partitions.sorted(),
                sagas: sagasByOwner.removeValue(forKey: owned.worker) ?? 0)
        }
        unknownOwnerSagas = sagasByOwner.values.reduce(0, +)
        backorders = BackorderSummary(
            ledger, discontinued: simulator.configuration.discontinued, deadline: options.backorderDeadline)
    }

    /// `Workers: demo-1 6 partitions, 341 sagas · demo-2 ...`, three workers to a line.
    private var workerLines: [String] {
        func counted(_ count: Int, _ noun: String) -> String {
            "\(Format.grouped(count)) \(noun)\(count == 1 ? "" : "s")"
        }
        var shares = workers.map {
            "\($0.worker) \(counted($0.partitions.count, "partition")), \(counted($0.sagas, "saga"))"
        }
        if unknownOwnerSagas > 0 { shares.append("\(counted(unknownOwnerSagas, "saga")) by other workers") }
        return stride(from: 0, to: shares.count, by: 3).map { start in
            (start == 0 ? "Workers: " : "         ")
                + shares[start..<min(shares.count, start + 3)].joined(separator: " · ")
        }
    }

    static func participants(_ ledger: SimulationLedger) -> [Participant] {
        var byName: [String: SimulationLedger.CommandCounts] = [:]
        for (routingKey, counts) in ledger.commands {
            let name = String(routingKey.prefix { $0 != "." })
            byName[name, default: SimulationLedger.CommandCounts()] = byName[name, default: .init()] + counts
        }
        let order = ["erp", "inventory", "wms", "tms", "billing"]
        return byName.map { Participant(name: $0.key, counts: $0.value) }.sorted {
            (order.firstIndex(of: $0.name) ?? order.count, $0.name) < (
                order.firstIndex(of: $1.name) ?? order.count, $1.name
            )
        }
    }

    /// Cross-checks the counters against what the participants hold (``SimulationLedger/effectMismatches``), and the
    /// stock: each effect applied once shows up exactly once.
    private static func duplicateEffects(_ ledger: SimulationLedger) -> (Int, [String]) {
        let mismatches = ledger.effectMismatches
        var details = mismatches.map(\.description)
        var total = mismatches.reduce(0) { $0 + $1.difference }
        let imbalances = ledger.stockImbalances
        if !imbalances.isEmpty {
            total += imbalances.count
            details.append("\(imbalances.count) (warehouse, SKU) stock rows do not balance")
        }
        return (total, details)
    }

    // MARK: - Text

    /// The summary as people read it.
    public var text: String {
        var lines: [String] = []
        let verdict = everySagaEnded ? "every saga ended" : "\(outcome): \(published - ended) sagas have not ended"
        lines.append(
            "Waybill demo: \(Format.grouped(published)) orders, \(duration.readable) from first order to last end: "
                + verdict)
        lines.append("")
        lines.append("Sagas (from the pool's partition files)")
        let rows: [(String, SagaStatus?, String)] = [
            ("completed", .completed, "every step done, invoiced"),
            ("compensated", .compensated, "a step failed before the pivot; completed steps undone"),
            ("suspended", .suspended, "a step failed after the pivot; needs an operator"),
            ("cancelled", .cancelled, "cancelled by an operator"),
            ("still running", nil, "not ended yet"),
        ]
        for (label, status, meaning) in rows {
            let count: Int
            if let status {
                count = byStatus[status] ?? 0
            } else {
                count = (byStatus[.running] ?? 0) + (byStatus[.compensating] ?? 0) + notStarted
            }
            if status == .cancelled && count == 0 { continue }
            lines.append(
                "  \(label.padded(to: 14)) \(Format.grouped(count).padded(to: 7, .right))   \(meaning)"
                    + StatusTally.because(status.flatMap { reasons[$0] }))
        }
        lines.append("")
        if backorders.backordered > 0 {
            lines.append(contentsOf: backorders.lines)
            lines.append("")
        }
        if let latency {
            lines.append(
                "Saga latency (order published -> end milestone seen): p50 \(Format.milliseconds(latency.p50)) · "
                    + "p95 \(Format.milliseconds(latency.p95)) · p99 \(Format.milliseconds(latency.p99)) · "
                    + "max \(Format.milliseconds(latency.max))")
        }
        lines.append(
            "Throughput: \(Format.fixed(steadyThroughput, 1)) sagas/s ended at steady state (10%-90% of the ends); "
                + "\(Format.fixed(throughput, 1))/s overall (\(Format.grouped(ended)) in \(duration.readable))")
        lines.append(contentsOf: workerLines)
        lines.append("")
        lines.append("Participants (from their ledgers)")
        let header = [
            "participant", "commands", "effects", "duplicates absorbed", "already applied", "no-op undo", "refused",
            "injected",
        ]
        let widths = [12, 9, 8, 20, 16, 11, 8, 9]
        let headerCells = zip(header, widths).map { $0.0.padded(to: $0.1, $0.0 == "participant" ? .left : .right) }
        lines.append("  " + headerCells.joined(separator: " "))
        for participant in participants {
            let c = participant.counts
            let injected = c.injectedBusy + c.injectedRejected + c.injectedSilences + c.lostReplies
            let values = [
                participant.name, Format.grouped(c.received), Format.grouped(c.effectsApplied),
                Format.grouped(c.duplicatesAbsorbed), Format.grouped(c.alreadyApplied),
                Format.grouped(c.noOpCompensations), Format.grouped(c.businessErrors), Format.grouped(injected),
            ]
            lines.append(
                "  "
                    + zip(values, widths).enumerated().map {
                        $0.element.0.padded(to: $0.element.1, $0.offset > 0 ? .right : .left)
                    }
                    .joined(separator: " "))
        }
        lines.append(
            "  effects applied twice: \(duplicateEffects) · leaked reservations: \(leakedReservations) · "
                + "other leaks: \(otherLeaks.count) · stock imbalances: \(stockImbalances)")
        for detail in duplicateEffectDetails { lines.append("    ! \(detail)") }
        for leak in otherLeaks.prefix(10) { lines.append("    ! \(leak)") }
        if let reconciliation {
            lines.append("")
            lines.append(contentsOf: reconciliation.lines)
        }
        if let returns {
            lines.append("")
            lines.append(contentsOf: returns.lines)
        }
        lines.append("")
        lines.append("Inspect what is left:")
        for command in inspectCommands { lines.append("  \(command)") }
        if let returns {
            lines.append("  waybill sagas list --data-dir \(returns.dataDirectory.shellQuoted)    # the returns")
        }
        return lines.joined(separator: "\n")
    }
}
