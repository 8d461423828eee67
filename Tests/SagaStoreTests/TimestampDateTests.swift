import Foundation
import SagaEngine
import SagaStore
import Testing

/// Every Foundation `Date` becomes a `Timestamp` through one conversion, truncated toward the past.
@Suite struct TimestampDateTests {
    @Test(
        arguments: [
            (1_736_942_400.0, 1_736_942_400_000),
            (1_736_942_400.9999, 1_736_942_400_999),
            (0.0015, 1),
            (0, 0),
            (-0.0005, -1),
            (-1.5, -1_500),
        ] as [(Double, Int64)])
    func aDateIsTruncatedToTheMillisecondBefore(seconds: Double, milliseconds: Int64) {
        #expect(Timestamp(Date(timeIntervalSince1970: seconds)) == Timestamp(milliseconds: milliseconds))
    }

    @Test func nowIsTheWallClock() {
        let before = Timestamp(Date())
        let now = Timestamp.now()
        let after = Timestamp(Date())
        #expect(before <= now && now <= after)
    }
}
