import CodedError

/// Reads and writes the durations of workflow files: `500ms`, `30s`, `5m`, `2h`, `1d`, and compounds such as
/// `1m30s` or `1h30m`.
///
/// A duration is one or more groups of whole number plus unit, largest unit first, each unit at most once, and
/// longer than zero. A bare number (`30`) is rejected on purpose: seconds or milliseconds would be a guess.
public enum DurationParser {
    /// Why a duration could not be read: the code (always `duration.bad_syntax`) and a message that says what is wrong
    /// and how to write it instead, e.g. `bad duration '30x'; write a number and a unit: ...`.
    public typealias SyntaxError = CodedError<DurationSyntaxErrorDomain>

    /// The units, largest first, with their length in milliseconds.
    static let units: [(name: String, milliseconds: Int64)] = [
        ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1),
    ]

    static let howToWrite = "write a number and a unit: 500ms, 30s, 5m, 2h"

    /// Parses `text`; the result is always longer than zero.
    public static func parse(_ text: String) throws(SyntaxError) -> Duration {
        let trimmed = text.trimmingBlanks()
        guard !trimmed.isEmpty else {
            throw SyntaxError(message: "empty duration; \(howToWrite)")
        }
        if trimmed.hasPrefix("-") {
            throw SyntaxError(message: "bad duration '\(text)'; a duration cannot be negative")
        }
        if trimmed.allSatisfy(\.isASCIIDigit) {
            throw SyntaxError(message: "bad duration '\(text)'; add a unit, e.g. \(trimmed)s (units: ms, s, m, h, d)")
        }
        var rest = Substring(trimmed)
        var total: Int64 = 0
        var lastUnitRank = -1
        while !rest.isEmpty {
            let digits = rest.prefix(while: \.isASCIIDigit)
            let afterDigits = rest.dropFirst(digits.count)
            let unitText = afterDigits.prefix(while: \.isASCIILetter)
            guard !digits.isEmpty, let number = Int64(digits),
                let rank = units.firstIndex(where: { $0.name == String(unitText) })
            else {
                throw SyntaxError(message: "bad duration '\(text)'; \(howToWrite)")
            }
            guard rank > lastUnitRank else {
                throw SyntaxError(message: "bad duration '\(text)'; write each unit once, largest first, e.g. 1m30s")
            }
            lastUnitRank = rank
            let (part, overflow1) = number.multipliedReportingOverflow(by: units[rank].milliseconds)
            let (sum, overflow2) = total.addingReportingOverflow(part)
            guard !overflow1, !overflow2 else {
                throw SyntaxError(message: "bad duration '\(text)'; it is too long")
            }
            total = sum
            rest = afterDigits.dropFirst(unitText.count)
        }
        guard total > 0 else {
            throw SyntaxError(message: "bad duration '\(text)'; a duration must be longer than zero")
        }
        return .milliseconds(total)
    }

    /// Writes `duration` in the same notation, largest units first (`1m30s`, `500ms`); `0s` for zero.
    ///
    /// Sub-millisecond parts are dropped, so `parse(format(d))` returns `d` for every duration `parse` returns.
    public static func format(_ duration: Duration) -> String {
        var remaining = duration.milliseconds
        guard remaining > 0 else { return "0s" }
        var text = ""
        for unit in units where remaining >= unit.milliseconds {
            text += "\(remaining / unit.milliseconds)\(unit.name)"
            remaining %= unit.milliseconds
        }
        return text
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
    fileprivate var isASCIILetter: Bool { isASCII && isLetter }
}

extension String {
    /// The text without leading and trailing spaces and tabs.
    fileprivate func trimmingBlanks() -> String {
        var view = Substring(self)
        while let first = view.first, first == " " || first == "\t" { view = view.dropFirst() }
        while let last = view.last, last == " " || last == "\t" { view = view.dropLast() }
        return String(view)
    }
}

/// The duration parser's error family (``DurationParser/SyntaxError``): its one code is `duration.bad_syntax`.
public enum DurationSyntaxErrorDomain: ErrorDomain {}

/// What kind of duration problem it is: the raw value is stable.
extension ErrorCode where Domain == DurationSyntaxErrorDomain {
    /// The text is not a duration: empty, negative, no unit, an unknown or repeated unit, zero or too long.
    public static let badSyntax = Self(rawValue: "duration.bad_syntax")
}

extension CodedError where Domain == DurationSyntaxErrorDomain {
    /// Wraps a message; the code is ``ErrorCode/badSyntax``, the only one there is.
    public init(_ code: Code = .badSyntax, message: String) {
        self.init(code, message)
    }
}
