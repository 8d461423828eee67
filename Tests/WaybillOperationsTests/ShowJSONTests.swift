import Testing
import WaybillOperations

/// `waybill sagas show --json` against the fixture file: one document byte for byte, and the shape (every path and its
/// types) across every saga.
@Suite("sagas show --json against the fixture file")
struct ShowJSONTests: FixtureSuite {
    let fixture: FixtureFile

    init() throws {
        fixture = try FixtureFile()
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
                  "input": {
                    "lines": [
                      {
                        "quantity": 2,
                        "sku": "A"
                      },
                      {
                        "quantity": 1,
                        "sku": "B"
                      }
                    ],
                    "orderId": "o-1008"
                  },
                  "recentJournal": [
                    {
                      "actor": null,
                      "at": "2025-01-15T11:58:00.000Z",
                      "detail": "started order-fulfillment v1 (definition 763dfa1630a5) → running; sent 1 command, scheduled 1 timer",
                      "facts": {
                        "commands": 1,
                        "event": "start",
                        "outcome": "applied",
                        "status": "running",
                        "version": 1
                      },
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
                      "facts": {
                        "attempt": 1,
                        "code": "timeout",
                        "command": "do",
                        "correlationId": "order-fulfillment/o-1008/m1",
                        "event": "reply",
                        "outcome": "applied",
                        "reply": "error",
                        "retryable": true,
                        "status": "running",
                        "step": "accept"
                      },
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
                      "facts": {
                        "attempt": 2,
                        "commands": 1,
                        "event": "timer",
                        "outcome": "applied",
                        "status": "running",
                        "step": "accept",
                        "timer": "retry"
                      },
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
                      "facts": {
                        "attempt": 2,
                        "code": "erp_down",
                        "command": "do",
                        "correlationId": "order-fulfillment/o-1008/m4",
                        "event": "reply",
                        "outcome": "applied",
                        "reply": "error",
                        "retryable": true,
                        "status": "running",
                        "step": "accept"
                      },
                      "id": 43,
                      "kind": "reply",
                      "sagaId": "o-1008",
                      "step": "accept",
                      "workflow": "order-fulfillment"
                    }
                  ],
                  "saga": {
                    "ageMs": 120000,
                    "archived": null,
                    "currentStep": "accept",
                    "definitionHash": "763dfa1630a5ba697da7cde177d32ca9cd1bca30c9bdee033c6641383b575302",
                    "definitionKnown": true,
                    "failure": null,
                    "failureCode": null,
                    "id": "o-1008",
                    "idleMs": 5000,
                    "owner": "worker-a",
                    "partition": null,
                    "pivotPassed": false,
                    "pivotStep": "ship",
                    "priority": null,
                    "queue": null,
                    "startedAt": "2025-01-15T11:58:00.000Z",
                    "status": "running",
                    "updatedAt": "2025-01-15T11:59:55.000Z",
                    "version": 1,
                    "workflow": "order-fulfillment"
                  },
                  "schemaVersion": 1,
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
                          "outcomeUnknown": false,
                          "output": null,
                          "pending": null,
                          "startedAt": "2025-01-15T11:58:00.000Z",
                          "status": "retryWait",
                          "timer": {
                            "dueAt": "2025-01-15T12:00:15.000Z",
                            "id": "order-fulfillment/o-1008/t6",
                            "kind": "retry"
                          },
                          "unansweredAttempts": 0
                        }
                      ],
                      "durationMs": 120000,
                      "finishedAt": null,
                      "forEach": false,
                      "id": "accept",
                      "kind": "command",
                      "output": null,
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
                      "output": null,
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
                      "output": null,
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
                      "output": null,
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
                      "output": null,
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
                      "output": null,
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

    @Test("show --json: the shape across every saga of the fixture, read from one file and from a pool")
    func showShape() throws {
        let sagas = ["o-1001", "o-1002", "o-1003", "o-1004", "o-1005", "o-1006", "o-1007", "o-1008", "o-1009"]
        let documents =
            try sagas.map { ShowView.json(try fixture.detail($0)) }
            + sagas.map {
                ShowView.json(
                    try fixture.detail($0, placement: SagaDetail.Placement(partition: 3, queue: "waybill.p03")))
            }
        #expect(
            shape(.array(documents))
                == #"""
                : array
                []: object
                [].compensation: null|object
                [].compensation.active: boolean
                [].compensation.fullyUndone: boolean
                [].compensation.owed: array
                [].compensation.purpose: string
                [].compensation.queue: array
                [].compensation.queue[]: string
                [].compensation.skipped: number
                [].compensation.total: number
                [].compensation.undone: number
                [].compensation.unknownOutcome: array
                [].diagnosis: object
                [].diagnosis.brief: string
                [].diagnosis.class: null|string
                [].diagnosis.reason: string
                [].diagnosis.stuck: boolean
                [].diagnosis.suggestions: array
                [].diagnosis.suggestions[]: string
                [].diagnosis.title: null|string
                [].input: object
                [].input.lines: array
                [].input.lines[]: object
                [].input.lines[].quantity: number
                [].input.lines[].sku: string
                [].input.orderId: string
                [].recentJournal: array
                [].recentJournal[]: object
                [].recentJournal[].actor: null|string
                [].recentJournal[].at: string
                [].recentJournal[].detail: string
                [].recentJournal[].facts: object
                [].recentJournal[].facts.action: string
                [].recentJournal[].facts.attempt: number
                [].recentJournal[].facts.branch: number
                [].recentJournal[].facts.code: string
                [].recentJournal[].facts.command: string
                [].recentJournal[].facts.commands: number
                [].recentJournal[].facts.compensations: number
                [].recentJournal[].facts.correlationId: string
                [].recentJournal[].facts.event: string
                [].recentJournal[].facts.finished: string
                [].recentJournal[].facts.milestones: array
                [].recentJournal[].facts.milestones[]: string
                [].recentJournal[].facts.outcome: string
                [].recentJournal[].facts.reason: string
                [].recentJournal[].facts.reply: string
                [].recentJournal[].facts.retryable: boolean
                [].recentJournal[].facts.status: string
                [].recentJournal[].facts.step: string
                [].recentJournal[].facts.timer: string
                [].recentJournal[].facts.version: number
                [].recentJournal[].id: number
                [].recentJournal[].kind: string
                [].recentJournal[].sagaId: string
                [].recentJournal[].step: null|string
                [].recentJournal[].workflow: string
                [].saga: object
                [].saga.ageMs: number
                [].saga.archived: null
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
                [].saga.partition: null|number
                [].saga.pivotPassed: boolean
                [].saga.pivotStep: string
                [].saga.priority: null
                [].saga.queue: null|string
                [].saga.startedAt: string
                [].saga.status: string
                [].saga.updatedAt: string
                [].saga.version: number
                [].saga.workflow: string
                [].schemaVersion: number
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
                [].steps[].branches[].outcomeUnknown: boolean
                [].steps[].branches[].output: null|object
                [].steps[].branches[].output.reservationId: string
                [].steps[].branches[].output.stock: array
                [].steps[].branches[].output.stock[]: object
                [].steps[].branches[].output.stock[].quantity: number
                [].steps[].branches[].output.stock[].sku: string
                [].steps[].branches[].output.stock[].warehouse: string
                [].steps[].branches[].output.trackingId: string
                [].steps[].branches[].pending: null|object
                [].steps[].branches[].pending.attempt: number
                [].steps[].branches[].pending.kind: string
                [].steps[].branches[].pending.messageId: string
                [].steps[].branches[].pending.replyQueue: null|string
                [].steps[].branches[].pending.routingKey: string
                [].steps[].branches[].pending.sentAt: string
                [].steps[].branches[].startedAt: string
                [].steps[].branches[].status: string
                [].steps[].branches[].timer: null|object
                [].steps[].branches[].timer.dueAt: string
                [].steps[].branches[].timer.id: string
                [].steps[].branches[].timer.kind: string
                [].steps[].branches[].unansweredAttempts: number
                [].steps[].durationMs: null|number
                [].steps[].finishedAt: null|string
                [].steps[].forEach: boolean
                [].steps[].id: string
                [].steps[].kind: string
                [].steps[].output: array|null|object
                [].steps[].output.backordered: array
                [].steps[].output.reservationId: string
                [].steps[].output.shipments: array
                [].steps[].output.shipments[]: object
                [].steps[].output.shipments[].id: string
                [].steps[].output.shipments[].lines: array
                [].steps[].output.shipments[].lines[]: object
                [].steps[].output.shipments[].lines[].quantity: number
                [].steps[].output.shipments[].lines[].sku: string
                [].steps[].output.shipments[].warehouse: string
                [].steps[].output.stock: array
                [].steps[].output.stock[]: object
                [].steps[].output.stock[].quantity: number
                [].steps[].output.stock[].sku: string
                [].steps[].output.stock[].warehouse: string
                [].steps[].output[]: null|object
                [].steps[].output[].trackingId: string
                [].steps[].pivot: boolean
                [].steps[].startedAt: null|string
                [].steps[].status: string
                [].steps[].timeoutMs: number
                [].strayTimers: array

                """#)
    }
}
