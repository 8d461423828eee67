import DequeModule
import Synchronization

/// Entries that complete in any order, on any thread, and are settled in the order they were appended, each exactly
/// once: the hot loop's sent batches, whose confirms may come back out of order (a batch with nothing to publish is
/// done at once) but whose `multiple` acks must not overtake an earlier batch.
///
/// Whichever thread completes the oldest waiting entry settles it, and every entry after it that is complete too;
/// a completion that comes while another thread settles is left for that thread. So settling needs no task of its
/// own: for a batch it is usually the connection thread, as it reads the last confirm.
final class SettlingOrder<Entry: Sendable, Outcome: Sendable>: Sendable {
    private struct State {
        var waiting = Deque<(entry: Entry, outcome: Outcome?)>()
        /// The number of `waiting`'s first entry.
        var first = 0
        /// Whether a thread is settling entries now.
        var settling = false
    }

    private let state = Mutex(State())

    init() {}

    /// Entries appended and not yet taken for settling.
    var count: Int { state.withLock { $0.waiting.count } }

    /// Adds an entry after every earlier one; returns its number, for ``complete(_:with:settle:)``.
    func append(_ entry: Entry) -> Int {
        state.withLock { state in
            state.waiting.append((entry, nil))
            return state.first + state.waiting.count - 1
        }
    }

    /// Records entry `number`'s outcome, then, unless another thread is settling, calls `settle` for each entry,
    /// oldest first, while the oldest has its outcome. Each entry is completed once.
    func complete(_ number: Int, with outcome: Outcome, settle: (Entry, Outcome) -> Void) {
        var ready = state.withLock { state in
            let index = number - state.first
            precondition(
                index >= 0 && index < state.waiting.count && state.waiting[index].outcome == nil,
                "an entry is completed once")
            state.waiting[index].outcome = outcome
            guard !state.settling else { return [(Entry, Outcome)]() }
            let ready = Self.takeReady(&state)
            state.settling = !ready.isEmpty
            return ready
        }
        while !ready.isEmpty {
            for (entry, outcome) in ready { settle(entry, outcome) }
            ready = state.withLock { state in
                let ready = Self.takeReady(&state)
                state.settling = !ready.isEmpty
                return ready
            }
        }
    }

    private static func takeReady(_ state: inout State) -> [(Entry, Outcome)] {
        var ready: [(Entry, Outcome)] = []
        while let (entry, outcome) = state.waiting.first, let outcome {
            state.waiting.removeFirst()
            state.first += 1
            ready.append((entry, outcome))
        }
        return ready
    }
}
