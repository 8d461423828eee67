import DequeModule
import Synchronization

/// A many-producer, one-consumer queue that hands out everything waiting at once, so its consumer batches
/// naturally: while one batch is being committed (or published), the next one accumulates. The worker's hot loop
/// uses it, and so do the simulated participants and the benchmark's pattern replay.
public final class WorkQueue<Element: Sendable>: Sendable {
    private struct State {
        var buffer = Deque<Element>()
        var waiter: CheckedContinuation<Void, Never>?
        var finished = false
    }

    private let state = Mutex(State())

    /// An empty queue.
    public init() {}

    /// Adds an element; returns `false` (and drops it) after ``finish()``.
    @discardableResult
    public func push(_ element: Element) -> Bool {
        let (accepted, waiter): (Bool, CheckedContinuation<Void, Never>?) = state.withLock { state in
            guard !state.finished else { return (false, nil) }
            state.buffer.append(element)
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        waiter?.resume()
        return accepted
    }

    /// No more elements will come; the consumer gets what is left, then `nil`.
    public func finish() {
        let waiter = state.withLock { state in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Waits for at least one element, optionally lingers for more, and returns up to `max`; `nil` when finished
    /// and drained.
    public func nextBatch(max: Int, linger: Duration = .zero) async -> [Element]? {
        while true {
            if let batch = take(max: max) {
                if batch.count < max && linger > .zero {
                    try? await Task.sleep(for: linger)
                    return batch + (take(max: max - batch.count) ?? [])
                }
                return batch
            }
            if state.withLock({ $0.finished }) { return nil }
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state in
                    if !state.buffer.isEmpty || state.finished { return true }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    private func take(max: Int) -> [Element]? {
        state.withLock { state in
            guard !state.buffer.isEmpty else { return nil }
            if state.buffer.count <= max {
                defer { state.buffer.removeAll(keepingCapacity: true) }
                return Array(state.buffer)
            }
            let batch = Array(state.buffer.prefix(max))
            state.buffer.removeFirst(max)
            return batch
        }
    }
}
