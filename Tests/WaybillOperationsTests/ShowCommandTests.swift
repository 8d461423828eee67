import SagaEngine
import Testing
import WaybillOperations

/// `waybill sagas show` against the fixture file at its fixed `now`: how a saga reference resolves, and the exact text
/// for a saga in every status and every stuck class.
@Suite("sagas show against the fixture file")
struct ShowCommandTests: FixtureSuite {
    let fixture: FixtureFile

    init() throws {
        fixture = try FixtureFile()
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
                  workflow       order-fulfillment@v1  definition 763dfa1630a5
                  written by     worker-a
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
                  workflow       order-fulfillment@v1  definition 763dfa1630a5
                  written by     worker-a
                  started        2025-01-15T10:30:00Z (1h30m ago)
                  last progress  2025-01-15T10:30:03Z (1h29m ago)
                  age            1h30m
                  current step   reserve
                  failure        reserve out_of_stock: SKU B short by 1 (not retryable) at 10:30:02Z
                  pivot          ship (not passed yet)

                Why: not stuck: compensated 1h29m ago after reserve failed with out_of_stock; every step that may have taken effect was undone

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
                  2025-01-15T10:30:00Z  start               started order-fulfillment v1 (definition 763dfa1630a5) → running; sent 1 command, scheduled 1 timer
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
                  workflow       order-fulfillment@v1  definition 763dfa1630a5
                  written by     worker-a
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
                  2025-01-15T10:53:20Z  start                  started order-fulfillment v1 (definition 763dfa1630a5) → running; sent 1 command, scheduled 1 timer
                  2025-01-15T10:55:00Z  operator        alice  operator cancel by alice: "duplicate of o-1001" → cancelled; published order.cancelled, cancelled 1 timer, finished cancelled

                """#)
    }

    @Test("show o-1004: suspended after the pivot")
    func showO1004() throws {
        #expect(
            ShowView.text(try fixture.detail("o-1004"))
                == #"""
                order-fulfillment/o-1004  suspended
                  workflow       order-fulfillment@v1  definition 763dfa1630a5
                  written by     worker-b
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
                  workflow       order-fulfillment@v1  definition 763dfa1630a5
                  written by     worker-a
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
                  2025-01-15T11:40:00Z  start               started order-fulfillment v1 (definition 763dfa1630a5) → running; sent 1 command, scheduled 1 timer
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
                  workflow       order-fulfillment@v1  definition 763dfa1630a5
                  written by     worker-a
                  started        2025-01-15T11:50:00Z (10m ago)
                  last progress  2025-01-15T11:50:01Z (9m59s ago)
                  age            10m
                  current step   reserve
                  pivot          ship (not passed yet)

                Why stuck (reply overdue): waiting since 11:50:01Z for a reply to command inventory.reserve (reserve, attempt 1 of 5); its timeout passed 9m29s ago and the timer has not fired: does a live worker own its partition?
                  -> check who owns its partition with `waybill pool status`, and start a worker if none does (the owner fires overdue timers as soon as it runs)

                Steps
                  STEP          STATUS     ATTEMPTS  TIME       DETAIL
                  accept        succeeded  1 of 5    took 1s
                  reserve       in flight  1 of 5    for 9m59s  waiting for reply
                        command inventory.reserve  message order-fulfillment/o-1006/m4  sent 11:50:01Z (9m59s ago)
                        timer reply timeout at 11:50:31Z (overdue by 9m29s)
                  split         pending
                  release       pending
                  ship (pivot)  pending
                  invoice       pending

                Recent history (all of it: waybill sagas history order-fulfillment/o-1006)
                  TIME                  KIND   STEP    BY  DETAIL
                  2025-01-15T11:50:00Z  start              started order-fulfillment v1 (definition 763dfa1630a5) → running; sent 1 command, scheduled 1 timer
                  2025-01-15T11:50:01Z  reply  accept      reply ok for accept → running; sent 1 command, published order.accepted, scheduled 1 timer, cancelled 1 timer

                """#)
    }

    @Test("show o-1007: timer overdue")
    func showO1007() throws {
        #expect(
            ShowView.text(try fixture.detail("o-1007"))
                == #"""
                order-fulfillment/o-1007  running
                  workflow       order-fulfillment@v1  definition 763dfa1630a5
                  written by     worker-a
                  started        2025-01-15T11:48:20Z (11m40s ago)
                  last progress  2025-01-15T11:54:50Z (5m10s ago)
                  age            11m40s
                  current step   accept
                  pivot          ship (not passed yet)

                Why stuck (timer overdue): the retry of accept was due at 11:55:00Z (5m ago) and has not run: does a live worker own its partition?
                  -> check who owns its partition with `waybill pool status`, and start a worker if none does (the owner fires overdue timers as soon as it runs)

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
                  2025-01-15T11:48:20Z  start              started order-fulfillment v1 (definition 763dfa1630a5) → running; sent 1 command, scheduled 1 timer
                  2025-01-15T11:54:50Z  reply  accept      reply error erp_down (retryable) for accept: "503 from ERP" → running; scheduled 1 timer, cancelled 1 timer

                """#)
    }

    @Test("show o-1008: retrying")
    func showO1008() throws {
        #expect(
            ShowView.text(try fixture.detail("o-1008"))
                == #"""
                order-fulfillment/o-1008  running
                  workflow       order-fulfillment@v1  definition 763dfa1630a5
                  written by     worker-a
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
                  2025-01-15T11:58:00Z  start              started order-fulfillment v1 (definition 763dfa1630a5) → running; sent 1 command, scheduled 1 timer
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
                  workflow       order-fulfillment@v1  definition 763dfa1630a5
                  written by     worker-a
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
                        command billing.invoice.create  message order-fulfillment/o-1009/m16  sent 11:10:00Z (50m ago)
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
}
