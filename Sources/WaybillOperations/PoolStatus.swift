import SagaEngine
import SagaStore
import WaybillDefinition

/// `waybill pool status`: every worker of a pool as its member status file describes it (live, or dead and not yet
/// cleared by a live worker), and who owns each partition now, from the member statuses and the partition locks.
public struct PoolStatus: Sendable, Hashable {
    /// Who owns one partition.
    public struct Partition: Sendable, Hashable {
        /// The partition.
        public var partition: Int
        /// Whether a live process holds its lock now (its owner consumes its queue).
        public var locked: Bool
        /// The live workers whose last status lists it: one normally, two for a moment during a hand-off.
        public var claimedBy: [String]

        /// Describes a partition.
        public init(partition: Int, locked: Bool, claimedBy: [String]) {
            self.partition = partition
            self.locked = locked
            self.claimedBy = claimedBy
        }

        /// The worker that owns it: the one live worker that lists it, while its lock is held.
        public var owner: String? { locked && claimedBy.count == 1 ? claimedBy[0] : nil }

        /// The owner column: the owner, or what is odd about the partition.
        var ownerText: String {
            if let owner { return owner }
            switch (locked, claimedBy.isEmpty) {
            case (true, true): return "locked; no live worker lists it yet (a takeover in progress?)"
            case (true, false): return "locked; listed by \(claimedBy.joined(separator: ", ")) (a hand-off in progress)"
            case (false, true): return "NONE: no live worker holds its lock"
            case (false, false):
                return "NONE: \(claimedBy.joined(separator: ", ")) lists it but holds no lock (a hand-off in progress?)"
            }
        }
    }

    /// The pool's data directory.
    public var path: String
    /// Its partition count.
    public var partitionCount: Int
    /// When the status was read.
    public var now: Timestamp
    /// Every worker with a status file, sorted by id, with ``PoolMemberStatus/isLive`` set.
    public var workers: [PoolMemberStatus]
    /// Every partition, in order.
    public var partitions: [Partition]

    /// Describes a status (``read(_:now:)`` reads one).
    public init(path: String, partitionCount: Int, now: Timestamp, workers: [PoolMemberStatus], partitions: [Partition])
    {
        self.path = path
        self.partitionCount = partitionCount
        self.now = now
        self.workers = workers
        self.partitions = partitions
    }

    /// Reads the member statuses and the partition locks of `pool` now.
    public static func read(_ pool: PoolDirectory, now: Timestamp) -> PoolStatus {
        let workers = pool.members()
        var claims: [Int: [String]] = [:]
        for worker in workers where worker.isLive {
            for partition in worker.partitions { claims[partition, default: []].append(worker.worker) }
        }
        return PoolStatus(
            path: pool.path, partitionCount: pool.partitionCount, now: now, workers: workers,
            partitions: pool.partitions.map {
                Partition(partition: $0, locked: pool.isOwned(partition: $0), claimedBy: claims[$0] ?? [])
            })
    }

    /// The partitions nobody owns: no live process holds their lock.
    public var unowned: [Int] { partitions.filter { !$0.locked }.map(\.partition) }

    /// `p00-p05,p09`: partitions, ascending, with runs of three or more as ranges.
    public static func compact(_ partitions: [Int]) -> String {
        var parts: [String] = []
        var runs: [ClosedRange<Int>] = []
        for partition in partitions.sorted() {
            if let last = runs.last, last.upperBound == partition - 1 {
                runs[runs.count - 1] = last.lowerBound...partition
            } else if runs.last?.upperBound != partition {
                runs.append(partition...partition)
            }
        }
        for run in runs {
            let first = PoolDirectory.name(ofPartition: run.lowerBound)
            let last = PoolDirectory.name(ofPartition: run.upperBound)
            switch run.count {
            case 1: parts.append(first)
            case 2: parts += [first, last]
            default: parts.append("\(first)-\(last)")
            }
        }
        return parts.joined(separator: ",")
    }
}

/// `waybill pool status` as text and JSON.
public enum PoolStatusView {
    /// The version of the `--json` document; it grows when a field changes meaning or goes away.
    public static let schemaVersion = 1

    /// A line about the pool, the workers' table, the partitions' owners, and what to do about partitions without
    /// one.
    public static func text(_ status: PoolStatus) -> String {
        let live = status.workers.filter(\.isLive).count
        let dead = status.workers.count - live
        var out =
            "Pool \(status.path): \(Words.count(status.partitionCount, "partition")), "
            + "\(Words.count(live, "live worker"))"
            + (dead > 0 ? ", \(dead) dead (its files stay until a live worker clears them)" : "") + "\n\n"
        if status.workers.isEmpty {
            out += "No worker has joined this pool (start one with `waybill worker`).\n"
        } else {
            var table = TextTable(
                ["WORKER", "STATE", "PID", "HOST", "PARTITIONS", "IN FLIGHT", "QUEUED", "UPDATED"], right: [2, 5, 6])
            for worker in status.workers {
                table.add([
                    worker.worker, worker.isLive ? worker.state.rawValue : "dead", String(worker.pid), worker.host,
                    worker.partitions.isEmpty ? "-" : PoolStatus.compact(worker.partitions),
                    worker.isLive ? Words.number(worker.inFlightSagas) : "-",
                    worker.isLive ? Words.number(worker.queuedMessages) : "-",
                    TimeText.relative(worker.updatedAt, now: status.now),
                ])
            }
            out += table.render()
            out += limitsText(status.workers.filter(\.isLive))
        }
        var owners = TextTable(["PARTITIONS", "OWNER"])
        var run: [Int] = []
        var runText = ""
        for partition in status.partitions {
            if !run.isEmpty, partition.ownerText != runText {
                owners.add([PoolStatus.compact(run), runText])
                run = []
            }
            run.append(partition.partition)
            runText = partition.ownerText
        }
        if !run.isEmpty { owners.add([PoolStatus.compact(run), runText]) }
        out += "\n" + owners.render()
        let unowned = status.unowned
        if unowned.isEmpty {
            out += "Every partition has an owner.\n"
        } else {
            out +=
                "\(Words.count(unowned.count, "partition")) without an owner (\(PoolStatus.compact(unowned))): their "
                + "sagas wait and repairs to them are refused until a worker takes them; start one with "
                + "`waybill worker`.\n"
        }
        return out
    }

    /// The participants' limits that bind now, per worker: `erp.* at w1: 120 held (high 20, low 100), 10 of 10 in
    /// flight, 200/s; slowed to 50% by rate_limited replies`. Nothing when the pool has no limits.
    static func limitsText(_ workers: [PoolMemberStatus]) -> String {
        guard workers.contains(where: { !$0.limits.isEmpty }) else { return "" }
        var lines: [String] = []
        for worker in workers {
            for limit in worker.limits where limit.binds {
                var parts: [String] = []
                let held = limit.held.filter { $0.value > 0 }.sorted { $0.key > $1.key }
                let total = held.reduce(0) { $0 + $1.value }
                if total > 0 {
                    parts.append(
                        "\(Words.number(total)) held ("
                            + held.map { "\(PriorityLane.name($0.key)) \(Words.number($0.value))" }.joined(
                                separator: ", ")
                            + ")")
                }
                parts.append(
                    "\(Words.number(limit.inFlight))" + (limit.maxInFlight.map { " of \(Words.number($0))" } ?? "")
                        + " in flight")
                if let rate = limit.perSecond { parts.append(String(format: "%.1f/s", rate)) }
                var line = "  \(limit.commands) at \(worker.worker): " + parts.joined(separator: ", ")
                if limit.factor < 1 {
                    line += String(format: "; slowed to %.0f%% by rate_limited replies", limit.factor * 100)
                }
                lines.append(line)
            }
        }
        if lines.isEmpty { return "\nParticipants' limits: none binds now.\n" }
        return "\nParticipants' limits that bind now:\n" + lines.joined(separator: "\n") + "\n"
    }

    /// `{"schemaVersion", "dataDirectory", "partitionCount", "now", "workers": [...], "partitions": [...],
    /// "unowned": [...]}`.
    public static func json(_ status: PoolStatus) -> JSONValue {
        [
            "schemaVersion": JSONFields.int(schemaVersion),
            "dataDirectory": .string(status.path),
            "partitionCount": JSONFields.int(status.partitionCount),
            "now": JSONFields.time(status.now),
            "workers": .array(
                status.workers.map { worker in
                    [
                        "worker": .string(worker.worker), "live": .bool(worker.isLive),
                        "state": .string(worker.isLive ? worker.state.rawValue : "dead"),
                        "reportedState": .string(worker.state.rawValue),
                        "pid": JSONFields.int(Int(worker.pid)), "host": .string(worker.host),
                        "partitions": .array(worker.partitions.map { JSONFields.int($0) }),
                        "inFlightSagas": JSONFields.int(worker.inFlightSagas),
                        "queuedMessages": JSONFields.int(worker.queuedMessages),
                        "limits": .array(
                            worker.limits.map { limit in
                                [
                                    "commands": .string(limit.commands), "binds": .bool(limit.binds),
                                    "held": .object(
                                        Dictionary(
                                            uniqueKeysWithValues: limit.held.map {
                                                (PriorityLane.name($0.key), JSONFields.int($0.value))
                                            })),
                                    "inFlight": JSONFields.int(limit.inFlight),
                                    "maxInFlight": JSONFields.int(limit.maxInFlight),
                                    "perSecond": limit.perSecond.map { .number($0) } ?? .null,
                                    "factor": .number(limit.factor),
                                ]
                            }),
                        "startedAt": JSONFields.time(worker.startedAt), "updatedAt": JSONFields.time(worker.updatedAt),
                        "updatedAgoMs": JSONFields.int(status.now.milliseconds - worker.updatedAt.milliseconds),
                    ]
                }),
            "partitions": .array(
                status.partitions.map { partition in
                    [
                        "partition": JSONFields.int(partition.partition),
                        "name": .string(PoolDirectory.name(ofPartition: partition.partition)),
                        "owner": JSONFields.string(partition.owner), "locked": .bool(partition.locked),
                        "claimedBy": JSONFields.strings(partition.claimedBy),
                    ]
                }),
            "unowned": .array(status.unowned.map { JSONFields.int($0) }),
        ]
    }
}
