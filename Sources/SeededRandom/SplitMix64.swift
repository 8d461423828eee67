/// SplitMix64 (Steele, Lea, Flood 2014): Waybill's one seeded generator, for the simulator, the benchmarks and
/// the tests, so a seed replays the same run everywhere.
///
/// Draw ranges with ``int(in:)`` and ``unit()`` rather than the standard library's `random(in:using:)`: that
/// algorithm may change between toolchains, these do not. Not for secrets: the sequence is predictable by design.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A generator whose draws depend only on `seed`.
    public init(seed: UInt64) {
        state = seed
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// A number in `0 ..< 1` with 53 random bits.
    public mutating func unit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// A number in `range`, by modulo: slightly biased for spans that do not divide 2^64, which simulated data and
    /// test cases do not notice. Any range works, `Int.min...Int.max` included.
    public mutating func int(in range: ClosedRange<Int>) -> Int {
        let span = UInt64(bitPattern: Int64(range.upperBound) &- Int64(range.lowerBound)) &+ 1
        guard span != 0 else { return Int(truncatingIfNeeded: next()) }
        return range.lowerBound &+ Int(truncatingIfNeeded: next() % span)
    }

    /// A generator whose draws depend only on `seed` and `parts`.
    ///
    /// Give each independent thing its own keyed generator instead of drawing from one shared sequence: things
    /// handled in parallel, in whatever order they arrive, then still draw the same numbers in every run with the
    /// same seed. Different part lists give different generators (`["ab", "c"]` is not `["a", "bc"]`).
    public static func keyed(seed: UInt64, _ parts: [String]) -> SplitMix64 {
        var hash = StableHash()
        for part in parts { hash.combine(part) }
        var mixer = SplitMix64(seed: seed ^ hash.state)
        return SplitMix64(seed: mixer.next())
    }

    /// SplitMix64's output function: spreads every input bit over the whole result.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A small deterministic hash (FNV-1a, finished through SplitMix64): the same inputs give the same value on every
/// run, process and platform, unlike the standard library's randomly seeded `Hasher`.
///
/// For replayable choices such as retry jitter, not for security or hash tables facing untrusted keys. The value
/// depends on the order of the `combine` calls, and changing how something is combined changes every value drawn
/// from it (the engine's jitter replays from these values).
public struct StableHash: Sendable {
    /// The FNV-1a hash of what was combined so far, before the final mix.
    private(set) var state: UInt64

    /// An empty hash; a different `seed` gives unrelated values for the same inputs.
    public init(seed: UInt64 = 0) {
        state = 0xCBF2_9CE4_8422_2325 ^ seed
    }

    /// Adds `text`'s UTF-8 bytes and a 0xFF terminator (a byte UTF-8 never has), so `("ab", "c")` and `("a", "bc")`
    /// differ.
    public mutating func combine(_ text: String) {
        for byte in text.utf8 {
            combine(byte: byte)
        }
        combine(byte: 0xFF)
    }

    /// Adds a whole 64-bit value in one step.
    public mutating func combine(_ value: UInt64) {
        state ^= value
        state &*= 0x0000_0100_0000_01B3
    }

    /// The hash of everything combined, mixed so that every input bit affects every output bit.
    public var value: UInt64 {
        SplitMix64.mix(state &+ 0x9E37_79B9_7F4A_7C15)
    }

    private mutating func combine(byte: UInt8) {
        combine(UInt64(byte))
    }
}
