import PlainText
import SagaEngine
import SagaStore
import WaybillDefinition

/// `waybill sagas list`: one row per saga.
public enum ListView {
    /// The table, with a footer that says how many rows there are, in which order, and whether more match.
    public static func text(_ page: SagaPage, filter: SagaFilter, now: Timestamp) -> String {
        guard !page.rows.isEmpty else {
            let narrowed = filter.flags.isEmpty ? "" : " matching \(filter.flags)"
            return "No sagas\(narrowed).\n"
        }
        var table = TextTable(["SAGA", "STATUS", "STEP", "FAILURE", "OWNER", "LAST PROGRESS", "AGE"], right: [5, 6])
        for row in page.rows {
            table.add([
                row.key.description, row.status.rawValue, row.currentStep ?? "-", row.failureCode ?? "",
                row.owner ?? "-", TimeText.relative(row.updatedAt, now: now),
                TimeText.span(milliseconds: now.milliseconds - row.startedAt.milliseconds),
            ])
        }
        var out = table.render()
        let order = filter.newestFirst ? "newest progress first" : "oldest progress first"
        out += "\(Words.count(page.rows.count, "saga")), \(order)."
        if page.hasMore { out += " More match: raise --limit or narrow the filters." }
        return out + "\n"
    }

    /// `{"now", "filter", "sagas": [...], "hasMore"}`; each saga has the fields of `JSONFields.row`.
    public static func json(_ page: SagaPage, filter: SagaFilter, now: Timestamp) -> JSONValue {
        [
            "now": JSONFields.time(now),
            "filter": filterJSON(filter),
            "sagas": .array(page.rows.map { .object(JSONFields.row($0, now: now)) }),
            "hasMore": .bool(page.hasMore),
        ]
    }

    static func filterJSON(_ filter: SagaFilter) -> JSONValue {
        [
            "statuses": JSONFields.strings(filter.statuses.map(\.rawValue)),
            "workflow": JSONFields.string(filter.workflow),
            "step": JSONFields.string(filter.step),
            "stuckForMs": JSONFields.int(filter.stuckFor?.milliseconds),
            "since": JSONFields.time(filter.since),
            "owner": JSONFields.string(filter.owner),
            "limit": JSONFields.int(filter.limit),
            "newestFirst": .bool(filter.newestFirst),
        ]
    }
}

/// `waybill sagas history`: the journal, oldest first.
public enum HistoryView {
    /// The table of journal lines (no trailing summary).
    public static func table(_ lines: [JournalLine], now: Timestamp, indent: String = "") -> String {
        var table = TextTable(["TIME", "KIND", "STEP", "BY", "DETAIL"])
        for line in lines {
            table.add([TimeText.seconds(line.at), line.kind, line.step ?? "", line.actor ?? "", line.detail])
        }
        return table.render(indent: indent)
    }

    /// Lines appended while following: the same columns, without the header, aligned to fixed widths so that
    /// successive batches line up.
    public static func followLines(_ lines: [JournalLine]) -> String {
        lines.map { line in
            let kind = line.kind.padded(to: 9)
            let step = (line.step ?? "").padded(to: 12)
            let actor = (line.actor ?? "").padded(to: 10)
            return "\(TimeText.seconds(line.at))  \(kind)  \(step)  \(actor)  \(line.detail)"
                .trimmingTrailingBlanks() + "\n"
        }.joined()
    }

    /// The whole `history` text.
    public static func text(_ lines: [JournalLine], key: SagaKey, now: Timestamp) -> String {
        guard !lines.isEmpty else { return "No journal lines for \(key).\n" }
        return table(lines, now: now) + "\(Words.count(lines.count, "journal line")) for \(key), oldest first.\n"
    }

    /// One journal line as a JSON object (`--follow --json` prints one per line).
    public static func lineJSON(_ line: JournalLine, key: SagaKey) -> JSONValue {
        JSONFields.journal(line, key: key)
    }

    /// `{"saga": {"workflow", "id"}, "entries": [...]}`.
    public static func json(_ lines: [JournalLine], key: SagaKey) -> JSONValue {
        [
            "saga": ["workflow": .string(key.workflow), "id": .string(key.id)],
            "entries": .array(lines.map { JSONFields.journal($0, key: key) }),
        ]
    }
}
