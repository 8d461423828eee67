import Foundation
import SagaEngine
import SagaStore
import WaybillDefinition
import WaybillSimulator

/// Everything the chaos run observed, for the checks: what it planned, what it did, what the participants, the
/// events exchange, the dead-letter queue and the control answers saw. The pool's files are read by the checks.
struct ChaosEvidence: Sendable {
    var options: ChaosOptions
    var workflow: WorkflowDefinition
    /// Every order's saga id (each published at least once).
    var sagaIds: [String]
    var pool: PoolDirectory
    var kills: [ChaosWorkers.Kill]
    var drains: [ChaosWorkers.Drain]
    var crashes: [ChaosWorkers.Crash]
    var workerStarts: Int
    var brokerRestarts: [BrokerRestart]
    var nodeKills: [NodeKill]
    var milestones: [String: [ChaosMilestones.Event]]
    var ledger: SimulationLedger
    var lostReplies: [ChaosReplies.LostReply]
    /// Command attempts that reached the participants under more than one message id.
    var attemptsDecidedTwice: [String: Set<String>]
    var hostile: [HostileInput]
    var deadLetters: [ChaosDeadLetters.Letter]
    /// Control answers' statuses by correlation id.
    var answers: [String: [String]]
    var duplicateStarts: Int
    var duplicateReplies: Int
    var outcome: ChaosOutcome
    var duration: Duration
    var logsDirectory: String
}

/// One assertion of the run: what was counted, whether it passed, and the first offending cases.
struct ChaosCheck: Sendable, Hashable {
    var name: String
    /// The observed figure, as printed.
    var value: String
    var passed: Bool
    var details: [String] = []
}

/// The checks of docs/chaos.md, run on the pool's files once every worker stopped.
enum ChaosChecks {
    /// The longest takeover the issue allows: a dead worker's partitions run again within 15 s.
    static let takeoverLimit: Duration = .seconds(15)

    static func run(_ evidence: ChaosEvidence) throws -> ChaosReport {
        let files = try PoolFiles.read(evidence.pool, workflow: evidence.workflow.name, hostile: evidence.hostile)
        var report = ChaosReport(evidence: evidence)
        var checks: [ChaosCheck] = []
        let planned = Set(evidence.sagaIds)

        // Sagas: each in exactly one file, its own; all of them there; every one ended.
        var statuses: [String: SagaStatus] = [:]
        var misplaced: [String] = []
        var twice: [String] = []
        for (id, found) in files.sagas {
            if found.count > 1 {
                twice.append("\(id) is in \(found.map { PoolDirectory.name(ofPartition: $0.partition) })")
            }
            for copy in found where copy.partition != evidence.pool.partition(of: id) {
                misplaced.append(
                    "\(id) is in \(PoolDirectory.name(ofPartition: copy.partition)), its partition is "
                        + PoolDirectory.name(ofPartition: evidence.pool.partition(of: id)))
            }
            statuses[id] = found.first?.status
        }
        let lost = evidence.sagaIds.filter { statuses[$0] == nil }
        let unexpected = statuses.keys.filter { !planned.contains($0) }.sorted()
        checks.append(
            ChaosCheck(
                name: "sagas lost", value: "\(lost.count)", passed: lost.isEmpty,
                details: lost.map { "\($0): published, in no partition file" }))
        let overlaps = claimOverlaps(files.claims, kills: evidence.kills)
        let decidedTwice = evidence.attemptsDecidedTwice.sorted { $0.key < $1.key }.map {
            "attempt \($0.key) was sent as \($0.value.sorted().joined(separator: " and "))"
        }
        let owners = Set(
            (twice + misplaced).map { $0.prefix { $0 != " " } }
                + evidence.attemptsDecidedTwice.keys.map { $0.prefix { $0 != "/" } })
        checks.append(
            ChaosCheck(
                name: "sagas with two owners", value: "\(owners.count)",
                passed: owners.isEmpty && overlaps.isEmpty,
                details: twice + misplaced + decidedTwice + overlaps.map { "claims overlap: \($0)" }))
        report.claimCount = files.claims.values.reduce(0) { $0 + $1.count }
        report.claimOverlaps = overlaps.count
        report.unexpectedSagas = unexpected

        var byStatus: [SagaStatus: Int] = [:]
        for id in evidence.sagaIds { if let status = statuses[id] { byStatus[status, default: 0] += 1 } }
        report.byStatus = byStatus
        report.reasons = files.failureCodes
        for step in files.suspendedAt.values {
            report.suspendedSteps[String(step.prefix { $0 != "[" }), default: 0] += 1
        }
        let unfinished = evidence.sagaIds.filter { statuses[$0] == .running || statuses[$0] == .compensating }
        checks.append(
            ChaosCheck(
                name: "sagas not terminal after the drain", value: "\(unfinished.count)", passed: unfinished.isEmpty,
                details: unfinished.map { "\($0): \(statuses[$0]?.rawValue ?? "?") at \(files.steps[$0] ?? "?")" }))
        let pivot = evidence.workflow.steps.firstIndex(where: \.pivot) ?? evidence.workflow.steps.count
        let early = files.suspendedAt.filter { _, step in
            (evidence.workflow.stepIndex(of: step.split(separator: "[").first.map(String.init) ?? step) ?? 0) < pivot
        }
        let cancelled = byStatus[.cancelled] ?? 0
        checks.append(
            ChaosCheck(
                name: "suspended before the pivot, or cancelled", value: "\(early.count + cancelled)",
                passed: early.isEmpty && cancelled == 0,
                details: early.map { "\($0.key) suspended at \($0.value)" }.sorted()))

        // Effects and leaks, from the participants' ledger.
        let mismatches = evidence.ledger.effectMismatches
        let imbalances = evidence.ledger.stockImbalances
        let doubled = mismatches.reduce(0) { $0 + $1.difference } + imbalances.count
        checks.append(
            ChaosCheck(
                name: "effects applied twice", value: "\(doubled)", passed: doubled == 0,
                details: mismatches.map(\.description)
                    + (imbalances.isEmpty ? [] : ["\(imbalances.count) (warehouse, SKU) stock rows do not balance"])))
        let finished = statuses.compactMapValues(FinishedSagaOutcome.init)
        let leaks = evidence.ledger.leaks(finishedSagas: finished)
        let lostKeys = Set(evidence.lostReplies.map { "\($0.routingKey) \($0.sagaId)" })
        func afterLostReply(_ leak: SimulationLeak) -> Bool {
            switch leak.resource {
            case .reservation: lostKeys.contains("inventory.reserve \(leak.sagaId)")
            case .shipment(let warehouse, _): lostKeys.contains("wms.\(warehouse).release \(leak.sagaId)")
            case .acceptedOrder: lostKeys.contains("erp.order.accept \(leak.sagaId)")
            case .authorizedReturn: lostKeys.contains("erp.return.authorize \(leak.sagaId)")
            case .restock: lostKeys.contains("inventory.restock \(leak.sagaId)")
            case .backorder: lostKeys.contains("inventory.backorder.create \(leak.sagaId)")
            }
        }
        let heldLeaks = leaks.filter {
            if case .acceptedOrder = $0.resource { false } else { true }
        }
        report.leaksAfterLostReply = leaks.filter(afterLostReply).count
        checks.append(
            ChaosCheck(
                name: "reservations and shipments leaked", value: "\(heldLeaks.count)",
                passed: leaks.isEmpty,
                details: leaks.map {
                    $0.description + (afterLostReply($0) ? " (its forward command's reply was lost)" : "")
                }))

        // Milestones: first copies in the workflow's order, ending with the end milestone of the stored status; and
        // arriving in the order they were published, unless the broker redelivered the one that came late.
        var invalid: [String] = []
        var lateUnexplained: [String] = []
        var lateRedelivered: [String] = []
        for id in evidence.sagaIds {
            let events = evidence.milestones[id] ?? []
            if let problem = milestoneProblem(events, status: statuses[id], workflow: evidence.workflow) {
                invalid.append("\(id): \(problem)")
            }
            let late = lateArrivals(events)
            guard !late.isEmpty else { continue }
            let line = "\(id): \(late.map(\.type).joined(separator: ", ")) arrived after later events"
            if late.allSatisfy(\.redelivered) {
                lateRedelivered.append(line + " (redelivered by the broker)")
            } else {
                lateUnexplained.append(line)
            }
        }
        checks.append(
            ChaosCheck(
                name: "invalid milestone sequences", value: "\(invalid.count)", passed: invalid.isEmpty,
                details: invalid))
        checks.append(
            ChaosCheck(
                name: "milestones out of order (not redelivered)", value: "\(lateUnexplained.count)",
                passed: lateUnexplained.isEmpty, details: lateUnexplained))
        report.reorderedByRedelivery = lateRedelivered

        // Takeover.
        let takeovers = takeovers(evidence.kills, claims: files.claims)
        report.takeovers = takeovers
        let measured = takeovers.compactMap(\.time)
        let neverTaken = takeovers.filter { $0.time == nil }
        let worst = measured.max()
        checks.append(
            ChaosCheck(
                name: "takeover within \(takeoverLimit.readable)", value: worst?.readable ?? "-",
                passed: neverTaken.isEmpty && (worst ?? .zero) <= takeoverLimit,
                details: neverTaken.map {
                    "\($0.kill.worker) killed at \($0.kill.before): partitions never claimed again"
                }
                    + takeovers.filter { ($0.time ?? .zero) > takeoverLimit }.map {
                        "\($0.kill.worker) killed at \($0.kill.before): \($0.partitions) partitions claimed again after "
                            + ($0.time?.readable ?? "-")
                    }))

        // Hostile inputs.
        let dispositions = hostileDispositions(evidence, journals: files.hostileJournals)
        report.hostile = dispositions
        let unaccounted = dispositions.filter { $0.disposition == nil }
        checks.append(
            ChaosCheck(
                name: "hostile inputs unaccounted (of \(evidence.hostile.count))", value: "\(unaccounted.count)",
                passed: unaccounted.isEmpty && evidence.hostile.count >= evidence.options.hostile,
                details: unaccounted.map { "\($0.input.id) (\($0.input.kind.rawValue)): \($0.found)" }))
        let hostileIds = Set(evidence.hostile.map(\.id))
        let realDeadLetters = evidence.deadLetters.filter { letter in
            !(letter.messageId.map(hostileIds.contains) ?? false)
        }
        checks.append(
            ChaosCheck(
                name: "real messages dead-lettered", value: "\(realDeadLetters.count)",
                passed: realDeadLetters.isEmpty,
                details: realDeadLetters.map {
                    "\($0.messageId ?? "no message id") from \($0.source): "
                        + ($0.reason ?? ($0.byBroker ? "dead-lettered by the broker (x-death)" : "no reason"))
                }))

        // The workers.
        checks.append(
            ChaosCheck(
                name: "worker crashes", value: "\(evidence.crashes.count)", passed: evidence.crashes.isEmpty,
                details: evidence.crashes.map { "\($0.worker) ended on its own (\($0.termination)):\n\($0.logTail)" }))
        let badDrains = evidence.drains.filter { $0.termination != .exited(0) }
        checks.append(
            ChaosCheck(
                name: "drains that did not exit 0 (of \(evidence.drains.count))", value: "\(badDrains.count)",
                passed: badDrains.isEmpty && evidence.drains.contains(where: \.midRun),
                details: badDrains.map { "\($0.worker): \($0.termination.map { "\($0)" } ?? "did not exit in time")" }))
        checks.append(
            ChaosCheck(
                name: "outbox rows left", value: "\(files.outboxRows)", passed: files.outboxRows == 0))
        let kills = evidence.kills.filter { !$0.permanent }.count
        let planOK =
            kills >= evidence.options.kills && evidence.brokerRestarts.count == evidence.options.brokerRestarts
            && evidence.nodeKills.count == evidence.options.nodeKills && evidence.kills.contains(where: \.permanent)
        checks.append(
            ChaosCheck(
                name: "faults made as planned",
                value: "\(kills) kills, \(evidence.brokerRestarts.count) restarts"
                    + (evidence.options.cluster == nil ? "" : ", \(evidence.nodeKills.count) node kills"),
                passed: planOK))
        if evidence.options.cluster != nil {
            let stranded = evidence.nodeKills.filter {
                $0.leadersMovedAfter == nil || $0.workersReconnectedAfter == nil || $0.nextSagaEndedAfter == nil
            }
            checks.append(
                ChaosCheck(
                    name: "node kills the pool did not survive",
                    value: "\(stranded.count)", passed: stranded.isEmpty,
                    details: stranded.map {
                        "node \($0.node) killed at \($0.at): leaders "
                            + ($0.leadersMovedAfter == nil ? "did not move" : "moved") + ", its workers "
                            + ($0.workersReconnectedAfter == nil ? "did not reconnect" : "reconnected")
                            + ", a saga " + ($0.nextSagaEndedAfter == nil ? "did not end" : "ended") + " within 60 s"
                    }))
        }
        checks.append(
            ChaosCheck(
                name: "every saga ended before the timeout", value: evidence.outcome.settled ? "yes" : "no",
                passed: evidence.outcome.settled))
        report.checks = checks
        return report
    }

    // MARK: - Claims

    /// Claims of one partition that overlap: a claim must start after the one before it was released, or after its
    /// owner was killed. A claim still held at the end must belong to a worker killed after claiming it.
    static func claimOverlaps(_ claims: [Int: [FenceClaim]], kills: [ChaosWorkers.Kill]) -> [String] {
        func killed(_ owner: String, after claimed: Timestamp, before next: Timestamp?) -> Bool {
            kills.contains { kill in
                kill.worker == owner && claimed <= kill.after && (next.map { kill.before <= $0 } ?? true)
            }
        }
        var problems: [String] = []
        for (partition, history) in claims.sorted(by: { $0.key < $1.key }) {
            let name = PoolDirectory.name(ofPartition: partition)
            for (index, claim) in history.enumerated() {
                let next = index + 1 < history.count ? history[index + 1] : nil
                if let released = claim.releasedAt {
                    if let next, released > next.claimedAt {
                        problems.append(
                            "\(name): epoch \(next.epoch) (\(next.owner)) claimed at \(next.claimedAt), before epoch "
                                + "\(claim.epoch) (\(claim.owner)) was released at \(released)")
                    }
                } else if !killed(claim.owner, after: claim.claimedAt, before: next?.claimedAt) {
                    problems.append(
                        next.map {
                            "\(name): epoch \($0.epoch) (\($0.owner)) claimed at \($0.claimedAt) while epoch "
                                + "\(claim.epoch) (\(claim.owner)) was neither released nor killed"
                        } ?? "\(name): epoch \(claim.epoch) (\(claim.owner)) was still held at the end")
                }
            }
        }
        return problems
    }

    /// How long each SIGKILL's partitions took to be claimed again.
    struct Takeover: Sendable, Hashable {
        var kill: ChaosWorkers.Kill
        /// The partitions the killed worker held.
        var partitions: Int
        /// From the kill to the last of them claimed again; `nil` when one never was (or it held none).
        var time: Duration?
    }

    /// For every kill of a worker that held partitions, but those made while the broker was down: the time from the
    /// SIGKILL to the moment every one of them was claimed again (by anyone, the restarted worker included), from the
    /// claim histories.
    static func takeovers(_ kills: [ChaosWorkers.Kill], claims: [Int: [FenceClaim]]) -> [Takeover] {
        var takeovers: [Takeover] = []
        for kill in kills where !kill.duringOutage {
            var held = 0
            var slowest: Duration? = .zero
            for history in claims.values {
                guard let index = history.lastIndex(where: { $0.claimedAt <= kill.before }) else { continue }
                let claim = history[index]
                guard claim.owner == kill.worker, claim.releasedAt.map({ $0 > kill.before }) ?? true else { continue }
                held += 1
                if let next = history[(index + 1)...].first {
                    let took = Duration.milliseconds(max(0, next.claimedAt.milliseconds - kill.before.milliseconds))
                    slowest = slowest.map { max($0, took) }
                } else {
                    slowest = nil
                }
            }
            if held > 0 { takeovers.append(Takeover(kill: kill, partitions: held, time: slowest)) }
        }
        return takeovers
    }

    // MARK: - Milestones

    /// The first copies (by event id) that arrived after an event the saga published later (a higher sequence in its
    /// id).
    static func lateArrivals(_ events: [ChaosMilestones.Event]) -> [ChaosMilestones.Event] {
        var seen: Set<String> = []
        var highest = Int.min
        var late: [ChaosMilestones.Event] = []
        for event in events where seen.insert(event.id).inserted {
            guard let sequence = event.sequence else { continue }
            if sequence < highest { late.append(event) } else { highest = sequence }
        }
        return late
    }

    /// Why a saga's milestones are not a valid sequence, or `nil` when they are: the first copy of each event (by
    /// event id), in the order the saga published them (the sequence in their ids; arrival order for ids without one),
    /// must be the step milestones in the workflow's order, each at most once, then exactly one end milestone, the one
    /// of the saga's stored status. A completed saga published every step milestone; a compensated one none past its
    /// pivot. Whether they also arrived in that order is ``lateArrivals(_:)``'s question.
    /// The milestones of the steps every completed saga runs: those no earlier step can jump over (a choice rule, a
    /// `next` or a wait's `on_timeout` that goes to a later step than it, or to the end).
    static func requiredMilestones(_ workflow: WorkflowDefinition) -> [String] {
        var reach = -1
        var required: [String] = []
        for (index, step) in workflow.steps.enumerated() {
            if index > reach, let milestone = step.milestone { required.append(milestone) }
            var targets: [StepTarget?] = [step.next]
            if case .choice(let choice) = step.action { targets += choice.rules.map(\.target) }
            if case .wait(let wait) = step.action { targets.append(wait.onTimeout) }
            for target in targets {
                switch target {
                case .step(let id)?: reach = max(reach, (workflow.stepIndex(of: id) ?? 0) - 1)
                case .end?: reach = workflow.steps.count
                case .fail?, nil: break
                }
            }
        }
        return required
    }

    static func milestoneProblem(
        _ events: [ChaosMilestones.Event], status: SagaStatus?, workflow: WorkflowDefinition
    ) -> String? {
        var seen: Set<String> = []
        let firsts = events.filter { seen.insert($0.id).inserted }
        let published =
            firsts.allSatisfy { $0.sequence != nil }
            ? firsts.sorted { ($0.sequence ?? 0) < ($1.sequence ?? 0) } : firsts
        let types = published.map(\.type)
        let steps = workflow.steps.compactMap(\.milestone)
        let ends = ChaosMilestones.statuses(of: workflow.milestones)
        guard let last = types.last, let ended = ends[last] else {
            return "no end milestone (saw \(types.joined(separator: ", ")))"
        }
        let forward = types.dropLast()
        if let other = forward.first(where: { ends[$0] != nil }) {
            return "end milestone \(other) before \(last)"
        }
        let positions = forward.map { steps.firstIndex(of: $0) }
        if positions.contains(nil) { return "unknown milestones in \(types.joined(separator: ", "))" }
        let order = positions.compactMap { $0 }
        if order != order.sorted() || Set(order).count != order.count {
            return "out of order or repeated: \(types.joined(separator: ", "))"
        }
        if let status, status != ended { return "ends with \(last) but the saga is \(status.rawValue)" }
        switch ended {
        case .completed
        where !Set(requiredMilestones(workflow).compactMap { steps.firstIndex(of: $0) }).isSubset(
            of: order):
            return "completed without every step milestone: \(types.joined(separator: ", "))"
        case .compensated:
            let pivot = workflow.steps.firstIndex(where: \.pivot).flatMap { workflow.steps[$0].milestone }
            if let pivot, let index = steps.firstIndex(of: pivot), order.contains(where: { $0 >= index }) {
                return "compensated after its pivot milestone \(pivot): \(types.joined(separator: ", "))"
            }
        default: break
        }
        return nil
    }

    // MARK: - Hostile inputs

    /// What happened to one hostile input, as found.
    struct HostileOutcome: Sendable, Hashable {
        var input: HostileInput
        /// `dead-lettered`, `journaled` or `answered`, or `nil` when nothing the expectation allows happened.
        var disposition: String?
        /// What was found instead, for the report.
        var found: String
    }

    static func hostileDispositions(
        _ evidence: ChaosEvidence, journals: [SagaKey: [JournalLine]]
    ) -> [HostileOutcome] {
        var letters: [String: ChaosDeadLetters.Letter] = [:]
        for letter in evidence.deadLetters { if let id = letter.messageId { letters[id] = letter } }
        return evidence.hostile.map { input in
            let letter = letters[input.id]
            let seen =
                letter.map { "dead-lettered: \($0.reason ?? "no x-waybill-error")" }
                ?? evidence.answers[input.id].map { "answered \($0.joined(separator: ", "))" }
                ?? "neither dead-lettered nor answered"
            switch input.expectation {
            case .deadLettered(let code):
                let passed = letter?.reason?.hasPrefix(code) ?? false
                return HostileOutcome(input: input, disposition: passed ? "dead-lettered" : nil, found: seen)
            case .deadLetteredAnyReason:
                let passed = letter?.reason != nil
                return HostileOutcome(input: input, disposition: passed ? "dead-lettered" : nil, found: seen)
            case .journaled(let key, let kind, let needle):
                let passed = (journals[key] ?? []).contains { $0.kind == kind && $0.detail.contains(needle) }
                return HostileOutcome(
                    input: input, disposition: passed ? "journaled" : nil,
                    found: passed ? "journaled" : "no \(kind) journal line of \(key.id) names \(needle); \(seen)")
            case .answered(let journal):
                let statuses = evidence.answers[input.id] ?? []
                var passed = !statuses.isEmpty && !statuses.contains("applied")
                if let journal {
                    passed =
                        passed
                        && (journals[journal] ?? []).contains { $0.kind == "rejected" && $0.detail.contains(input.id) }
                }
                return HostileOutcome(input: input, disposition: passed ? "answered" : nil, found: seen)
            }
        }
    }
}

/// What the checks read from the pool's partition files, each opened read-only.
struct PoolFiles {
    /// A saga as one file holds it.
    struct Copy {
        var partition: Int
        var status: SagaStatus
    }

    var sagas: [String: [Copy]] = [:]
    var claims: [Int: [FenceClaim]] = [:]
    var outboxRows = 0
    /// The step of each unfinished saga.
    var steps: [String: String] = [:]
    /// The step each suspended saga failed at.
    var suspendedAt: [String: String] = [:]
    /// Failure codes of compensated and suspended sagas.
    var failureCodes: [SagaStatus: [String: Int]] = [:]
    /// The journals of the sagas the hostile inputs name.
    var hostileJournals: [SagaKey: [JournalLine]] = [:]

    static func read(_ pool: PoolDirectory, workflow: String, hostile: [HostileInput]) throws -> PoolFiles {
        var files = PoolFiles()
        var journaled: [Int: Set<SagaKey>] = [:]
        for input in hostile {
            switch input.expectation {
            case .journaled(let key, _, _), .answered(let key?):
                journaled[pool.partition(of: key.id), default: []].insert(key)
            case .deadLettered, .deadLetteredAnyReason, .answered(nil):
                continue
            }
        }
        for partition in pool.partitions {
            guard let store = try pool.openReadOnly(partition: partition) else { continue }
            defer { try? store.close() }
            let path = pool.databasePath(partition: partition)
            files.claims[partition] = try store.claimHistory()
            files.outboxRows += try store.pendingOutbox(limit: 100_000).count
            let reader = try SagaStoreReader(path: path)
            try reader.read("reading the chaos run's sagas") { snapshot in
                let rows = try snapshot.list(SagaQuery()).rows
                for row in rows {
                    files.sagas[row.key.id, default: []].append(Copy(partition: partition, status: row.status))
                    if row.status == .running || row.status == .compensating {
                        files.steps[row.key.id] = row.currentStep ?? "-"
                    }
                    if row.status == .compensated || row.status == .suspended {
                        files.failureCodes[row.status, default: [:]][row.failureCode ?? "-", default: 0] += 1
                    }
                }
                let suspended = rows.filter { $0.status == .suspended }.map(\.key)
                for (key, record) in try snapshot.records(suspended) {
                    files.suspendedAt[key.id] = record.instance.failure?.step ?? "-"
                }
                for key in journaled[partition] ?? [] {
                    files.hostileJournals[key] = try snapshot.journal(of: key)
                }
            }
        }
        return files
    }
}
