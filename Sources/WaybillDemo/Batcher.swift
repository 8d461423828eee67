import Synchronization

/// A many-producer, one-consumer queue that hands out everything waiting at once, so the consumer batches
/// naturally: while one batch is being published, the next one accumulates.
final class Batcher<Element: Sendable>: Sendable {
    private struct State {
        var buffer: [Element] = []
        var waiter: CheckedContinuation<Void, Never>?
        var finished = false
    }

    private let state = Mutex(State())

    init() {}

    /// Adds an element; returns `false` (and drops it) after ``finish()``.
    @discardableResult
    func push(_ element: Element) -> Bool {
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
    func finish() {
        let waiter = state.withLock { state in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Waits for at least one element and returns up to `max` of them; `nil` once finished and drained.
    func next(max: Int) async -> [Element]? {
        while true {
            let batch: [Element]? = state.withLock { state in
                guard !state.buffer.isEmpty else { return nil }
                if state.buffer.count <= max {
                    defer { state.buffer.removeAll(keepingCapacity: true) }
                    return state.buffer
                }
                let batch = Array(state.buffer.prefix(max))
                state.buffer.removeFirst(max)
                return batch
            }
            if let batch { return batch }
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
}
