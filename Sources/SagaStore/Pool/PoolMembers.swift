import Foundation
import SagaEngine
import WaybillDefinition

/// What a worker says about itself in the pool's data directory, rewritten every rebalance tick: the pool status
/// command shows it, and the other workers count live members from the lock files beside it.
public struct PoolMemberStatus: Sendable, Hashable {
    /// Where the worker stands.
    public enum State: String, Sendable, Hashable {
        /// Connecting to the broker (it waits for as long as the broker is down); owns nothing yet.
        case waitingForBroker = "waiting-for-broker"
        /// Processing its partitions.
        case running
        /// Stopping: handing its partitions off.
        case draining
    }

    /// The worker id.
    public var worker: String
    /// Its process id and host name, to find it.
    public var pid: Int32
    public var host: String
    public var state: State
    public var startedAt: Timestamp
    /// When it last wrote this; a status much older than the rebalance interval belongs to a stuck worker.
    public var updatedAt: Timestamp
    /// The partitions it owns, ascending.
    public var partitions: [Int]
    /// Sagas not yet finished in those partitions.
    public var inFlightSagas: Int
    /// Messages waiting in those partitions' queues (its lag).
    public var queuedMessages: Int
    /// Its share of each participant limit (`participants.yaml`) and how that limit stands now; empty without limits.
    public var limits: [LimitReport] = []
    /// Whether the worker's lock is held now (filled in by ``PoolDirectory/members()``; a dead worker's status
    /// file may linger until a live worker clears it).
    public var isLive: Bool = true

    /// A status.
    public init(
        worker: String, pid: Int32, host: String, state: State, startedAt: Timestamp, updatedAt: Timestamp,
        partitions: [Int], inFlightSagas: Int, queuedMessages: Int
    ) {
        self.worker = worker
        self.pid = pid
        self.host = host
        self.state = state
        self.startedAt = startedAt
        self.updatedAt = updatedAt
        self.partitions = partitions
        self.inFlightSagas = inFlightSagas
        self.queuedMessages = queuedMessages
    }

    var json: JSONValue {
        .object([
            "worker": .string(worker), "pid": .number(Double(pid)), "host": .string(host),
            "state": .string(state.rawValue), "startedAt": .number(Double(startedAt.milliseconds)),
            "updatedAt": .number(Double(updatedAt.milliseconds)),
            "partitions": .array(partitions.map { .number(Double($0)) }),
            "inFlightSagas": .number(Double(inFlightSagas)), "queuedMessages": .number(Double(queuedMessages)),
            "limits": .array(limits.map(\.json)),
        ])
    }

    init?(json value: JSONValue) {
        guard let worker = value["worker"]?.stringValue, let state = value["state"]?.stringValue.flatMap(State.init),
            let started = value["startedAt"]?.intValue, let updated = value["updatedAt"]?.intValue
        else { return nil }
        self.init(
            worker: worker, pid: Int32(value["pid"]?.intValue ?? 0), host: value["host"]?.stringValue ?? "",
            state: state, startedAt: Timestamp(milliseconds: Int64(started)),
            updatedAt: Timestamp(milliseconds: Int64(updated)),
            partitions: value["partitions"]?.arrayValue?.compactMap(\.intValue) ?? [],
            inFlightSagas: value["inFlightSagas"]?.intValue ?? 0, queuedMessages: value["queuedMessages"]?.intValue ?? 0
        )
        limits = value["limits"]?.arrayValue?.compactMap(LimitReport.init(json:)) ?? []
    }
}

/// How one participant limit stands at one worker: what it holds back, what it has in flight, and what back-pressure
/// left of its share.
public struct LimitReport: Sendable, Hashable {
    /// The limit's command pattern (`erp.*`).
    public var commands: String
    /// Commands held back, by the priority lane they were held with.
    public var held: [Int: Int]
    /// Commands sent and not answered yet.
    public var inFlight: Int
    /// This worker's share of `max_in_flight` now (after back-pressure), if the limit has one.
    public var maxInFlight: Int?
    /// This worker's share of the rate now (after back-pressure), if the limit has one.
    public var perSecond: Double?
    /// What back-pressure left of the share: 1 unless the participant answered `rate_limited` lately.
    public var factor: Double

    /// Describes a limit's state.
    public init(
        commands: String, held: [Int: Int], inFlight: Int, maxInFlight: Int?, perSecond: Double?, factor: Double
    ) {
        self.commands = commands
        self.held = held
        self.inFlight = inFlight
        self.maxInFlight = maxInFlight
        self.perSecond = perSecond
        self.factor = factor
    }

    /// Whether the limit binds now: commands wait for it, or the participant pushed back.
    public var binds: Bool { held.values.contains { $0 > 0 } || factor < 1 }

    var json: JSONValue {
        .object([
            "commands": .string(commands),
            "held": .object(Dictionary(uniqueKeysWithValues: held.map { (String($0.key), .number(Double($0.value))) })),
            "inFlight": .number(Double(inFlight)),
            "maxInFlight": maxInFlight.map { .number(Double($0)) } ?? .null,
            "perSecond": perSecond.map { .number($0) } ?? .null,
            "factor": .number(factor),
        ])
    }

    init?(json value: JSONValue) {
        guard let commands = value["commands"]?.stringValue else { return nil }
        var held: [Int: Int] = [:]
        if case .object(let lanes)? = value["held"] {
            for (lane, count) in lanes { if let lane = Int(lane), let count = count.intValue { held[lane] = count } }
        }
        self.init(
            commands: commands, held: held, inFlight: value["inFlight"]?.intValue ?? 0,
            maxInFlight: value["maxInFlight"]?.intValue, perSecond: value["perSecond"]?.numberValue,
            factor: value["factor"]?.numberValue ?? 1)
    }
}

extension PoolDirectory {
    /// Joins the pool as `worker`: takes its member lock, held until the returned lock is released. Throws
    /// ``SagaStoreError/Code/memberIdInUse`` when a live process already runs under that id.
    public func join(as worker: String) throws -> FileLock {
        // Another worker may be looking at the lock for a moment (is it live? is it gone?): try for about a second.
        var held: FileLock?
        for attempt in 0..<20 {
            held = try FileLock.tryLock(memberLockPath(worker: worker))
            if held != nil || attempt == 19 { break }
            usleep(50_000)
        }
        guard let lock = held else {
            throw SagaStoreError(
                .memberIdInUse,
                "another live worker in \(path) already runs as '\(worker)'. Give every worker its own worker_id.")
        }
        return lock
    }

    /// Writes a worker's status (atomically: readers see the old or the new file, never half of one).
    public func write(_ status: PoolMemberStatus) throws {
        let text = JSONText.encode(status.json) + "\n"
        do {
            try Data(text.utf8).write(
                to: URL(fileURLWithPath: memberStatusPath(worker: status.worker)), options: .atomic)
        } catch {
            throw SagaStoreError(.notWritable, "cannot write the status of worker \(status.worker).", cause: error)
        }
    }

    /// The ids of the workers whose member lock is held now, sorted.
    public func liveMembers() -> [String] {
        memberIds().filter { FileLock.isHeld(memberLockPath(worker: $0)) }
    }

    /// Every worker with a status or lock file, live or not, with ``PoolMemberStatus/isLive`` set; sorted by id.
    public func members() -> [PoolMemberStatus] {
        memberIds().compactMap { worker in
            guard let data = FileManager.default.contents(atPath: memberStatusPath(worker: worker)),
                let value = try? JSONText.decode(Array(data)), var status = PoolMemberStatus(json: value)
            else { return nil }
            status.isLive = FileLock.isHeld(memberLockPath(worker: worker))
            return status
        }
    }

    /// Removes the files of a worker that is gone (its lock is free): taking its lock first, so a worker starting
    /// under that id at the same moment is not disturbed. Returns whether it removed them.
    @discardableResult
    public func clearDeadMember(_ worker: String) -> Bool {
        guard let lock = try? FileLock.tryLock(memberLockPath(worker: worker)) else { return false }
        unlink(memberStatusPath(worker: worker))
        lock.releaseRemovingFile()
        return true
    }

    private func memberIds() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: membersPath)) ?? []
        var ids = Set<String>()
        for name in names {
            if name.hasSuffix(".lock") { ids.insert(String(name.dropLast(5))) }
            if name.hasSuffix(".json") { ids.insert(String(name.dropLast(5))) }
        }
        return ids.sorted()
    }
}
