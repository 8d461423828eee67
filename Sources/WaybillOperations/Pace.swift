/// Spaces out a run of requests to at most a rate (`--rate`): the n-th waits until n / rate seconds after the first,
/// so a slow answer is caught up on rather than slowing the whole run.
struct Pace {
    private let perSecond: Double?
    private let clock = ContinuousClock()
    private var start: ContinuousClock.Instant?
    private var count = 0

    /// A pace of `perSecond` requests per second; `nil` (or not positive) does not wait.
    init(perSecond: Double?) {
        self.perSecond = perSecond
    }

    /// Takes the next request's turn: when it may go (`nil`: at once). Wait for it outside any lock.
    mutating func nextTurn() -> ContinuousClock.Instant? {
        guard let perSecond, perSecond > 0 else { return nil }
        let start = self.start ?? clock.now
        self.start = start
        let due = start.advanced(by: .milliseconds(Int64(Double(count) * 1000 / perSecond)))
        count += 1
        return due
    }

    /// Waits for the next request's turn.
    mutating func wait() async {
        guard let due = nextTurn() else { return }
        try? await clock.sleep(until: due)
    }
}
