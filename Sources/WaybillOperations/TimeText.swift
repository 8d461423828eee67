import SagaEngine
import WaybillDefinition

/// How times and durations read in operator output: UTC only, so two operators in different time zones paste the
/// same text into a ticket, and no locale or time zone database is consulted.
public enum TimeText {
    /// `2025-01-15T10:00:00Z`: whole seconds, for tables.
    public static func seconds(_ time: Timestamp) -> String {
        let (date, clock, _) = civil(time)
        return "\(date)T\(clock)Z"
    }

    /// `2025-01-15T10:00:00.123Z`: milliseconds, for JSON.
    public static func iso(_ time: Timestamp) -> String {
        let (date, clock, millis) = civil(time)
        return "\(date)T\(clock).\(pad(millis, 3))Z"
    }

    /// `10:00:00Z` when `time` falls on the same UTC day as `now`, otherwise ``seconds(_:)``.
    public static func short(_ time: Timestamp, now: Timestamp) -> String {
        let (date, clock, _) = civil(time)
        return date == civil(now).date ? "\(clock)Z" : "\(date)T\(clock)Z"
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

    /// Reads a duration argument (`30s`, `15m`, `2h`, `1d`, `1h30m`), or throws a one-line hint.
    public static func parseDuration(_ text: String, option: String) throws(OperationsError) -> Duration {
        do {
            return try DurationParser.parse(text)
        } catch {
            throw OperationsError(.badArgument, "\(option) '\(text)': \(durationHint)")
        }
    }

    /// Reads a point in time: a duration meaning "that long before `now`" (`2h`), or a UTC date and time
    /// (`2025-01-15`, `2025-01-15T10:00`, `2025-01-15 10:00:00`, an optional `Z` and fraction).
    public static func parseTime(_ text: String, option: String, now: Timestamp) throws(OperationsError) -> Timestamp {
        if let duration = try? DurationParser.parse(text) {
            return now.adding(milliseconds: -duration.milliseconds)
        }
        if let time = parseUTC(text) { return time }
        throw OperationsError(
            .badArgument,
            "\(option) '\(text)': expected a duration before now like 2h, or a UTC time like 2025-01-15T10:00:00Z")
    }

    /// Parses `YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z]` as UTC.
    static func parseUTC(_ text: String) -> Timestamp? {
        var chars = Array(text.utf8)
        if chars.last == UInt8(ascii: "Z") || chars.last == UInt8(ascii: "z") { chars.removeLast() }
        func number(_ from: Int, _ length: Int) -> Int64? {
            guard from + length <= chars.count else { return nil }
            var value: Int64 = 0
            for byte in chars[from..<(from + length)] {
                guard byte >= 48, byte <= 57 else { return nil }
                value = value * 10 + Int64(byte - 48)
            }
            return value
        }
        func isByte(_ index: Int, _ ascii: Unicode.Scalar) -> Bool {
            index < chars.count && chars[index] == UInt8(ascii: ascii)
        }
        guard let year = number(0, 4), isByte(4, "-"), let month = number(5, 2), isByte(7, "-"),
            let day = number(8, 2), (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        var hour: Int64 = 0
        var minute: Int64 = 0
        var second: Int64 = 0
        var millis: Int64 = 0
        if chars.count > 10 {
            guard isByte(10, "T") || isByte(10, "t") || isByte(10, " "), let h = number(11, 2), isByte(13, ":"),
                let m = number(14, 2), h < 24, m < 60
            else { return nil }
            hour = h
            minute = m
            var index = 16
            if chars.count > 16 {
                guard isByte(16, ":"), let s = number(17, 2), s < 60 else { return nil }
                second = s
                index = 19
                if isByte(19, ".") {
                    var digits = 0
                    index = 20
                    while index < chars.count, let digit = number(index, 1) {
                        if digits < 3 { millis = millis * 10 + digit }
                        digits += 1
                        index += 1
                    }
                    guard digits > 0 else { return nil }
                    while digits < 3 {
                        millis *= 10
                        digits += 1
                    }
                }
            }
            guard index == chars.count else { return nil }
        }
        let days = daysFromCivil(year: year, month: month, day: day)
        return Timestamp(milliseconds: ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
    }

    private static func civil(_ time: Timestamp) -> (date: String, clock: String, millis: Int64) {
        let ms = time.milliseconds
        let days = floorDivide(ms, 86_400_000)
        let inDay = ms - days * 86_400_000
        let (year, month, day) = civilFromDays(days)
        let seconds = inDay / 1000
        let date = "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))"
        let clock = "\(pad(seconds / 3600, 2)):\(pad(seconds / 60 % 60, 2)):\(pad(seconds % 60, 2))"
        return (date, clock, inDay % 1000)
    }

    private static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        a >= 0 ? a / b : -((-a + b - 1) / b)
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let text = String(value)
        return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }

    /// Howard Hinnant's `civil_from_days`: proleptic Gregorian calendar, day 0 = 1970-01-01.
    private static func civilFromDays(_ days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = floorDivide(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = floorDivide(y, 400)
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
