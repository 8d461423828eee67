import SagaEngine
import SagaStore
import Synchronization
import WaybillDefinition

/// The participants' limits as one worker enforces them: a ``LimitGate`` per entry of `participants.yaml`, the
/// commands each holds back, and the commands each has in flight.
///
/// The engine asks it before every send (``CommandAdmission``): a command under no limit goes at once, without
/// taking the lock; one under a limit goes at once while the limit has room and nothing of it is held, else it is
/// held (a hold timer in the saga's commit). The batch loop then queues what its commits held (``hold(_:)``),
/// asks for what may go now (``releases(now:)``) on every batch, and fires those hold timers like due timers.
/// Replies and returns free their command's place (``answered(_:rateLimited:retryAfter:now:)``); a command that gets
/// neither frees it when its reply timeout passes.
final class ParticipantLimiter: CommandAdmission, Sendable {
    /// A held command of a saga in one of this worker's partitions.
    struct Held: Sendable {
        var partition: Int
        var key: SagaKey
        var command: HeldCommand
    }

    private struct Lane {
        var gate: LimitGate
        var held: HeldCommands<Held>
        /// Message ids of the commands sent under this limit and not answered yet, with when to stop waiting.
        var inFlight: [String: Int64] = [:]
    }

    private struct State {
        var lanes: [Lane]
        /// The lane of each routing key seen so far (`nil`: under no limit).
        var laneOf: [String: Int?] = [:]
        /// The lane of each command in flight, by message id.
        var sentUnder: [String: Int] = [:]
        var heldCount = 0
        /// Message ids of the commands queued now, so a command found held twice (a partition claimed again before
        /// the old queue entries were dropped) waits once.
        var queued: Set<String> = []
    }

    let limits: ParticipantLimits
    private let state: Mutex<State>
    /// Whether anything is held: read on every batch, so it is an atomic, not the lock.
    private let anyHeld = Atomic<Bool>(false)
    /// Called with each released command's time held (for `waybill_command_hold_seconds`).
    private let heldFor: @Sendable (_ commands: String, _ priority: Int, _ held: Duration) -> Void

    init(
        limits: ParticipantLimits, share: Double = 1, now: Timestamp = .now(),
        heldFor: @escaping @Sendable (String, Int, Duration) -> Void = { _, _, _ in }
    ) {
        self.limits = limits
        self.heldFor = heldFor
        state = Mutex(
            State(
                lanes: limits.limits.map {
                    Lane(
                        gate: LimitGate(limit: $0, share: share, now: now.milliseconds),
                        held: HeldCommands(aging: limits.aging))
                }))
    }

    // MARK: - CommandAdmission

    func isLimited(_ routingKey: String) -> Bool {
        state.withLock { lane(of: routingKey, in: &$0) } != nil
    }

    func admit(routingKey: String, messageId: String, timeout: Duration, now: Timestamp) -> Bool {
        state.withLock { state in
            guard let index = lane(of: routingKey, in: &state) else { return true }
            // Held commands go first: a new one does not overtake them.
            guard state.lanes[index].held.isEmpty, state.lanes[index].gate.mayRelease(now: now.milliseconds) else {
                return false
            }
            send(messageId, under: index, timeout: timeout, now: now, in: &state)
            return true
        }
    }

    // MARK: - The batch loop's side

    /// Whether any command is held (the batch loop asks for releases only then).
    var hasHeld: Bool { anyHeld.load(ordering: .relaxed) }

    /// Queues commands that committed transitions held back (or that a partition's new owner found held), and
    /// returns those no limit covers (the limits file changed since they were held): they should go at once.
    @discardableResult
    func hold(_ commands: [Held]) -> [Held] {
        guard !commands.isEmpty else { return [] }
        return state.withLock { state in
            var uncovered: [Held] = []
            for held in commands {
                guard let index = lane(of: held.command.routingKey, in: &state) else {
                    uncovered.append(held)
                    continue
                }
                // Queued already, or out already (its release is on its way): nothing to queue.
                guard state.sentUnder[held.command.messageId] == nil,
                    state.queued.insert(held.command.messageId).inserted
                else { continue }
                state.lanes[index].held.hold(
                    held, priority: held.command.priority, at: held.command.heldAt.milliseconds)
                state.heldCount += 1
            }
            anyHeld.store(state.heldCount > 0, ordering: .relaxed)
            return uncovered
        }
    }

    /// The held commands that may go now, highest lane first and oldest first within a lane, each counted in flight
    /// from now. Fire each one's hold timer to send it.
    func releases(now: Timestamp) -> [Held] {
        var released: [Held] = []
        state.withLock { state in
            expire(now: now, in: &state)
            for index in state.lanes.indices {
                while !state.lanes[index].held.isEmpty, state.lanes[index].gate.mayRelease(now: now.milliseconds),
                    let held = state.lanes[index].held.next(now: now.milliseconds)
                {
                    state.heldCount -= 1
                    state.queued.remove(held.command.messageId)
                    send(held.command.messageId, under: index, timeout: held.command.timeout, now: now, in: &state)
                    released.append(held)
                }
            }
            anyHeld.store(state.heldCount > 0, ordering: .relaxed)
        }
        for held in released {
            heldFor(
                limitName(held.command.routingKey), held.command.priority,
                .milliseconds(max(0, now.milliseconds - held.command.heldAt.milliseconds)))
        }
        return released
    }

    /// A command's reply (or its return by the broker) came: its place in flight is free. `rateLimited` when the
    /// participant refused it for now: its limit slows down for every saga, and sends nothing more before
    /// `retryAfter` when the participant said so.
    func answered(_ messageId: String, rateLimited: Bool = false, retryAfter: Duration? = nil, now: Timestamp) {
        state.withLock { state in
            guard let index = state.sentUnder.removeValue(forKey: messageId) else { return }
            state.lanes[index].inFlight.removeValue(forKey: messageId)
            state.lanes[index].gate.settled()
            if rateLimited {
                state.lanes[index].gate.throttled(now: now.milliseconds, retryAfter: retryAfter?.milliseconds)
            }
        }
    }

    /// Counts commands a partition's previous owner sent and nobody answered yet, each until its reply timeout.
    func adopt(inFlight commands: [(messageId: String, routingKey: String, until: Timestamp)], now: Timestamp) {
        guard !commands.isEmpty else { return }
        state.withLock { state in
            for command in commands {
                guard let index = lane(of: command.routingKey, in: &state), state.sentUnder[command.messageId] == nil
                else { continue }
                state.lanes[index].gate.released(now: now.milliseconds, spending: false)
                state.lanes[index].inFlight[command.messageId] = command.until.milliseconds
                state.sentUnder[command.messageId] = index
            }
        }
    }

    /// A released command that did not go out after all (its saga moved on meanwhile, or the batch's commit failed):
    /// its place and its token come back.
    func unsent(_ messageId: String, now: Timestamp) {
        state.withLock { state in
            guard let index = state.sentUnder.removeValue(forKey: messageId) else { return }
            state.lanes[index].inFlight.removeValue(forKey: messageId)
            state.lanes[index].gate.unsent(now: now.milliseconds)
        }
    }

    /// Re-divides every limit after a rebalance: this worker owns `owned` of `total` partitions.
    func reshare(owned: Int, total: Int, now: Timestamp) {
        let share = LimitGate.share(owned: owned, total: total)
        state.withLock { state in
            for index in state.lanes.indices { state.lanes[index].gate.reshare(share, now: now.milliseconds) }
        }
    }

    /// Forgets what is held and in flight for partitions this worker no longer owns: their new owners queue and count
    /// them (the replies go to them). `partitionOf` finds a command's partition from its message id.
    func keep(partitions owned: Set<Int>, partitionOf: (String) -> Int?) {
        state.withLock { state in
            for (messageId, index) in state.sentUnder {
                guard let partition = partitionOf(messageId), !owned.contains(partition) else { continue }
                state.sentUnder.removeValue(forKey: messageId)
                state.lanes[index].inFlight.removeValue(forKey: messageId)
                state.lanes[index].gate.settled()
            }
            guard state.heldCount > 0 else { return }
            var count = 0
            var dropped: [String] = []
            for index in state.lanes.indices {
                state.lanes[index].held.removeAll { held in
                    guard !owned.contains(held.partition) else { return false }
                    dropped.append(held.command.messageId)
                    return true
                }
                count += state.lanes[index].held.count
            }
            state.queued.subtract(dropped)
            state.heldCount = count
            anyHeld.store(count > 0, ordering: .relaxed)
        }
    }

    /// Each limit's state now.
    func status(now: Timestamp) -> [LimitReport] {
        state.withLock { state in
            expire(now: now, in: &state)
            return state.lanes.indices.map { index in
                var gate = state.lanes[index].gate
                _ = gate.mayRelease(now: now.milliseconds)
                return LimitReport(
                    commands: gate.limit.commands, held: state.lanes[index].held.countsByPriority,
                    inFlight: gate.inFlight, maxInFlight: gate.maxInFlight, perSecond: gate.perSecond,
                    factor: gate.factor)
            }
        }
    }

    /// The limit's pattern for a routing key (`erp.*`), or the key itself under no limit.
    func limitName(_ routingKey: String) -> String {
        limits.limit(for: routingKey)?.commands ?? routingKey
    }

    // MARK: - Private

    private func lane(of routingKey: String, in state: inout State) -> Int? {
        if let known = state.laneOf[routingKey] { return known }
        let index = limits.limits.firstIndex { MessageWait.topic($0.commands, matches: routingKey) }
        // Routing keys come from the workflows: few, so the memo stays small.
        if state.laneOf.count < 10_000 { state.laneOf[routingKey] = index }
        return index
    }

    private func send(_ messageId: String, under index: Int, timeout: Duration, now: Timestamp, in state: inout State) {
        state.lanes[index].gate.released(now: now.milliseconds)
        state.lanes[index].inFlight[messageId] = now.milliseconds + max(1, timeout.milliseconds)
        state.sentUnder[messageId] = index
    }

    /// Commands whose reply timeout passed are not in flight any more (the saga retries or gives up on its own).
    private func expire(now: Timestamp, in state: inout State) {
        for index in state.lanes.indices where !state.lanes[index].inFlight.isEmpty {
            let expired = state.lanes[index].inFlight.filter { $0.value <= now.milliseconds }.map(\.key)
            for messageId in expired {
                state.lanes[index].inFlight.removeValue(forKey: messageId)
                state.sentUnder.removeValue(forKey: messageId)
                state.lanes[index].gate.settled()
            }
        }
    }
}
