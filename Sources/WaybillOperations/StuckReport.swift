import GRDB
import SagaEngine
import WaybillDefinition

/// `waybill sagas stuck`: every non-terminal saga in one ``StuckClass``, with a count and the oldest of each class,
/// and optionally the members of one class.
public struct StuckReport: Sendable, Hashable {
    /// A saga of a class, with why it is there.
    public struct Member: Sendable, Hashable {
        /// Its row.
        public var row: SagaRow
        /// Its diagnosis (`brief` for tables, `reason` for one saga).
        public var diagnosis: Diagnosis
    }

    /// One class's line.
    public struct Summary: Sendable, Hashable {
        /// The class.
        public var stuckClass: StuckClass
        /// How many sagas are in it.
        public var count: Int
        /// The one with the oldest last progress (ties by workflow and id).
        public var oldest: Member?
    }

    /// When the report was computed.
    public var now: Timestamp
    /// The thresholds used.
    public var policy: StuckPolicy
    /// Every class in ``StuckClass/allCases`` order, including empty ones.
    public var summaries: [Summary]
    /// The class whose members were asked for, if any.
    public var selected: StuckClass?
    /// Its members, oldest progress first, at most the limit.
    public var members: [Member]
    /// Whether the selected class has more members than the limit let through.
    public var hasMore: Bool

    /// Sagas that are not terminal.
    public var active: Int { summaries.reduce(0) { $0 + $1.count } }
    /// Sagas that need attention.
    public var stuck: Int { summaries.filter(\.stuckClass.isStuck).reduce(0) { $0 + $1.count } }
}

extension OperationsDatabase {
    /// Classifies every non-terminal saga at `now` in one snapshot.
    ///
    /// It decodes state only where the columns cannot decide: sagas with a retry timer or an overdue timer
    /// (`timers` table), and suspended and compensating sagas. Every other running saga is ``StuckClass/noProgress``
    /// when its `updated_at` is older than the threshold and ``StuckClass/onSchedule`` otherwise; the two
    /// `sagas_by_status` ranges answer that. When `only` is set, up to `limit` of its members come back too.
    public func stuckReport(now: Timestamp, policy: StuckPolicy, only: StuckClass? = nil, limit: Int = 20)
        throws(OperationsError) -> StuckReport
    {
        try read("classifying stuck sagas") { db in
            try Self.stuckReport(db, database: self, now: now, policy: policy, only: only, limit: limit)
        }
    }

    private static func stuckReport(
        _ db: Database, database: OperationsDatabase, now: Timestamp, policy: StuckPolicy, only: StuckClass?,
        limit: Int
    ) throws -> StuckReport {
        let active: [SagaStatus] = [.running, .compensating, .suspended]
        var totals: [SagaStatus: Int] = [:]
        for status in active {
            totals[status] = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sagas WHERE status = ?", arguments: [status.rawValue]) ?? 0
        }
        let overdue = now.milliseconds - policy.grace.milliseconds
        let idleBefore = now.milliseconds - policy.noProgressAfter.milliseconds

        // 1. Sagas the columns cannot classify: retry or overdue timers, suspended and compensating sagas.
        var candidates = Set<SagaKey>()
        let timerRows = try Row.fetchCursor(
            db, sql: "SELECT workflow, saga_id FROM timers WHERE kind = 'retry' OR due_at < ?", arguments: [overdue])
        while let row = try timerRows.next() { candidates.insert(SagaKey(workflow: row[0], id: row[1])) }
        let statusRows = try Row.fetchCursor(
            db, sql: "SELECT workflow, saga_id FROM sagas WHERE status IN ('suspended', 'compensating')")
        while let row = try statusRows.next() { candidates.insert(SagaKey(workflow: row[0], id: row[1])) }
        let records = try records(db, keys: Array(candidates))

        var members: [StuckClass: [SagaRecord]] = [:]
        for record in records.values {
            guard let stuckClass = StuckClassifier.classify(record.instance, now: now, policy: policy) else { continue }
            members[stuckClass, default: []].append(record)
        }

        // 2. Running sagas without a candidate reason: idle past the threshold, or on schedule.
        var idle: [SagaRow] = []
        let idleRows = try Row.fetchCursor(
            db, sql: "SELECT \(rowColumns) FROM sagas WHERE status = 'running' AND updated_at <= ?",
            arguments: [idleBefore])
        while let row = try idleRows.next() {
            let sagaRow = try sagaRow(row)
            if !candidates.contains(sagaRow.key) { idle.append(sagaRow) }
        }
        let idleRecords = members[.noProgress] ?? []
        let stuckCount =
            members.filter { $0.key.isStuck }.values.reduce(0) { $0 + $1.count } + idle.count
        let onScheduleCount = max(0, active.reduce(0) { $0 + (totals[$1] ?? 0) } - stuckCount)

        func diagnose(_ record: SagaRecord) throws -> StuckReport.Member {
            let definition = try? database.loadDefinition(db, hash: record.row.definitionHash)
            return StuckReport.Member(
                row: record.row,
                diagnosis: Diagnosis(record: record, definition: definition ?? nil, now: now, policy: policy))
        }
        /// The first `count` members of a class, oldest progress first.
        func firstMembers(_ stuckClass: StuckClass, _ count: Int) throws -> [SagaRecord] {
            switch stuckClass {
            case .noProgress:
                let rows = (idle + idleRecords.map(\.row)).sorted(by: SagaRow.precedes).prefix(count)
                let known = Dictionary(idleRecords.map { ($0.row.key, $0) }, uniquingKeysWith: { first, _ in first })
                let loaded = try Self.records(db, keys: rows.map(\.key).filter { known[$0] == nil })
                return rows.compactMap { known[$0.key] ?? loaded[$0.key] }
            case .onSchedule:
                let fromColumns = try onSchedule(
                    db, now: now, idleBefore: idleBefore, excluding: candidates, limit: count)
                return Array((fromColumns + (members[.onSchedule] ?? [])).sorted { SagaRow.precedes($0.row, $1.row) }
                    .prefix(count))
            default:
                return Array((members[stuckClass] ?? []).sorted { SagaRow.precedes($0.row, $1.row) }.prefix(count))
            }
        }

        var summaries: [StuckReport.Summary] = []
        for stuckClass in StuckClass.allCases {
            let count: Int
            switch stuckClass {
            case .noProgress: count = idle.count + idleRecords.count
            case .onSchedule: count = onScheduleCount
            default: count = members[stuckClass]?.count ?? 0
            }
            let oldest = count == 0 ? nil : try firstMembers(stuckClass, 1).first.map(diagnose)
            summaries.append(.init(stuckClass: stuckClass, count: count, oldest: oldest))
        }

        var selected: [StuckReport.Member] = []
        var hasMore = false
        if let only {
            let chosen = try firstMembers(only, limit + 1)
            hasMore = chosen.count > limit
            selected = try chosen.prefix(limit).map(diagnose)
        }
        return StuckReport(
            now: now, policy: policy, summaries: summaries, selected: only, members: selected, hasMore: hasMore)
    }

    /// Running sagas that progressed within the threshold and have no candidate reason, oldest progress first.
    private static func onSchedule(
        _ db: Database, now: Timestamp, idleBefore: Int64, excluding: Set<SagaKey>, limit: Int
    ) throws -> [SagaRecord] {
        let rows = try Row.fetchCursor(
            db,
            sql: """
                SELECT \(rowColumns), state FROM sagas WHERE status = 'running' AND updated_at > ?
                ORDER BY updated_at, workflow, saga_id
                """,
            arguments: [idleBefore])
        var result: [SagaRecord] = []
        while result.count < limit, let row = try rows.next() {
            let sagaRow = try sagaRow(row)
            guard !excluding.contains(sagaRow.key) else { continue }
            result.append(SagaRecord(row: sagaRow, instance: try decodeState(row[10], key: sagaRow.key)))
        }
        return result
    }
}

/// `waybill sagas stuck` as text and JSON.
public enum StuckView {
    /// One line per class with its count and oldest saga, then the selected class's members.
    public static func text(_ report: StuckReport) -> String {
        let now = report.now
        var table = TextTable(["CLASS", "COUNT", "OLDEST", "IDLE", "WHY"], right: [1, 3])
        for summary in report.summaries {
            table.add([
                summary.stuckClass.title, String(summary.count), summary.oldest?.row.key.description ?? "-",
                summary.oldest.map { TimeText.span(milliseconds: now.milliseconds - $0.row.updatedAt.milliseconds) }
                    ?? "",
                summary.oldest?.diagnosis.brief ?? "",
            ])
        }
        var out = table.render()
        out +=
            "\(Words.count(report.stuck, "saga")) stuck of \(report.active) not finished, at \(TimeText.seconds(now)) "
            + "(timers overdue after \(TimeText.span(milliseconds: report.policy.grace.milliseconds)), "
            + "no progress after \(TimeText.span(milliseconds: report.policy.noProgressAfter.milliseconds))).\n"
        if let selected = report.selected {
            out += "\n\(selected.title): \(Words.count(report.members.count, "saga"))"
            out += report.hasMore ? " shown, more exist (raise --limit)\n" : "\n"
            if !report.members.isEmpty {
                var members = TextTable(["SAGA", "STATUS", "STEP", "OWNER", "IDLE", "WHY"], right: [4])
                for member in report.members {
                    members.add([
                        member.row.key.description, member.row.status.rawValue, member.row.currentStep ?? "-",
                        member.row.owner ?? "-",
                        TimeText.span(milliseconds: now.milliseconds - member.row.updatedAt.milliseconds),
                        member.diagnosis.brief,
                    ])
                }
                out += members.render()
            }
        } else if report.stuck > 0 {
            out += "List one class with --class (e.g. --class \(firstStuck(report)?.rawValue ?? "suspended")); "
                + "explain one saga with `waybill sagas show ID`.\n"
        }
        return out
    }

    /// `{"now", "policy", "classes": [...], "selected", "members", "hasMore"}`.
    public static func json(_ report: StuckReport) -> JSONValue {
        let classes: [JSONValue] = report.summaries.map { summary in
            [
                "class": .string(summary.stuckClass.rawValue),
                "title": .string(summary.stuckClass.title),
                "stuck": .bool(summary.stuckClass.isStuck),
                "count": JSONFields.int(summary.count),
                "oldest": summary.oldest.map { member(member: $0, now: report.now) } ?? .null,
            ]
        }
        return [
            "now": JSONFields.time(report.now),
            "policy": [
                "graceMs": JSONFields.int(report.policy.grace.milliseconds),
                "noProgressAfterMs": JSONFields.int(report.policy.noProgressAfter.milliseconds),
            ],
            "active": JSONFields.int(report.active),
            "stuck": JSONFields.int(report.stuck),
            "classes": .array(classes),
            "selected": JSONFields.string(report.selected?.rawValue),
            "members": .array(report.members.map { member(member: $0, now: report.now) }),
            "hasMore": .bool(report.hasMore),
        ]
    }

    private static func member(member: StuckReport.Member, now: Timestamp) -> JSONValue {
        var fields = JSONFields.row(member.row, now: now)
        fields["diagnosis"] = ShowView.diagnosisJSON(member.diagnosis)
        return .object(fields)
    }

    private static func firstStuck(_ report: StuckReport) -> StuckClass? {
        report.summaries.first { $0.stuckClass.isStuck && $0.count > 0 }?.stuckClass
    }
}
