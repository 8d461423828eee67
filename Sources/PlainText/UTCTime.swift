/// A point in time as a UTC calendar date and time of day, and its one text form (RFC 3339 in UTC:
/// `2025-01-15T10:00:00Z`, or `2025-01-15T10:00:00.123Z` with milliseconds).
///
/// Proleptic Gregorian calendar, no time zones, no leap seconds, no locale and no Foundation, so the same instant
/// gives the same text on every machine. Parsing is strict: a date that does not exist (`2025-02-30`,
/// `2025-13-01`) or a time of day out of range (`24:00`, `10:60`) is rejected, never rolled over into the next
/// day or month.
public struct UTCTime: Sendable, Hashable {
    /// How much of the time of day ``text(_:)`` writes.
    public enum Precision: Sendable, Hashable {
        /// Whole seconds, `2025-01-15T10:00:00Z` (tables, logs).
        case seconds
        /// Milliseconds, `2025-01-15T10:00:00.123Z` (JSON, CloudEvents `time`).
        case milliseconds
    }

    /// The year; ``text(_:)`` writes at least four digits.
    public let year: Int
    /// 1 to 12.
    public let month: Int
    /// 1 to the length of the month.
    public let day: Int
    /// 0 to 23.
    public let hour: Int
    /// 0 to 59.
    public let minute: Int
    /// 0 to 59.
    public let second: Int
    /// 0 to 999.
    public let millisecond: Int

    private static let millisecondsPerDay: Int64 = 86_400_000

    /// The UTC date and time `milliseconds` after 1970-01-01T00:00:00Z (before it when negative).
    public init(millisecondsSinceEpoch milliseconds: Int64) {
        let days = Self.floorDivide(milliseconds, Self.millisecondsPerDay)
        let inDay = milliseconds - days * Self.millisecondsPerDay
        (year, month, day) = Self.civil(fromDays: days)
        let seconds = Int(inDay / 1000)
        hour = seconds / 3600
        minute = seconds / 60 % 60
        second = seconds % 60
        millisecond = Int(inDay % 1000)
    }

    /// The given date and time, or `nil` when it does not exist (February 30th, hour 24, minute 60, ...).
    private init?(
        year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0, millisecond: Int = 0
    ) {
        guard (1...12).contains(month), (1...Self.daysIn(month: month, year: year)).contains(day),
            (0...23).contains(hour), (0...59).contains(minute), (0...59).contains(second),
            (0...999).contains(millisecond)
        else { return nil }
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
        self.second = second
        self.millisecond = millisecond
    }

    /// Reads `YYYY-MM-DD`, optionally followed by `T` (or `t`, or a space) and `HH:MM`, `HH:MM:SS` or
    /// `HH:MM:SS.fraction`, optionally ending in `Z` (or `z`); the time is UTC and defaults to midnight.
    ///
    /// `nil` for anything else: other layouts, offsets such as `+01:00`, surrounding spaces, and dates or times that
    /// do not exist. Digits of the fraction beyond milliseconds are dropped, not rounded. Reads everything
    /// ``text(_:)`` writes for the years 0 to 9999.
    public init?(parsing text: String) {
        var reader = FieldReader(bytes: Array(text.utf8))
        if reader.bytes.last == UInt8(ascii: "Z") || reader.bytes.last == UInt8(ascii: "z") {
            reader.bytes.removeLast()
        }
        guard let year = reader.number(digits: 4), reader.skip("-"), let month = reader.number(digits: 2),
            reader.skip("-"), let day = reader.number(digits: 2)
        else { return nil }
        var (hour, minute, second, millisecond) = (0, 0, 0, 0)
        if !reader.atEnd {
            guard reader.skip("T") || reader.skip("t") || reader.skip(" "), let h = reader.number(digits: 2),
                reader.skip(":"), let m = reader.number(digits: 2)
            else { return nil }
            (hour, minute) = (h, m)
            if !reader.atEnd {
                guard reader.skip(":"), let s = reader.number(digits: 2) else { return nil }
                second = s
                if reader.skip(".") {
                    guard let fraction = reader.fractionMilliseconds() else { return nil }
                    millisecond = fraction
                }
            }
            guard reader.atEnd else { return nil }
        }
        self.init(
            year: year, month: month, day: day, hour: hour, minute: minute, second: second, millisecond: millisecond)
    }

    /// Milliseconds since 1970-01-01T00:00:00Z, negative before it.
    public var millisecondsSinceEpoch: Int64 {
        let days = Self.days(year: Int64(year), month: Int64(month), day: Int64(day))
        let seconds = (Int64(hour) * 60 + Int64(minute)) * 60 + Int64(second)
        return days * Self.millisecondsPerDay + seconds * 1000 + Int64(millisecond)
    }

    /// `2025-01-15`.
    public var date: String {
        "\(Self.digits(year, 4))-\(Self.digits(month, 2))-\(Self.digits(day, 2))"
    }

    /// `10:00:00`: the time of day to the second, without a zone letter.
    public var clock: String {
        "\(Self.digits(hour, 2)):\(Self.digits(minute, 2)):\(Self.digits(second, 2))"
    }

    /// `2025-01-15T10:00:00Z`, or with ``Precision/milliseconds`` `2025-01-15T10:00:00.123Z`; milliseconds are
    /// dropped, not rounded, for ``Precision/seconds``.
    public func text(_ precision: Precision) -> String {
        switch precision {
        case .seconds: "\(date)T\(clock)Z"
        case .milliseconds: "\(date)T\(clock).\(Self.digits(millisecond, 3))Z"
        }
    }

    // MARK: Calendar

    private static func digits(_ value: Int, _ count: Int) -> String {
        String(value).padded(to: count, .right, fill: "0")
    }

    private static func isLeap(_ year: Int) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    private static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        a >= 0 ? a / b : -((-a + b - 1) / b)
    }

    /// Howard Hinnant's `civil_from_days`: day 0 is 1970-01-01.
    private static func civil(fromDays days: Int64) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = floorDivide(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (Int(yoe + era * 400 + (month <= 2 ? 1 : 0)), Int(month), Int(day))
    }

    /// Howard Hinnant's `days_from_civil`, the inverse of ``civil(fromDays:)``.
    private static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = floorDivide(y, 400)
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}

/// Reads fixed-width fields from the front of a time text.
private struct FieldReader {
    var bytes: [UInt8]
    var index = 0

    var atEnd: Bool { index == bytes.count }

    /// Consumes `character` when it is next.
    mutating func skip(_ character: Unicode.Scalar) -> Bool {
        guard index < bytes.count, bytes[index] == UInt8(ascii: character) else { return false }
        index += 1
        return true
    }

    /// Consumes exactly `digits` ASCII digits.
    mutating func number(digits: Int) -> Int? {
        guard index + digits <= bytes.count else { return nil }
        var value = 0
        for byte in bytes[index..<(index + digits)] {
            guard let digit = Self.digit(byte) else { return nil }
            value = value * 10 + digit
        }
        index += digits
        return value
    }

    /// Consumes one or more digits of a decimal fraction of a second, as whole milliseconds.
    mutating func fractionMilliseconds() -> Int? {
        var value = 0
        var count = 0
        while index < bytes.count, let digit = Self.digit(bytes[index]) {
            if count < 3 { value = value * 10 + digit }
            count += 1
            index += 1
        }
        guard count > 0 else { return nil }
        for _ in count..<max(count, 3) { value *= 10 }
        return value
    }

    static func digit(_ byte: UInt8) -> Int? {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) ? Int(byte - UInt8(ascii: "0")) : nil
    }
}
