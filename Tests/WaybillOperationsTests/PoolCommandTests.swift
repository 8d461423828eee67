import Foundation
import SagaEngine
import SagaStore
import Testing
import WaybillDefinition
import WaybillOperations
import WaybillTestSupport

/// `waybill pool status`, `init` and `repartition` as operators read them, from member status files written the way
/// workers write them and locks held the way workers hold them.
@Suite("pool status, init and repartition")
struct PoolCommandTests {
    let directory: TemporaryDirectory

    init() throws {
        directory = try TemporaryDirectory()
    }

    func status(
        _ worker: String, _ state: PoolMemberStatus.State, pid: Int32, host: String = "host-a", partitions: [Int],
        inFlight: Int, queued: Int, secondsAgo: Int64
    ) -> PoolMemberStatus {
        PoolMemberStatus(
            worker: worker, pid: pid, host: host, state: state, startedAt: Fixture.at(-3_600),
            updatedAt: Fixture.at(-secondsAgo), partitions: partitions, inFlightSagas: inFlight,
            queuedMessages: queued)
    }

    @Test(
        "status: each worker with its partitions, lag and sagas in flight; each partition's owner; the unowned flagged")
    func status() throws {
        let pool = try PoolDirectory.create(directory.file("pool"), partitions: 8)
        // w1 and w2 are live (their member locks are held); w3 died and left its status file.
        let members = try ["w1", "w2"].map { try pool.join(as: $0) }
        // w1's share of the ERP's limit binds: commands wait in two lanes; w2's carrier limit was slowed down by
        // rate_limited replies; w2's ERP limit does not bind.
        var first = status("w1", .running, pid: 4242, partitions: [0, 1, 2, 3], inFlight: 12, queued: 3, secondsAgo: 1)
        first.limits = [
            LimitReport(
                commands: "erp.#", held: [2: 40, 0: 1_200], inFlight: 5, maxInFlight: 5, perSecond: 100, factor: 1)
        ]
        try pool.write(first)
        var second = status("w2", .draining, pid: 4243, partitions: [4, 5], inFlight: 1_234, queued: 0, secondsAgo: 2)
        second.limits = [
            LimitReport(commands: "erp.#", held: [:], inFlight: 1, maxInFlight: 5, perSecond: 100, factor: 1),
            LimitReport(
                commands: "tms.shipment.create", held: [:], inFlight: 0, maxInFlight: nil, perSecond: 12.5,
                factor: 0.5),
        ]
        try pool.write(second)
        try pool.write(
            status("w3", .running, pid: 4100, host: "host-b", partitions: [6], inFlight: 7, queued: 9, secondsAgo: 300))
        // w1 holds p00-p03, w2 only p04 (p05 is being handed off); p06's lock is held by a worker taking it over
        // that has not written its status yet; nobody holds p07.
        let locks = try [0, 1, 2, 3, 4, 6].map { try #require(try FileLock.tryLock(pool.lockPath(partition: $0))) }
        defer {
            (members + locks).forEach { $0.release() }
        }
        let status = PoolStatus.read(pool, now: Fixture.now)
        #expect(status.unowned == [5, 7])
        #expect(status.partitions.map(\.owner) == ["w1", "w1", "w1", "w1", "w2", nil, nil, nil])
        #expect(
            PoolStatusView.text(status) == """
                Pool \(pool.path): 8 partitions, 2 live workers, 1 dead (its files stay until a live worker clears them)

                WORKER  STATE      PID  HOST    PARTITIONS  IN FLIGHT  QUEUED  UPDATED
                w1      running   4242  host-a  p00-p03            12       3  1s ago
                w2      draining  4243  host-a  p04,p05         1,234       0  2s ago
                w3      dead      4100  host-b  p06                 -       -  5m ago

                Participants' limits that bind now:
                  erp.# at w1: 1,240 held (high 40, low 1,200), 5 of 5 in flight, 100.0/s
                  tms.shipment.create at w2: 0 in flight, 12.5/s; slowed to 50% by rate_limited replies

                PARTITIONS  OWNER
                p00-p03     w1
                p04         w2
                p05         NONE: w2 lists it but holds no lock (a hand-off in progress?)
                p06         locked; no live worker lists it yet (a takeover in progress?)
                p07         NONE: no live worker holds its lock
                2 partitions without an owner (p05,p07): their sagas wait and repairs to them are refused until a worker takes them; start one with `waybill worker`.

                """)
        let json = PoolStatusView.json(status)
        #expect(json["schemaVersion"] == 1)
        #expect(json["unowned"] == [5, 7])
        #expect(json["workers"]?.arrayValue?.map { $0["state"] } == ["running", "draining", "dead"])
        #expect(
            shape(json) == """
                .: object
                .dataDirectory: string
                .now: string
                .partitionCount: number
                .partitions: array
                .partitions[]: object
                .partitions[].claimedBy: array
                .partitions[].claimedBy[]: string
                .partitions[].locked: boolean
                .partitions[].name: string
                .partitions[].owner: null|string
                .partitions[].partition: number
                .schemaVersion: number
                .unowned: array
                .unowned[]: number
                .workers: array
                .workers[]: object
                .workers[].host: string
                .workers[].inFlightSagas: number
                .workers[].limits: array
                .workers[].limits[]: object
                .workers[].limits[].binds: boolean
                .workers[].limits[].commands: string
                .workers[].limits[].factor: number
                .workers[].limits[].held: object
                .workers[].limits[].held.high: number
                .workers[].limits[].held.low: number
                .workers[].limits[].inFlight: number
                .workers[].limits[].maxInFlight: null|number
                .workers[].limits[].perSecond: number
                .workers[].live: boolean
                .workers[].partitions: array
                .workers[].partitions[]: number
                .workers[].pid: number
                .workers[].queuedMessages: number
                .workers[].reportedState: string
                .workers[].startedAt: string
                .workers[].state: string
                .workers[].updatedAgoMs: number
                .workers[].updatedAt: string
                .workers[].worker: string

                """)
    }

    @Test("status of a pool no worker joined yet")
    func emptyStatus() throws {
        let pool = try PoolDirectory.create(directory.file("pool"), partitions: 2)
        #expect(
            PoolStatusView.text(PoolStatus.read(pool, now: Fixture.now)) == """
                Pool \(pool.path): 2 partitions, 0 live workers

                No worker has joined this pool (start one with `waybill worker`).

                PARTITIONS  OWNER
                p00,p01     NONE: no live worker holds its lock
                2 partitions without an owner (p00,p01): their sagas wait and repairs to them are refused until a worker takes them; start one with `waybill worker`.

                """)
    }

    @Test(
        "partition lists are compact",
        arguments: [
            ([0, 1, 2, 3, 4, 5, 9], "p00-p05,p09"), ([3], "p03"), ([7, 8], "p07,p08"), ([], ""),
            ([2, 0, 1, 12, 10, 11, 15], "p00-p02,p10-p12,p15"),
        ])
    func compact(partitions: [Int], text: String) {
        #expect(PoolStatus.compact(partitions) == text)
    }

    @Test("init creates a pool once; another count for an existing pool is refused with how to change it")
    func initialize() throws {
        let path = directory.file("new-pool")
        let (pool, created) = try PoolAdministration.initialize(dataDirectory: path, partitions: 4)
        #expect(created && pool.partitionCount == 4)
        #expect(try PoolDirectory.open(path).partitionCount == 4)
        let again = try PoolAdministration.initialize(dataDirectory: path, partitions: 4)
        #expect(!again.created)
        let error = #expect(throws: OperationsError.self) {
            try PoolAdministration.initialize(dataDirectory: path, partitions: 8)
        }
        #expect(error?.code == .badArgument)
        #expect(error?.message.hasSuffix("`waybill pool repartition --data-dir \(path) --partitions 8`.") == true)
        let range = #expect(throws: OperationsError.self) {
            try PoolAdministration.initialize(dataDirectory: directory.file("other"), partitions: 0)
        }
        #expect(range?.code == .badArgument)
    }

    @Test("repartition prints where every saga went, and the queues a smaller count leaves unused")
    func repartition() throws {
        let pool = try Fixture.buildPool(in: directory, partitions: 8)
        let before = try SagaInspector(pool: pool).list(FixtureFile.filter(), now: Fixture.now)
        let report = try PoolAdministration.repartition(dataDirectory: pool.path, partitions: 3, now: Fixture.now)
        let after = try SagaInspector(dataDirectory: pool.path)
        #expect(after.pool?.partitionCount == 3)
        #expect(try after.list(FixtureFile.filter(), now: Fixture.now) == before)
        let text = RepartitionView.text(report, poolName: "waybill")
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(
            lines.first
                == "Repartitioned \(pool.path) from 8 to 3 partitions: 11 sagas (\(report.moved) moved to another "
                + "partition), \(report.journalLines) journal lines, \(report.timers) timers, 0 outbox messages; 2 "
                + "workflow definitions and \(report.inboxMarks) inbox marks copied to every partition.")
        #expect(lines[1] == "PARTITION  SAGAS  MOVED IN  JOURNAL  TIMERS  OUTBOX  FROM")
        #expect(lines.count == 2 + 3 + 2)
        for share in report.shares {
            let row = lines[2 + share.partition]
            #expect(row.hasPrefix(PoolDirectory.name(ofPartition: share.partition)))
            #expect(
                row.hasSuffix(
                    share.sagasFrom.sorted { $0.key < $1.key }.map {
                        "\(PoolDirectory.name(ofPartition: $0.key)) \($0.value)"
                    }
                    .joined(separator: ", ")))
        }
        #expect(
            lines[5]
                == "The queues waybill.p03 to waybill.p07 belong to no partition now: the workers keep forwarding "
                + "what arrives there (replies to commands sent before) to the right partitions; leave them.")
        #expect(
            RepartitionView.text(
                try PoolAdministration.repartition(dataDirectory: pool.path, partitions: 3, now: Fixture.now),
                poolName: "waybill") == "The pool \(pool.path) already has 3 partitions; nothing to do.\n")
    }

    @Test("repartition is refused while a worker of the pool runs, and changes nothing")
    func repartitionRefused() throws {
        let pool = try Fixture.buildPool(in: directory, partitions: 8)
        let member = try pool.join(as: "w1")
        defer { member.release() }
        let error = #expect(throws: OperationsError.self) {
            try PoolAdministration.repartition(dataDirectory: pool.path, partitions: 3, now: Fixture.now)
        }
        #expect(error?.code == .refused)
        #expect(error?.exitCode == 4)
        #expect(error?.description.hasSuffix("(store.pool_in_use)") == true)
        #expect(try PoolDirectory.open(pool.path).partitionCount == 8)
    }
}
