import Foundation
import SagaEngine
import SagaStore
import Synchronization
import Testing
import WaybillDefinition
import WaybillTestSupport
import WaybillWire

@testable import WaybillOperations

/// A stand-in for the owners of a pool's partitions: it decodes the request from its wire bytes, applies it with the
/// engine to the saga in its partition's file and commits the change through `SagaStore`, as the owner will. (The
/// AMQP hop is left to the tests on a real broker.)
final class InProcessWorker: ControlChannel, Sendable {
    let pool: PoolDirectory
    let now: Timestamp
    /// Every request with the queue it was sent to.
    let requests = Mutex<[(queue: String, message: ControlMessage)]>([])
    /// Runs before each request is applied (to make other sagas move meanwhile).
    let before: @Sendable (PoolDirectory) throws -> Void

    init(pool: PoolDirectory, now: Timestamp, before: @escaping @Sendable (PoolDirectory) throws -> Void = { _ in }) {
        self.pool = pool
        self.now = now
        self.before = before
    }

    /// The store of the partition `sagaId` lives in; the caller closes it.
    static func store(of sagaId: String, in pool: PoolDirectory) throws -> SagaStore {
        try SagaStore(
            configuration: SagaStore.Configuration(
                path: pool.databasePath(partition: pool.partition(of: sagaId)), durability: .normal))
    }

    func request(_ message: ControlMessage, queue: String, timeout: Duration) async -> ControlResult {
        do {
            try before(pool)
            let received = try ControlMessage.decode(message.encoded())
            requests.withLock { $0.append((queue, received)) }
            let store = try Self.store(of: received.sagaId, in: pool)
            defer { try? store.close() }
            let key = SagaKey(workflow: received.workflow, id: received.sagaId)
            guard let saga = try store.saga(key), let stored = try store.definition(hash: saga.instance.definitionHash)
            else {
                return .replied(ControlReply(status: .error, message: "no saga \(key)"))
            }
            let definition = try WorkflowLoader.load(yaml: stored.source, file: "stored")
            let event = SagaEvent.operatorCommand(try received.operatorCommand())
            let transition = SagaEngine().apply(event, to: saga.instance, definition: definition, now: now)
            let change = SagaChange(
                event: event, before: saga.instance, transition: transition, definition: definition, at: now,
                owner: saga.owner, inboxMessageId: nil)
            try await store.commit([change])
            let applied = transition.outcome == .applied
            return .replied(
                ControlReply(
                    status: applied ? .applied : .rejected, message: change.journal.first?.detail ?? "",
                    sagaStatus: transition.instance.status.rawValue))
        } catch {
            return .failed(OperationsError(.broker, "\(error)"))
        }
    }
}

@Suite("Repairs: local checks and the bulk runner")
struct RepairTests {
    let directory: TemporaryDirectory
    let pool: PoolDirectory
    let database: SagaInspector
    /// Every partition's lock, held as a live owner would.
    let owners: [FileLock]
    let route: RepairRoute

    init() throws {
        directory = try TemporaryDirectory()
        pool = try Fixture.buildPool(in: directory)
        database = try SagaInspector(pool: pool)
        let pool = pool
        owners = try pool.partitions.map { try #require(try FileLock.tryLock(pool.lockPath(partition: $0))) }
        route = RepairRoute(pool: pool, poolName: "test-pool")
    }

    func check(_ saga: String, _ request: RepairRequest) throws -> RepairCheck {
        let key = try database.resolve(try SagaReference(parsing: saga))
        let record = try #require(try database.saga(key))
        return RepairPlanner.check(
            request, record: record, definition: try database.definition(hash: record.row.definitionHash),
            now: Fixture.now)
    }

    @Test(
        "repairs that make no sense are refused before anything is sent",
        arguments: [
            (
                "o-1008", RepairRequest(action: .skip, step: "accept", by: "alice", reason: "r"),
                "refused: step 'accept' has not failed (it is running); only a failed step can be skipped"
            ),
            (
                "o-1001", RepairRequest(action: .retry, by: "alice", reason: "r"),
                "order-fulfillment/o-1001 is completed; a finished saga cannot be repaired (start a new order instead)"
            ),
            (
                "o-1004", RepairRequest(action: .compensate, by: "alice", reason: "r"),
                "refused: saga passed its pivot step 'ship'; completed steps can no longer be compensated (use retry or skip)"
            ),
            (
                "o-1004", RepairRequest(action: .retry, step: "accept", by: "alice", reason: "r"),
                "refused: step 'accept' is not the current step; the saga is at 'ship'; the failed step is 'ship' "
                    + "(waybill sagas show order-fulfillment/o-1004)"
            ),
            (
                "o-1006", RepairRequest(action: .retry, by: "alice", reason: "r"),
                "refused: nothing to retry: step 'reserve' is running and no attempt waits for a retry"
            ),
            (
                "o-1005", RepairRequest(action: .skip, step: "reserve", by: "alice", reason: "r"),
                "refused: the saga is compensating step 'accept', not 'reserve'; the saga is undoing 'accept': retry or skip that"
            ),
            (
                "o-1004", RepairRequest(action: .skip, step: "ship", by: "alice", reason: "  "),
                "--reason is empty: say why (it goes to the saga's journal)"
            ),
            (
                "o-1004", RepairRequest(action: .reset, by: "alice", reason: "r"),
                "reset needs --to: the step to run again (see `waybill sagas show order-fulfillment/o-1004`)"
            ),
            (
                "o-1004", RepairRequest(action: .reset, step: "release", by: "alice", reason: "r"),
                "refused: saga passed its pivot step 'ship'; it can only be reset to a step after it (completed steps "
                    + "up to the pivot can no longer be compensated)"
            ),
            (
                "o-1006", RepairRequest(action: .reset, step: "ship", by: "alice", reason: "r"),
                "refused: step 'ship' has not run yet; the saga is at 'reserve'"
            ),
            (
                "o-1006", RepairRequest(action: .reset, step: "accept", by: "alice", reason: "r"),
                "refused: a command of 'reserve' awaits its reply; reset once it is answered (or timed out)"
            ),
            (
                "o-1004", RepairRequest(action: .skip, step: "ship", output: .object([:]), by: "alice", reason: "r"),
                "refused: after this skip step 'invoice' would fail at once: "
            ),
        ])
    func refusals(saga: String, request: RepairRequest, refusal: String) throws {
        let result = try check(saga, request)
        #expect(!result.willSend)
        let text = try #require(result.refusal)
        if refusal.hasSuffix(": ") {
            #expect(text.hasPrefix(refusal))
            #expect(text.hasSuffix("give --output the fields later steps read (or add --force to send it anyway)"))
        } else {
            #expect(text == refusal)
        }
    }

    @Test(
        "sensible repairs are sent with the engine's prediction",
        arguments: [
            (
                "o-1004",
                RepairRequest(
                    action: .skip, step: "ship", output: ["trackingId": "M-1"], by: "bob", reason: "by hand"),
                "suspended → running; sends 1 command (billing.invoice.create); publishes order.shipped"
            ),
            (
                "o-1004", RepairRequest(action: .retry, step: "ship", by: "bob", reason: "address fixed"),
                "suspended → running; sends 1 command (tms.shipment.create)"
            ),
            (
                "o-1005", RepairRequest(action: .retry, by: "bob", reason: "ERP back"),
                "compensating → compensating; sends 1 command (undo erp.order.cancel)"
            ),
            (
                "o-1008", RepairRequest(action: .retry, by: "bob", reason: "now"),
                "running → running; sends 1 command (erp.order.accept)"
            ),
            (
                "order-fulfillment/o-1010", RepairRequest(action: .cancel, by: "bob", reason: "dup"),
                "running → cancelled; publishes order.cancelled"
            ),
            (
                "o-1009",
                RepairRequest(action: .skip, step: "ship", output: [["trackingId": "M-1"]], by: "bob", reason: "r"),
                nil
            ),
        ] as [(String, RepairRequest, String?)])
    func accepted(saga: String, request: RepairRequest, preview: String?) throws {
        let result = try check(saga, request)
        guard let preview else {
            #expect(!result.willSend)
            return
        }
        #expect(result.refusal == nil)
        #expect(result.preview == preview)
        let message = try #require(result.message)
        #expect(message.action == request.action && message.step == request.step && message.by == request.by)
        #expect(message.workflow == "order-fulfillment")
    }

    @Test("reset --dry-run lists what would be undone, last first, and the step run again")
    func resetPreview() throws {
        let result = try check("o-1008", RepairRequest(action: .reset, step: "accept", by: "alice", reason: "r"))
        #expect(result.willSend)
        #expect(
            result.preview?.hasSuffix("nothing to undo: runs 'accept' again now") == true, "\(result.preview ?? "-")")
        #expect(result.message?.action == .reset && result.message?.step == "accept")
    }

    @Test("skip --branch names a branch by index, shipment id or warehouse; a name that fits none lists them")
    func skipOneBranch() throws {
        for name in ["1", "w2"] {
            let result = try check(
                "o-1004",
                RepairRequest(
                    action: .skip, step: "ship", output: ["trackingId": "M-1"], branch: name, by: "bob", reason: "r"))
            #expect(result.refusal == nil)
            #expect(result.message?.branch == 1)
            #expect(
                result.preview
                    == "suspended → running; sends 1 command (billing.invoice.create); publishes order.shipped")
        }
        let unknown = try check(
            "o-1004", RepairRequest(action: .skip, step: "ship", branch: "w9", by: "bob", reason: "r"))
        #expect(unknown.refusal?.hasPrefix("--branch 'w9' names no branch of step 'ship'; its branches: 0 (") == true)
        #expect(unknown.refusal?.hasSuffix("(see `waybill sagas show order-fulfillment/o-1004`)") == true)
        let shipped = try check(
            "o-1004", RepairRequest(action: .skip, step: "ship", branch: "w1", by: "bob", reason: "r"))
        #expect(
            shipped.refusal
                == "refused: branch 0 of step 'ship' has not failed (it is succeeded); only a failed branch can be skipped"
        )
        let retry = try check(
            "o-1004", RepairRequest(action: .retry, step: "ship", branch: "1", by: "bob", reason: "r"))
        #expect(retry.refusal == "--branch goes with skip --step: the one branch of a for_each step to skip")
    }

    @Test("a repair after which the saga is suspended again does not count as moved")
    func suspendedAgainIsNotMoved() async throws {
        let request = RepairRequest(
            action: .skip, step: "ship", output: .object([:]), by: "a", reason: "r", force: true)
        let checked = try check("o-1004", request)
        let key = checked.record.row.key
        let plan = RepairPlan(request: request, snapshotAt: Fixture.now, filter: nil, checks: [checked])
        let worker = InProcessWorker(pool: pool, now: Fixture.at(1))
        let run = try await RepairRunner(inspector: database, channel: worker, route: route, now: { Fixture.at(2) })
            .run(plan)
        #expect(run.after[key]?.status == .suspended, "invoice cannot read the skipped shipment's trackingId")
        #expect(run.moved.isEmpty)
        #expect(run.suspendedAgain == [key])
        #expect(RepairView.runText(run).contains("0 of 1 sent sagas really moved; 1 ran and are suspended again"))
        #expect(RepairView.runJSON(run)["suspendedAgain"] == 1)
    }

    @Test("a one-branch skip that leaves the saga waiting on another failed branch counts as moved, as predicted")
    func oneBranchSkipStillSuspended() throws {
        let request = RepairRequest(
            action: .skip, step: "ship", output: ["trackingId": "M-1"], branch: "1", by: "a", reason: "r")
        var checked = try check("o-1004", request)
        // As the local check predicts when another branch of the step is still failed.
        checked.predictedStatus = .suspended
        let key = checked.record.row.key
        var after = checked.record.row
        after.updatedAt = Fixture.at(5)
        var elsewhere = after
        elsewhere.currentStep = "invoice"
        let plan = RepairPlan(request: request, snapshotAt: Fixture.now, filter: nil, checks: [checked])
        let reply = ControlReply(status: .applied, message: "skipped ship[1]; ship[2] still failed")
        let run = RepairRun(
            plan: plan, outcomes: [(key, .replied(reply))], after: [key: after], checkedAt: Fixture.at(6))
        #expect(run.moved == [key])
        #expect(run.suspendedAgain.isEmpty)
        // Suspended at a later step instead: the skip ran and the saga failed again.
        let failed = RepairRun(
            plan: plan, outcomes: [(key, .replied(reply))], after: [key: elsewhere], checkedAt: Fixture.at(6))
        #expect(failed.moved.isEmpty)
        #expect(failed.suspendedAgain == [key])
    }

    @Test("--force sends a skip the simulation says would fail the next step")
    func force() throws {
        let result = try check(
            "o-1004",
            RepairRequest(action: .skip, step: "ship", output: .object([:]), by: "a", reason: "r", force: true))
        #expect(result.willSend)
        #expect(result.predictedStatus == .suspended)
    }

    @Test("a bulk retry freezes its selection, skips sagas that moved, and re-checks what really moved")
    func bulkRun() async throws {
        var filter = SagaFilter()
        filter.statuses = [.running]
        let records = try database.snapshot(filter, now: Fixture.now)
        let request = RepairRequest(action: .retry, by: "alice", reason: "ERP is back")
        let plan = database.plan(request, records: records, filter: filter, now: Fixture.now)
        #expect(
            RepairView.planText(plan) == """
                Dry run: retry by alice: "ERP is back" (nothing is sent)
                SAGA                      STATUS   STEP        IDLE  WOULD
                order-fulfillment/o-1009  running  invoice      50m  refused: nothing to retry: step 'invoice' is running and no attempt waits for a retry
                order-fulfillment/o-1006  running  reserve    9m59s  refused: nothing to retry: step 'reserve' is running and no attempt waits for a retry
                order-fulfillment/o-1007  running  accept     5m10s  running → running; sends 1 command (erp.order.accept)
                returns/o-1010            running  authorize    30s  refused: nothing to retry: step 'authorize' is running and no attempt waits for a retry
                order-fulfillment/o-1010  running  reserve      10s  refused: nothing to retry: step 'reserve' is running and no attempt waits for a retry
                order-fulfillment/o-1008  running  accept        5s  running → running; sends 1 command (erp.order.accept)
                2 sagas would be sent a retry, 4 refused here. Selection frozen at 2025-01-15T12:00:00Z: sagas that change later are not included.

                """)

        // While the first request is handled, o-1008's own retry timer fires: it moved after the snapshot.
        let worker = InProcessWorker(pool: pool, now: Fixture.at(1)) { pool in
            let store = try InProcessWorker.store(of: "o-1008", in: pool)
            defer { try? store.close() }
            let key = SagaKey(workflow: "order-fulfillment", id: "o-1008")
            guard let saga = try store.saga(key), saga.instance.updatedAt < Fixture.at(1) else { return }
            let definition = try WorkflowLoader.load(yaml: Fixture.orderYAML, file: "f")
            let timer = try #require(saga.instance.steps[0].branches[0].timer)
            let event = SagaEvent.timerFired(timerId: timer.id)
            let transition = SagaEngine().apply(event, to: saga.instance, definition: definition, now: Fixture.at(1))
            try store.commit([
                SagaChange(
                    event: event, before: saga.instance, transition: transition, definition: definition,
                    at: Fixture.at(1), owner: saga.owner, inboxMessageId: "timer:\(timer.id)")
            ])
        }
        let progress = Mutex<[String]>([])
        let runner = RepairRunner(
            inspector: database, channel: worker, route: route, maxInFlight: 1, now: { Fixture.at(2) })
        let run = try await runner.run(plan) { state in progress.withLock { $0.append(state.bar(width: 10)) } }
        #expect(worker.requests.withLock { $0.map(\.message.sagaId) } == ["o-1007"])
        // It went to o-1007's partition queue.
        #expect(
            worker.requests.withLock { $0.map(\.queue) } == [
                "test-pool.\(PoolDirectory.name(ofPartition: pool.partition(of: "o-1007")))"
            ])
        #expect(
            progress.withLock { $0 } == [
                "[..........] 0/2", "[#####.....] 1/2  applied 1", "[##########] 2/2  applied 1  changed 1",
            ])
        #expect(
            RepairView.runText(run) == """
                SAGA                      OUTCOME  WHY
                order-fulfillment/o-1009  refused  nothing to retry: step 'invoice' is running and no attempt waits for a retry
                order-fulfillment/o-1006  refused  nothing to retry: step 'reserve' is running and no attempt waits for a retry
                returns/o-1010            refused  nothing to retry: step 'authorize' is running and no attempt waits for a retry
                order-fulfillment/o-1010  refused  nothing to retry: step 'reserve' is running and no attempt waits for a retry
                order-fulfillment/o-1008  changed  changed since the selection was frozen (now running); not sent, check it and repair it alone
                retry: 6 sagas selected; applied 1, changed 1, refused 4.
                Re-check at 2025-01-15T12:00:02Z: 1 of 1 sent sagas really moved (now running 1).

                """)
        let history = try database.journal(of: SagaKey(workflow: "order-fulfillment", id: "o-1007"))
        let last = try #require(history.last)
        #expect(last.kind == "operator" && last.actor == "alice")
        #expect(
            last.detail
                == #"operator retry by alice: "ERP is back" → running; sent 1 command, scheduled 1 timer, cancelled 1 timer"#
        )
        guard case .object(let json) = RepairView.runJSON(run) else { throw OperationsError(.corrupt, "not an object") }
        #expect(json["sent"] == 1 && json["moved"] == 1)
        #expect(json["counts"] == ["applied": 1, "changed": 1, "refused": 4])
    }

    @Test("a rejection from the worker is reported, and nothing moves")
    func rejectedByWorker() async throws {
        // The worker's copy moved on (o-1008's retry already ran) after this file was read.
        let key = SagaKey(workflow: "order-fulfillment", id: "o-1008")
        let record = try #require(try database.saga(key))
        var stale = record
        stale.instance.steps[0].branches[0].status = .retryWait
        let request = RepairRequest(action: .skip, step: "accept", by: "a", reason: "r", force: true)
        let message = ControlMessage(
            workflow: "order-fulfillment", sagaId: "o-1008", action: .skip, step: "accept", output: [:], by: "a",
            reason: "r")
        let plan = RepairPlan(
            request: request, snapshotAt: Fixture.now, filter: nil,
            checks: [
                RepairCheck(record: stale, message: message, refusal: nil, preview: "forced", predictedStatus: nil)
            ])
        let worker = InProcessWorker(pool: pool, now: Fixture.at(1))
        let run = try await RepairRunner(inspector: database, channel: worker, route: route, now: { Fixture.at(2) })
            .run(plan)
        guard case .replied(let reply)? = run.outcomes.first?.outcome else {
            Issue.record("expected a reply")
            return
        }
        #expect(reply.status == .rejected)
        #expect(reply.message.hasPrefix("rejected: step 'accept' has not failed (it is running)"))
        #expect(run.moved.isEmpty)
    }
}
