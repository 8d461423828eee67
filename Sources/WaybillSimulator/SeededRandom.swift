/// SplitMix64 (Steele, Lea, Flood 2014): the simulator's seeded generator.
///
/// Ranges are drawn here rather than with the standard library's `random(in:using:)`, whose algorithm may change
/// between toolchains, so a seed replays the same run everywhere.
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0 ..< 1` with 53 random bits.
    mutating func unit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// A number in `range` (the modulo bias is irrelevant for simulated data).
    mutating func int(in range: ClosedRange<Int>) -> Int {
        let span = UInt64(bitPattern: Int64(range.upperBound) &- Int64(range.lowerBound)) &+ 1
        guard span != 0 else { return Int(truncatingIfNeeded: next()) }
        return range.lowerBound &+ Int(truncatingIfNeeded: next() % span)
    }

    /// A generator whose draws depend only on `seed` and `parts`.
    ///
    /// The simulator draws a command's fate from its own generator, keyed by the command, instead of from one shared
    /// sequence: commands handled in parallel, in whatever order the broker delivers them, still get the same fate
    /// in every run with the same seed.
    static func keyed(seed: UInt64, _ parts: [String]) -> SplitMix64 {
        // FNV-1a over the parts, each followed by a 0xFF byte (never in UTF-8) so that ("ab", "c") != ("a", "bc").
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for part in parts {
            for byte in part.utf8 {
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            }
            hash = (hash ^ 0xFF) &* 0x0000_0100_0000_01B3
        }
        var mixer = SplitMix64(seed: seed ^ hash)
        return SplitMix64(seed: mixer.next())
    }
}
