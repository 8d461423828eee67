import Testing
import WaybillOperations

/// `waybill sagas stats` against the fixture file at its fixed `now`.
@Suite("sagas stats against the fixture file")
struct StatsCommandTests: FixtureSuite {
    let fixture: FixtureFile

    init() throws {
        fixture = try FixtureFile()
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
                .archived: null
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
}
