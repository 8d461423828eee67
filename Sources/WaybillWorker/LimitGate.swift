import WaybillDefinition

/// One participant limit as one worker applies it: its share of the pool-wide limit (the share of the partitions it
/// owns), a token bucket for the rate, a count of commands in flight, and a factor that back-pressure lowers
/// (`rate_limited` replies) and quiet seconds raise again (multiplicative decrease, additive increase).
///
/// Pure bookkeeping on the caller's clock (milliseconds), so it is tested without a broker; ``ParticipantLimiter``
/// owns one per limit (docs/limits.md).
struct LimitGate: Sendable {
    let limit: ParticipantLimit
    /// This worker's part of the pool's limit, in (0, 1].
    private(set) var share: Double
    /// What back-pressure left of the limit, in [``minimumFactor``, 1].
    private(set) var factor = 1.0
    private(set) var tokens: Double
    private(set) var inFlight = 0
    private var refilledAt: Int64
    /// No release before this time (a `retry_after`).
    private var pausedUntil: Int64 = 0
    /// When the factor last changed (a throttle, or a step of recovery).
    private var adjustedAt: Int64

    /// The lowest the factor goes: a participant that keeps refusing still gets a trickle, to find out it recovered.
    static let minimumFactor = 1.0 / 64
    /// What one quiet second gives back.
    static let recoveryPerSecond = 0.05

    init(limit: ParticipantLimit, share: Double, now: Int64) {
        self.limit = limit
        self.share = min(1, max(share, .leastNonzeroMagnitude))
        tokens = 0
        refilledAt = now
        adjustedAt = now
        tokens = burst
    }

    /// The share of a worker that owns `owned` of `total` partitions.
    static func share(owned: Int, total: Int) -> Double {
        total > 0 ? Double(max(0, owned)) / Double(total) : 1
    }

    /// Commands this worker may have in flight now: its share of `max_in_flight`, lowered by back-pressure, at least 1.
    var maxInFlight: Int? {
        limit.maxInFlight.map { max(1, Int((Double($0) * share * factor).rounded(.down))) }
    }

    /// Commands per second this worker may send now, or `nil` without a rate.
    var perSecond: Double? {
        limit.perSecond.map { $0 * share * factor }
    }

    /// The bucket's size: this worker's share of the burst, at least one command.
    var burst: Double {
        max(1, Double(limit.burst) * share)
    }

    /// What the bucket holds at most now: the burst, lowered by back-pressure, but never below one command (or
    /// nothing would go again).
    private var bucketSize: Double { max(1, burst * factor) }

    /// Re-divides the limit after a rebalance; the commands in flight stay counted.
    mutating func reshare(_ share: Double, now: Int64) {
        refill(now: now)
        self.share = min(1, max(share, .leastNonzeroMagnitude))
        tokens = min(tokens, burst)
    }

    /// Whether one more command may go now.
    mutating func mayRelease(now: Int64) -> Bool {
        refill(now: now)
        recover(now: now)
        guard now >= pausedUntil else { return false }
        if let cap = maxInFlight, inFlight >= cap { return false }
        return limit.perSecond == nil || tokens >= 1
    }

    /// A command went out; `spending: false` counts one in flight that went out earlier (another worker sent it).
    mutating func released(now: Int64, spending: Bool = true) {
        refill(now: now)
        if spending, limit.perSecond != nil { tokens -= 1 }
        inFlight += 1
    }

    /// A command counted out did not go after all: its place and its token come back.
    mutating func unsent(now: Int64) {
        settled()
        refill(now: now)
        if limit.perSecond != nil { tokens = min(bucketSize, tokens + 1) }
    }

    /// A command came back (answered, timed out or returned): its place in flight is free again.
    mutating func settled() {
        inFlight = max(0, inFlight - 1)
    }

    /// The participant said `rate_limited`: halve what this worker sends, and send nothing until `retryAfter` (ms from
    /// now) when it gave one. The command it refused is not in flight any more (``settled()`` it too).
    mutating func throttled(now: Int64, retryAfter: Int64? = nil) {
        refill(now: now)
        recover(now: now)
        factor = max(Self.minimumFactor, factor / 2)
        adjustedAt = now
        tokens = min(tokens, bucketSize)
        if let retryAfter, retryAfter > 0 { pausedUntil = max(pausedUntil, now + retryAfter) }
    }

    /// Gives back ``recoveryPerSecond`` of the limit per whole second since the factor last changed.
    private mutating func recover(now: Int64) {
        guard factor < 1 else {
            adjustedAt = now
            return
        }
        let seconds = (now - adjustedAt) / 1_000
        guard seconds > 0 else { return }
        factor = min(1, factor + Double(seconds) * Self.recoveryPerSecond)
        adjustedAt += seconds * 1_000
    }

    private mutating func refill(now: Int64) {
        guard let rate = perSecond, now > refilledAt else {
            refilledAt = max(refilledAt, now)
            return
        }
        tokens = min(bucketSize, tokens + rate * Double(now - refilledAt) / 1_000)
        refilledAt = now
    }
}

/// Commands held back by a limit, released highest lane first and, within a lane, oldest first. A command's lane is
/// its priority plus one for each `aging` it has waited, so a low-priority saga is never starved forever.
struct HeldCommands<Element: Sendable>: Sendable {
    private struct Entry: Sendable {
        var element: Element
        var priority: Int
        var heldAt: Int64
        var sequence: Int
    }

    private var entries: [Entry] = []
    private var nextSequence = 0
    /// How long a held command waits before it moves up one lane, in milliseconds.
    let aging: Int64

    init(aging: Duration) {
        self.aging = max(1, aging.milliseconds)
    }

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }

    mutating func hold(_ element: Element, priority: Int, at now: Int64) {
        entries.append(Entry(element: element, priority: priority, heldAt: now, sequence: nextSequence))
        nextSequence += 1
    }

    /// The lane of a command held since `heldAt` with `priority`, at `now`.
    func lane(priority: Int, heldAt: Int64, now: Int64) -> Int {
        priority + Int(max(0, now - heldAt) / aging)
    }

    /// Forgets the held commands `drop` picks (a partition this worker lost: its new owner queues them).
    mutating func removeAll(where drop: (Element) -> Bool) {
        entries.removeAll { drop($0.element) }
    }

    /// How many are held in each priority lane (the priority they were held with, before aging).
    var countsByPriority: [Int: Int] {
        entries.reduce(into: [:]) { $0[$1.priority, default: 0] += 1 }
    }

    /// Takes the next command to release at `now`, or `nil` when none is held.
    mutating func next(now: Int64) -> Element? {
        guard !entries.isEmpty else { return nil }
        var best = 0
        for index in entries.indices.dropFirst() {
            let candidate = entries[index]
            let current = entries[best]
            let (a, b) = (
                lane(priority: candidate.priority, heldAt: candidate.heldAt, now: now),
                lane(priority: current.priority, heldAt: current.heldAt, now: now)
            )
            // Within a lane the oldest goes first (a command put back after a failed commit keeps its age).
            if a > b || (a == b && (candidate.heldAt, candidate.sequence) < (current.heldAt, current.sequence)) {
                best = index
            }
        }
        return entries.remove(at: best).element
    }
}
