import SagaEngine
import SagaStore
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

extension SagaInspector {
    /// Classifies every non-terminal saga at `now` in one snapshot, from indexes only (see ``StuckClassifier``):
    ///
    /// - `sagas_by_status` gives each running and compensating saga's row id and last progress, the count and order
    ///   of suspended sagas, and the running and compensating sagas idle past the threshold;
    /// - one pass over the timers that matter (retry timers, and timers past the grace) finds their sagas' row ids
    ///   through the primary key index.
    ///
    /// Everything else is on schedule. Rows and state are read only for the sagas shown: the oldest of each class
    /// and, when `only` is set, up to `limit` members of that class. A pool's report adds its files' reports up:
    /// counts summed, the oldest of each class and the first `limit` members across the files.
    public func stuckReport(
        now: Timestamp, policy: StuckPolicy, only: StuckClass? = nil, limit: Int = 20
    )
        throws(OperationsError) -> StuckReport
    {
        let parts = try read("classifying stuck sagas") { snapshot in
            try stuckReport(snapshot, now: now, policy: policy, only: only, limit: limit)
        }
        if parts.count == 1 { return parts[0] }
        func ordered(_ members: [StuckReport.Member]) -> [StuckReport.Member] {
            members.sorted { SagaRow.precedes($0.row, $1.row) }
        }
        let summaries = StuckClass.allCases.map { stuckClass in
            let mine = parts.flatMap { $0.summaries.filter { $0.stuckClass == stuckClass } }
            return StuckReport.Summary(
                stuckClass: stuckClass, count: mine.reduce(0) { $0 + $1.count },
                oldest: ordered(mine.compactMap(\.oldest)).first)
        }
        let members = ordered(parts.flatMap(\.members))
        return StuckReport(
            now: now, policy: policy, summaries: summaries, selected: only, members: Array(members.prefix(limit)),
            hasMore: members.count > limit || parts.contains(where: \.hasMore))
    }

    /// A saga's place in a class, by row: enough to count and order without its key or state.
    private struct Entry: Hashable {
        var rowid: SagaRowNumber
        var updatedAt: Int64
    }

    private func stuckReport(
        _ snapshot: StoreSnapshot, now: Timestamp, policy: StuckPolicy, only: StuckClass?, limit: Int
    ) throws -> StuckReport {
        let overdue = now.milliseconds - policy.grace.milliseconds
        let idleBefore = now.milliseconds - policy.noProgressAfter.milliseconds

        // Every running and compensating saga, sorted by row; each retry or overdue timer finds its saga by binary
        // search: far cheaper than hashing a few thousand rows into tables.
        var live: [(row: SagaRowNumber, compensating: Bool, updatedAt: Int64)] = []
        for status in [SagaStatus.running, .compensating] {
            try snapshot.forEachActivity(status: status) { saga in
                live.append((saga.row, status == .compensating, saga.updatedAt.milliseconds))
            }
        }
        live.sort { $0.row < $1.row }
        var suspended: [Entry] = []
        try snapshot.forEachActivity(status: .suspended) { saga in
            suspended.append(Entry(rowid: saga.row, updatedAt: saga.updatedAt.milliseconds))
        }
        var flags = [StuckClassifier.TimerFlags](repeating: StuckClassifier.TimerFlags(), count: live.count)
        for signal in try snapshot.timerSignals(retryOrDueBefore: Timestamp(milliseconds: overdue)) {
            var low = 0
            var high = live.count
            while low < high {
                let middle = (low + high) / 2
                if live[middle].row < signal.row { low = middle + 1 } else { high = middle }
            }
            // A timer of a suspended or finished saga does not count.
            guard low < live.count, live[low].row == signal.row else { continue }
            flags[low].add(signal.kind, dueAt: signal.dueAt.milliseconds, overdueBefore: overdue)
        }
        // By class, in `StuckClass.allCases` order (an array: hashing a class's name for every saga showed up in
        // profiles).
        let classes = StuckClass.allCases
        var members = [[Entry]](repeating: [], count: classes.count)
        members[classes.firstIndex(of: .suspended)!] = suspended
        for (index, saga) in live.enumerated() {
            let stuckClass =
                StuckClassifier.classify(
                    status: saga.compensating ? .compensating : .running, updatedAt: saga.updatedAt,
                    timers: flags[index], idleBefore: idleBefore) ?? .onSchedule
            members[classes.firstIndex(of: stuckClass)!].append(Entry(rowid: saga.row, updatedAt: saga.updatedAt))
        }
        func entries(_ stuckClass: StuckClass) -> [Entry] { members[classes.firstIndex(of: stuckClass)!] }

        /// The rows of the first `count` entries by last progress, and the rows tied with the last one taken, so the
        /// workflow/id tie-break is exact once they are loaded.
        func candidates(_ entries: [Entry], _ count: Int) -> [SagaRowNumber] {
            let boundary: Int64
            if count == 1 {
                guard let oldest = entries.min(by: { $0.updatedAt < $1.updatedAt }) else { return [] }
                boundary = oldest.updatedAt
            } else {
                let sorted = entries.map(\.updatedAt).sorted()
                guard !sorted.isEmpty else { return [] }
                boundary = sorted[min(count, sorted.count) - 1]
            }
            return entries.filter { $0.updatedAt <= boundary }.map(\.rowid)
        }
        func diagnose(_ record: SagaRecord) throws -> StuckReport.Member {
            let definition = try? loadDefinition(snapshot, hash: record.row.definitionHash)
            return StuckReport.Member(
                row: record.row,
                diagnosis: Diagnosis(record: record, definition: definition ?? nil, now: now, policy: policy))
        }

        // The oldest of every class, loaded in one query.
        let oldestRows = classes.map { candidates(entries($0), 1) }
        let oldest = try snapshot.records(rows: oldestRows.flatMap { $0 })
        var summaries: [StuckReport.Summary] = []
        for (index, stuckClass) in classes.enumerated() {
            let first = oldestRows[index].compactMap { oldest[$0] }.min { SagaRow.precedes($0.row, $1.row) }
            summaries.append(
                StuckReport.Summary(
                    stuckClass: stuckClass, count: entries(stuckClass).count, oldest: try first.map(diagnose)))
        }
        var selected: [StuckReport.Member] = []
        var hasMore = false
        if let only {
            let chosen = try snapshot.records(rows: candidates(entries(only), limit + 1)).values
                .sorted { SagaRow.precedes($0.row, $1.row) }.prefix(limit + 1)
            hasMore = chosen.count > limit
            selected = try chosen.prefix(limit).map(diagnose)
        }
        return StuckReport(
            now: now, policy: policy, summaries: summaries, selected: only, members: selected, hasMore: hasMore)
    }
}

/// What `waybill sagas stuck --group-by` groups the stuck sagas by.
public enum StuckGrouping: String, Sendable, Hashable, CaseIterable {
    /// The error code that keeps a saga stuck (``Diagnosis/code``), `-` when none does.
    case code
    /// The step it is at.
    case step
    /// Its workflow.
    case workflow

    /// Reads `--group-by`; the error lists the choices.
    public static func parse(_ text: String) throws(OperationsError) -> StuckGrouping {
        guard let value = StuckGrouping(rawValue: text.lowercased()) else {
            throw OperationsError(
                .badArgument,
                "--group-by '\(text)': expected one of \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return value
    }
}

/// Which stuck sagas a report keeps: those stuck by one error code, those that progressed last since a time.
public struct StuckSelection: Sendable, Hashable {
    /// `--code`: only sagas this error code keeps stuck (``Diagnosis/code``).
    public var code: String?
    /// `--since`: only sagas whose last progress is at or after this time (the problems that are new).
    public var since: Timestamp?

    /// A selection; both `nil` keeps every saga.
    public init(code: String? = nil, since: Timestamp? = nil) {
        self.code = code
        self.since = since
    }

    /// Whether it narrows anything.
    public var narrows: Bool { code != nil || since != nil }

    /// Whether it keeps `member`.
    public func keeps(_ member: StuckReport.Member) -> Bool {
        if let code, member.diagnosis.code != code { return false }
        if let since, member.row.updatedAt.milliseconds < since.milliseconds { return false }
        return true
    }
}

/// `waybill sagas stuck --group-by`: the stuck sagas (every class but on schedule) in groups, largest first.
public struct StuckGroups: Sendable, Hashable {
    /// One group.
    public struct Group: Sendable, Hashable {
        /// The code, step or workflow (`-` for sagas without one).
        public var key: String
        /// How many sagas.
        public var count: Int
        /// How many of them in each class.
        public var classes: [StuckClass: Int]
        /// The one with the oldest last progress.
        public var oldest: StuckReport.Member
        /// The first ``StuckGroups/membersShown`` of them, oldest last progress first.
        public var members: [StuckReport.Member]
    }

    /// How many members each group lists (the web view's board shows them; the counts cover all).
    public static let membersShown = 50

    /// When it was computed.
    public var now: Timestamp
    /// What the groups are by.
    public var grouping: StuckGrouping
    /// The selection applied before grouping.
    public var selection: StuckSelection
    /// The groups, most sagas first (ties by key).
    public var groups: [Group]

    /// Stuck sagas in all groups.
    public var total: Int { groups.reduce(0) { $0 + $1.count } }
}

extension SagaInspector {
    /// Every stuck saga of the pool that `selection` keeps, in groups by `grouping`. Reads the rows and states of the
    /// stuck sagas (not of those on schedule).
    public func stuckGroups(
        now: Timestamp, policy: StuckPolicy, grouping: StuckGrouping, selection: StuckSelection = StuckSelection()
    ) throws(OperationsError) -> StuckGroups {
        var members: [(StuckClass, StuckReport.Member)] = []
        for stuckClass in StuckClass.allCases where stuckClass.isStuck {
            let report = try stuckReport(now: now, policy: policy, only: stuckClass, limit: Int.max - 1)
            members += report.members.filter(selection.keeps).map { (stuckClass, $0) }
        }
        var byKey: [String: [(StuckClass, StuckReport.Member)]] = [:]
        for entry in members {
            let key: String? =
                switch grouping {
                case .code: entry.1.diagnosis.code
                case .step: entry.1.row.currentStep
                case .workflow: entry.1.row.key.workflow
                }
            byKey[key ?? "-", default: []].append(entry)
        }
        let groups = byKey.compactMap { key, entries -> StuckGroups.Group? in
            let ordered = entries.map(\.1).sorted { SagaRow.precedes($0.row, $1.row) }
            guard let oldest = ordered.first else { return nil }
            var classes: [StuckClass: Int] = [:]
            for (stuckClass, _) in entries { classes[stuckClass, default: 0] += 1 }
            return StuckGroups.Group(
                key: key, count: entries.count, classes: classes, oldest: oldest,
                members: Array(ordered.prefix(StuckGroups.membersShown)))
        }
        return StuckGroups(
            now: now, grouping: grouping, selection: selection,
            groups: groups.sorted { ($1.count, $0.key) < ($0.count, $1.key) })
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
            out +=
                "List one class with --class (e.g. --class \(firstStuck(report)?.rawValue ?? "suspended")); "
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

    /// One line per group: its key, count, classes and oldest saga.
    public static func text(_ report: StuckGroups) -> String {
        let now = report.now
        var table = TextTable(
            [report.grouping.rawValue.uppercased(), "COUNT", "CLASSES", "OLDEST", "IDLE", "WHY"], right: [1, 4])
        for group in report.groups {
            table.add([
                group.key, String(group.count), classesText(group.classes), group.oldest.row.key.description,
                TimeText.span(milliseconds: now.milliseconds - group.oldest.row.updatedAt.milliseconds),
                group.oldest.diagnosis.brief,
            ])
        }
        var out = report.groups.isEmpty ? "" : table.render()
        var narrowed: [String] = []
        if let code = report.selection.code { narrowed.append("code \(code)") }
        if let since = report.selection.since { narrowed.append("progressed since \(TimeText.seconds(since))") }
        out +=
            "\(Words.count(report.total, "stuck saga")) in \(Words.count(report.groups.count, "group")) by "
            + "\(report.grouping.rawValue)\(narrowed.isEmpty ? "" : " (" + narrowed.joined(separator: ", ") + ")"), at "
            + "\(TimeText.seconds(now)).\n"
        return out
    }

    /// `{"now", "groupBy", "code", "since", "total", "groups": [{"key", "count", "classes", "oldest"}]}`.
    public static func json(_ report: StuckGroups) -> JSONValue {
        [
            "now": JSONFields.time(report.now),
            "groupBy": .string(report.grouping.rawValue),
            "code": JSONFields.string(report.selection.code),
            "since": report.selection.since.map(JSONFields.time) ?? .null,
            "total": JSONFields.int(report.total),
            "groups": .array(
                report.groups.map { group in
                    [
                        "key": .string(group.key),
                        "count": JSONFields.int(group.count),
                        "classes": .object(
                            Dictionary(
                                uniqueKeysWithValues: group.classes.map { ($0.key.rawValue, JSONFields.int($0.value)) })
                        ),
                        "oldest": member(member: group.oldest, now: report.now),
                    ]
                }),
        ]
    }

    /// `suspended 3, retrying 1`, in class order.
    private static func classesText(_ classes: [StuckClass: Int]) -> String {
        StuckClass.allCases.compactMap { stuckClass in classes[stuckClass].map { "\(stuckClass.shortTitle) \($0)" } }
            .joined(separator: ", ")
    }

    private static func firstStuck(_ report: StuckReport) -> StuckClass? {
        report.summaries.first { $0.stuckClass.isStuck && $0.count > 0 }?.stuckClass
    }
}
