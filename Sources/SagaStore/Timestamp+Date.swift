import Foundation
import SagaEngine

extension Timestamp {
    /// The instant of `date`, truncated to the millisecond toward the past (`.999` ms is dropped, and a date before
    /// 1970 goes to the earlier millisecond): every Foundation `Date` becomes a `Timestamp` here, so a time shown or
    /// stored never rounds up into the next second.
    public init(_ date: Date) {
        self.init(milliseconds: Int64((date.timeIntervalSince1970 * 1000).rounded(.down)))
    }

    /// The wall clock now, truncated like ``init(_:)``. Read it at the edge (worker, CLI, logs) and pass it on: the
    /// engine never reads a clock.
    public static func now() -> Timestamp { Timestamp(Date()) }
}
