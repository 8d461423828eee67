import PlainText
import Testing

@Suite struct UTCTimeTests {
    @Test(
        "formats milliseconds since the epoch as UTC",
        arguments: [
            (0, "1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59Z", "1969-12-31T23:59:59.999Z"),
            (1_736_942_400_007, "2025-01-15T12:00:00Z", "2025-01-15T12:00:00.007Z"),
            (951_782_400_000, "2000-02-29T00:00:00Z", "2000-02-29T00:00:00.000Z"),
            (1_798_758_050_123, "2026-12-31T23:00:50Z", "2026-12-31T23:00:50.123Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59Z", "9999-12-31T23:59:59.999Z"),
            (-62_167_219_200_000, "0000-01-01T00:00:00Z", "0000-01-01T00:00:00.000Z"),
        ] as [(Int64, String, String)])
    func formats(milliseconds: Int64, seconds: String, withMilliseconds: String) {
        let time = UTCTime(millisecondsSinceEpoch: milliseconds)
        #expect(time.text(.seconds) == seconds)
        #expect(time.text(.milliseconds) == withMilliseconds)
        #expect(time.date + "T" + time.clock + "Z" == seconds)
        #expect(UTCTime(parsing: withMilliseconds)?.millisecondsSinceEpoch == milliseconds)
    }

    @Test(
        "reads the UTC layouts operators type",
        arguments: [
            ("2025-01-15", 1_736_899_200_000),
            ("2025-01-15Z", 1_736_899_200_000),
            ("2025-01-15T10:30", 1_736_937_000_000),
            ("2025-01-15t10:30z", 1_736_937_000_000),
            ("2025-01-15 10:30:05", 1_736_937_005_000),
            ("2025-01-15T10:30:05.5Z", 1_736_937_005_500),
            ("2025-01-15T10:30:05.12", 1_736_937_005_120),
            ("2025-01-15T10:30:05.123456789Z", 1_736_937_005_123),
            ("2024-02-29T23:59:59.999Z", 1_709_251_199_999),
            ("2000-02-29", 951_782_400_000),
            ("1969-12-31T23:59:59.999Z", -1),
            ("2025-12-31T00:00:00Z", 1_767_139_200_000),
            ("2025-04-30", 1_745_971_200_000),
        ] as [(String, Int64)])
    func parses(text: String, milliseconds: Int64) {
        #expect(UTCTime(parsing: text)?.millisecondsSinceEpoch == milliseconds)
    }

    @Test(
        "rejects dates and times that do not exist, and every other layout",
        arguments: [
            "2025-02-30", "2025-02-29", "1900-02-29", "2025-04-31", "2025-06-31", "2025-09-31", "2025-11-31",
            "2025-01-32", "2025-01-00", "2025-13-01", "2025-00-10", "2025-01-15T24:00:00Z", "2025-01-15T24:00",
            "2025-01-15T23:60", "2025-01-15T23:59:60Z", "2025-01-15T99:00", "2025-1-15", "25-01-15", "2025/01/15",
            "2025-01-15T", "2025-01-15T10", "2025-01-15T10:3", "2025-01-15T10:30:", "2025-01-15T10:30:05.",
            "2025-01-15T10:30:05.Z", "2025-01-15T10:30:05+01:00", "2025-01-15T10:30:05ZZ", " 2025-01-15",
            "2025-01-15 ", "2025-01-15X10:30", "+2025-01-15", "２０２５-01-15", "", "Z", "yesterday",
        ])
    func rejects(text: String) {
        #expect(UTCTime(parsing: text) == nil)
    }

    @Test("every day of a leap year and of a common year round-trips through its text")
    func roundTripsEveryDay() {
        let day: Int64 = 86_400_000
        let starts: [Int64] = [1_704_067_200_000, 1_735_689_600_000]  // 2024-01-01 and 2025-01-01
        for start in starts {
            for index in 0..<366 {
                let milliseconds = start + Int64(index) * day + 45_296_789  // 12:34:56.789
                let text = UTCTime(millisecondsSinceEpoch: milliseconds).text(.milliseconds)
                #expect(UTCTime(parsing: text)?.millisecondsSinceEpoch == milliseconds, "\(text)")
            }
        }
    }
}
