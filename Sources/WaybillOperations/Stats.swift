import SagaEngine
import SagaStore
import WaybillDefinition

/// `waybill sagas stats`: counts by status and by current step, the oldest saga in flight, and throughput.
public struct SagaStats: Sendable, Hashable {
    /// Sagas not finished at one step of one workflow.
    public struct StepCount: Sendable, Hashable {
        /// The workflow.
        public var workflow: String
        /// The step at the cursor (`-` past the last step).
        public var step: String
        /// Counts by non-terminal status.
        public var running: Int
        public var compensating: Int
        public var suspended: Int
        /// Their sum.
        public var total: Int { running + compensating + suspended }
    }

    /// What happened in the window.
    public struct Throughput: Sendable, Hashable {
        /// How far back the window reaches.
        public var window: Duration
        /// Sagas started in the window.
        public var started: Int
        /// Sagas that reached each end state (and suspended) in the window, by their last progress.
        public var finished: [SagaStatus: Int]
        /// The length of each bucket of ``completedPerBucket``: a fifteenth of the window, at least a minute.
        public var bucket: Duration
        /// Completions per bucket, oldest first; the last bucket ends at `now`.
        public var completedPerBucket: [Int]
    }

    /// When the stats were taken.
    public var now: Timestamp
    /// Every status with its count, in `SagaStatus.allCases` order.
    public var byStatus: [(status: SagaStatus, count: Int)]
    /// Non-terminal sagas by workflow and current step, most first.
    public var bySteps: [StepCount]
    /// The non-terminal saga that started first.
    public var oldestInFlight: SagaRow?
    /// What the pool's archive holds (finished sagas moved out of the partition files); `nil` when one file is read.
    public var archived: Archived?

    /// The archive's size.
    public struct Archived: Sendable, Hashable {
        /// Saga lines written (a saga archived twice counts twice).
        public var lines: Int
        /// Day files.
        public var days: Int
    }
    /// The window's throughput.
    public var throughput: Throughput

    /// All sagas.
    public var total: Int { byStatus.reduce(0) { $0 + $1.count } }

    public static func == (lhs: SagaStats, rhs: SagaStats) -> Bool {
        lhs.now == rhs.now && lhs.byStatus.map(\.status) == rhs.byStatus.map(\.status)
            && lhs.byStatus.map(\.count) == rhs.byStatus.map(\.count) && lhs.bySteps == rhs.bySteps
            && lhs.oldestInFlight == rhs.oldestInFlight && lhs.throughput == rhs.throughput
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(now)
        hasher.combine(total)
    }
}

extension SagaInspector {
    /// Takes the stats in one snapshot, from indexes: status counts from `sagas_by_status` (and the table's row
    /// count), step counts by joining `sagas_by_status` and `sagas_by_step` by row, completions from
    /// `sagas_by_status`, starts by ``StoreSnapshot/startedCount(since:total:)``. The oldest unfinished saga is picked among
    /// the 64 stored first (rows are inserted when sagas start).
    ///
    /// A pool's stats are its files' stats added up: counts summed, step counts grouped by workflow and step, the
    /// oldest unfinished saga of all files.
    public func stats(now: Timestamp, window: Duration = .seconds(900)) throws(OperationsError) -> SagaStats {
        var stats = SagaStats.adding(
            try read("computing saga stats") { snapshot in try Self.stats(snapshot, now: now, window: window) },
            now: now, window: window)
        if let pool {
            do {
                let archive = try SagaArchive(dataDirectory: pool.path, readOnly: true)
                defer { try? archive.close() }
                let summary = try archive.summary()
                stats.archived = SagaStats.Archived(lines: summary.lines, days: summary.days)
            } catch {
                throw Self.translate(error)
            }
        }
        return stats
    }

    private static func stats(_ snapshot: StoreSnapshot, now: Timestamp, window: Duration) throws -> SagaStats {
        // Status counts: every count but `completed` is a short index range; `completed` (usually most of the
        // file) is the b-tree's row count minus the others.
        var counts: [SagaStatus: Int] = [:]
        for status in SagaStatus.allCases where status != .completed {
            counts[status] = try snapshot.sagaCount(status: status)
        }
        let total = try snapshot.sagaCount()
        counts[.completed] = max(0, total - counts.values.reduce(0, +))
        let byStatus = SagaStatus.allCases.map { (status: $0, count: counts[$0] ?? 0) }

        // Unfinished sagas by current step, from two indexes joined by row, never visiting the rows.
        let unfinished = try snapshot.unfinishedStatuses()
        var steps: [SagaStats.StepCount] = []
        for workflow in try snapshot.workflowsWithSagas() {
            for step in try snapshot.currentSteps(of: workflow) {
                var count = SagaStats.StepCount(
                    workflow: workflow, step: step, running: 0, compensating: 0, suspended: 0)
                try snapshot.forEachRow(workflow: workflow, step: step) { row in
                    switch unfinished[row] {
                    case .running?: count.running += 1
                    case .compensating?: count.compensating += 1
                    case .suspended?: count.suspended += 1
                    default: break
                    }
                }
                if count.total > 0 { steps.append(count) }
            }
        }
        // The unfinished saga stored first is the oldest (rows are inserted when sagas start); the 64 lowest
        // rows are read to pick the earliest start among them.
        let firstRows = unfinished.keys.sorted().prefix(64)
        let oldestRow = try snapshot.rows(numbers: Array(firstRows)).min {
            ($0.startedAt, $0.key.workflow, $0.key.id) < ($1.startedAt, $1.key.workflow, $1.key.id)
        }

        let from = Timestamp(milliseconds: now.milliseconds - window.milliseconds)
        let started = try snapshot.startedCount(since: from, total: total)
        var finished: [SagaStatus: Int] = [:]
        for status in [SagaStatus.completed, .compensated, .cancelled, .suspended] {
            finished[status] = try snapshot.sagaCount(status: status, updatedAtOrAfter: from)
        }
        let bucket = max(60_000, window.milliseconds / 15)
        let bucketCount = Int((window.milliseconds + bucket - 1) / bucket)
        let perBucket = try snapshot.completedPerBucket(
            after: Timestamp(milliseconds: now.milliseconds - Int64(bucketCount) * bucket),
            bucket: .milliseconds(bucket), count: bucketCount)
        return SagaStats(
            now: now, byStatus: byStatus, bySteps: SagaStats.ordered(steps), oldestInFlight: oldestRow,
            throughput: SagaStats.Throughput(
                window: window, started: started, finished: finished, bucket: .milliseconds(bucket),
                completedPerBucket: perBucket))
    }
}

extension SagaStats {
    /// Step counts, most sagas first (ties by workflow, then step).
    static func ordered(_ steps: [StepCount]) -> [StepCount] {
        steps.sorted { ($0.total, $1.workflow, $1.step) > ($1.total, $0.workflow, $0.step) }
    }

    /// The stats of several files taken at `now` over `window`, as one: every count summed, step counts grouped,
    /// the earliest start among the files' oldest unfinished sagas.
    static func adding(_ parts: [SagaStats], now: Timestamp, window: Duration) -> SagaStats {
        if parts.count == 1 { return parts[0] }
        var counts: [SagaStatus: Int] = [:]
        var steps: [String: StepCount] = [:]
        var started = 0
        var finished: [SagaStatus: Int] = [:]
        var perBucket: [Int] = []
        for part in parts {
            for entry in part.byStatus { counts[entry.status, default: 0] += entry.count }
            for step in part.bySteps {
                let key = "\(step.workflow)\u{0}\(step.step)"
                var sum =
                    steps[key]
                    ?? StepCount(
                        workflow: step.workflow, step: step.step, running: 0, compensating: 0, suspended: 0)
                sum.running += step.running
                sum.compensating += step.compensating
                sum.suspended += step.suspended
                steps[key] = sum
            }
            started += part.throughput.started
            for (status, count) in part.throughput.finished { finished[status, default: 0] += count }
            let buckets = part.throughput.completedPerBucket
            if perBucket.count < buckets.count {
                perBucket += Array(repeating: 0, count: buckets.count - perBucket.count)
            }
            for (index, count) in buckets.enumerated() { perBucket[index] += count }
        }
        let oldest = parts.compactMap(\.oldestInFlight).min {
            ($0.startedAt, $0.key.workflow, $0.key.id) < ($1.startedAt, $1.key.workflow, $1.key.id)
        }
        let bucket = max(60_000, window.milliseconds / 15)
        return SagaStats(
            now: now, byStatus: SagaStatus.allCases.map { (status: $0, count: counts[$0] ?? 0) },
            bySteps: ordered(Array(steps.values)), oldestInFlight: oldest,
            throughput: Throughput(
                window: window, started: started, finished: finished, bucket: .milliseconds(bucket),
                completedPerBucket: perBucket.isEmpty
                    ? Array(repeating: 0, count: Int((window.milliseconds + bucket - 1) / bucket)) : perBucket))
    }
}

/// `waybill sagas stats` as text and JSON.
public enum StatsView {
    /// Three small tables and the throughput lines.
    public static func text(_ stats: SagaStats) -> String {
        let now = stats.now
        var out = "Sagas by status\n"
        var statuses = TextTable(["STATUS", "COUNT"], right: [1])
        for entry in stats.byStatus { statuses.add([entry.status.rawValue, Words.number(entry.count)]) }
        statuses.add(["total", Words.number(stats.total)])
        out += statuses.render(indent: "  ")
        out += "\nNot finished, by current step\n"
        if stats.bySteps.isEmpty {
            out += "  none\n"
        } else {
            var steps = TextTable(
                ["WORKFLOW", "STEP", "RUNNING", "COMPENSATING", "SUSPENDED", "TOTAL"], right: [2, 3, 4, 5])
            for step in stats.bySteps {
                steps.add([
                    step.workflow, step.step, Words.number(step.running), Words.number(step.compensating),
                    Words.number(step.suspended), Words.number(step.total),
                ])
            }
            out += steps.render(indent: "  ")
        }
        if let archived = stats.archived, archived.lines > 0 {
            out +=
                "\nArchived: \(Words.number(archived.lines)) finished sagas in \(Words.number(archived.days)) day "
                + "file\(archived.days == 1 ? "" : "s") (waybill sagas show still reads them)\n"
        }
        out += "\nOldest not finished: "
        if let oldest = stats.oldestInFlight {
            out +=
                "\(oldest.key) \(oldest.status.rawValue) at \(oldest.currentStep ?? "-"), started "
                + "\(TimeText.withRelative(oldest.startedAt, now: now))\n"
        } else {
            out += "none\n"
        }
        let throughput = stats.throughput
        let window = TimeText.span(milliseconds: throughput.window.milliseconds)
        let minutes = max(1.0, Double(throughput.window.milliseconds) / 60_000)
        func rate(_ count: Int) -> String {
            let perMinute = Double(count) / minutes
            return "\(Words.number(count)) (\(Words.decimal(perMinute))/min)"
        }
        out +=
            "\nLast \(window) (to \(TimeText.seconds(now))): started \(rate(throughput.started)), "
            + "completed \(rate(throughput.finished[.completed] ?? 0)), "
            + "compensated \(Words.number(throughput.finished[.compensated] ?? 0)), "
            + "cancelled \(Words.number(throughput.finished[.cancelled] ?? 0)), "
            + "suspended \(Words.number(throughput.finished[.suspended] ?? 0))\n"
        out +=
            "  completed per \(TimeText.span(milliseconds: throughput.bucket.milliseconds)), oldest first: "
            + throughput.completedPerBucket.map(String.init).joined(separator: " ") + "\n"
        return out
    }

    /// `{"now", "total", "byStatus": {...}, "bySteps": [...], "oldestInFlight", "throughput": {...}}`.
    public static func json(_ stats: SagaStats) -> JSONValue {
        var byStatus: [String: JSONValue] = [:]
        for entry in stats.byStatus { byStatus[entry.status.rawValue] = JSONFields.int(entry.count) }
        let throughput = stats.throughput
        var finished: [String: JSONValue] = [:]
        for (status, count) in throughput.finished { finished[status.rawValue] = JSONFields.int(count) }
        return [
            "now": JSONFields.time(stats.now),
            "total": JSONFields.int(stats.total),
            "byStatus": .object(byStatus),
            "bySteps": .array(
                stats.bySteps.map { step in
                    [
                        "workflow": .string(step.workflow), "step": .string(step.step),
                        "running": JSONFields.int(step.running), "compensating": JSONFields.int(step.compensating),
                        "suspended": JSONFields.int(step.suspended), "total": JSONFields.int(step.total),
                    ]
                }),
            "oldestInFlight": stats.oldestInFlight.map { .object(JSONFields.row($0, now: stats.now)) } ?? .null,
            "archived": stats.archived.map { ["lines": JSONFields.int($0.lines), "days": JSONFields.int($0.days)] }
                ?? .null,
            "throughput": [
                "windowMs": JSONFields.int(throughput.window.milliseconds),
                "started": JSONFields.int(throughput.started),
                "finished": .object(finished),
                "bucketMs": JSONFields.int(throughput.bucket.milliseconds),
                "completedPerBucket": .array(throughput.completedPerBucket.map { JSONFields.int($0) }),
            ],
        ]
    }
}

extension Words {
    /// `1,234,567`.
    static func number(_ value: Int) -> String {
        let digits = String(abs(value))
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { out += "," }
            out.append(digit)
        }
        return (value < 0 ? "-" : "") + out
    }

    /// `20.8`: one decimal, rounded half up.
    static func decimal(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}
