import SagaEngine
import Testing
import WaybillOperations

/// `waybill sagas history` against the fixture file: the journal oldest first, text and `--json`.
@Suite("sagas history against the fixture file")
struct HistoryCommandTests: FixtureSuite {
    let fixture: FixtureFile

    init() throws {
        fixture = try FixtureFile()
    }

    @Test("history: oldest first, with the operator who acted; --json byte for byte")
    func history() throws {
        let key = SagaKey(workflow: "order-fulfillment", id: "o-1003")
        let lines = try database.journal(of: key)
        #expect(
            HistoryView.text(lines, key: key, now: now)
                == #"""
                TIME                  KIND      STEP  BY     DETAIL
                2025-01-15T10:53:20Z  start                  started order-fulfillment v1 (definition 763dfa1630a5) → running; sent 1 command, scheduled 1 timer
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
                      "detail": "started order-fulfillment v1 (definition 763dfa1630a5) → running; sent 1 command, scheduled 1 timer",
                      "facts": {
                        "commands": 1,
                        "event": "start",
                        "outcome": "applied",
                        "status": "running",
                        "version": 1
                      },
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
                      "facts": {
                        "action": "cancel",
                        "event": "operator",
                        "finished": "cancelled",
                        "milestones": [
                          "order.cancelled"
                        ],
                        "outcome": "applied",
                        "reason": "duplicate of o-1001",
                        "status": "cancelled"
                      },
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
}
