import Synchronization

/// How many committed batches may wait for their broker confirms at once: the hot loop takes a slot before it sends
/// a batch, and gets it back once the batch is settled (acks sent, confirmed rows noted).
///
/// Bounding the window bounds the deliveries and messages held in memory, and, once it is full, lets inputs pile up
/// into bigger batches: the loop's batches grow with the load instead of by configuration.
final class PublishWindow: Sendable {
    private struct State {
        var open = 0
        var waiters: [(limit: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    /// Batches allowed in flight.
    let size: Int
    private let state = Mutex(State())

    init(size: Int) {
        precondition(size >= 1, "a publish window holds at least one batch")
        self.size = size
    }

    /// Batches sent and not settled yet.
    var open: Int { state.withLock { $0.open } }

    /// Takes a slot, waiting while the window is full.
    func reserve() async {
        await wait(untilAtMost: size - 1)
        state.withLock { $0.open += 1 }
    }

    /// Gives a slot back: one batch is settled.
    func release() {
        let ready = state.withLock { state in
            state.open -= 1
            let open = state.open
            let ready = state.waiters.filter { open <= $0.limit }.map(\.continuation)
            state.waiters.removeAll { open <= $0.limit }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    /// Returns once every batch sent is settled (a drain: before a partition is handed off, or its leftover outbox
    /// published again in order).
    func waitUntilEmpty() async {
        await wait(untilAtMost: 0)
    }

    private func wait(untilAtMost limit: Int) async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state in
                if state.open <= limit { return true }
                state.waiters.append((limit, continuation))
                return false
            }
            if now { continuation.resume() }
        }
    }
}
