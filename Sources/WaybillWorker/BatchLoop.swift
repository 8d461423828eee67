import AMQPTransport
import Foundation
import Logging
import SagaEngine
import SagaStore
import Synchronization
import Tracing
import WaybillDefinition
import WaybillWire

/// The worker's hot loop body: one batch of inputs → transitions → one commit per partition touched → one confirmed
/// publish → acks.
///
/// This is the one place that decides what a message means: applied to a saga, ignored and journaled, forwarded to
/// its partition, or dead-lettered with an `x-waybill-error` reason. It runs on a single task, which is also the
/// only one that claims and releases partitions (``PartitionKeeper``), between batches.
final class BatchLoop: Sendable {
    private let configuration: WorkerConfiguration
    private let client: AMQPClient
    private let pool: PoolDirectory
    let partitions: OwnedPartitions
    private let registry: DefinitionRegistry
    private let engine: SagaEngine
    /// The participants' limits, when the workflows folder has a `participants.yaml`.
    let limiter: ParticipantLimiter?
    /// Held commands no limit covers any more (the limits file changed, or went, since they were held): the next
    /// batch fires their hold timers, so they go out at once.
    private let releaseNow = Mutex<[ParticipantLimiter.Held]>([])
    /// Partitions whose limited commands could not be read at claim: tried again on the next tick.
    private let adoptAgain = Mutex<Set<Int>>([])
    private let logger: Logger
    let metrics: WorkerMetrics
    private let tracing: SagaTracing
    /// Partitions whose last batch failed to read or commit (not fenced), with the error: the worker's readiness
    /// reports each while it owns the partition, until a commit there succeeds again.
    let failingCommits = Mutex<[Int: String]>([:])
    private let feedback: @Sendable (WorkerInput) -> Void
    /// Benchmarks only: called with the batch once its publish returned (see `SagaWorker`'s `batchObserver`).
    private let afterPublish: (@Sendable ([WorkerInput], Int) -> Void)?
    /// Batches sent and not yet settled, at most `publish_window`.
    private let window: PublishWindow
    /// Sent batches, settled in the order they were sent as their confirms come in.
    private let settling = SettlingOrder<InFlight, Result<[PublishOutcome], AMQPError>>()
    /// The order every batch is sent in, and whether a batch of it was lost with its channel (the later ones are then
    /// refused unsent): the sequence is replaced once the outbox rows it lost are published again.
    private let sequence = Mutex((current: PublishSequence(), broken: false))

    init(
        configuration: WorkerConfiguration, client: AMQPClient, pool: PoolDirectory, partitions: OwnedPartitions,
        registry: DefinitionRegistry, logger: Logger, metrics: WorkerMetrics = WorkerMetrics(),
        tracer: any Tracer = InstrumentationSystem.tracer, feedback: @escaping @Sendable (WorkerInput) -> Void,
        afterPublish: (@Sendable ([WorkerInput], Int) -> Void)? = nil
    ) {
        self.configuration = configuration
        self.client = client
        self.pool = pool
        self.partitions = partitions
        self.registry = registry
        let limiter = registry.limits.map { limits in
            ParticipantLimiter(limits: limits) { commands, priority, held in
                metrics.commandReleased(commands: commands, priority: priority, after: held)
            }
        }
        self.limiter = limiter
        self.engine = SagaEngine(jitterSeed: configuration.jitterSeed, admission: limiter)
        self.logger = logger
        self.metrics = metrics
        self.tracing = SagaTracing(tracer: tracer)
        self.feedback = feedback
        self.afterPublish = afterPublish
        self.window = PublishWindow(size: configuration.publishWindow)
    }

    /// How commands of a partition's sagas are written: their `reply_to` is the partition's queue, so a reply
    /// reaches whichever worker owns the saga when it arrives.
    private func wire(_ partition: Int) -> WireFormat {
        WireFormat(
            commandsExchange: configuration.commandsExchange, eventsExchange: configuration.eventsExchange,
            replyQueue: configuration.partitionQueue(partition))
    }

    /// One event for one saga, and what caused it.
    private struct Item {
        var key: SagaKey
        var event: SagaEvent
        var inbox: String?
        var timerId: String?
        var start: DefinitionRegistry.Entry?
        /// A start's trace (from its headers, or a new one).
        var trace: SagaTrace?
        /// An operator's repair: the control message to answer once the batch is committed.
        var control: InboundDelivery?
        /// A participant's reply: settled with the commit, or dead-lettered when no saga of the partition has it.
        var reply: InboundDelivery?
        /// A held command the limiter released: its hold timer fires to send it.
        var release: ParticipantLimiter.Held?

        /// Whether it is a journal note (answered as applied once its line is committed).
        var isNote: Bool {
            guard case .operatorCommand(let command) = event, case .note = command.action else { return false }
            return true
        }
    }

    /// Messages that are published, not committed, before their delivery is settled (forwards, dead letters,
    /// answers to repairs).
    private struct Relay {
        var message: OutboundMessage
        var delivery: InboundDelivery
    }

    /// A message for wait steps, read as JSON: the partition finds the sagas that wait for it before it decides.
    private struct Signal {
        var delivery: InboundDelivery
        var message: JSONValue
    }

    /// A reply whose body could not be read: journaled if its saga is ours, dead-lettered otherwise.
    private struct MalformedReply {
        var key: SagaKey
        var refusal: WireRefusal
        var delivery: InboundDelivery
    }

    /// What one batch does in one partition: committed together, in the partition's own file.
    private struct PartitionWork {
        /// Every delivery this partition's work took: they all go back to the queue when its commit fails.
        var taken: [InboundDelivery] = []
        var items: [Item] = []
        var signals: [Signal] = []
        /// Whether each of `signals` reached a saga here, counted once the commit succeeded.
        var signalsMatched: [Bool] = []
        /// Messages taken for something already done (their kind), and failed command attempts, counted once the
        /// commit succeeded.
        var duplicates: [String] = []
        var failures: [(participant: String, code: String)] = []
        var malformed: [MalformedReply] = []
        /// Deliveries settled by this partition's commit.
        var settle: [InboundDelivery] = []
        /// Answers and dead letters published after the commit.
        var relays: [Relay] = []
        /// What the applied transitions changed, counted once the commit succeeded.
        var observations: [WorkerMetrics.Observation] = []
        /// Commands the transitions held back for a participant's limit, queued once the commit succeeded.
        var held: [ParticipantLimiter.Held] = []
    }

    /// A partition's committed work, waiting for its publish.
    private struct Committed {
        var partition: OwnedPartition
        /// When it was committed (the batch's `now`), for the event lag.
        var at: Timestamp
        var work: PartitionWork
        var outbox: [OutboxMessage]
        var outboxIds: [Int64]
    }

    // MARK: - One batch

    /// The hot loop's half of a batch: read, decide, commit, send. It returns as soon as the batch's messages are
    /// handed to the client; the batch is settled (its deliveries acknowledged, its confirmed rows noted) when its
    /// confirms are in, in batch order, while this goes on with the next batch. Nothing is acknowledged before its
    /// commit (the commit is done here, before the send), and one saga's messages keep their order (batches go out in
    /// order on one ``PublishSequence``).
    func process(_ batch: [WorkerInput]) async {
        let now = Timestamp.now()
        // Rows left unconfirmed (broker down, nack) go first, in commit order, also in partitions this batch does not
        // touch; every batch in flight is settled first, so their confirmed rows are known. Without a connection every
        // publish fails at once: they wait for the reconnect (a tick comes every timer poll) instead of being retried,
        // and logged, on every batch.
        if client.isConnected,
            sequence.withLock({ $0.broken }) || partitions.all.contains(where: { $0.outboxDirty.withLock { $0 } })
        {
            await drain()
            for partition in partitions.all where partition.outboxDirty.withLock({ $0 }) {
                await flushOutbox(partition)
            }
            sequence.withLock { $0 = (PublishSequence(), false) }
        }
        var work: [Int: PartitionWork] = [:]
        var relays: [Relay] = []
        // Deliveries settled with the batch without anything to publish or commit (copies nobody needs).
        var dropped: [InboundDelivery] = []
        var ticked = false
        for input in batch {
            switch input {
            case .tick:
                ticked = true
            case .returned(let messageId):
                limiter?.answered(messageId, now: now)
                if let key = WireMessages.sagaKey(fromMessageId: messageId) {
                    let number = pool.partition(of: key.id)
                    if partitions[number] != nil {
                        work[number, default: PartitionWork()].items.append(
                            Item(key: key, event: .commandReturned(messageId: messageId)))
                    }
                }
            case .delivery(let source, let delivery):
                classify(source, delivery, work: &work, relays: &relays, dropped: &dropped)
            case .rebalance, .lost, .consumerEnded:
                // The worker's run loop handles these between batches.
                continue
            }
        }
        var released = releaseNow.withLock { released in
            defer { released = [] }
            return released
        }
        if let limiter, limiter.hasHeld { released += limiter.releases(now: now) }
        if !released.isEmpty {
            // Held commands the limits let go now: their hold timers fire, like due timers, to send them.
            for held in released {
                guard partitions[held.partition] != nil else {
                    limiter?.unsent(held.command.messageId, now: now)
                    continue
                }
                work[held.partition, default: PartitionWork()].items.append(
                    Item(
                        key: held.key, event: .timerFired(timerId: held.command.timerId),
                        inbox: "timer:\(held.command.timerId)", timerId: held.command.timerId,
                        release: held))
            }
        }
        if ticked {
            for number in adoptAgain.withLock({ $0 }) {
                guard let partition = partitions[number] else {
                    adoptAgain.withLock { _ = $0.remove(number) }
                    continue
                }
                adoptLimited(of: partition)
            }
            var timerLag: Duration = .zero
            defer { metrics.timersFired(lag: timerLag) }
            for partition in partitions.all where partition.timersDue.withLock({ $0 }) <= now.milliseconds {
                do {
                    let due = try partition.store.dueTimers(before: now, limit: configuration.batchSize)
                    if let earliest = due.first?.dueAt {
                        timerLag = max(timerLag, .milliseconds(max(0, now.milliseconds - earliest.milliseconds)))
                    }
                    for timer in due {
                        work[partition.number, default: PartitionWork()].items.append(
                            Item(
                                key: timer.key, event: .timerFired(timerId: timer.id), inbox: "timer:\(timer.id)",
                                timerId: timer.id))
                    }
                    if due.isEmpty {
                        let next = try partition.store.nextTimerDue()
                        partition.timersDue.withLock { $0 = next?.milliseconds ?? .max }
                    }
                } catch {
                    logger.error("cannot read due timers of \(partition.queue): \(error)")
                }
            }
            for partition in partitions.all {
                pruneInboxIfDue(partition, now: now)
                removeArchived(partition)
            }
        }

        // Each partition's part of the batch runs on its own: read (what the cache lacks, and the inbox check), run the
        // engine, commit in its own file and transaction; the partitions run at the same time, so a batch waits for
        // about its slowest partition, not for the sum of them. Each commit also deletes the partition's outbox rows
        // confirmed since its last one. A batch with one partition's work (most batches at low load) runs it here and
        // holds this thread through the read and the commit's fsync (and an occasional WAL checkpoint): no other
        // partition's commit could run beside it, and handing both to the store's queue and back costs four thread
        // switches, more than the wait.
        var failed = false
        let touched = work.sorted(by: { $0.key < $1.key }).compactMap { number, partitionWork in
            partitions[number].map { ($0, partitionWork) }
        }
        let outcomes: [(OwnedPartition, PartitionOutcome)]
        if touched.count == 1, let (partition, partitionWork) = touched.first {
            outcomes = [(partition, await run(partitionWork, in: partition, now: now, blocking: true))]
        } else {
            outcomes = await withTaskGroup(of: (Int, PartitionOutcome).self) { group in
                for (index, (partition, partitionWork)) in touched.enumerated() {
                    group.addTask { (index, await self.run(partitionWork, in: partition, now: now, blocking: false)) }
                }
                var outcomes = [(OwnedPartition, PartitionOutcome)?](repeating: nil, count: touched.count)
                for await (index, outcome) in group { outcomes[index] = (touched[index].0, outcome) }
                return outcomes.compactMap { $0 }
            }
        }
        if ticked {
            // Partitions without work keep their confirmed rows until a commit takes them along; a tick deletes them.
            let touched = Set(outcomes.map(\.0.number))
            await deleteConfirmed(partitions.all.filter { !touched.contains($0.number) })
        }
        var committed: [Committed] = []
        for (partition, outcome) in outcomes {
            switch outcome {
            case .committed(let work, let changes, let ids):
                metrics.record(work.observations)
                for matched in work.signalsMatched { metrics.signal(matched: matched) }
                metrics.duplicatesAbsorbed(work.duplicates)
                metrics.commandFailures(work.failures)
                queue(work.held)
                tracing.record(work.observations)
                failingCommits.withLock { _ = $0.removeValue(forKey: partition.number) }
                if let soonest = changes.lazy.flatMap(\.scheduleTimers).map(\.dueAt.milliseconds).min() {
                    partition.timersDue.withLock { $0 = min($0, soonest) }
                }
                partition.cache.withLock { cache in
                    for change in changes { if let instance = change.instance { cache.insert(instance) } }
                }
                let recorded = changes.flatMap(\.awaitMessages)
                if !recorded.isEmpty {
                    partition.waitExpressions.withLock { known in
                        // Exchanges not read yet are read whole, these waits included, on their first message.
                        for wait in recorded where known[wait.exchange] != nil {
                            known[wait.exchange]?.insert(
                                WaitExpression(bindingKey: wait.routingKey, expression: wait.key))
                        }
                    }
                }
                // Older rows still unconfirmed: this batch's rows must not overtake them, or a saga's events and
                // commands could reach the broker out of order. They stay for the next flush, in commit order.
                let backlog = partition.outboxDirty.withLock { $0 }
                committed.append(
                    Committed(
                        partition: partition, at: .now(), work: work, outbox: backlog ? [] : changes.flatMap(\.outbox),
                        outboxIds: backlog ? [] : ids))
            case .undecided(let work, let error):
                requeueReleases(work, now: now)
                failingCommits.withLock { $0[partition.number] = "\(error)" }
                logger.error(
                    "batch in \(partition.queue) failed before commit, deliveries go back to the queue: \(error)")
                requeue(work.taken)
                failed = true
            case .uncommitted(let work, _, let error as SagaStoreError) where error.code == .fenced:
                // The new owner queues the partition's held commands; nothing of these went out. (This worker cannot
                // claim the partition again before this batch ends: claims happen between batches.)
                for held in work.items.compactMap(\.release) { limiter?.unsent(held.command.messageId, now: now) }
                requeue(work.taken)
                lose(partition, error)
            case .uncommitted(let work, let changes, let error):
                requeueReleases(work, now: now)
                partition.cache.withLock { $0.evict(changes.map(\.key)) }
                failingCommits.withLock { $0[partition.number] = "\(error)" }
                logger.error(
                    "commit in \(partition.queue) failed, deliveries go back to the queue: \(error)")
                requeue(work.taken)
                failed = true
            }
        }

        let messages =
            relays.map(\.message)
            + committed.flatMap { $0.work.relays.map(\.message) + $0.outbox.map(Self.outbound) }
        // Every batch is settled in order, even one with nothing to publish: a `multiple` ack of its deliveries must
        // not overtake an earlier batch's deliveries still waiting for their confirms. The thread that completes the
        // oldest batch settles it, usually the connection's as it reads the confirm, so no task wakes for it and the
        // acknowledgements go out on that thread's next turn.
        await window.reserve()
        let number = settling.append(
            InFlight(batch: batch, relays: relays, committed: committed, dropped: dropped))
        client.send(messages, in: sequence.withLock { $0.current }).onSettled { result in
            self.settling.complete(number, with: result) { entry, result in
                self.settle(entry, self.outcomes(of: entry, result))
                self.window.release()
            }
        }
        if failed { try? await Task.sleep(for: .milliseconds(200)) }
    }

    /// How one partition's part of a batch ended.
    private enum PartitionOutcome: Sendable {
        case committed(PartitionWork, [SagaChange], outboxIds: [Int64])
        /// Reading or deciding failed: nothing was written.
        case undecided(PartitionWork, any Error)
        /// The commit failed: nothing was written.
        case uncommitted(PartitionWork, [SagaChange], any Error)
    }

    /// One partition's part of a batch: decide, then commit (taking the confirmed outbox rows along). `blocking` reads
    /// and commits on the caller's thread instead of suspending while the store's queue does.
    private func run(
        _ work: PartitionWork, in partition: OwnedPartition, now: Timestamp, blocking: Bool
    ) async -> PartitionOutcome {
        var work = work
        let changes: [SagaChange]
        do {
            changes = try await transitions(&work, partition: partition, now: now, blocking: blocking)
        } catch {
            return .undecided(work, error)
        }
        let confirmed = partition.takeConfirmedOutbox()
        do {
            let ids =
                blocking
                ? try partition.store.commitBlocking(changes, deletingOutbox: confirmed)
                : try await partition.store.commit(changes, deletingOutbox: confirmed)
            return .committed(work, changes, outboxIds: ids)
        } catch {
            partition.noteConfirmedOutbox(confirmed)
            return .uncommitted(work, changes, error)
        }
    }

    /// A batch whose commits are done and whose messages are with the broker, waiting for its confirms.
    private struct InFlight: Sendable {
        var batch: [WorkerInput]
        var relays: [Relay]
        var committed: [Committed]
        /// Deliveries acknowledged with the batch, in its order, with nothing published for them.
        var dropped: [InboundDelivery]
    }

    /// Returns once every batch sent is settled: its deliveries acknowledged or requeued, its confirmed outbox rows
    /// noted on their partitions.
    func drain() async {
        await window.waitUntilEmpty()
    }

    private func outcomes(of entry: InFlight, _ result: Result<[PublishOutcome], AMQPError>) -> [PublishOutcome] {
        do {
            return try result.get()
        } catch {
            let count = entry.relays.count + entry.committed.reduce(0) { $0 + $1.work.relays.count + $1.outbox.count }
            if count > 0 { logger.warning("publish of \(count) messages failed: \(error)") }
            return Array(repeating: .connectionLost, count: count)
        }
    }

    /// The other half of every batch, once its confirms are in (on the thread that completed it, usually the
    /// connection's, so it must not block): notes the confirmed outbox rows (the partition's next commit deletes them),
    /// marks partitions whose rows were not confirmed, then requeues and acknowledges the batch's deliveries.
    private func settle(_ entry: InFlight, _ published: [PublishOutcome]) {
        afterPublish?(entry.batch, published.count)
        if published.contains(where: Self.channelLost) { sequence.withLock { $0.broken = true } }
        var settle: [InboundDelivery] = []
        var unsettled: [InboundDelivery] = []
        var index = 0
        for relay in entry.relays {
            if published[index] == .confirmed {
                settle.append(relay.delivery)
            } else {
                unsettled.append(relay.delivery)
            }
            index += 1
        }
        for committed in entry.committed {
            for relay in committed.work.relays {
                if published[index] == .confirmed {
                    settle.append(relay.delivery)
                } else {
                    unsettled.append(relay.delivery)
                }
                index += 1
            }
            var confirmed: [Int64] = []
            let confirmedAt = Timestamp.now()
            for (row, message) in committed.outbox.enumerated() {
                if handleOutcome(published[index], of: message, in: committed.partition) {
                    confirmed.append(committed.outboxIds[row])
                    if message.exchange == configuration.eventsExchange {
                        metrics.eventConfirmed(
                            after: .milliseconds(max(0, confirmedAt.milliseconds - committed.at.milliseconds)))
                    }
                }
                index += 1
            }
            committed.partition.noteConfirmedOutbox(confirmed)
            settle += committed.work.settle
        }
        requeue(unsettled)
        acknowledge(settle + entry.dropped)
    }

    /// Whether the outcome means the publishing channel went away under the message (its sequence is broken).
    private static func channelLost(_ outcome: PublishOutcome) -> Bool {
        switch outcome {
        case .connectionLost: true
        case .rejected(let error): error.code != .invalidArgument
        case .confirmed, .nacked, .returned: false
        }
    }

    /// Deletes the confirmed outbox rows of partitions that had no commit to take them along, in parallel. Returns
    /// `false` when a deletion was fenced (the partition is lost).
    @discardableResult
    private func deleteConfirmed(_ candidates: [OwnedPartition]) async -> Bool {
        let deletions = candidates.map { ($0, $0.takeConfirmedOutbox()) }.filter { !$0.1.isEmpty }
        guard !deletions.isEmpty else { return true }
        let failures = await withTaskGroup(of: (OwnedPartition, [Int64], (any Error)?).self) { group in
            for (partition, ids) in deletions {
                group.addTask {
                    do {
                        try await partition.store.deleteOutbox(ids: ids)
                        return (partition, ids, nil)
                    } catch {
                        return (partition, ids, error)
                    }
                }
            }
            var failures: [(OwnedPartition, [Int64], any Error)] = []
            for await (partition, ids, error) in group {
                if let error { failures.append((partition, ids, error)) }
            }
            return failures
        }
        var kept = true
        for (partition, ids, error) in failures {
            if let fenced = error as? SagaStoreError, fenced.code == .fenced {
                lose(partition, fenced)
                kept = false
                continue
            }
            // Kept for the partition's next commit, which deletes them with its own changes.
            partition.noteConfirmedOutbox(ids)
            logger.warning(
                "cannot delete confirmed outbox rows; the next commit will",
                metadata: ["partition": .string(partition.queue), "rows": "\(ids.count)", "error": "\(error)"])
        }
        return kept
    }

    /// Another worker claimed `partition` (a write was fenced): from this moment the batch loop does not touch it
    /// again; its consumer is cancelled and its lease let go right after the batch (``PartitionKeeper/lost(_:)``).
    private func lose(_ partition: OwnedPartition, _ error: SagaStoreError) {
        guard partitions.remove(partition.number) === partition else { return }
        logger.critical(
            "lost partition \(partition.queue) to another worker; it no longer touches it",
            metadata: ["error": "\(error)", "epoch": "\(partition.lease.claim.epoch)"])
        feedback(.lost(partition))
    }

    /// Gives the limiter what a newly claimed partition has under the participants' limits (its previous owner's,
    /// or this worker's before a restart): the commands held back, queued at the time each was held, and the commands
    /// sent and not answered yet, counted in flight until their reply or reply timeout. Held commands that no limit
    /// covers now (the limits file changed or went) go out with the next batch. A partition that cannot be read is
    /// tried again on the next tick.
    func adoptLimited(of partition: OwnedPartition) {
        do {
            // Without limits only held commands matter (they must go out); with them, the commands in flight too.
            var timers = try partition.store.timers(ofKind: .hold)
            if limiter != nil { timers += try partition.store.timers(ofKind: .replyTimeout) }
            adoptAgain.withLock { _ = $0.remove(partition.number) }
            guard !timers.isEmpty else { return }
            let byId = Dictionary(timers.map { ("\($0.key)/\($0.id)", $0) }, uniquingKeysWith: { first, _ in first })
            var held: [ParticipantLimiter.Held] = []
            var inFlight: [(messageId: String, routingKey: String, until: Timestamp)] = []
            let keys = Array(Set(timers.map(\.key)))
            for chunk in stride(from: 0, to: keys.count, by: 500) {
                let sagas = try partition.store.sagas(Array(keys[chunk..<min(chunk + 500, keys.count)]))
                for stored in sagas.values {
                    let instance = stored.instance
                    guard let definition = try registry.definition(hash: instance.definitionHash, in: partition.store)
                    else { continue }
                    held += engine.heldCommands(of: instance, definition: definition).filter {
                        byId["\(instance.key)/\($0.timerId)"] != nil
                    }.map { ParticipantLimiter.Held(partition: partition.number, key: instance.key, command: $0) }
                    guard let limiter else { continue }
                    for state in instance.steps.lazy.flatMap(\.branches) {
                        guard let pending = state.pending, let timer = state.timer, timer.kind == .replyTimeout,
                            let stored = byId["\(instance.key)/\(timer.id)"], limiter.isLimited(pending.routingKey)
                        else { continue }
                        inFlight.append((pending.messageId, pending.routingKey, stored.dueAt))
                    }
                }
            }
            limiter?.adopt(inFlight: inFlight, now: .now())
            queue(held.sorted { $0.command.heldAt < $1.command.heldAt })
            if !held.isEmpty || !inFlight.isEmpty {
                logger.info(
                    "\(partition.queue) has \(held.count) commands held back and \(inFlight.count) in flight under the participants' limits"
                )
            }
        } catch {
            adoptAgain.withLock { _ = $0.insert(partition.number) }
            logger.error(
                "cannot read the limited commands of \(partition.queue) (tried again on the next tick): \(error)")
        }
    }

    /// The limits follow the partitions this worker owns: its share of each, and only its partitions' held commands
    /// and commands in flight (the replies to the others go to their new owners).
    func partitionsChanged() {
        guard let limiter else { return }
        let owned = partitions.numbers
        limiter.reshare(owned: owned.count, total: pool.partitionCount, now: .now())
        let pool = pool
        limiter.keep(partitions: Set(owned)) { messageId in
            WireMessages.sagaKey(fromMessageId: messageId).map { pool.partition(of: $0.id) }
        }
    }

    /// Forgets inbox marks older than the retention, a bounded batch per tick, so the table does not grow forever.
    private func pruneInboxIfDue(_ partition: OwnedPartition, now: Timestamp) {
        guard now.milliseconds >= partition.inboxPruneDue.withLock({ $0 }) else { return }
        let limit = 5_000
        var removed = 0
        do {
            removed = try partition.store.pruneInbox(
                before: now.adding(milliseconds: -configuration.inboxRetention.milliseconds), limit: limit)
        } catch let error as SagaStoreError where error.code == .fenced {
            lose(partition, error)
            return
        } catch {
            logger.warning("cannot prune the inbox of \(partition.queue): \(error)")
        }
        if removed > 0 { logger.debug("forgot \(removed) old inbox marks of \(partition.queue)") }
        partition.inboxPruneDue.withLock { $0 = removed == limit ? now.milliseconds : now.milliseconds + 600_000 }
    }

    /// Removes from the partition file the sagas the archiver has written to the archive, and from the cache.
    private func removeArchived(_ partition: OwnedPartition) {
        let archived = partition.archived.withLock { $0 }
        guard !archived.isEmpty else { return }
        defer { partition.archived.withLock { $0 = [:] } }
        partition.cache.withLock { $0.evict(archived.keys) }
        do {
            let removed = try partition.store.removeArchived(archived)
            metrics.archived(removed.count)
            logger.debug("archived \(removed.count) finished sagas of \(partition.queue)")
        } catch let error as SagaStoreError where error.code == .fenced {
            lose(partition, error)
        } catch {
            // They stay in the file as well as in the archive; a later pass writes them again, after a pause so a
            // removal that keeps failing does not fill the archive with copies.
            partition.archiveResumes.withLock { $0 = Timestamp.now().milliseconds + 60_000 }
            logger.warning(
                "cannot remove archived sagas from \(partition.queue); archiving it again in 1 min: \(error)")
        }
    }

    private func classify(
        _ source: WorkerInput.Source, _ delivery: InboundDelivery, work: inout [Int: PartitionWork],
        relays: inout [Relay], dropped: inout [InboundDelivery]
    ) {
        if delivery.redelivered { metrics.redelivered() }
        let queueNumber: Int?
        switch source {
        case .router: queueNumber = nil
        case .leftover:
            relocate(delivery, source: source, relays: &relays, dropped: &dropped)
            return
        case .partition(let number):
            // A delivery from a partition given up since (or from an earlier claim of it): its consumer's channel is
            // closed and the broker has the message back.
            guard let partition = partitions[number],
                partition.subscription.withLock({ $0?.consumerTag }) == delivery.consumerTag
            else { return }
            queueNumber = number
        }
        // A message published to a named exchange and bound to the partition queues by a wait step (replies come
        // through the default exchange, forwards too, and starts and repairs carry waybill-input).
        if let queueNumber, !delivery.exchange.isEmpty, delivery.properties.headers[WireHeader.input] == nil {
            classifySignal(delivery, queue: queueNumber, work: &work, relays: &relays)
            return
        }
        guard delivery.body.count <= configuration.maxMessageBytes else {
            let refusal = WireRefusal(
                .tooLarge,
                "message of \(delivery.body.count) bytes exceeds max_message_bytes \(configuration.maxMessageBytes); "
                    + "send a smaller body or raise max_message_bytes")
            // A reply for one of our sagas is journaled there, like an unreadable reply; anything else is refused.
            if let queueNumber, delivery.properties.headers[WireHeader.input] == nil,
                let correlationId = delivery.properties.correlationID,
                let key = WireMessages.sagaKey(fromMessageId: correlationId), pool.partition(of: key.id) == queueNumber
            {
                work[queueNumber, default: PartitionWork()].malformed.append(
                    MalformedReply(key: key, refusal: refusal, delivery: delivery))
                work[queueNumber]?.taken.append(delivery)
            } else {
                relays.append(deadLetter(delivery, source: source, refusal))
            }
            return
        }
        guard let queueNumber else {
            if case .router(let workflow) = source { route(delivery, workflow: workflow, relays: &relays) }
            return
        }
        let input = delivery.properties.headers[WireHeader.input]?.stringValue
        switch input.map(PartitionInput.init(rawValue:)) {
        case nil:
            classifyReply(delivery, queue: queueNumber, work: &work, relays: &relays)
        case .start?:
            let workflow = delivery.properties.headers[WireHeader.workflow]?.stringValue ?? ""
            guard let entry = registry.current[workflow] else {
                relays.append(
                    deadLetter(
                        delivery, source: source,
                        WireRefusal(
                            .unknownInput,
                            "forwarded start for workflow '\(workflow)', which this worker does not run; deploy its "
                                + "definition to every worker of the pool")))
                return
            }
            do {
                let start = try WireMessages.start(delivery.body, definition: entry.definition)
                let number = pool.partition(of: start.sagaId)
                guard number == queueNumber else {
                    relays.append(forward(delivery, to: number))
                    return
                }
                work[number, default: PartitionWork()].items.append(
                    Item(
                        key: SagaKey(workflow: workflow, id: start.sagaId), event: .start(input: start.input),
                        // Keyed by saga id too: publishers reuse message ids (counters that restart, constants).
                        inbox: delivery.properties.messageID.map { "start:\(workflow):\(start.sagaId):\($0)" },
                        start: entry, trace: SagaTracing.trace(from: delivery.properties.headers)))
                work[number]?.settle.append(delivery)
                work[number]?.taken.append(delivery)
            } catch {
                relays.append(deadLetter(delivery, source: source, error))
            }
        case .control?:
            do {
                let message = try ControlMessage.decode(delivery.body)
                let number = pool.partition(of: message.sagaId)
                guard number == queueNumber else {
                    relays.append(forward(delivery, to: number))
                    return
                }
                work[number, default: PartitionWork()].items.append(
                    Item(
                        key: SagaKey(workflow: message.workflow, id: message.sagaId),
                        event: .operatorCommand(try message.operatorCommand()),
                        inbox: delivery.properties.messageID.map { "control:\($0)" }, control: delivery))
                work[number]?.taken.append(delivery)
            } catch {
                work[queueNumber, default: PartitionWork()].relays.append(
                    controlReply(
                        to: delivery, ControlReply(status: .error, message: error.description), partition: queueNumber))
                work[queueNumber]?.taken.append(delivery)
            }
        case .some(.none):
            relays.append(
                deadLetter(
                    delivery, source: source,
                    WireRefusal(
                        .unknownInput,
                        "\(WireHeader.input) is '\(input ?? "")'; it is 'start' or 'control', or absent on a reply")))
        }
    }

    /// A start from a workflow's shared start queue: forwarded to its saga's partition, keyed by the saga id.
    private func route(_ delivery: InboundDelivery, workflow: String, relays: inout [Relay]) {
        guard let entry = registry.current[workflow] else { return }
        do {
            let start = try WireMessages.start(delivery.body, definition: entry.definition)
            var forwarded = delivery
            forwarded.properties.headers[WireHeader.sagaId] = .string(start.sagaId)
            forwarded.properties.headers[WireHeader.workflow] = .string(workflow)
            forwarded.properties.headers[WireHeader.input] = .string(PartitionInput.start.rawValue)
            relays.append(forward(forwarded, to: pool.partition(of: start.sagaId)))
        } catch {
            relays.append(deadLetter(delivery, source: .router(workflow), error))
        }
    }

    /// A message in a queue a repartition left above the partition count: forwarded to its saga's partition now. A
    /// copy of a message for wait steps is acknowledged: the pool's partition queues got copies of their own.
    private func relocate(
        _ delivery: InboundDelivery, source: WorkerInput.Source, relays: inout [Relay], dropped: inout [InboundDelivery]
    ) {
        if !delivery.exchange.isEmpty, delivery.properties.headers[WireHeader.input] == nil {
            dropped.append(delivery)
            return
        }
        let sagaId: String?
        switch delivery.properties.headers[WireHeader.input]?.stringValue.flatMap(PartitionInput.init(rawValue:)) {
        case .start?: sagaId = delivery.properties.headers[WireHeader.sagaId]?.stringValue
        case .control?: sagaId = try? ControlMessage.decode(delivery.body).sagaId
        case nil: sagaId = delivery.properties.correlationID.flatMap(WireMessages.sagaKey(fromMessageId:))?.id
        }
        guard let sagaId else {
            relays.append(
                deadLetter(
                    delivery, source: source,
                    WireRefusal(
                        .unknownInput,
                        "message in a partition queue left by a repartition names no saga; it cannot be forwarded")))
            return
        }
        relays.append(forward(delivery, to: pool.partition(of: sagaId)))
    }

    /// A message for wait steps, in the queue of partition `queue`. Every partition queue has its own copy, so each
    /// owner looks for the sagas waiting for it in its own partition; one that cannot be read is dead-lettered once,
    /// from partition 0's copy, and the other copies are acknowledged.
    private func classifySignal(
        _ delivery: InboundDelivery, queue: Int, work: inout [Int: PartitionWork], relays: inout [Relay]
    ) {
        var refusal: WireRefusal?
        var message: JSONValue?
        if delivery.body.count > configuration.maxMessageBytes {
            refusal = WireRefusal(
                .tooLarge,
                "message of \(delivery.body.count) bytes for a wait step exceeds max_message_bytes "
                    + "\(configuration.maxMessageBytes); send a smaller body or raise max_message_bytes")
        } else {
            do {
                message = try JSONText.decode(delivery.body)
            } catch {
                refusal = WireRefusal(
                    .notJSON, "message for a wait step is not JSON; publish a JSON body", cause: error)
            }
        }
        work[queue, default: PartitionWork()].taken.append(delivery)
        if let message {
            work[queue]?.signals.append(Signal(delivery: delivery, message: message))
        } else if let refusal, queue == 0 {
            work[queue]?.relays.append(deadLetter(delivery, source: .partition(queue), refusal))
        } else {
            work[queue]?.settle.append(delivery)
        }
    }

    /// A reply from a participant, in the queue of partition `queue`.
    private func classifyReply(
        _ delivery: InboundDelivery, queue: Int, work: inout [Int: PartitionWork], relays: inout [Relay]
    ) {
        guard let correlationId = delivery.properties.correlationID,
            let key = WireMessages.sagaKey(fromMessageId: correlationId)
        else {
            let refusal = WireRefusal(
                .unknownCorrelationId,
                "reply without a Waybill correlation_id; copy the command's correlation_id into the reply")
            relays.append(deadLetter(delivery, source: .partition(queue), refusal))
            return
        }
        let number = pool.partition(of: key.id)
        guard number == queue else {
            // Sent before a repartition (its reply_to names the old partition): it goes where the saga lives now.
            relays.append(forward(delivery, to: number))
            return
        }
        do {
            let outcome = try WireMessages.reply(delivery.body)
            if let limiter {
                var refused = false
                if case .error(let error) = outcome, error.code == StepError.rateLimitedCode { refused = true }
                limiter.answered(
                    correlationId, rateLimited: refused,
                    retryAfter: refused ? WireMessages.retryAfter(delivery.body) : nil, now: .now())
            }
            // Changed in place: a copy taken out and put back would copy the partition's lists on every delivery.
            work[number, default: PartitionWork()].items.append(
                Item(
                    key: key, event: .reply(correlationId: correlationId, outcome: outcome),
                    // Keyed by the command too: a participant's message ids need not be unique across replies.
                    inbox: delivery.properties.messageID.map { "reply:\(correlationId):\($0)" }, reply: delivery))
            work[number]?.taken.append(delivery)
        } catch {
            work[number, default: PartitionWork()].malformed.append(
                MalformedReply(key: key, refusal: error, delivery: delivery))
            work[number]?.taken.append(delivery)
        }
    }

    /// The same message, persistent and mandatory, to the queue of partition `number`; the delivery is settled once
    /// the broker confirmed it.
    private func forward(_ delivery: InboundDelivery, to number: Int) -> Relay {
        var properties = delivery.properties
        properties.persistent = true
        return Relay(
            message: OutboundMessage(
                exchange: "", routingKey: configuration.partitionQueue(number), body: delivery.body, mandatory: true,
                properties: properties),
            delivery: delivery)
    }

    /// The answer to an operator's control message, published after the batch committed; its delivery is settled
    /// once the answer is confirmed. Without a `reply_to` there is nobody to answer: the message is only settled.
    /// An error answer to a control message without a `reply_to` has nobody to go to: the message is dead-lettered
    /// with the reason instead.
    private func controlReply(to delivery: InboundDelivery, _ reply: ControlReply, partition: Int) -> Relay {
        if reply.status == .error, (delivery.properties.replyTo ?? "").isEmpty {
            return deadLetter(delivery, source: .partition(partition), WireRefusal(.badControl, reply.message))
        }
        logger.info(
            "operator request answered",
            metadata: ["status": .string(reply.status.rawValue), "message": .string(reply.message)])
        return Relay(
            message: OutboundMessage(
                exchange: "", routingKey: delivery.properties.replyTo ?? "", body: Data(reply.encoded()),
                persistent: false, contentType: ControlMessage.contentType,
                correlationID: delivery.properties.correlationID),
            delivery: delivery)
    }

    /// Runs the engine over one partition's part of the batch, in order; several events of one saga see each other's
    /// results. `blocking` reads the sagas and the inbox on the caller's thread (a message for wait steps still
    /// suspends for its waiters' read).
    private func transitions(
        _ work: inout PartitionWork, partition: OwnedPartition, now: Timestamp, blocking: Bool
    ) async throws -> [SagaChange] {
        let store = partition.store
        var items = work.items
        // A message for wait steps goes to every saga of this partition that waits for it (none: it is only counted).
        for signal in work.signals {
            let exchange = signal.delivery.exchange
            var expressions = partition.waitExpressions.withLock { $0[exchange] }
            if expressions == nil {
                let stored = try await store.waitExpressions(exchange: exchange)
                partition.waitExpressions.withLock { $0[exchange, default: []].formUnion(stored) }
                expressions = stored
            }
            let waiters = try await store.waiters(
                exchange: exchange, routingKey: signal.delivery.routingKey, message: signal.message,
                expressions: expressions ?? [])
            work.signalsMatched.append(!waiters.isEmpty)
            for waiter in waiters {
                items.append(Item(key: waiter.key, event: .signal(waitId: waiter.waitId, message: signal.message)))
            }
            work.settle.append(signal.delivery)
        }
        let inboxIds = items.compactMap(\.inbox)
        var keys = Set(items.map(\.key))
        keys.formUnion(work.malformed.map(\.key))
        // Recently touched sagas come from the partition's cache; the rest, and the inbox check, from one read.
        var working: [SagaKey: SagaInstance] = [:]
        working.reserveCapacity(keys.count)
        var missing: [SagaKey] = []
        partition.cache.withLock { cache in
            for key in keys {
                if let instance = cache.instance(key) { working[key] = instance } else { missing.append(key) }
            }
        }
        let loaded =
            blocking
            ? try store.lookupBlocking(missing, processed: inboxIds)
            : try await store.lookup(missing, processed: inboxIds)
        var seen = loaded.processed
        if !loaded.sagas.isEmpty {
            partition.cache.withLock { cache in
                for stored in loaded.sagas.values {
                    working[stored.instance.key] = stored.instance
                    cache.insert(stored.instance)
                }
            }
        }
        var changes: [SagaChange] = []
        changes.reserveCapacity(items.count)
        let wire = wire(partition.number)
        /// Answers an operator's request this partition cannot process with an error (other events have nobody to
        /// answer).
        func refuse(_ item: Item, _ message: String) {
            guard let control = item.control else { return }
            work.relays.append(
                controlReply(
                    to: control, ControlReply(status: .error, message: message), partition: partition.number))
        }

        for reply in work.malformed {
            guard working[reply.key] != nil else {
                work.relays.append(deadLetter(reply.delivery, source: .partition(partition.number), reply.refusal))
                continue
            }
            let correlationId = reply.delivery.properties.correlationID ?? "?"
            changes.append(
                SagaChange(
                    key: reply.key, at: now, instance: nil, currentStep: nil,
                    journal: [
                        JournalEntry(
                            at: now, kind: .note,
                            detail: "malformed reply to \(correlationId) acknowledged and ignored: \(reply.refusal)")
                    ]))
            work.settle.append(reply.delivery)
        }

        for item in items {
            // A reply is settled with the commit, whatever it did, unless it is dead-lettered below.
            var settleReply = item.reply
            defer { if let reply = settleReply { work.settle.append(reply) } }
            if let inbox = item.inbox, !seen.insert(inbox).inserted {
                if let release = item.release { limiter?.unsent(release.command.messageId, now: now) }
                work.duplicates.append(String(inbox.prefix { $0 != ":" }))
                if let control = item.control {
                    work.relays.append(
                        controlReply(
                            to: control, ControlReply(status: .error, message: "duplicate request \(inbox)"),
                            partition: partition.number))
                }
                continue
            }
            let before = working[item.key]
            var transition: Transition
            var definition: WorkflowDefinition
            // A migration moves the saga between layouts: its steps did not run, so they are not observed.
            var migrated = false
            switch (item.event, before) {
            case (.start(let input), nil):
                guard let entry = item.start else { continue }
                definition = entry.definition
                transition = engine.start(
                    definition: definition, definitionHash: entry.hash, sagaId: item.key.id, input: input, now: now)
                transition.instance.trace = item.trace
            case (_, let instance?):
                guard let known = try registry.definition(hash: instance.definitionHash, in: store) else {
                    logger.error("saga \(item.key) runs definition \(instance.definitionHash), which is not stored")
                    if let release = item.release { limiter?.unsent(release.command.messageId, now: now) }
                    refuse(
                        item,
                        "saga \(item.key) runs definition \(instance.definitionHash.prefix(12)), which this partition does "
                            + "not store")
                    continue
                }
                definition = known
                if case .operatorCommand(let command) = item.event,
                    case .migrate(let targetHash, let mapping) = command.action
                {
                    // A migration needs the target definition too, stored in this partition by a worker that runs it.
                    guard let target = try registry.definition(hash: targetHash, in: store) else {
                        refuse(
                            item,
                            "definition \(targetHash.prefix(12)) is not stored in partition \(partition.queue); deploy "
                                + "it to the workers first")
                        continue
                    }
                    let migration = SagaMigration(
                        source: known, target: target, targetHash: targetHash, mapping: mapping)
                    transition = engine.migrate(instance, migration, now: now)
                    if transition.outcome == .applied {
                        definition = target
                        migrated = true
                    }
                } else {
                    transition = engine.apply(item.event, to: instance, definition: definition, now: now)
                }
            case (_, nil):
                if let control = item.control {
                    work.relays.append(
                        controlReply(
                            to: control,
                            ControlReply(
                                status: .error, message: "partition \(partition.queue) has no saga \(item.key)"),
                            partition: partition.number))
                } else if let timerId = item.timerId {
                    if let release = item.release { limiter?.unsent(release.command.messageId, now: now) }
                    changes.append(
                        SagaChange(key: item.key, at: now, instance: nil, currentStep: nil, cancelTimerIds: [timerId]))
                } else if let reply = item.reply {
                    settleReply = nil
                    work.relays.append(
                        deadLetter(
                            reply, source: .partition(partition.number),
                            WireRefusal(
                                .unknownCorrelationId,
                                "reply for saga \(item.key), which its partition does not have; check the "
                                    + "correlation_id")))
                } else {
                    logger.warning("event for unknown saga \(item.key) dropped", metadata: ["saga.id": "\(item.key)"])
                }
                continue
            }
            let applied = transition.outcome == .applied
            if case .reply = item.event, case .ignored = transition.outcome { work.duplicates.append("reply") }
            if let limiter {
                if !applied, let release = item.release { limiter.unsent(release.command.messageId, now: now) }
                if applied { holds(transition, partition: partition.number, into: &work) }
            }
            if applied, let failure = Self.failure(item.event, before: before) { work.failures.append(failure) }
            var change = self.change(
                item.event, before: before, transition: transition, definition: definition, inbox: item.inbox,
                wire: wire, now: now)
            if !applied, let timerId = item.timerId { change.cancelTimerIds.append(timerId) }
            changes.append(change)
            if let control = item.control {
                let reply: ControlReply
                switch transition.outcome {
                case .applied:
                    reply = ControlReply(
                        status: .applied, message: change.journal.last?.detail ?? "applied",
                        sagaStatus: transition.instance.status.rawValue)
                case .ignored where item.isNote:
                    reply = ControlReply(
                        status: .applied, message: change.journal.last?.detail ?? "noted",
                        sagaStatus: transition.instance.status.rawValue)
                case .rejected(let reason), .ignored(let reason):
                    reply = ControlReply(
                        status: .rejected, message: reason, sagaStatus: transition.instance.status.rawValue)
                }
                work.relays.append(controlReply(to: control, reply, partition: partition.number))
            }
            if applied {
                working[item.key] = transition.instance
                if !migrated { observe(transition, before: before, definition: definition, in: &work) }
            }
        }
        // A message that came in the same batch as the step that made a saga wait for it (its reply and the message
        // crossed): the waits this batch recorded get it too, once the rest is decided.
        let recorded = changes.flatMap { change in change.awaitMessages.map { (key: change.key, wait: $0) } }
        for (number, signal) in work.signals.enumerated() where !recorded.isEmpty {
            for (key, wait) in recorded where Self.reaches(signal, wait) {
                guard let instance = working[key],
                    let definition = try registry.definition(hash: instance.definitionHash, in: store)
                else { continue }
                let event = SagaEvent.signal(waitId: wait.id, message: signal.message)
                let transition = engine.apply(event, to: instance, definition: definition, now: now)
                // A later event of the batch may have ended the wait already: then there is nothing to journal.
                guard transition.outcome == .applied else { continue }
                changes.append(
                    change(
                        event, before: instance, transition: transition, definition: definition, inbox: nil, wire: wire,
                        now: now))
                working[key] = transition.instance
                observe(transition, before: instance, definition: definition, in: &work)
                holds(transition, partition: partition.number, into: &work)
                work.signalsMatched[number] = true
            }
        }
        return changes
    }

    /// Held commands released into a batch whose commit failed: nothing was sent, and their hold timers are still
    /// stored, so they wait in the queue again (a fenced partition's are its new owner's).
    private func requeueReleases(_ work: PartitionWork, now: Timestamp) {
        let released = work.items.compactMap(\.release)
        guard !released.isEmpty else { return }
        for held in released { limiter?.unsent(held.command.messageId, now: now) }
        queue(released)
    }

    /// Queues held commands with their limits; those no limit covers go out with the next batch.
    private func queue(_ held: [ParticipantLimiter.Held]) {
        guard !held.isEmpty else { return }
        let uncovered = limiter?.hold(held) ?? held
        if !uncovered.isEmpty { releaseNow.withLock { $0 += uncovered } }
    }

    /// The commands a transition held back for a participant's limit, to queue once committed.
    private func holds(_ transition: Transition, partition: Int, into work: inout PartitionWork) {
        guard limiter != nil else { return }
        for case .holdCommand(let command) in transition.actions {
            work.held.append(
                ParticipantLimiter.Held(partition: partition, key: transition.instance.key, command: command))
        }
    }

    /// The failed command attempt an event reports: an error reply, a reply timeout or a return, with the
    /// participant (the first word of the command's routing key) and the code; `nil` for anything else.
    private static func failure(
        _ event: SagaEvent, before: SagaInstance?
    ) -> (participant: String, code: String)? {
        guard let before else { return nil }
        let branches = before.steps.lazy.flatMap(\.branches)
        let pending: PendingCommand?
        let code: String
        switch event {
        case .reply(let correlationId, .error(let error)):
            pending = branches.first { $0.pending?.messageId == correlationId }?.pending
            code = error.code
        case .timerFired(let timerId):
            pending = branches.first { $0.timer?.id == timerId && $0.timer?.kind == .replyTimeout }?.pending
            code = StepError.timeoutCode
        case .commandReturned(let messageId):
            pending = branches.first { $0.pending?.messageId == messageId }?.pending
            code = StepError.unroutableCode
        default:
            return nil
        }
        guard let pending else { return nil }
        return (label(String(pending.routingKey.prefix { $0 != "." })), label(code))
    }

    /// A metric label value from a participant's text: kept when it is a short word, else `other` (so a participant
    /// cannot grow the number of series without bound).
    private static func label(_ text: String) -> String {
        text.count <= 40 && !text.isEmpty
            && text.unicodeScalars.allSatisfy {
                ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-"
            } ? text : "other"
    }

    /// The change an engine transition makes, with its outbox rows stamped with the saga's trace.
    private func change(
        _ event: SagaEvent, before: SagaInstance?, transition: Transition, definition: WorkflowDefinition,
        inbox: String?, wire: WireFormat, now: Timestamp
    ) -> SagaChange {
        let applied = transition.outcome == .applied
        var change = SagaChange(
            event: event, before: before, transition: transition, definition: definition, at: now,
            owner: configuration.workerId, inboxMessageId: inbox,
            outbox: applied ? wire.outbox(for: transition.actions, of: transition.instance) : [])
        if let trace = transition.instance.trace { SagaTracing.stamp(&change.outbox, with: trace) }
        return change
    }

    /// Logs an applied transition and notes what the metrics count once the commit succeeded.
    private func observe(
        _ transition: Transition, before: SagaInstance?, definition: WorkflowDefinition, in work: inout PartitionWork
    ) {
        log(transition, definition: definition)
        if let observation = WorkerMetrics.Observation(
            before: before, after: transition.instance, definition: definition)
        {
            work.observations.append(observation)
        }
    }

    /// Whether a message for wait steps is one `wait` waits for: its exchange, a routing key its binding key matches,
    /// and the key the wait's expression reads from it.
    private static func reaches(_ signal: Signal, _ wait: AwaitedMessage) -> Bool {
        guard signal.delivery.exchange == wait.exchange,
            MessageWait.topic(wait.routingKey, matches: signal.delivery.routingKey),
            let key = try? Template.parse(string: wait.key),
            let value = try? key.evaluate(
                in: EvaluationScope(
                    input: .null, alias: (MessageWait.messageName, signal.message), sagaId: "", workflow: ""))
        else { return false }
        return MessageWait.correlationText(value) == wait.match
    }

    private func log(_ transition: Transition, definition: WorkflowDefinition) {
        guard let finished = transition.actions.last, case .finished(let status) = finished else {
            if logger.logLevel <= .debug {
                logger.debug(
                    "saga advanced",
                    metadata: [
                        "saga.id": .string(transition.instance.key.id),
                        "saga.workflow": .string(transition.instance.key.workflow),
                        "step.id": .string(transition.instance.currentStepId(in: definition) ?? "-"),
                        "trace.id": .string(transition.instance.trace.map(SagaTracing.traceId) ?? "-"),
                    ])
            }
            return
        }
        var metadata: Logger.Metadata = [
            "saga.id": .string(transition.instance.key.id), "saga.workflow": .string(transition.instance.key.workflow),
        ]
        if let trace = transition.instance.trace { metadata["trace.id"] = .string(SagaTracing.traceId(trace)) }
        if let failure = transition.instance.failure {
            metadata["step.id"] = .string(failure.step)
            metadata["error.code"] = .string(failure.error.code)
        }
        logger.log(level: status == .suspended ? .warning : .info, "saga \(status.rawValue)", metadata: metadata)
    }

    // MARK: - Publishing and settling

    private func publish(_ messages: [OutboundMessage]) async -> [PublishOutcome] {
        guard !messages.isEmpty else { return [] }
        do {
            return try await client.publish(messages)
        } catch {
            logger.warning("publish of \(messages.count) messages failed: \(error)")
            return Array(repeating: .connectionLost, count: messages.count)
        }
    }

    /// Whether an outbox row is done with: confirmed, returned unroutable (then its saga hears about it), or refused
    /// by the client because AMQP cannot carry it (a routing key or id over 255 bytes, built from saga data): such a
    /// row would fail the same way forever, so it is dropped and a command's saga hears about it as unroutable.
    private func handleOutcome(
        _ outcome: PublishOutcome, of message: OutboxMessage, in partition: OwnedPartition
    )
        -> Bool
    {
        switch outcome {
        case .confirmed:
            return true
        case .returned:
            if message.mandatory { feedback(.returned(messageId: message.messageId)) }
            return true
        case .rejected(let error) where error.code == .invalidArgument:
            logger.error(
                "dropping an outbox message AMQP cannot carry",
                metadata: [
                    "message.id": .string(String(message.messageId.prefix(120))),
                    "error": .string(error.message),
                ])
            if message.mandatory { feedback(.returned(messageId: message.messageId)) }
            return true
        case .nacked, .connectionLost, .rejected:
            partition.outboxDirty.withLock { $0 = true }
            return false
        }
    }

    /// Publishes every outbox row of `partition` left from before (a crash, a lost connection, a nack, the previous
    /// owner), oldest first, in rounds: each round publishes the oldest row of every saga, so a saga's next row goes
    /// out only once the one before it is confirmed. A broker may nack one message and take the next (a quorum queue
    /// electing a new leader after its node died does), and a saga's later event must not overtake an earlier one.
    /// Leaves the partition marked dirty when some were not confirmed.
    func flushOutbox(_ partition: OwnedPartition) async {
        guard await deleteConfirmed([partition]) else { return }
        var published = 0
        while true {
            let pending: [PendingOutboxMessage]
            do {
                pending = try partition.store.pendingOutbox(limit: 1000)
            } catch {
                logger.error("cannot read the outbox of \(partition.queue): \(error)")
                partition.outboxDirty.withLock { $0 = true }
                return
            }
            partition.outboxDirty.withLock { $0 = false }
            guard !pending.isEmpty else {
                if published > 0 {
                    logger.info("published \(published) outbox messages of \(partition.queue) left from before")
                }
                return
            }
            var sagas: Set<SagaKey> = []
            let round = pending.filter { sagas.insert($0.key).inserted }
            let outcomes = await publish(round.map { Self.outbound($0.message) })
            var confirmed: [Int64] = []
            for (row, outcome) in zip(round, outcomes) where handleOutcome(outcome, of: row.message, in: partition) {
                confirmed.append(row.id)
            }
            do {
                try await partition.store.deleteOutbox(ids: confirmed)
            } catch let error as SagaStoreError where error.code == .fenced {
                lose(partition, error)
                return
            } catch {
                logger.error("cannot delete confirmed outbox rows of \(partition.queue): \(error)")
                partition.outboxDirty.withLock { $0 = true }
                return
            }
            published += confirmed.count
            if confirmed.count < round.count {
                partition.outboxDirty.withLock { $0 = true }
                logger.warning(
                    "\(round.count - confirmed.count) outbox messages of \(partition.queue) not confirmed; will retry"
                )
                return
            }
        }
    }

    static func outbound(_ message: OutboxMessage) -> OutboundMessage {
        OutboundMessage(
            exchange: message.exchange, routingKey: message.routingKey, body: Data(message.body),
            mandatory: message.mandatory,
            properties: MessageProperties(
                contentType: message.contentType, headers: message.headers.mapValues { .string($0) }, persistent: true,
                correlationID: message.correlationId, replyTo: message.replyTo, messageID: message.messageId))
    }

    /// Sends `delivery` to the dead-letter exchange with `refusal` (code first) in the `x-waybill-error` header.
    private func deadLetter(_ delivery: InboundDelivery, source: WorkerInput.Source, _ refusal: WireRefusal) -> Relay {
        let reason = refusal.description
        metrics.deadLettered(code: refusal.code.rawValue)
        var properties = delivery.properties
        properties.persistent = true
        properties.headers[WireHeader.error] = .string(reason)
        properties.headers[WireHeader.deadLetterSource] = .string(Self.name(of: source))
        properties.headers[WireHeader.deadLetterRoutingKey] = .string(delivery.routingKey)
        properties.headers[WireHeader.deadLetterExchange] = .string(delivery.exchange)
        properties.headers[WireHeader.deadLetteredAt] = .timestamp(Date())
        logger.warning(
            "dead-lettering a message", metadata: ["reason": .string(reason), "source": .string(Self.name(of: source))])
        return Relay(
            message: OutboundMessage(
                exchange: configuration.deadLetterExchange, routingKey: delivery.routingKey, body: delivery.body,
                properties: properties),
            delivery: delivery)
    }

    private static func name(of source: WorkerInput.Source) -> String {
        switch source {
        case .router(let workflow): "starts/\(workflow)"
        case .partition(let number), .leftover(let number): "partition/\(PoolDirectory.name(ofPartition: number))"
        }
    }

    private func requeue(_ deliveries: [InboundDelivery]) {
        for delivery in deliveries { client.nack(delivery.deliveryTag, requeue: true) }
    }

    /// Acknowledges with one `multiple` ack per consumer: the highest tag covers every earlier delivery, all of
    /// which were settled by this or an earlier batch (deliveries are handled in arrival order).
    private func acknowledge(_ deliveries: [InboundDelivery]) {
        var highest: [String: DeliveryTag] = [:]
        for delivery in deliveries {
            let consumer = delivery.consumerTag
            if let current = highest[consumer],
                current.generation > delivery.deliveryTag.generation
                    || (current.generation == delivery.deliveryTag.generation
                        && current.value >= delivery.deliveryTag.value)
            {
                continue
            }
            highest[consumer] = delivery.deliveryTag
        }
        for tag in highest.values { client.ack(tag, multiple: true) }
    }
}
