import Testing
import WaybillOperations

/// `waybill workflows list` and `waybill workflows show` against the fixture file.
@Suite("workflows list and show against the fixture file")
struct WorkflowsCommandTests: FixtureSuite {
    let fixture: FixtureFile

    init() throws {
        fixture = try FixtureFile()
    }

    @Test("workflows list and show")
    func workflows() throws {
        #expect(
            WorkflowsView.listText(try database.workflowVersions(), now: now)
                == #"""
                WORKFLOW           VERSION  HASH          FIRST SEEN            RUNNING  COMPENSATING  SUSPENDED  NOTE
                order-fulfillment        1  763dfa1630a5  2025-01-14T12:00:00Z        5             1          1
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
                  hash        763dfa1630a5ba697da7cde177d32ca9cd1bca30c9bdee033c6641383b575302
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
                .steps[].choices: null
                .steps[].command: null|string
                .steps[].compensate: null|string
                .steps[].forEach: boolean
                .steps[].id: string
                .steps[].kind: string
                .steps[].maxAttempts: number|string
                .steps[].milestone: null|string
                .steps[].next: null
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
