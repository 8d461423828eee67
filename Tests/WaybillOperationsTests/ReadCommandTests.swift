import Foundation
import SagaEngine
import Testing
import WaybillDefinition
import WaybillOperations

/// The read commands' exact output against the fixture file (every saga status and every stuck class), at the
/// fixture's fixed `now`. Text is what operators read; JSON is pinned by its shape (every path and its types) and,
/// for two documents, byte for byte.
@Suite("Read commands against the fixture file")
struct ReadCommandTests {
    let fixture: FixtureFile
    var database: SagaInspector { fixture.database }
    let now = Fixture.now

    init() throws {
        fixture = try FixtureFile()
    }

    @Test("list: every saga, oldest progress first, ties by workflow then id")
    func list() throws {
        let filter = FixtureFile.filter()
        #expect(
            ListView.text(try database.list(filter, now: now), filter: filter, now: now)
                == #"""
                SAGA                      STATUS        STEP       FAILURE          OWNER     LAST PROGRESS     AGE
                order-fulfillment/o-1001  completed     -                           worker-a         2h ago    2h5m
                order-fulfillment/o-1002  compensated   reserve    out_of_stock     worker-a      1h29m ago   1h30m
                order-fulfillment/o-1003  cancelled     accept                      worker-a       1h5m ago    1h6m
                order-fulfillment/o-1004  suspended     ship       address_invalid  worker-b        50m ago      1h
                order-fulfillment/o-1009  running       invoice                     worker-a        50m ago     55m
                order-fulfillment/o-1006  running       reserve                     worker-a      9m59s ago     10m
                order-fulfillment/o-1007  running       accept                      worker-a      5m10s ago  11m40s
                returns/o-1010            running       authorize                   worker-a        30s ago     30s
                order-fulfillment/o-1010  running       reserve                     worker-a        10s ago     15s
                order-fulfillment/o-1005  compensating  reserve    out_of_stock     worker-a         5s ago     20m
                order-fulfillment/o-1008  running       accept                      worker-a         5s ago      2m
                11 sagas, oldest progress first.

                """#)
    }

    @Test("list: several statuses are merged in order, and the footer says when more match")
    func listMerged() throws {
        let filter = FixtureFile.filter {
            $0.statuses = [.running, .compensating]
            $0.limit = 3
        }
        let page = try database.list(filter, now: now)
        #expect(page.hasMore)
        #expect(
            ListView.text(page, filter: filter, now: now)
                == #"""
                SAGA                      STATUS   STEP     FAILURE  OWNER     LAST PROGRESS     AGE
                order-fulfillment/o-1009  running  invoice           worker-a        50m ago     55m
                order-fulfillment/o-1006  running  reserve           worker-a      9m59s ago     10m
                order-fulfillment/o-1007  running  accept            worker-a      5m10s ago  11m40s
                3 sagas, oldest progress first. More match: raise --limit or narrow the filters.

                """#)
        let none = FixtureFile.filter { $0.owner = "nobody" }
        #expect(
            ListView.text(try database.list(none, now: now), filter: none, now: now)
                == "No sagas matching --owner nobody.\n")
    }

    @Test(
        "list filters",
        arguments: [
            ("suspended", ["order-fulfillment/o-1004"]),
            ("active stuck 15m", ["order-fulfillment/o-1004", "order-fulfillment/o-1009"]),
            (
                "workflow step reserve",
                [
                    "order-fulfillment/o-1002", "order-fulfillment/o-1006", "order-fulfillment/o-1010",
                    "order-fulfillment/o-1005",
                ]
            ),
            ("owner worker-b", ["order-fulfillment/o-1004"]),
            (
                "since 1m",
                ["returns/o-1010", "order-fulfillment/o-1010", "order-fulfillment/o-1005", "order-fulfillment/o-1008"]
            ),
            ("newest first, 2", ["order-fulfillment/o-1008", "order-fulfillment/o-1005"]),
            ("step without workflow", ["returns/o-1010"]),
        ])
    func listFilters(name: String, expected: [String]) throws {
        let filter = FixtureFile.filter {
            switch name {
            case "suspended": $0.statuses = [.suspended]
            case "active stuck 15m":
                $0.statuses = [.running, .compensating, .suspended]
                $0.stuckFor = .seconds(900)
            case "workflow step reserve":
                $0.workflow = "order-fulfillment"
                $0.step = "reserve"
            case "owner worker-b": $0.owner = "worker-b"
            case "since 1m": $0.since = Fixture.at(-60)
            case "newest first, 2":
                $0.newestFirst = true
                $0.limit = 2
            default: $0.step = "authorize"
            }
        }
        #expect(try database.list(filter, now: now).rows.map(\.key.description) == expected)
    }

    @Test("saga references: a bare id, workflow/id, an ambiguous id, an unknown id")
    func resolve() throws {
        #expect(
            try database.resolve(SagaReference(parsing: "o-1004"))
                == SagaKey(workflow: "order-fulfillment", id: "o-1004"))
        #expect(
            try database.resolve(SagaReference(parsing: "returns/o-1010")) == SagaKey(workflow: "returns", id: "o-1010")
        )
        #expect(
            throws: OperationsError(
                .ambiguous,
                "saga id 'o-1010' exists in 2 workflows; name one: order-fulfillment/o-1010, returns/o-1010")
        ) { try database.resolve(SagaReference(parsing: "o-1010")) }
        #expect {
            try database.resolve(SagaReference(parsing: "o-404"))
        } throws: { error in
            (error as? OperationsError)?.code == .notFound
                && (error as? OperationsError)?.message.hasPrefix("no saga 'o-404' in ") == true
        }
    }

    @Test("show o-1001: completed")
    func showO1001() throws {
        #expect(
            ShowView.text(try fixture.detail("o-1001"))
                == #"""
                order-fulfillment/o-1001  completed
                  workflow       order-fulfillment@v1  definition 5b0559d93f65
                  owner          worker-a  (control queue waybill.control.worker-a)
                  started        2025-01-15T09:55:00Z (2h5m ago)
                  last progress  2025-01-15T10:00:00Z (2h ago)
                  age            2h5m
                  current step   -
                  pivot          ship (passed: failures now suspend)

                Why: not stuck: completed 2h ago

                Steps
                  STEP                STATUS     ATTEMPTS        TIME        DETAIL
                  accept              succeeded  1 of 5          took 1s
                  reserve             succeeded  1 of 5          took 1s
                  split               succeeded  local           took 0ms
                  release             succeeded                  took 2s     2 branches: 2 succeeded
                    [0] o-1001-w1 w1  succeeded  1 of 5          took 1s
                    [1] o-1001-w2 w2  succeeded  1 of 5          took 2s
                  ship (pivot)        succeeded                  took 4m6s   2 branches: 2 succeeded
                    [0] o-1001-w1 w1  succeeded  1 of 5          took 3m16s
                    [1] o-1001-w2 w2  succeeded  1 of 5          took 4m6s
                  invoice             succeeded  1 of unlimited  took 50s

                Recent history (all of it: waybill sagas history order-fulfillment/o-1001)
                  TIME                  KIND   STEP        BY  DETAIL
                  2025-01-15T09:55:03Z  reply  release[0]      reply ok for release[0] → running; cancelled 1 timer
                  2025-01-15T09:55:04Z  reply  release[1]      reply ok for release[1] → running; sent 2 commands, scheduled 2 timers, cancelled 1 timer
                  2025-01-15T09:58:20Z  reply  ship[0]         reply ok for ship[0] output {"trackingId":"T-1"} → running; cancelled 1 timer
                  2025-01-15T09:59:10Z  reply  ship[1]         reply ok for ship[1] output {"trackingId":"T-2"} → running; sent 1 command, published order.shipped, scheduled 1 timer, cancelled 1 timer
                  2025-01-15T10:00:00Z  reply  invoice         reply ok for invoice → completed; published order.completed, cancelled 1 timer, finished completed

                """#)
    }

    @Test("show o-1002: compensated")
    func showO1002() throws {
        #expect(
            ShowView.text(try fixture.detail("o-1002"))
                == #"""
                order-fulfillment/o-1002  compensated
                  workflow       order-fulfillment@v1  definition 5b0559d93f65
                  owner          worker-a  (control queue waybill.control.worker-a)
                  started        2025-01-15T10:30:00Z (1h30m ago)
                  last progress  2025-01-15T10:30:03Z (1h29m ago)
                  age            1h30m
                  current step   reserve
                  failure        reserve out_of_stock: SKU B short by 1 (not retryable) at 10:30:02Z
                  pivot          ship (not passed yet)

                Why: not stuck: compensated 1h29m ago after reserve failed with out_of_stock; every completed step was undone

                Steps
                  STEP          STATUS   ATTEMPTS        TIME     DETAIL
                  accept        undone   1 of 5, undo 1  took 1s
                  reserve       failed   1 of 5          took 1s  error out_of_stock: SKU B short by 1 (not retryable)
                  split         pending
                  release       pending
                  ship (pivot)  pending
                  invoice       pending

                Compensation (abort): 1 of 1 undone

                Recent history (all of it: waybill sagas history order-fulfillment/o-1002)
                  TIME                  KIND   STEP     BY  DETAIL
                  2025-01-15T10:30:00Z  start               started order-fulfillment v1 (definition 5b0559d93f65) → running; sent 1 command, scheduled 1 timer
                  2025-01-15T10:30:01Z  reply  accept       reply ok for accept → running; sent 1 command, published order.accepted, scheduled 1 timer, cancelled 1 timer
                  2025-01-15T10:30:02Z  reply  reserve      reply error out_of_stock (not retryable) for reserve: "SKU B short by 1" → compensating; sent 1 compensation, scheduled 1 timer, cancelled 1 timer
                  2025-01-15T10:30:03Z  reply  accept       reply ok for accept → compensated; published order.cancelled, cancelled 1 timer, finished compensated

                """#)
    }

    @Test("show o-1003: cancelled by an operator")
    func showO1003() throws {
        #expect(
            ShowView.text(try fixture.detail("o-1003"))
                == #"""
                order-fulfillment/o-1003  cancelled
                  workflow       order-fulfillment@v1  definition 5b0559d93f65
                  owner          worker-a  (control queue waybill.control.worker-a)
                  started        2025-01-15T10:53:20Z (1h6m ago)
                  last progress  2025-01-15T10:55:00Z (1h5m ago)
                  age            1h6m
                  current step   accept
                  pivot          ship (not passed yet)

                Why: not stuck: cancelled by an operator 1h5m ago; nothing was undone

                Steps
                  STEP          STATUS   ATTEMPTS  TIME       DETAIL
                  accept        stopped  1 of 5    ran 1m40s
                  reserve       pending
                  split         pending
                  release       pending
                  ship (pivot)  pending
                  invoice       pending

                Recent history (all of it: waybill sagas history order-fulfillment/o-1003)
                  TIME                  KIND      STEP  BY     DETAIL
                  2025-01-15T10:53:20Z  start                  started order-fulfillment v1 (definition 5b0559d93f65) → running; sent 1 command, scheduled 1 timer
                  2025-01-15T10:55:00Z  operator        alice  operator cancel by alice: "duplicate of o-1001" → cancelled; published order.cancelled, cancelled 1 timer, finished cancelled

                """#)
    }

    @Test("show o-1004: suspended after the pivot")
    func showO1004() throws {
        #expect(
            ShowView.text(try fixture.detail("o-1004"))
                == #"""
                order-fulfillment/o-1004  suspended
                  workflow       order-fulfillment@v1  definition 5b0559d93f65
                  owner          worker-b  (control queue waybill.control.worker-b)
                  started        2025-01-15T11:00:00Z (1h ago)
                  last progress  2025-01-15T11:10:00Z (50m ago)
                  age            1h
                  current step   ship
                  failure        ship[1] address_invalid: street missing (not retryable) at 11:10:00Z
                  pivot          ship (passed: failures now suspend)

                Why stuck (suspended): suspended at 11:10:00Z (50m ago): ship[1] failed with address_invalid "street missing" (not retryable) after the pivot 'ship', so nothing can be undone any more
                  -> once the cause is fixed: waybill sagas retry order-fulfillment/o-1004 --step ship --reason '<why>'
                  -> if the step was done by hand: waybill sagas skip order-fulfillment/o-1004 --step ship --output '<json>' --reason '<why>'

                Steps
                  STEP                STATUS     ATTEMPTS  TIME        DETAIL
                  accept              succeeded  1 of 5    took 1s
                  reserve             succeeded  1 of 5    took 1s
                  split               succeeded  local     took 0ms
                  release             succeeded            took 2s     2 branches: 2 succeeded
                    [0] o-1004-w1 w1  succeeded  1 of 5    took 1s
                    [1] o-1004-w2 w2  succeeded  1 of 5    took 2s
                  ship (pivot)        failed               took 9m56s  2 branches: 1 succeeded, 1 failed
                    [0] o-1004-w1 w1  succeeded  1 of 5    took 1m36s
                    [1] o-1004-w2 w2  failed     1 of 5    took 9m56s  error address_invalid: street missing (not retryable)
                  invoice             pending

                Recent history (all of it: waybill sagas history order-fulfillment/o-1004)
                  TIME                  KIND   STEP        BY  DETAIL
                  2025-01-15T11:00:02Z  reply  reserve         reply ok for reserve output {"reservationId":"r-1","stock":[{"quantity":5,"sku":"A","warehouse":"w1"},{"quantity":5,"sku":"B","warehouse":"w2"}]} → running; sent 2 commands, published order.reserved, scheduled 2 timers, cancelled 1 timer
                  2025-01-15T11:00:03Z  reply  release[0]      reply ok for release[0] → running; cancelled 1 timer
                  2025-01-15T11:00:04Z  reply  release[1]      reply ok for release[1] → running; sent 2 commands, scheduled 2 timers, cancelled 1 timer
                  2025-01-15T11:01:40Z  reply  ship[0]         reply ok for ship[0] output {"trackingId":"T-7"} → running; cancelled 1 timer
                  2025-01-15T11:10:00Z  reply  ship[1]         reply error address_invalid (not retryable) for ship[1]: "street missing" → suspended; published order.failed, cancelled 1 timer, finished suspended

                """#)
    }

    @Test("show o-1005: compensation failing")
    func showO1005() throws {
        #expect(
            ShowView.text(try fixture.detail("o-1005"))
                == #"""
                order-fulfillment/o-1005  compensating
                  workflow       order-fulfillment@v1  definition 5b0559d93f65
                  owner          worker-a  (control queue waybill.control.worker-a)
                  started        2025-01-15T11:40:00Z (20m ago)
                  last progress  2025-01-15T11:59:55Z (5s ago)
                  age            20m
                  current step   reserve
                  failure        reserve out_of_stock: SKU A short by 2 (not retryable) at 11:40:02Z
                  pivot          ship (not passed yet)

                Why stuck (compensation failing): undoing accept keeps failing: compensation attempt 1 failed with erp_down "503 from ERP"; next attempt at 12:00:05Z (in 5s) (compensations retry until they succeed)
                  -> retry it now: waybill sagas retry order-fulfillment/o-1005 --reason '<why>'
                  -> if it was undone by hand: waybill sagas skip order-fulfillment/o-1005 --step accept --reason '<why>'

                Steps
                  STEP          STATUS           ATTEMPTS        TIME     DETAIL
                  accept        undo retry wait  1 of 5, undo 1  took 1s  error erp_down: 503 from ERP
                        timer next attempt at 12:00:05Z (in 5s)
                  reserve       failed           1 of 5          took 1s  error out_of_stock: SKU A short by 2 (not retryable)
                  split         pending
                  release       pending
                  ship (pivot)  pending
                  invoice       pending

                Compensation (abort): 0 of 1 undone; next accept

                Recent history (all of it: waybill sagas history order-fulfillment/o-1005)
                  TIME                  KIND   STEP     BY  DETAIL
                  2025-01-15T11:40:00Z  start               started order-fulfillment v1 (definition 5b0559d93f65) → running; sent 1 command, scheduled 1 timer
                  2025-01-15T11:40:01Z  reply  accept       reply ok for accept → running; sent 1 command, published order.accepted, scheduled 1 timer, cancelled 1 timer
                  2025-01-15T11:40:02Z  reply  reserve      reply error out_of_stock (not retryable) for reserve: "SKU A short by 2" → compensating; sent 1 compensation, scheduled 1 timer, cancelled 1 timer
                  2025-01-15T11:59:55Z  reply  accept       reply error erp_down (retryable) for accept: "503 from ERP" → compensating; scheduled 1 timer, cancelled 1 timer

                """#)
    }

    @Test("show o-1006: waiting for a reply past its timeout")
    func showO1006() throws {
        #expect(
            ShowView.text(try fixture.detail("o-1006"))
                == #"""
                order-fulfillment/o-1006  running
                  workflow       order-fulfillment@v1  definition 5b0559d93f65
                  owner          worker-a  (control queue waybill.control.worker-a)
                  started        2025-01-15T11:50:00Z (10m ago)
                  last progress  2025-01-15T11:50:01Z (9m59s ago)
                  age            10m
                  current step   reserve
                  pivot          ship (not passed yet)

                Why stuck (reply overdue): waiting since 11:50:01Z for a reply to command inventory.reserve (reserve, attempt 1 of 5); its timeout passed 9m29s ago and the timer has not fired: is worker-a running?
                  -> start or check worker-a (it fires overdue timers as soon as it runs; its control queue is waybill.control.worker-a)

                Steps
                  STEP          STATUS     ATTEMPTS  TIME       DETAIL
                  accept        succeeded  1 of 5    took 1s
                  reserve       in flight  1 of 5    for 9m59s  waiting for reply
                        command inventory.reserve  message order-fulfillment/o-1006/m4  sent 11:50:01Z (9m59s ago)  reply to waybill.replies.worker-a
                        timer reply timeout at 11:50:31Z (overdue by 9m29s)
                  split         pending
                  release       pending
                  ship (pivot)  pending
                  invoice       pending

                Recent history (all of it: waybill sagas history order-fulfillment/o-1006)
                  TIME                  KIND   STEP    BY  DETAIL
                  2025-01-15T11:50:00Z  start              started order-fulfillment v1 (definition 5b0559d93f65) → running; sent 1 command, scheduled 1 timer
                  2025-01-15T11:50:01Z  reply  accept      reply ok for accept → running; sent 1 command, published order.accepted, scheduled 1 timer, cancelled 1 timer

                """#)
    }

    @Test("show o-1007: timer overdue")
    func showO1007() throws {
        #expect(
            ShowView.text(try fixture.detail("o-1007"))
                == #"""
                order-fulfillment/o-1007  running
                  workflow       order-fulfillment@v1  definition 5b0559d93f65
                  owner          worker-a  (control queue waybill.control.worker-a)
                  started        2025-01-15T11:48:20Z (11m40s ago)
                  last progress  2025-01-15T11:54:50Z (5m10s ago)
                  age            11m40s
                  current step   accept
                  pivot          ship (not passed yet)

                Why stuck (timer overdue): the retry of accept was due at 11:55:00Z (5m ago) and has not run: is worker-a running?
                  -> start or check worker-a (it fires overdue timers as soon as it runs; its control queue is waybill.control.worker-a)

                Steps
                  STEP          STATUS      ATTEMPTS  TIME        DETAIL
                  accept        retry wait  1 of 5    for 11m40s  error erp_down: 503 from ERP
                        timer next attempt at 11:55:00Z (overdue by 5m)
                  reserve       pending
                  split         pending
                  release       pending
                  ship (pivot)  pending
                  invoice       pending

                Recent history (all of it: waybill sagas history order-fulfillment/o-1007)
                  TIME                  KIND   STEP    BY  DETAIL
                  2025-01-15T11:48:20Z  start              started order-fulfillment v1 (definition 5b0559d93f65) → running; sent 1 command, scheduled 1 timer
                  2025-01-15T11:54:50Z  reply  accept      reply error erp_down (retryable) for accept: "503 from ERP" → running; scheduled 1 timer, cancelled 1 timer

                """#)
    }

    @Test("show o-1008: retrying")
    func showO1008() throws {
        #expect(
            ShowView.text(try fixture.detail("o-1008"))
                == #"""
                order-fulfillment/o-1008  running
                  workflow       order-fulfillment@v1  definition 5b0559d93f65
                  owner          worker-a  (control queue waybill.control.worker-a)
                  started        2025-01-15T11:58:00Z (2m ago)
                  last progress  2025-01-15T11:59:55Z (5s ago)
                  age            2m
                  current step   accept
                  pivot          ship (not passed yet)

                Why stuck (retrying): retrying accept: attempt 2 of 5 failed with erp_down "503 from ERP"; next attempt at 12:00:15Z (in 15s)
                  -> retry now instead of waiting: waybill sagas retry order-fulfillment/o-1008 --reason '<why>'

                Steps
                  STEP          STATUS      ATTEMPTS  TIME    DETAIL
                  accept        retry wait  2 of 5    for 2m  error erp_down: 503 from ERP
                        timer next attempt at 12:00:15Z (in 15s)
                  reserve       pending
                  split         pending
                  release       pending
                  ship (pivot)  pending
                  invoice       pending

                Recent history (all of it: waybill sagas history order-fulfillment/o-1008)
                  TIME                  KIND   STEP    BY  DETAIL
                  2025-01-15T11:58:00Z  start              started order-fulfillment v1 (definition 5b0559d93f65) → running; sent 1 command, scheduled 1 timer
                  2025-01-15T11:58:30Z  reply  accept      reply error timeout (retryable) for accept: "no reply within 30s" → running; scheduled 1 timer, cancelled 1 timer
                  2025-01-15T11:58:40Z  timer  accept      timer retry fired for accept → running; sent 1 command, scheduled 1 timer, cancelled 1 timer
                  2025-01-15T11:59:55Z  reply  accept      reply error erp_down (retryable) for accept: "503 from ERP" → running; scheduled 1 timer, cancelled 1 timer

                """#)
    }

    @Test("show o-1009: no progress, fan-out timeline")
    func showO1009() throws {
        #expect(
            ShowView.text(try fixture.detail("o-1009"))
                == #"""
                order-fulfillment/o-1009  running
                  workflow       order-fulfillment@v1  definition 5b0559d93f65
                  owner          worker-a  (control queue waybill.control.worker-a)
                  started        2025-01-15T11:05:00Z (55m ago)
                  last progress  2025-01-15T11:10:00Z (50m ago)
                  age            55m
                  current step   invoice
                  pivot          ship (passed: failures now suspend)

                Why stuck (no progress): no progress for 50m (threshold 15m) at invoice: waiting for 1 reply (billing.invoice.create) within the step's timeout
                  -> check the participants behind billing.invoice.create
                  -> waybill sagas history order-fulfillment/o-1009

                Steps
                  STEP                STATUS     ATTEMPTS        TIME        DETAIL
                  accept              succeeded  1 of 5          took 1s
                  reserve             succeeded  1 of 5          took 1s
                  split               succeeded  local           took 0ms
                  release             succeeded                  took 2s     2 branches: 2 succeeded
                    [0] o-1009-w1 w1  succeeded  1 of 5          took 1s
                    [1] o-1009-w2 w2  succeeded  1 of 5          took 2s
                  ship (pivot)        succeeded                  took 4m56s  2 branches: 2 succeeded
                    [0] o-1009-w1 w1  succeeded  1 of 5          took 4m46s
                    [1] o-1009-w2 w2  succeeded  1 of 5          took 4m56s
                  invoice             in flight  1 of unlimited  for 50m     waiting for reply
                        command billing.invoice.create  message order-fulfillment/o-1009/m16  sent 11:10:00Z (50m ago)  reply to waybill.replies.worker-a
                        timer reply timeout at 13:10:00Z (in 1h10m)

                Recent history (all of it: waybill sagas history order-fulfillment/o-1009)
                  TIME                  KIND   STEP        BY  DETAIL
                  2025-01-15T11:05:02Z  reply  reserve         reply ok for reserve output {"reservationId":"r-1","stock":[{"quantity":5,"sku":"A","warehouse":"w1"},{"quantity":5,"sku":"B","warehouse":"w2"}]} → running; sent 2 commands, published order.reserved, scheduled 2 timers, cancelled 1 timer
                  2025-01-15T11:05:03Z  reply  release[0]      reply ok for release[0] → running; cancelled 1 timer
                  2025-01-15T11:05:04Z  reply  release[1]      reply ok for release[1] → running; sent 2 commands, scheduled 2 timers, cancelled 1 timer
                  2025-01-15T11:09:50Z  reply  ship[0]         reply ok for ship[0] output {"trackingId":"T-3"} → running; cancelled 1 timer
                  2025-01-15T11:10:00Z  reply  ship[1]         reply ok for ship[1] output {"trackingId":"T-4"} → running; sent 1 command, published order.shipped, scheduled 1 timer, cancelled 1 timer

                """#)
    }

    @Test("show --json: a retrying saga, byte for byte")
    func showJSON() throws {
        #expect(
            PrettyJSON.render(ShowView.json(try fixture.detail("o-1008")))
                == #"""
                {
                  "compensation": null,
                  "diagnosis": {
                    "brief": "accept erp_down, attempt 2 of 5, next in 15s",
                    "class": "retrying",
                    "reason": "retrying accept: attempt 2 of 5 failed with erp_down \"503 from ERP\"; next attempt at 12:00:15Z (in 15s)",
                    "stuck": true,
                    "suggestions": [
                      "retry now instead of waiting: waybill sagas retry order-fulfillment/o-1008 --reason '<why>'"
                    ],
                    "title": "retrying"
                  },
                  "recentJournal": [
                    {
                      "actor": null,
                      "at": "2025-01-15T11:58:00.000Z",
                      "detail": "started order-fulfillment v1 (definition 5b0559d93f65) → running; sent 1 command, scheduled 1 timer",
                      "id": 36,
                      "kind": "start",
                      "sagaId": "o-1008",
                      "step": null,
                      "workflow": "order-fulfillment"
                    },
                    {
                      "actor": null,
                      "at": "2025-01-15T11:58:30.000Z",
                      "detail": "reply error timeout (retryable) for accept: \"no reply within 30s\" → running; scheduled 1 timer, cancelled 1 timer",
                      "id": 37,
                      "kind": "reply",
                      "sagaId": "o-1008",
                      "step": "accept",
                      "workflow": "order-fulfillment"
                    },
                    {
                      "actor": null,
                      "at": "2025-01-15T11:58:40.000Z",
                      "detail": "timer retry fired for accept → running; sent 1 command, scheduled 1 timer, cancelled 1 timer",
                      "id": 38,
                      "kind": "timer",
                      "sagaId": "o-1008",
                      "step": "accept",
                      "workflow": "order-fulfillment"
                    },
                    {
                      "actor": null,
                      "at": "2025-01-15T11:59:55.000Z",
                      "detail": "reply error erp_down (retryable) for accept: \"503 from ERP\" → running; scheduled 1 timer, cancelled 1 timer",
                      "id": 43,
                      "kind": "reply",
                      "sagaId": "o-1008",
                      "step": "accept",
                      "workflow": "order-fulfillment"
                    }
                  ],
                  "saga": {
                    "ageMs": 120000,
                    "currentStep": "accept",
                    "definitionHash": "5b0559d93f657d3d700e33d15016b4a89561e87f142cf9e6655a1e29c28fdac4",
                    "definitionKnown": true,
                    "failure": null,
                    "failureCode": null,
                    "id": "o-1008",
                    "idleMs": 5000,
                    "owner": "worker-a",
                    "pivotPassed": false,
                    "pivotStep": "ship",
                    "startedAt": "2025-01-15T11:58:00.000Z",
                    "status": "running",
                    "updatedAt": "2025-01-15T11:59:55.000Z",
                    "version": 1,
                    "workflow": "order-fulfillment"
                  },
                  "steps": [
                    {
                      "branches": [
                        {
                          "attempt": 2,
                          "compensationAttempt": 0,
                          "durationMs": 120000,
                          "finishedAt": null,
                          "index": 0,
                          "item": null,
                          "label": "accept",
                          "lastError": {
                            "code": "erp_down",
                            "message": "503 from ERP",
                            "retryable": true
                          },
                          "maxAttempts": 5,
                          "pending": null,
                          "startedAt": "2025-01-15T11:58:00.000Z",
                          "status": "retryWait",
                          "timer": {
                            "dueAt": "2025-01-15T12:00:15.000Z",
                            "id": "order-fulfillment/o-1008/t6",
                            "kind": "retry"
                          }
                        }
                      ],
                      "durationMs": 120000,
                      "finishedAt": null,
                      "forEach": false,
                      "id": "accept",
                      "kind": "command",
                      "pivot": false,
                      "startedAt": "2025-01-15T11:58:00.000Z",
                      "status": "running",
                      "timeoutMs": 30000
                    },
                    {
                      "branches": [],
                      "durationMs": null,
                      "finishedAt": null,
                      "forEach": false,
                      "id": "reserve",
                      "kind": "command",
                      "pivot": false,
                      "startedAt": null,
                      "status": "pending",
                      "timeoutMs": 30000
                    },
                    {
                      "branches": [],
                      "durationMs": null,
                      "finishedAt": null,
                      "forEach": false,
                      "id": "split",
                      "kind": "split",
                      "pivot": false,
                      "startedAt": null,
                      "status": "pending",
                      "timeoutMs": 30000
                    },
                    {
                      "branches": [],
                      "durationMs": null,
                      "finishedAt": null,
                      "forEach": true,
                      "id": "release",
                      "kind": "command",
                      "pivot": false,
                      "startedAt": null,
                      "status": "pending",
                      "timeoutMs": 30000
                    },
                    {
                      "branches": [],
                      "durationMs": null,
                      "finishedAt": null,
                      "forEach": true,
                      "id": "ship",
                      "kind": "command",
                      "pivot": true,
                      "startedAt": null,
                      "status": "pending",
                      "timeoutMs": 30000
                    },
                    {
                      "branches": [],
                      "durationMs": null,
                      "finishedAt": null,
                      "forEach": false,
                      "id": "invoice",
                      "kind": "command",
                      "pivot": false,
                      "startedAt": null,
                      "status": "pending",
                      "timeoutMs": 7200000
                    }
                  ],
                  "strayTimers": []
                }

                """#)
    }

    @Test("show --json: the shape across every saga of the fixture")
    func showShape() throws {
        let documents = try ["o-1001", "o-1002", "o-1003", "o-1004", "o-1005", "o-1006", "o-1007", "o-1008", "o-1009"]
            .map { ShowView.json(try fixture.detail($0)) }
        #expect(
            shape(.array(documents))
                == #"""
                : array
                []: object
                [].compensation: null|object
                [].compensation.active: boolean
                [].compensation.purpose: string
                [].compensation.queue: array
                [].compensation.queue[]: string
                [].compensation.skipped: number
                [].compensation.total: number
                [].compensation.undone: number
                [].diagnosis: object
                [].diagnosis.brief: string
                [].diagnosis.class: null|string
                [].diagnosis.reason: string
                [].diagnosis.stuck: boolean
                [].diagnosis.suggestions: array
                [].diagnosis.suggestions[]: string
                [].diagnosis.title: null|string
                [].recentJournal: array
                [].recentJournal[]: object
                [].recentJournal[].actor: null|string
                [].recentJournal[].at: string
                [].recentJournal[].detail: string
                [].recentJournal[].id: number
                [].recentJournal[].kind: string
                [].recentJournal[].sagaId: string
                [].recentJournal[].step: null|string
                [].recentJournal[].workflow: string
                [].saga: object
                [].saga.ageMs: number
                [].saga.currentStep: null|string
                [].saga.definitionHash: string
                [].saga.definitionKnown: boolean
                [].saga.failure: null|object
                [].saga.failure.at: string
                [].saga.failure.branch: null|number
                [].saga.failure.error: object
                [].saga.failure.error.code: string
                [].saga.failure.error.message: string
                [].saga.failure.error.retryable: boolean
                [].saga.failure.step: string
                [].saga.failureCode: null|string
                [].saga.id: string
                [].saga.idleMs: number
                [].saga.owner: string
                [].saga.pivotPassed: boolean
                [].saga.pivotStep: string
                [].saga.startedAt: string
                [].saga.status: string
                [].saga.updatedAt: string
                [].saga.version: number
                [].saga.workflow: string
                [].steps: array
                [].steps[]: object
                [].steps[].branches: array
                [].steps[].branches[]: object
                [].steps[].branches[].attempt: number
                [].steps[].branches[].compensationAttempt: number
                [].steps[].branches[].durationMs: number
                [].steps[].branches[].finishedAt: null|string
                [].steps[].branches[].index: number
                [].steps[].branches[].item: null|object
                [].steps[].branches[].item.id: string
                [].steps[].branches[].item.lines: array
                [].steps[].branches[].item.lines[]: object
                [].steps[].branches[].item.lines[].quantity: number
                [].steps[].branches[].item.lines[].sku: string
                [].steps[].branches[].item.warehouse: string
                [].steps[].branches[].label: string
                [].steps[].branches[].lastError: null|object
                [].steps[].branches[].lastError.code: string
                [].steps[].branches[].lastError.message: string
                [].steps[].branches[].lastError.retryable: boolean
                [].steps[].branches[].maxAttempts: number|string
                [].steps[].branches[].pending: null|object
                [].steps[].branches[].pending.attempt: number
                [].steps[].branches[].pending.kind: string
                [].steps[].branches[].pending.messageId: string
                [].steps[].branches[].pending.replyQueue: string
                [].steps[].branches[].pending.routingKey: string
                [].steps[].branches[].pending.sentAt: string
                [].steps[].branches[].startedAt: string
                [].steps[].branches[].status: string
                [].steps[].branches[].timer: null|object
                [].steps[].branches[].timer.dueAt: string
                [].steps[].branches[].timer.id: string
                [].steps[].branches[].timer.kind: string
                [].steps[].durationMs: null|number
                [].steps[].finishedAt: null|string
                [].steps[].forEach: boolean
                [].steps[].id: string
                [].steps[].kind: string
                [].steps[].pivot: boolean
                [].steps[].startedAt: null|string
                [].steps[].status: string
                [].steps[].timeoutMs: number
                [].strayTimers: array

                """#)
    }

    @Test("list --json shape")
    func listShape() throws {
        let filter = FixtureFile.filter()
        #expect(
            shape(ListView.json(try database.list(filter, now: now), filter: filter, now: now))
                == #"""
                .: object
                .filter: object
                .filter.limit: number
                .filter.newestFirst: boolean
                .filter.owner: null
                .filter.since: null
                .filter.statuses: array
                .filter.step: null
                .filter.stuckForMs: null
                .filter.workflow: null
                .hasMore: boolean
                .now: string
                .sagas: array
                .sagas[]: object
                .sagas[].ageMs: number
                .sagas[].currentStep: null|string
                .sagas[].definitionHash: string
                .sagas[].failureCode: null|string
                .sagas[].id: string
                .sagas[].idleMs: number
                .sagas[].owner: string
                .sagas[].startedAt: string
                .sagas[].status: string
                .sagas[].updatedAt: string
                .sagas[].version: number
                .sagas[].workflow: string

                """#)
    }

    @Test("history: oldest first, with the operator who acted; --json byte for byte")
    func history() throws {
        let key = SagaKey(workflow: "order-fulfillment", id: "o-1003")
        let lines = try database.journal(of: key)
        #expect(
            HistoryView.text(lines, key: key, now: now)
                == #"""
                TIME                  KIND      STEP  BY     DETAIL
                2025-01-15T10:53:20Z  start                  started order-fulfillment v1 (definition 5b0559d93f65) → running; sent 1 command, scheduled 1 timer
                2025-01-15T10:55:00Z  operator        alice  operator cancel by alice: "duplicate of o-1001" → cancelled; published order.cancelled, cancelled 1 timer, finished cancelled
                2 journal lines for order-fulfillment/o-1003, oldest first.

                """#)
        #expect(
            PrettyJSON.render(HistoryView.json(lines, key: key))
                == #"""
                {
                  "entries": [
                    {
                      "actor": null,
                      "at": "2025-01-15T10:53:20.000Z",
                      "detail": "started order-fulfillment v1 (definition 5b0559d93f65) → running; sent 1 command, scheduled 1 timer",
                      "id": 13,
                      "kind": "start",
                      "sagaId": "o-1003",
                      "step": null,
                      "workflow": "order-fulfillment"
                    },
                    {
                      "actor": "alice",
                      "at": "2025-01-15T10:55:00.000Z",
                      "detail": "operator cancel by alice: \"duplicate of o-1001\" → cancelled; published order.cancelled, cancelled 1 timer, finished cancelled",
                      "id": 14,
                      "kind": "operator",
                      "sagaId": "o-1003",
                      "step": null,
                      "workflow": "order-fulfillment"
                    }
                  ],
                  "saga": {
                    "id": "o-1003",
                    "workflow": "order-fulfillment"
                  }
                }

                """#)
        #expect(try database.journal(of: key, afterId: lines[0].id) == Array(lines.dropFirst()))
    }

    @Test("stuck: a count and the oldest saga of every class")
    func stuck() throws {
        #expect(
            StuckView.text(try database.stuckReport(now: now, policy: StuckPolicy()))
                == #"""
                CLASS                                 COUNT  OLDEST                     IDLE  WHY
                compensation failing                      1  order-fulfillment/o-1005     5s  undo accept: erp_down, attempt 1
                retries exhausted / suspended             1  order-fulfillment/o-1004    50m  ship[1] address_invalid (not retryable)
                waiting for a reply past its timeout      1  order-fulfillment/o-1006  9m59s  reserve inventory.reserve overdue 9m29s
                timer overdue (is a worker running?)      1  order-fulfillment/o-1007  5m10s  accept retry overdue 5m
                retrying                                  1  order-fulfillment/o-1008     5s  accept erp_down, attempt 2 of 5, next in 15s
                no progress                               1  order-fulfillment/o-1009    50m  invoice: idle 50m, waiting for 1 reply
                on schedule (not stuck)                   2  returns/o-1010              30s  authorize waiting, timeout in 30s
                6 sagas stuck of 8 not finished, at 2025-01-15T12:00:00Z (timers overdue after 30s, no progress after 15m).
                List one class with --class (e.g. --class compensation-failing); explain one saga with `waybill sagas show ID`.

                """#)
    }

    @Test("stuck --class suspended lists the class; --json shape")
    func stuckClass() throws {
        let report = try database.stuckReport(now: now, policy: StuckPolicy(), only: .suspended)
        #expect(
            StuckView.text(report)
                == #"""
                CLASS                                 COUNT  OLDEST                     IDLE  WHY
                compensation failing                      1  order-fulfillment/o-1005     5s  undo accept: erp_down, attempt 1
                retries exhausted / suspended             1  order-fulfillment/o-1004    50m  ship[1] address_invalid (not retryable)
                waiting for a reply past its timeout      1  order-fulfillment/o-1006  9m59s  reserve inventory.reserve overdue 9m29s
                timer overdue (is a worker running?)      1  order-fulfillment/o-1007  5m10s  accept retry overdue 5m
                retrying                                  1  order-fulfillment/o-1008     5s  accept erp_down, attempt 2 of 5, next in 15s
                no progress                               1  order-fulfillment/o-1009    50m  invoice: idle 50m, waiting for 1 reply
                on schedule (not stuck)                   2  returns/o-1010              30s  authorize waiting, timeout in 30s
                6 sagas stuck of 8 not finished, at 2025-01-15T12:00:00Z (timers overdue after 30s, no progress after 15m).

                retries exhausted / suspended: 1 saga
                SAGA                      STATUS     STEP  OWNER     IDLE  WHY
                order-fulfillment/o-1004  suspended  ship  worker-b   50m  ship[1] address_invalid (not retryable)

                """#)
        #expect(
            shape(StuckView.json(report))
                == #"""
                .: object
                .active: number
                .classes: array
                .classes[]: object
                .classes[].class: string
                .classes[].count: number
                .classes[].oldest: object
                .classes[].oldest.ageMs: number
                .classes[].oldest.currentStep: string
                .classes[].oldest.definitionHash: string
                .classes[].oldest.diagnosis: object
                .classes[].oldest.diagnosis.brief: string
                .classes[].oldest.diagnosis.class: string
                .classes[].oldest.diagnosis.reason: string
                .classes[].oldest.diagnosis.stuck: boolean
                .classes[].oldest.diagnosis.suggestions: array
                .classes[].oldest.diagnosis.suggestions[]: string
                .classes[].oldest.diagnosis.title: string
                .classes[].oldest.failureCode: null|string
                .classes[].oldest.id: string
                .classes[].oldest.idleMs: number
                .classes[].oldest.owner: string
                .classes[].oldest.startedAt: string
                .classes[].oldest.status: string
                .classes[].oldest.updatedAt: string
                .classes[].oldest.version: number
                .classes[].oldest.workflow: string
                .classes[].stuck: boolean
                .classes[].title: string
                .hasMore: boolean
                .members: array
                .members[]: object
                .members[].ageMs: number
                .members[].currentStep: string
                .members[].definitionHash: string
                .members[].diagnosis: object
                .members[].diagnosis.brief: string
                .members[].diagnosis.class: string
                .members[].diagnosis.reason: string
                .members[].diagnosis.stuck: boolean
                .members[].diagnosis.suggestions: array
                .members[].diagnosis.suggestions[]: string
                .members[].diagnosis.title: string
                .members[].failureCode: string
                .members[].id: string
                .members[].idleMs: number
                .members[].owner: string
                .members[].startedAt: string
                .members[].status: string
                .members[].updatedAt: string
                .members[].version: number
                .members[].workflow: string
                .now: string
                .policy: object
                .policy.graceMs: number
                .policy.noProgressAfterMs: number
                .selected: string
                .stuck: number

                """#)
    }

    @Test("stats: by status, by step, oldest unfinished, throughput")
    func stats() throws {
        let stats = try database.stats(now: now, window: .seconds(3 * 3600))
        #expect(
            StatsView.text(stats)
                == #"""
                Sagas by status
                  STATUS        COUNT
                  running           6
                  compensating      1
                  completed         1
                  compensated       1
                  suspended         1
                  cancelled         1
                  total            11

                Not finished, by current step
                  WORKFLOW           STEP       RUNNING  COMPENSATING  SUSPENDED  TOTAL
                  order-fulfillment  reserve          2             1          0      3
                  order-fulfillment  accept           2             0          0      2
                  order-fulfillment  invoice          1             0          0      1
                  order-fulfillment  ship             0             0          1      1
                  returns            authorize        1             0          0      1

                Oldest not finished: order-fulfillment/o-1004 suspended at ship, started 2025-01-15T11:00:00Z (1h ago)

                Last 3h (to 2025-01-15T12:00:00Z): started 11 (0.1/min), completed 1 (0.0/min), compensated 1, cancelled 1, suspended 1
                  completed per 12m, oldest first: 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0

                """#)
        #expect(
            shape(StatsView.json(stats))
                == #"""
                .: object
                .byStatus: object
                .byStatus.cancelled: number
                .byStatus.compensated: number
                .byStatus.compensating: number
                .byStatus.completed: number
                .byStatus.running: number
                .byStatus.suspended: number
                .bySteps: array
                .bySteps[]: object
                .bySteps[].compensating: number
                .bySteps[].running: number
                .bySteps[].step: string
                .bySteps[].suspended: number
                .bySteps[].total: number
                .bySteps[].workflow: string
                .now: string
                .oldestInFlight: object
                .oldestInFlight.ageMs: number
                .oldestInFlight.currentStep: string
                .oldestInFlight.definitionHash: string
                .oldestInFlight.failureCode: string
                .oldestInFlight.id: string
                .oldestInFlight.idleMs: number
                .oldestInFlight.owner: string
                .oldestInFlight.startedAt: string
                .oldestInFlight.status: string
                .oldestInFlight.updatedAt: string
                .oldestInFlight.version: number
                .oldestInFlight.workflow: string
                .throughput: object
                .throughput.bucketMs: number
                .throughput.completedPerBucket: array
                .throughput.completedPerBucket[]: number
                .throughput.finished: object
                .throughput.finished.cancelled: number
                .throughput.finished.compensated: number
                .throughput.finished.completed: number
                .throughput.finished.suspended: number
                .throughput.started: number
                .throughput.windowMs: number
                .total: number

                """#)
    }

    @Test("workflows list and show")
    func workflows() throws {
        #expect(
            WorkflowsView.listText(try database.workflowVersions(), now: now)
                == #"""
                WORKFLOW           VERSION  HASH          FIRST SEEN            RUNNING  COMPENSATING  SUSPENDED  NOTE
                order-fulfillment        1  5b0559d93f65  2025-01-14T12:00:00Z        5             1          1
                returns                  1  7bf5167d60fa  2025-01-14T12:00:00Z        1             0          0
                2 definitions; counts are unfinished sagas on each exact text.

                """#)
        #expect(
            shape(WorkflowsView.listJSON(try database.workflowVersions()))
                == #"""
                .: object
                .workflows: array
                .workflows[]: object
                .workflows[].compensating: number
                .workflows[].editedWithoutBump: boolean
                .workflows[].firstSeenAt: string
                .workflows[].hash: string
                .workflows[].name: string
                .workflows[].running: number
                .workflows[].suspended: number
                .workflows[].version: number

                """#)
        #expect(
            WorkflowsView.showText(try database.workflowDetail("order-fulfillment"), includeSource: false)
                == #"""
                order-fulfillment@v1
                  hash        5b0559d93f657d3d700e33d15016b4a89561e87f142cf9e6655a1e29c28fdac4
                  first seen  2025-01-14T12:00:00Z
                  unfinished  7 (running 5, compensating 1, suspended 1)

                Steps
                  STEP     DOES                               TIMEOUT  RETRY       UNDO                              NOTES
                  accept   erp.order.accept                   30s      5 attempts  erp.order.cancel                  milestone order.accepted, 2 here
                  reserve  inventory.reserve                  30s      5 attempts  inventory.release                 milestone order.reserved, 3 here
                  split    split (local)
                  release  wms.${shipment.warehouse}.release  30s      5 attempts  wms.${shipment.warehouse}.cancel  for each
                  ship     tms.shipment.create                30s      5 attempts                                    for each, pivot, milestone order.shipped, 1 here
                  invoice  billing.invoice.create             2h       unlimited                                     1 here

                Unfinished sagas by current step
                  STEP     RUNNING  COMPENSATING  SUSPENDED
                  accept         2             0          0
                  reserve        2             1          0
                  ship           0             0          1
                  invoice        1             0          0

                The YAML: waybill workflows show order-fulfillment@1 --source

                """#)
        #expect(
            WorkflowsView.showText(try database.workflowDetail("returns@1"), includeSource: true)
                == #"""
                returns@v1
                  hash        7bf5167d60fa268b1cdb6c43902ec189c26653f567bc05c9a16710c79a4f1312
                  first seen  2025-01-14T12:00:00Z
                  unfinished  1 (running 1, compensating 0, suspended 0)

                Steps
                  STEP       DOES                  TIMEOUT  RETRY       UNDO  NOTES
                  authorize  erp.return.authorize  1m       3 attempts        1 here

                Unfinished sagas by current step
                  STEP       RUNNING  COMPENSATING  SUSPENDED
                  authorize        1             0          0

                Source
                name: returns
                version: 1
                trigger:
                  exchange: returns
                  routing_key: return.requested
                  saga_id: ${input.returnId}
                steps:
                  - id: authorize
                    command: erp.return.authorize
                    input: { returnId: "${input.returnId}" }
                    timeout: 1m

                """#)
        #expect(
            shape(WorkflowsView.showJSON(try database.workflowDetail("order-fulfillment")))
                == #"""
                .: object
                .bySteps: array
                .bySteps[]: object
                .bySteps[].compensating: number
                .bySteps[].running: number
                .bySteps[].step: string
                .bySteps[].suspended: number
                .loadError: null
                .otherVersions: array
                .source: string
                .steps: array
                .steps[]: object
                .steps[].command: null|string
                .steps[].compensate: null|string
                .steps[].forEach: boolean
                .steps[].id: string
                .steps[].kind: string
                .steps[].maxAttempts: number|string
                .steps[].milestone: null|string
                .steps[].pivot: boolean
                .steps[].timeoutMs: number
                .workflow: object
                .workflow.compensating: number
                .workflow.editedWithoutBump: boolean
                .workflow.firstSeenAt: string
                .workflow.hash: string
                .workflow.name: string
                .workflow.running: number
                .workflow.suspended: number
                .workflow.version: number

                """#)
        #expect(
            throws: OperationsError(
                .notFound, "no stored workflow 'shipping'; this file knows order-fulfillment, returns")
        ) {
            try database.workflowDetail("shipping")
        }
    }
}
