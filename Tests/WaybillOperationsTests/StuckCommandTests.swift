import SagaEngine
import Testing
import WaybillOperations

/// `waybill sagas stuck` against the fixture file at its fixed `now`: the summary of every class, one class, and the
/// `--json` shape.
@Suite("sagas stuck against the fixture file")
struct StuckCommandTests: FixtureSuite {
    let fixture: FixtureFile

    init() throws {
        fixture = try FixtureFile()
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

    @Test("stuck --group-by code: the stuck sagas by the error that keeps them there, largest group first")
    func groupedByCode() throws {
        let groups = try database.stuckGroups(now: now, policy: StuckPolicy(), grouping: .code)
        #expect(
            StuckView.text(groups)
                == #"""
                CODE             COUNT  CLASSES                                          OLDEST                    IDLE  WHY
                -                    3  reply overdue 1, timer overdue 1, no progress 1  order-fulfillment/o-1009   50m  invoice: idle 50m, waiting for 1 reply
                erp_down             2  compensation failing 1, retrying 1               order-fulfillment/o-1005    5s  undo accept: erp_down, attempt 1
                address_invalid      1  suspended 1                                      order-fulfillment/o-1004   50m  ship[1] address_invalid (not retryable)
                6 stuck sagas in 3 groups by code, at 2025-01-15T12:00:00Z.

                """#)
        let json = StuckView.json(groups)
        #expect(json["total"] == 6 && json["groupBy"] == "code")
        #expect(json["groups"]?.arrayValue?[1]["classes"] == ["compensation-failing": 1, "retrying": 1])

        let byWorkflow = try database.stuckGroups(now: now, policy: StuckPolicy(), grouping: .workflow)
        #expect(byWorkflow.groups.map(\.key) == ["order-fulfillment"] && byWorkflow.total == 6)
    }

    @Test("--code and --since narrow the groups to one error, or to sagas that stopped recently")
    func narrowedGroups() throws {
        let erpDown = try database.stuckGroups(
            now: now, policy: StuckPolicy(), grouping: .step, selection: StuckSelection(code: "erp_down"))
        #expect(erpDown.total == 2)
        #expect(
            StuckView.text(erpDown).hasSuffix(
                "2 stuck sagas in 1 group by step (code erp_down), at 2025-01-15T12:00:00Z.\n")
                || StuckView.text(erpDown).hasSuffix(
                    "2 stuck sagas in 2 groups by step (code erp_down), at 2025-01-15T12:00:00Z.\n")
        )
        let recent = try database.stuckGroups(
            now: now, policy: StuckPolicy(), grouping: .code,
            selection: StuckSelection(since: Timestamp(milliseconds: now.milliseconds - 60_000)))
        #expect(recent.groups.map(\.key) == ["erp_down"] && recent.total == 2, "only the sagas idle for less than 1m")
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
}
