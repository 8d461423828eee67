import PlainText
import SagaEngine
import WaybillDefinition

/// How times and durations read in operator output: UTC only, so two operators in different time zones paste the
/// same text into a ticket, and no locale or time zone database is consulted.
public enum TimeText {
    /// `2025-01-15T10:00:00Z`: whole seconds, for tables.
    public static func seconds(_ time: Timestamp) -> String {
        utc(time).text(.seconds)
    }

    /// `2025-01-15T10:00:00.123Z`: milliseconds, for JSON.
    public static func iso(_ time: Timestamp) -> String {
        utc(time).text(.milliseconds)
    }

    /// `10:00:00Z` when `time` falls on the same UTC day as `now`, otherwise ``seconds(_:)``.
    public static func short(_ time: Timestamp, now: Timestamp) -> String {
        let shown = utc(time)
        return shown.date == utc(now).date ? "\(shown.clock)Z" : shown.text(.seconds)
    }

    /// A length of time in at most two units, largest first, rounded down: `450ms`, `12s`, `2m5s`, `3h20m`, `4d2h`.
    public static func span(milliseconds: Int64) -> String {
        let value = max(0, milliseconds)
        if value < 1000 { return "\(value)ms" }
        let units: [(String, Int64)] = [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)]
        var parts: [String] = []
        var rest = value
        for (name, size) in units where rest >= size || !parts.isEmpty {
            let count = rest / size
            rest %= size
            if count > 0 || !parts.isEmpty { parts.append("\(count)\(name)") }
            if parts.count == 2 { break }
        }
        if parts.count == 2, parts[1].hasPrefix("0") { parts.removeLast() }
        return parts.joined()
    }

    /// `3m ago`, `in 20s`, or `now` for less than a second either way.
    public static func relative(_ time: Timestamp, now: Timestamp) -> String {
        let delta = now.milliseconds - time.milliseconds
        if abs(delta) < 1000 { return "now" }
        return delta > 0 ? "\(span(milliseconds: delta)) ago" : "in \(span(milliseconds: -delta))"
    }

    /// `2025-01-15T10:00:00Z (3m ago)`.
    public static func withRelative(_ time: Timestamp, now: Timestamp) -> String {
        "\(seconds(time)) (\(relative(time, now: now)))"
    }

    /// The duration hint every duration option shares.
    public static let durationHint = "expected a duration like 30s, 15m, 2h or 1d"

    /// Reads a duration argument (`30s`, `15m`, `2h`, `1d`, `1h30m`), or throws a one-line hint with the parser's
    /// reason as the cause.
    public static func parseDuration(_ text: String, option: String) throws(OperationsError) -> Duration {
        do {
            return try DurationParser.parse(text)
        } catch {
            throw OperationsError(.badArgument, "\(option) '\(text)': \(durationHint)", cause: error)
        }
    }

    /// Reads a point in time: a duration meaning "that long before `now`" (`2h`), or a UTC date and time
    /// (`2025-01-15`, `2025-01-15T10:00`, `2025-01-15 10:00:00`, an optional `Z` and fraction); a date or time that
    /// does not exist (`2025-02-30`, `24:00`) is an error, not the next day.
    public static func parseTime(_ text: String, option: String, now: Timestamp) throws(OperationsError) -> Timestamp {
        if let duration = try? DurationParser.parse(text) {
            return now.adding(milliseconds: -duration.milliseconds)
        }
        if let time = UTCTime(parsing: text) { return Timestamp(milliseconds: time.millisecondsSinceEpoch) }
        throw OperationsError(
            .badArgument,
            "\(option) '\(text)': expected a duration before now like 2h, or a UTC time like 2025-01-15T10:00:00Z")
    }

    /// Reads a rate argument: a count per second (`5/s`, or a bare `5`) or per minute (`120/m`, `120/min`), as a
    /// count per second.
    public static func parseRate(_ text: String, option: String) throws(OperationsError) -> Double {
        var number = text.lowercased()
        var scale = 1.0
        if number.hasSuffix("/s") {
            number.removeLast(2)
        } else if number.hasSuffix("/m") || number.hasSuffix("/min") {
            number = String(number.prefix { $0 != "/" })
            scale = 1.0 / 60
        }
        guard let value = Double(number), value > 0, value.isFinite else {
            throw OperationsError(.badArgument, "\(option) '\(text)': expected a count per second like 5/s or 120/m")
        }
        return value * scale
    }

    private static func utc(_ time: Timestamp) -> UTCTime {
        UTCTime(millisecondsSinceEpoch: time.milliseconds)
    }
}
