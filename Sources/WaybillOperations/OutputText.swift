import PlainText
import WaybillDefinition

/// Pretty JSON for `--json`: two-space indentation, object keys sorted, one trailing newline, the same bytes for
/// the same value. Scalars are written exactly as ``JSONText`` writes them.
public enum PrettyJSON {
    /// `value` as indented JSON text ending in a newline.
    public static func render(_ value: JSONValue) -> String {
        var out = ""
        write(value, indent: "", into: &out)
        out += "\n"
        return out
    }

    /// `value` as one compact line (for `--follow` streams: one JSON document per line).
    public static func line(_ value: JSONValue) -> String {
        JSONText.encode(value) + "\n"
    }

    private static func write(_ value: JSONValue, indent: String, into out: inout String) {
        let inner = indent + "  "
        switch value {
        case .array(let elements):
            guard !elements.isEmpty else {
                out += "[]"
                return
            }
            out += "[\n"
            for (index, element) in elements.enumerated() {
                out += inner
                write(element, indent: inner, into: &out)
                out += index == elements.count - 1 ? "\n" : ",\n"
            }
            out += indent + "]"
        case .object(let members):
            guard !members.isEmpty else {
                out += "{}"
                return
            }
            out += "{\n"
            let keys = members.keys.sorted()
            for (index, key) in keys.enumerated() {
                out += inner + JSONText.encode(.string(key)) + ": "
                write(members[key] ?? .null, indent: inner, into: &out)
                out += index == keys.count - 1 ? "\n" : ",\n"
            }
            out += indent + "}"
        default:
            out += JSONText.encode(value)
        }
    }
}

/// A plain-text table: a header row in capitals, columns separated by two spaces, trailing blanks trimmed.
///
/// Cells are never cut, so ids can be copied whole; put long free text in the last column.
public struct TextTable: Sendable {
    private var headers: [String]
    private var alignments: [TextAlignment]
    private var rows: [[String]] = []

    /// A table with these column headers; `right` lists the columns to right-align (counts, ages).
    public init(_ headers: [String], right: Set<Int> = []) {
        self.headers = headers
        alignments = headers.indices.map { right.contains($0) ? .right : .left }
    }

    /// Appends a row; missing cells are blank, extra cells are dropped.
    public mutating func add(_ cells: [String]) {
        var row = Array(cells.prefix(headers.count))
        while row.count < headers.count { row.append("") }
        rows.append(row)
    }

    /// Whether no row was added.
    public var isEmpty: Bool { rows.isEmpty }

    /// The rows without the header line (for `key  value` blocks whose headers are blank).
    public func renderRows(indent: String = "") -> String {
        render(indent: indent, header: false)
    }

    /// The table, one line per row, each ending in a newline; `indent` prefixes every line.
    public func render(indent: String = "") -> String {
        render(indent: indent, header: true)
    }

    private func render(indent: String, header: Bool) -> String {
        var widths = headers.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        var out = ""
        for row in (header ? [headers] : []) + rows {
            var line = indent
            for (index, cell) in row.enumerated() {
                if index > 0 { line += "  " }
                line += cell.padded(to: widths[index], alignments[index])
            }
            out += line.trimmingTrailingBlanks() + "\n"
        }
        return out
    }
}

extension String {
    /// The text without the spaces at its end (padded columns leave them).
    func trimmingTrailingBlanks() -> String {
        var text = self
        while text.last == " " { text.removeLast() }
        return text
    }
}

/// Small helpers for operator text (the CLI's and the web view's).
public enum Words {
    /// `1 saga`, `3 sagas`.
    public static func count(_ value: Int, _ singular: String, _ plural: String? = nil) -> String {
        "\(value) \(value == 1 ? singular : (plural ?? singular + "s"))"
    }

    /// One line of at most `limit` characters, with `…` when cut.
    public static func cut(_ text: String, _ limit: Int) -> String {
        var line = String(text.map { $0.isNewline ? " " : $0 })
        if line.count > limit { line = String(line.prefix(limit - 1)) + "…" }
        return line
    }
}
