import AMQPTransport
import Foundation
import Logging
import SagaEngine
import SagaStore
import SeededRandom
import Synchronization
import WaybillOperations

/// Claims, keeps and gives up this worker's partitions, and keeps its member status in the pool's data directory.
///
/// Every rebalance tick it counts the live workers (those whose member lock is held), works out its fair share of the
/// partitions (`P / n`, the first `P mod n` workers by id one more), gives up partitions above its share and claims
/// free ones below it. Giving up is cooperative: between two batches, the consumer of the partition's queue is
/// cancelled (the broker takes back what was not acknowledged), the outbox is flushed, the claim is released and the
/// lock let go; a worker below its share then claims it on its own next tick. A partition whose owner died is free
/// as soon as the kernel drops the dead process's lock, and is claimed by a survivor on its next tick. A partition
/// that stays free for five ticks while everyone is at their share (views of the membership that disagree for a
/// moment) is claimed anyway. All of it runs on the hot loop's task, between batches.
final class PartitionKeeper: Sendable {
    private let configuration: WorkerConfiguration
    private let storage: any PartitionStorage
    private let pool: PoolDirectory
    private let client: AMQPClient
    private let registry: DefinitionRegistry
    private let loop: BatchLoop
    private let logger: Logger
    private let deliver: @Sendable (WorkerInput) -> Void
    private let startedAt = Timestamp.now()
    private let state = Mutex(KeeperState())

    private struct KeeperState {
        /// Ticks each free partition has been seen free while this worker was at its share.
        var freeTicks: [Int: Int] = [:]
        var status = PoolMemberStatus.State.waitingForBroker
        var queued = 0
        var inFlight = 0
        var ticks = 0
        /// Set once the worker drains: no more claims, releases or `running` status.
        var draining = false
        /// Why the last member status could not be written, if it could not: the data directory is not writable.
        var statusWriteError: String?
    }

    /// What keeps this worker from taking work, as far as the pool is concerned (for its readiness): waiting for the
    /// broker, draining, or a data directory it cannot write.
    var problems: [String] {
        state.withLock { state in
            var problems: [String] = []
            switch state.status {
            case .waitingForBroker: problems.append("waiting for the broker: no partitions claimed")
            case .draining: problems.append("draining: handing its partitions off")
            case .running: break
            }
            if let error = state.statusWriteError {
                problems.append("cannot write the pool's data directory: \(error)")
            }
            return problems
        }
    }

    init(
        configuration: WorkerConfiguration, pool: PoolDirectory, client: AMQPClient, registry: DefinitionRegistry,
        loop: BatchLoop, logger: Logger, deliver: @escaping @Sendable (WorkerInput) -> Void
    ) {
        self.configuration = configuration
        self.storage = SQLitePartitionStorage(pool: pool, durability: configuration.durability)
        self.pool = pool
        self.client = client
        self.registry = registry
        self.loop = loop
        self.logger = logger
        self.deliver = deliver
    }

    private var partitions: OwnedPartitions { loop.partitions }

    /// This worker's fair share of the pool's partitions among `live` worker ids.
    static func share(of worker: String, live: [String], partitionCount: Int) -> Int {
        let members = Set(live + [worker]).sorted()
        let index = members.firstIndex(of: worker) ?? 0
        let base = partitionCount / members.count
        return base + (index < partitionCount % members.count ? 1 : 0)
    }

    /// One rebalance: clear dead members' files, give up partitions above the share, claim free ones below it, and
    /// rewrite the member status.
    func rebalance() async {
        guard !state.withLock({ $0.draining }) else { return }
        // Without the broker a claim cannot subscribe: take no share (the others see this worker as waiting).
        guard client.isConnected else {
            writeStatus(.waitingForBroker)
            return
        }
        let members = pool.members()
        for member in members where !member.isLive && member.worker != configuration.workerId {
            if pool.clearDeadMember(member.worker) {
                logger.notice("cleared the files of worker \(member.worker), which is gone")
            }
        }
        // Workers still waiting for the broker, or draining, take no share: partitions given to them would sit idle.
        let active = members.filter { $0.isLive && $0.state == .running }
        let ids = active.map(\.worker) + [configuration.workerId]
        let share = Self.share(of: configuration.workerId, live: ids, partitionCount: pool.partitionCount)
        // Give up extra partitions only as far as another running worker is below its share and will take them; an
        // extra partition nobody wants (one taken because it was stranded) stays served here.
        let wanted = active.filter { $0.worker != configuration.workerId }.reduce(0) { total, member in
            total
                + max(
                    0,
                    Self.share(of: member.worker, live: ids, partitionCount: pool.partitionCount)
                        - member.partitions.count)
        }
        var owned = partitions.numbers
        var released: Set<Int> = []
        let extra = min(max(0, owned.count - share), wanted)
        if extra > 0 {
            for number in owned.suffix(extra) {
                await release(number, reason: "rebalance: \(Set(ids).count) workers, share \(share)")
                released.insert(number)
            }
        }
        owned = partitions.numbers
        // Free partitions, starting at a place that depends on the worker id, so that workers joining together try
        // different ones first.
        var hash = StableHash()
        hash.combine(configuration.workerId)
        let offset = Int(hash.value % UInt64(pool.partitionCount))
        let free = (0..<pool.partitionCount).map { (offset + $0) % pool.partitionCount }.filter {
            partitions[$0] == nil && !storage.isClaimed($0)
        }
        var wantedHere = max(0, share - owned.count)
        // A partition this worker just gave up starts counting again: it is meant for another worker.
        let stranded = state.withLock { state in
            var ticks: [Int: Int] = [:]
            for number in free where !released.contains(number) { ticks[number] = (state.freeTicks[number] ?? 0) + 1 }
            state.freeTicks = ticks
            return Set(ticks.filter { $0.value >= Self.strandedTicks }.keys)
        }
        for number in free {
            if wantedHere > 0 {
                if await claim(number) { wantedHere -= 1 }
            } else if stranded.contains(number) {
                if await claim(number) {
                    logger.notice("claimed partition \(number) beyond the share: nobody took it for a while")
                }
            }
        }
        loop.partitionsChanged()
        writeStatus(.running)
    }

    /// The worker drains from now on: it claims and releases nothing by rebalance and says it is draining, so the
    /// others stop counting it and take what it hands off.
    func beginDrain() {
        state.withLock { $0.draining = true }
        writeStatus(.draining)
    }

    /// The consumer of partition `number`'s queue ended on its own: give the partition up, so that it is served
    /// again (by this worker or another) on the next rebalance instead of sitting owned and unconsumed.
    func consumerEnded(_ number: Int, consumerTag: String) async {
        guard let partition = partitions[number],
            partition.subscription.withLock({ $0?.consumerTag }) == consumerTag
        else { return }
        await release(number, reason: "its consumer ended")
    }

    /// How many rebalance ticks a partition stays free before a worker at its share takes it anyway.
    static let strandedTicks = 5

    /// Claims partition `number` if nobody holds it: lock, new epoch, definitions, leftover outbox, then the queue's
    /// consumer. Returns whether this worker owns it now.
    @discardableResult
    func claim(_ number: Int) async -> Bool {
        let clock = ContinuousClock()
        let began = clock.now
        let queue = configuration.partitionQueue(number)
        let lease: any PartitionLease
        do {
            guard let claimed = try storage.claim(number, owner: configuration.workerId, now: .now()) else {
                return false
            }
            lease = claimed
        } catch {
            logger.error("cannot claim partition \(queue): \(error)")
            return false
        }
        do {
            try registry.register(in: lease.store, now: .now())
        } catch {
            logger.error("cannot store the workflow definitions in \(queue); giving the partition up: \(error)")
            lease.release(at: .now())
            return false
        }
        let partition = OwnedPartition(
            queue: queue, lease: lease, cacheCapacity: configuration.sagaCache / max(1, pool.partitionCount))
        partitions.insert(partition)
        await loop.flushOutbox(partition)
        loop.adoptLimited(of: partition)
        do {
            // The connection's thread puts each delivery straight on the hot loop's queue. The end of the consumer
            // goes there too; `consumerEnded(_:consumerTag:)` ignores the end of one this worker stopped itself.
            let deliver = deliver
            let subscription = try await client.subscribe(
                queue: queue, prefetch: configuration.prefetch,
                onEnd: { [logger] consumerTag, error in
                    if let error { logger.error("consumer of \(queue) stopped: \(error)") }
                    deliver(.consumerEnded(number, consumerTag: consumerTag))
                },
                onDelivery: { delivery in deliver(.delivery(.partition(number), delivery)) })
            partition.subscription.withLock { $0 = subscription }
        } catch {
            logger.error("cannot consume \(queue); giving the partition up: \(error)")
            await release(number, reason: "no consumer")
            return false
        }
        logger.info(
            "claimed partition \(queue)",
            metadata: ["epoch": "\(lease.claim.epoch)", "took_ms": "\((clock.now - began).milliseconds)"])
        return true
    }

    /// Gives partition `number` up: stop consuming (the broker takes back what was not acknowledged), publish what
    /// the outbox still holds, end the claim, let the next owner in.
    func release(_ number: Int, reason: String) async {
        guard let partition = partitions.remove(number) else { return }
        // Batches still waiting for their confirms settle first: their deliveries are acknowledged (the next owner
        // does not get them again) and their confirmed rows are not published again.
        await loop.drain()
        await stopConsuming(partition)
        await loop.flushOutbox(partition)
        partition.lease.release(at: .now())
        logger.info("released partition \(partition.queue)", metadata: ["reason": .string(reason)])
    }

    /// Lets go of a partition another worker claimed (its store refused a write as fenced; the batch loop already
    /// forgot it): no write, no flush.
    func lost(_ partition: OwnedPartition) async {
        await stopConsuming(partition)
        partition.lease.abandon()
        loop.partitionsChanged()
    }

    private func stopConsuming(_ partition: OwnedPartition) async {
        guard let subscription = partition.subscription.withLock({ $0 }) else { return }
        await client.cancel(subscription)
    }

    /// Hands every partition off (a drain), then leaves the pool's status as draining; the caller lets go of the
    /// member lock.
    func releaseAll(reason: String) async {
        beginDrain()
        for number in partitions.numbers { await release(number, reason: reason) }
    }

    /// Rewrites this worker's member status; every fifth tick it also counts its in-flight sagas and queued
    /// messages, and every thirtieth it measures reservation aging.
    func writeStatus(_ status: PoolMemberStatus.State) {
        let (recount, aging) = state.withLock { state in
            state.status = status
            state.ticks += 1
            return (state.ticks % 5 == 1, state.ticks % 30 == 1)
        }
        let owned = partitions.all
        var outbox: Int?
        if recount {
            let inFlight = owned.reduce(0) { $0 + ((try? $1.store.activeSagaCount()) ?? 0) }
            outbox = owned.reduce(0) { $0 + ((try? $1.store.outboxDepth()) ?? 0) }
            state.withLock { $0.inFlight = inFlight }
        }
        if aging {
            var groups: [(ActiveStepGroup, OwnedPartition)] = []
            for partition in owned {
                for group in (try? partition.store.oldestActiveByStep()) ?? [] { groups.append((group, partition)) }
            }
            let stores = Dictionary(
                groups.map { ($0.0.definitionHash, $0.1.store) }, uniquingKeysWith: { first, _ in first })
            let registry = registry
            loop.metrics.reservations(
                ReservationAging.oldest(groups.map(\.0)) { hash in
                    stores[hash].flatMap { try? registry.definition(hash: hash, in: $0) }
                }, now: .now())
            // The latest reconciliation, whoever ran it (a worker's schedule or an operator's `waybill reconcile`).
            if let report = try? ReconcileReports(dataDirectory: configuration.dataDirectory).load() {
                loop.metrics.reconciliation(report)
            }
        }
        let (inFlight, queued) = state.withLock { ($0.inFlight, $0.queued) }
        loop.metrics.gauges(
            partitions: owned.count, inFlight: recount ? inFlight : nil, outbox: outbox, queued: queued,
            connected: client.isConnected)
        let limits = loop.limiter?.status(now: .now()) ?? []
        loop.metrics.limits(limits)
        var record = PoolMemberStatus(
            worker: configuration.workerId, pid: getpid(), host: Self.hostName, state: status,
            startedAt: startedAt, updatedAt: .now(), partitions: owned.map(\.number), inFlightSagas: inFlight,
            queuedMessages: queued)
        record.limits = limits
        do {
            try pool.write(record)
            state.withLock { $0.statusWriteError = nil }
        } catch {
            state.withLock { $0.statusWriteError = "\(error)" }
            logger.warning("cannot write the member status: \(error)")
        }
    }

    private static let hostName: String = {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count) == 0 else { return "" }
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()

    /// Counts the messages waiting in the owned partitions' queues (the worker's lag) for the status file.
    func measureLag() async {
        var queued = 0
        for partition in partitions.all {
            if let info = try? await client.inspectQueue(partition.queue) { queued += Int(info.messageCount) }
        }
        state.withLock { $0.queued = queued }
    }
}
