import PlainText
import SagaEngine
import WaybillSimulator

/// What a chaos run did and found: the figures and every check, passed or failed. ``text`` is the table people read;
/// ``passed`` decides the exit status.
public struct ChaosReport: Sendable {
    let evidence: ChaosEvidence
    var checks: [ChaosCheck] = []
    var byStatus: [SagaStatus: Int] = [:]
    var reasons: [SagaStatus: [String: Int]] = [:]
    /// The steps suspended sagas failed at.
    var suspendedSteps: [String: Int] = [:]
    var claimCount = 0
    var claimOverlaps = 0
    var unexpectedSagas: [String] = []
    var leaksAfterLostReply = 0
    var takeovers: [ChaosChecks.Takeover] = []
    var hostile: [ChaosChecks.HostileOutcome] = []
    /// Sagas whose milestones arrived out of order because the broker redelivered the late one.
    var reorderedByRedelivery: [String] = []

    init(evidence: ChaosEvidence) {
        self.evidence = evidence
    }

    /// Whether every check passed.
    public var passed: Bool { checks.allSatisfy(\.passed) }

    /// The names of the checks that failed.
    public var failedChecks: [String] { checks.filter { !$0.passed }.map(\.name) }

    /// The report as people read it: the figures, then one line per check, then the first cases of each failure.
    public var text: String {
        let options = evidence.options
        var lines: [String] = []
        let verdict = passed ? "PASSED" : "FAILED (\(failedChecks.count) of \(checks.count) checks)"
        lines.append(
            "Waybill chaos run: \(Format.grouped(evidence.sagaIds.count)) orders, seed \(options.seed), "
                + "\(evidence.duration.readable): \(verdict)")
        lines.append("")
        func row(_ label: String, _ value: String) { lines.append("  \(label.padded(to: 13))\(value)") }
        row(
            "load",
            "\(Format.grouped(evidence.sagaIds.count)) orders at \(Format.fixed(options.rate, 0))/s, "
                + "\(Format.grouped(evidence.duplicateStarts)) started twice, "
                + "\(Format.grouped(evidence.duplicateReplies)) replies sent twice; load \(evidence.outcome.loadDuration.readable), "
                + "then \(evidence.outcome.settleDuration.readable) until every saga ended")
        let kills = evidence.kills.filter { !$0.permanent }
        let inOutage = kills.filter(\.duringOutage).count
        let forGood = evidence.kills.filter(\.permanent).map(\.worker)
        let midRun = evidence.drains.filter(\.midRun)
        row(
            "faults",
            "\(kills.count) SIGKILLs (each restarted; \(inOutage) while the broker was down) + \(forGood.count) for good (\(forGood.joined(separator: ", "))) · "
                + "\(evidence.brokerRestarts.count) broker restarts"
                + (evidence.brokerRestarts.isEmpty
                    ? "" : " (away " + evidence.brokerRestarts.map(\.took.readable).joined(separator: ", ") + ")")
                + " · "
                + "\(ChaosPlan.addedWorker) added · drained "
                + midRun.map { "\($0.worker) (\($0.termination.map { "\($0)" } ?? "no exit") in \($0.took.readable))" }
                .joined(separator: ", "))
        if !evidence.nodeKills.isEmpty {
            row(
                "cluster",
                "\(PrivateCluster.nodeCount) RabbitMQ nodes · "
                    + evidence.nodeKills.map { kill in
                        "node \(kill.node) killed (led \(kill.ledPartitions) partition queues, served "
                            + (kill.workersConnected.isEmpty
                                ? "no worker" : kill.workersConnected.joined(separator: ", "))
                            + "; leaders moved "
                            + (kill.leadersMovedAfter.map { "in \($0.readable)" } ?? "never") + ", its workers on "
                            + "another node " + (kill.workersReconnectedAfter.map { "in \($0.readable)" } ?? "never")
                            + ", next saga ended "
                            + (kill.nextSagaEndedAfter.map { "\($0.readable) after" } ?? "never") + ", away "
                            + kill.away.readable + ")"
                    }.joined(separator: " · "))
        }
        let finals = evidence.drains.filter { !$0.midRun }
        row(
            "workers",
            "\(evidence.workerStarts) starts · \(evidence.crashes.count) crashes · stopped at the end: "
                + finals.map { "\($0.worker) \($0.termination.map { "\($0)" } ?? "no exit") (\($0.took.readable))" }
                .joined(separator: ", "))
        let statusLine = [SagaStatus.completed, .compensated, .suspended, .cancelled, .running, .compensating]
            .compactMap { status -> String? in
                let count = byStatus[status] ?? 0
                guard count > 0 || status == .completed || status == .compensated || status == .suspended else {
                    return nil
                }
                return "\(status.rawValue) \(Format.grouped(count))" + StatusTally.because(reasons[status])
            }
        row("sagas", statusLine.joined(separator: " · "))
        if !suspendedSteps.isEmpty {
            row(
                "",
                "suspended at "
                    + suspendedSteps.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                    + " (the pivot is \(evidence.workflow.steps.first(where: \.pivot)?.id ?? "-"))")
        }
        if !unexpectedSagas.isEmpty {
            row(
                "",
                "\(unexpectedSagas.count) sagas nobody ordered: \(unexpectedSagas.prefix(5).joined(separator: ", "))")
        }
        let measured = takeovers.compactMap(\.time)
        if let summary = LatencySummary(measured) {
            row(
                "takeover",
                "p50 \(summary.p50.readable) · max \(summary.max.readable) over \(summary.count) kills of workers "
                    + "holding partitions (SIGKILL -> every partition claimed again)")
        } else {
            row("takeover", "no kill hit a worker holding partitions")
        }
        row(
            "owners",
            "\(claimCount) claims in the partition files, \(claimOverlaps) overlapping · "
                + "\(evidence.attemptsDecidedTwice.count) command attempts decided twice")
        if !reorderedByRedelivery.isEmpty {
            row(
                "milestones",
                "\(reorderedByRedelivery.count) sagas' events arrived out of order because the broker redelivered the "
                    + "late one (published in order; the sequence in the event id restores it): "
                    + reorderedByRedelivery.prefix(3).joined(separator: "; "))
        }
        let totals = evidence.ledger.totals
        row(
            "participants",
            "\(Format.grouped(totals.received)) commands · \(Format.grouped(totals.effectsApplied)) effects · "
                + "\(Format.grouped(totals.duplicatesAbsorbed)) duplicates absorbed · injected: "
                + "\(totals.injectedBusy) busy, \(totals.injectedRejected) rejected, \(totals.lostReplies) lost replies"
        )
        if leaksAfterLostReply > 0 {
            row("", "\(leaksAfterLostReply) leaks follow a lost reply (a for_each branch of unknown outcome)")
        }
        var byKind: [HostileKind: (sent: Int, outcomes: [String: Int])] = [:]
        for outcome in hostile {
            var entry = byKind[outcome.input.kind] ?? (0, [:])
            entry.sent += 1
            entry.outcomes[outcome.disposition ?? "UNACCOUNTED", default: 0] += 1
            byKind[outcome.input.kind] = entry
        }
        var dispositions: [String: Int] = [:]
        for outcome in hostile { dispositions[outcome.disposition ?? "unaccounted", default: 0] += 1 }
        let withReason = evidence.deadLetters.filter { $0.reason != nil }.count
        row(
            "hostile",
            "\(hostile.count) inputs: "
                + dispositions.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: " · ")
                + " · the dead-letter queue held \(evidence.deadLetters.count) messages, \(withReason) with "
                + "x-waybill-error")
        for kind in HostileKind.allCases {
            guard let entry = byKind[kind] else { continue }
            let outcomes = entry.outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            lines.append(
                "      \(kind.queue.padded(to: 8))\(kind.rawValue.padded(to: 42))"
                    + "\(String(entry.sent).padded(to: 5, .right))  \(outcomes.joined(separator: ", "))")
        }
        lines.append("")
        lines.append("Checks")
        for check in checks {
            lines.append(
                "  \(check.name.padded(to: 44)) \(check.value.padded(to: 22, .right))  \(check.passed ? "ok" : "FAILED")"
            )
        }
        for check in checks where !check.passed && !check.details.isEmpty {
            lines.append("")
            lines.append(
                "\(check.name): \(check.details.count) cases\(check.details.count > 10 ? ", the first 10" : "")")
            for detail in check.details.prefix(10) { lines.append("  - \(detail)") }
        }
        lines.append("")
        lines.append("Pool, workflow copy and worker logs: \(evidence.pool.path), \(evidence.logsDirectory)")
        return lines.joined(separator: "\n")
    }
}
