import PlainText

/// Percentiles of a sample of durations (nearest rank).
public struct LatencySummary: Sendable, Hashable {
    /// Sample size.
    public var count: Int
    /// The median.
    public var p50: Duration
    /// The 95th percentile.
    public var p95: Duration
    /// The 99th percentile.
    public var p99: Duration
    /// The largest value.
    public var max: Duration

    /// The summary of `sample`, or `nil` when it is empty.
    public init?(_ sample: [Duration]) {
        guard !sample.isEmpty else { return nil }
        let sorted = sample.sorted()
        func rank(_ quantile: Double) -> Duration {
            let index = Int((quantile * Double(sorted.count)).rounded(.up)) - 1
            return sorted[Swift.min(sorted.count - 1, Swift.max(0, index))]
        }
        count = sorted.count
        p50 = rank(0.50)
        p95 = rank(0.95)
        p99 = rank(0.99)
        max = sorted[sorted.count - 1]
    }
}

extension Duration {
    /// The duration in seconds, with fractions.
    var inSeconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }

    /// The duration in milliseconds, with fractions.
    var inMilliseconds: Double { inSeconds * 1000 }

    /// `850 ms`, `12.4 s`, `3 min 05 s`: short and readable.
    var readable: String {
        let seconds = inSeconds
        if seconds < 0.001 { return "\(Format.fixed(seconds * 1_000_000, 0)) µs" }
        if seconds < 10 {
            return seconds < 1 ? "\(Format.fixed(seconds * 1000, 0)) ms" : "\(Format.fixed(seconds, 2)) s"
        }
        if seconds < 120 { return "\(Format.fixed(seconds, 1)) s" }
        let whole = Int(seconds.rounded())
        let rest = whole % 60
        return "\(whole / 60) min \(rest < 10 ? "0" : "")\(rest) s"
    }
}

/// Number formatting without Foundation's locale-dependent formatters.
enum Format {
    /// `value` with `digits` decimals.
    static func fixed(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return "-" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let rounded = (abs(value) * scale).rounded() / scale
        let sign = value < 0 && rounded != 0 ? "-" : ""
        let whole = Int(rounded)
        guard digits > 0 else { return sign + String(whole) }
        let fraction = Int(((rounded - Double(whole)) * scale).rounded())
        let text = String(fraction)
        return sign + String(whole) + "." + text.padded(to: digits, .right, fill: "0")
    }

    /// `1,234,567`.
    static func grouped(_ value: Int) -> String {
        let digits = String(abs(value))
        var result = ""
        for (index, character) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { result.append(",") }
            result.append(character)
        }
        return (value < 0 ? "-" : "") + result
    }

    /// Milliseconds with sensible precision: `0.84 ms`, `12.3 ms`, `1,250 ms`.
    static func milliseconds(_ duration: Duration) -> String {
        let value = duration.inMilliseconds
        if value < 10 { return "\(fixed(value, 2)) ms" }
        if value < 100 { return "\(fixed(value, 1)) ms" }
        return "\(grouped(Int(value.rounded()))) ms"
    }
}
