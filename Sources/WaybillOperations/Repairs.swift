import PlainText
import SagaEngine
import SagaStore
import WaybillDefinition
import WaybillWire

/// A repair checked against a frozen selection of sagas, ready to send (or to print with `--dry-run`).
public struct RepairPlan: Sendable, Hashable {
    /// What was asked.
    public var request: RepairRequest
    /// When the selection was frozen: sagas that change after this are not swept in, and a selected saga that
    /// moved on by the time its turn comes is skipped.
    public var snapshotAt: Timestamp
    /// The filter of a bulk repair, `nil` for one saga.
    public var filter: SagaFilter?
    /// One check per selected saga, in the filter's order.
    public var checks: [RepairCheck]

    /// Describes a plan (``SagaInspector/plan(_:records:filter:now:)`` builds it from a selection).
    public init(request: RepairRequest, snapshotAt: Timestamp, filter: SagaFilter?, checks: [RepairCheck]) {
        self.request = request
        self.snapshotAt = snapshotAt
        self.filter = filter
        self.checks = checks
    }

    /// The checks that will be sent.
    public var sendable: [RepairCheck] { checks.filter(\.willSend) }
    /// The checks refused locally.
    public var refused: [RepairCheck] { checks.filter { !$0.willSend } }
}

/// What became of one saga of a plan.
public enum RepairOutcome: Sendable, Hashable {
    /// Refused before sending (see ``RepairCheck/refusal``).
    case refusedLocally(String)
    /// Not sent: the saga changed after the snapshot (its status then).
    case changedSinceSnapshot(SagaStatus)
    /// The worker answered.
    case replied(ControlReply)
    /// No answer in time.
    case timedOut
    /// Not delivered.
    case failed(String)

    /// `applied`, `rejected`, `error`, `timeout`, `failed`, `changed`, `refused`.
    public var label: String {
        switch self {
        case .refusedLocally: "refused"
        case .changedSinceSnapshot: "changed"
        case .replied(let reply): reply.status.rawValue
        case .timedOut: "timeout"
        case .failed: "failed"
        }
    }

    /// The one-line explanation.
    public var message: String {
        switch self {
        case .refusedLocally(let reason): reason
        case .changedSinceSnapshot(let status):
            "changed since the selection was frozen (now \(status.rawValue)); not sent, check it and repair it alone"
        case .replied(let reply): reply.message
        case .timedOut: "no answer within the wait; the request expires unapplied unless the worker takes it in time"
        case .failed(let reason): reason
        }
    }
}

/// Counts shown while a bulk repair runs.
public struct RepairProgress: Sendable, Hashable {
    /// Sagas to send.
    public var total: Int
    /// Sagas settled (answered, timed out, failed or skipped).
    public var done = 0
    /// Answers by label (`applied`, `rejected`, ...).
    public var counts: [String: Int] = [:]

    /// `[#########...........] 45/120  applied 43  rejected 2`.
    public func bar(width: Int = 30) -> String {
        let tallies = ["applied", "rejected", "error", "timeout", "failed", "changed"].compactMap { label in
            counts[label].map { "\(label) \($0)" }
        }
        return ProgressBar.text(done: done, total: total, width: width)
            + (tallies.isEmpty ? "" : "  " + tallies.joined(separator: "  "))
    }
}

/// The end of a repair run: every outcome, and what a final re-read of each sent saga shows.
public struct RepairRun: Sendable, Hashable {
    /// The plan that ran.
    public var plan: RepairPlan
    /// One outcome per checked saga, in plan order.
    public var outcomes: [(key: SagaKey, outcome: RepairOutcome)]
    /// The sent sagas as re-read after the last answer.
    public var after: [SagaKey: SagaRow]
    /// When the re-check ran.
    public var checkedAt: Timestamp

    /// Sent sagas that really moved: their row changed since the snapshot and they are not suspended (again), or a
    /// skip of one branch left them suspended at the same step as predicted (another branch is still failed).
    public var moved: [SagaKey] {
        changed.filter { after[$0]?.status != .suspended || waitsOnAnotherBranch($0) }
    }

    /// Sent sagas that changed since the snapshot but are suspended now: the repair ran and the saga failed again.
    public var suspendedAgain: [SagaKey] {
        changed.filter { after[$0]?.status == .suspended && !waitsOnAnotherBranch($0) }
    }

    /// Whether a skip of one branch left the saga suspended at the step it skipped in, as the local check predicted:
    /// another branch of that step is still failed, so the saga waits for that one, not because the skip failed.
    private func waitsOnAnotherBranch(_ key: SagaKey) -> Bool {
        guard plan.request.action == .skip, plan.request.branch != nil,
            let check = plan.checks.first(where: { $0.record.row.key == key }), check.predictedStatus == .suspended,
            let now = after[key]
        else { return false }
        return now.status == .suspended && now.currentStep == check.record.row.currentStep
    }

    /// Sent sagas whose row changed since the snapshot.
    private var changed: [SagaKey] {
        let before = Dictionary(plan.checks.map { ($0.record.row.key, $0.record.row) }, uniquingKeysWith: { a, _ in a })
        return outcomes.compactMap { entry in
            guard case .replied = entry.outcome, let old = before[entry.key], let new = after[entry.key] else {
                return nil
            }
            return new.updatedAt != old.updatedAt || new.status != old.status ? entry.key : nil
        }
    }

    /// Sagas that were sent a request.
    public var sent: Int {
        outcomes.filter {
            switch $0.outcome {
            case .replied, .timedOut: true
            default: false
            }
        }.count
    }

    public static func == (lhs: RepairRun, rhs: RepairRun) -> Bool {
        lhs.plan == rhs.plan && lhs.outcomes.map(\.key) == rhs.outcomes.map(\.key)
            && lhs.outcomes.map(\.outcome) == rhs.outcomes.map(\.outcome) && lhs.after == rhs.after
            && lhs.checkedAt == rhs.checkedAt
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(plan)
        hasher.combine(checkedAt)
    }
}

extension SagaInspector {
    /// Checks `request` against each of `records` (loading each definition once).
    public func plan(
        _ request: RepairRequest, records: [SagaRecord], filter: SagaFilter?, now: Timestamp
    )
        -> RepairPlan
    {
        let checks = records.map { record in
            let definition = (try? definition(hash: record.row.definitionHash)) ?? nil
            return RepairPlanner.check(request, record: record, definition: definition, now: now)
        }
        return RepairPlan(request: request, snapshotAt: now, filter: filter, checks: checks)
    }
}

/// Sends a plan's requests to the owners of the sagas' partitions, paced, and re-checks the sagas at the end.
public struct RepairRunner: Sendable {
    /// Where rows are re-read: before each request (a saga changed since the plan's snapshot is skipped) and after
    /// the run.
    public var inspector: SagaInspector
    /// How requests travel.
    public var channel: any ControlChannel
    /// Which queue each saga's request goes to, and whether its partition has an owner.
    public var route: RepairRoute
    /// How long to wait for each answer.
    public var timeout: Duration
    /// At most this many requests per second (`--rate`); `nil` sends as fast as answers allow.
    public var rate: Double?
    /// Requests awaiting an answer at once.
    public var maxInFlight: Int
    /// The clock that reads `now` for the re-check (tests pass a fixed one).
    public var now: @Sendable () -> Timestamp
    /// Whether a saga that changed since the snapshot is skipped (repairs); a migration sends it anyway, since the
    /// worker checks it again on its own copy and a running saga changes all the time.
    public var skipsChanged = true

    /// Describes a runner.
    public init(
        inspector: SagaInspector, channel: any ControlChannel, route: RepairRoute, timeout: Duration = .seconds(30),
        rate: Double? = nil, maxInFlight: Int = 16, now: @escaping @Sendable () -> Timestamp
    ) {
        self.inspector = inspector
        self.channel = channel
        self.route = route
        self.timeout = timeout
        self.rate = rate
        self.maxInFlight = max(1, maxInFlight)
        self.now = now
    }

    /// Runs `plan`: checks that every partition it sends to has a live owner (``RepairRoute/awaitOwners(of:)``,
    /// throwing ``OperationsError/Code/noOwner`` with nothing sent when one has none); then for each sendable saga,
    /// in order, re-reads its row and skips it if it changed since the snapshot, otherwise sends the request to its
    /// partition queue (at most ``rate`` per second, ``maxInFlight`` awaiting answers); then re-reads every sent saga.
    /// `progress` is called after each settled saga.
    public func run(
        _ plan: RepairPlan, progress: @Sendable (RepairProgress) -> Void = { _ in }
    ) async throws(OperationsError) -> RepairRun {
        try await route.awaitOwners(of: plan.sendable.map(\.record.row.key))
        var outcomes: [SagaKey: RepairOutcome] = [:]
        for check in plan.refused { outcomes[check.record.row.key] = .refusedLocally(check.refusal ?? "refused") }
        let sendable = plan.sendable
        var state = RepairProgress(total: sendable.count)
        progress(state)
        var pace = Pace(perSecond: rate)
        await withTaskGroup(of: (SagaKey, RepairOutcome).self) { group in
            var inFlight = 0
            func settle(_ result: (SagaKey, RepairOutcome)) {
                outcomes[result.0] = result.1
                state.done += 1
                state.counts[result.1.label, default: 0] += 1
                progress(state)
            }
            for check in sendable {
                await pace.wait()
                while inFlight >= maxInFlight, let result = await group.next() {
                    inFlight -= 1
                    settle(result)
                }
                let key = check.record.row.key
                let current = (try? inspector.rows([key]))?[key]
                if skipsChanged, let current,
                    current.updatedAt != check.record.row.updatedAt || current.status != check.record.row.status
                {
                    settle((key, .changedSinceSnapshot(current.status)))
                    continue
                }
                guard let message = check.message else { continue }
                let channel = channel
                let timeout = timeout
                let queue = route.queue(of: key)
                inFlight += 1
                group.addTask {
                    switch await channel.request(message, queue: queue, timeout: timeout) {
                    case .replied(let reply): (key, .replied(reply))
                    case .timedOut: (key, .timedOut)
                    case .failed(let error): (key, .failed(error.description))
                    }
                }
            }
            while let result = await group.next() { settle(result) }
        }
        let sentKeys = sendable.map(\.record.row.key).filter {
            switch outcomes[$0] {
            case .replied?, .timedOut?: true
            default: false
            }
        }
        let after = (try? inspector.rows(sentKeys)) ?? [:]
        return RepairRun(
            plan: plan,
            outcomes: plan.checks.compactMap { check in
                outcomes[check.record.row.key].map { (check.record.row.key, $0) }
            }, after: after, checkedAt: now())
    }
}

/// Repair output as text and JSON.
public enum RepairView {
    /// `--dry-run`: every selected saga with what would happen to it.
    public static func planText(_ plan: RepairPlan) -> String {
        let now = plan.snapshotAt
        let request = plan.request
        guard !plan.checks.isEmpty else {
            return "No sagas match\(plan.filter.map { " \($0.flags)" } ?? ""); nothing to \(request.verb).\n"
        }
        var table = TextTable(["SAGA", "STATUS", "STEP", "IDLE", "WOULD"], right: [3])
        for check in plan.checks {
            let row = check.record.row
            table.add([
                row.key.description, row.status.rawValue, row.currentStep ?? "-",
                TimeText.span(milliseconds: now.milliseconds - row.updatedAt.milliseconds),
                check.refusal.map(refused) ?? check.preview ?? "send",
            ])
        }
        var out = "Dry run: \(describe(request)) (nothing is sent)\n" + table.render()
        out +=
            "\(Words.count(plan.sendable.count, "saga")) would be sent a \(request.verb), "
            + "\(plan.refused.count) refused here. Selection frozen at \(TimeText.seconds(now)): sagas that change later "
            + "are not included.\n"
        return out
    }

    /// `{"dryRun": true, "request", "snapshotAt", "filter", "sagas": [{..., "willSend", "preview", "refusal"}]}`.
    public static func planJSON(_ plan: RepairPlan) -> JSONValue {
        [
            "dryRun": true,
            "request": requestJSON(plan.request),
            "snapshotAt": JSONFields.time(plan.snapshotAt),
            "filter": plan.filter.map(ListView.filterJSON) ?? .null,
            "sagas": .array(
                plan.checks.map { check in
                    var fields = JSONFields.row(check.record.row, now: plan.snapshotAt)
                    fields["willSend"] = .bool(check.willSend)
                    fields["preview"] = JSONFields.string(check.preview)
                    fields["predictedStatus"] = JSONFields.string(check.predictedStatus?.rawValue)
                    fields["refusal"] = JSONFields.string(check.refusal)
                    return .object(fields)
                }),
        ]
    }

    /// The end of a bulk run: what did not apply, then the counts and the re-check.
    public static func runText(_ run: RepairRun) -> String {
        var out = ""
        let problems = run.outcomes.filter { $0.outcome.label != "applied" }
        if !problems.isEmpty {
            var table = TextTable(["SAGA", "OUTCOME", "WHY"])
            for entry in problems {
                table.add([entry.key.description, entry.outcome.label, stripRefused(entry.outcome.message)])
            }
            out += table.render()
        }
        var tallies: [String: Int] = [:]
        for entry in run.outcomes { tallies[entry.outcome.label, default: 0] += 1 }
        let order = ["applied", "rejected", "error", "timeout", "failed", "changed", "refused"]
        out +=
            "\(run.plan.request.verb): \(Words.count(run.outcomes.count, "saga")) selected; "
            + order.compactMap { label in tallies[label].map { "\(label) \($0)" } }.joined(separator: ", ") + ".\n"
        let moved = run.moved
        var statuses: [String: Int] = [:]
        for key in moved { statuses[run.after[key]?.status.rawValue ?? "gone", default: 0] += 1 }
        out += "Re-check at \(TimeText.seconds(run.checkedAt)): \(moved.count) of \(run.sent) sent sagas really moved"
        if !statuses.isEmpty {
            out += " (now " + statuses.keys.sorted().map { "\($0) \(statuses[$0] ?? 0)" }.joined(separator: ", ") + ")"
        }
        let again = run.suspendedAgain.count
        if again > 0 { out += "; \(again) ran and are suspended again (waybill sagas stuck)" }
        out += ".\n"
        return out
    }

    /// `{"request", "snapshotAt", "checkedAt", "sagas": [{..., "outcome", "message", "moved", "statusAfter"}],
    /// "counts", "sent", "moved", "suspendedAgain"}`.
    public static func runJSON(_ run: RepairRun) -> JSONValue {
        let moved = Set(run.moved)
        let rows = Dictionary(
            run.plan.checks.map { ($0.record.row.key, $0.record.row) }, uniquingKeysWith: { first, _ in first })
        var counts: [String: JSONValue] = [:]
        var tallies: [String: Int] = [:]
        for entry in run.outcomes { tallies[entry.outcome.label, default: 0] += 1 }
        for (label, count) in tallies { counts[label] = JSONFields.int(count) }
        return [
            "dryRun": false,
            "request": requestJSON(run.plan.request),
            "snapshotAt": JSONFields.time(run.plan.snapshotAt),
            "checkedAt": JSONFields.time(run.checkedAt),
            "filter": run.plan.filter.map(ListView.filterJSON) ?? .null,
            "sagas": .array(
                run.outcomes.map { entry in
                    var fields: [String: JSONValue] =
                        rows[entry.key].map { JSONFields.row($0, now: run.plan.snapshotAt) } ?? [:]
                    fields["outcome"] = .string(entry.outcome.label)
                    fields["message"] = .string(entry.outcome.message)
                    fields["moved"] = .bool(moved.contains(entry.key))
                    fields["statusAfter"] = JSONFields.string(run.after[entry.key]?.status.rawValue)
                    return .object(fields)
                }),
            "counts": .object(counts),
            "sent": JSONFields.int(run.sent),
            "moved": JSONFields.int(moved.count),
            "suspendedAgain": JSONFields.int(run.suspendedAgain.count),
        ]
    }

    static func requestJSON(_ request: RepairRequest) -> JSONValue {
        [
            "action": .string(request.action.rawValue), "step": JSONFields.string(request.step),
            "output": request.output ?? .null, "branch": JSONFields.string(request.branch), "by": .string(request.by),
            "reason": .string(request.reason),
        ]
    }

    /// `refused: <why>`, whether or not the reason already says so.
    static func refused(_ reason: String) -> String {
        "refused: " + stripRefused(reason)
    }

    static func stripRefused(_ reason: String) -> String {
        reason.hasPrefix("refused: ") ? String(reason.dropFirst("refused: ".count)) : reason
    }

    /// `retry --step ship by alice: "TMS is back"`.
    static func describe(_ request: RepairRequest) -> String {
        let step = request.step.map { request.action == .reset ? " --to \($0)" : " --step \($0)" } ?? ""
        return "\(request.verb)\(step) by \(request.by): \"\(request.reason)\""
    }
}
