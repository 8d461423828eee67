import SeededRandom
import Testing

@Suite struct SeededRandomTests {
    @Test("SplitMix64 gives the reference sequence (seed 1234567)")
    func referenceSequence() {
        var generator = SplitMix64(seed: 1_234_567)
        let drawn = (0..<5).map { _ in generator.next() }
        #expect(
            drawn == [
                6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423,
                4_593_380_528_125_082_431, 16_408_922_859_458_223_821,
            ])
    }

    @Test(arguments: [0...0, -3...3, 1...6, Int.min...Int.max, Int.max - 1...Int.max])
    func integersStayInTheirRange(range: ClosedRange<Int>) {
        var generator = SplitMix64(seed: 7)
        for _ in 0..<1000 {
            #expect(range.contains(generator.int(in: range)))
        }
    }

    @Test func unitsStayBelowOne() {
        var generator = SplitMix64(seed: 7)
        for _ in 0..<1000 {
            let unit = generator.unit()
            #expect(unit >= 0 && unit < 1)
        }
    }

    @Test func keyedGeneratorsDependOnTheSeedAndEveryPart() {
        func first(_ seed: UInt64, _ parts: [String]) -> UInt64 {
            var generator = SplitMix64.keyed(seed: seed, parts)
            return generator.next()
        }
        #expect(first(1, ["order", "o-1"]) == first(1, ["order", "o-1"]))
        #expect(first(1, ["order", "o-1"]) != first(2, ["order", "o-1"]))
        #expect(first(1, ["order", "o-1"]) != first(1, ["order", "o-2"]))
        #expect(first(1, ["ab", "c"]) != first(1, ["a", "bc"]))
    }

    /// One input to a ``StableHash``.
    enum Part {
        case text(String)
        case number(UInt64)
    }

    static func hash(_ parts: [Part], seed: UInt64 = 0) -> UInt64 {
        var hasher = StableHash(seed: seed)
        for part in parts {
            switch part {
            case .text(let text): hasher.combine(text)
            case .number(let number): hasher.combine(number)
            }
        }
        return hasher.value
    }

    @Test func stableHashesDependOnOrderSeedAndBoundaries() {
        let base = Self.hash([.text("saga"), .number(3)])
        #expect(base == Self.hash([.text("saga"), .number(3)]))
        #expect(base != Self.hash([.text("saga"), .number(3)], seed: 1))
        #expect(base != Self.hash([.number(3), .text("saga")]))
        #expect(Self.hash([.text("ab"), .text("c")]) != Self.hash([.text("a"), .text("bc")]))
    }
}
