import SagaEngine
import SagaStore
import Testing
import WaybillDefinition
import WaybillOperations

/// How `waybill sagas show` presents a saga that took a path through a choice.
@Suite("sagas show with a choice")
struct ChoiceShowTests {
    @Test("the choice's row says where it sent the saga; the steps jumped over read bypassed")
    func choiceRow() throws {
        let definition = try WorkflowLoader.load(
            yaml: """
                name: routed
                version: 1
                trigger: { exchange: orders, routing_key: order.placed, saga_id: "${input.id}" }
                steps:
                  - id: route
                    choice:
                      - when: { value: "${input.express}", equals: true }
                        next: express
                  - id: standard
                    command: tms.standard
                  - id: express
                    command: tms.express
                """, file: "routed.yaml")
        let now = Timestamp(milliseconds: 1_700_000_000_000)
        let started = SagaEngine(jitterSeed: 1).start(
            definition: definition, definitionHash: "h", sagaId: "o-1", input: ["id": "o-1", "express": true], now: now)
        let instance = started.instance
        let row = SagaRow(
            key: instance.key, definitionHash: "h", version: 1, status: instance.status, currentStep: "express",
            owner: "w1", startedAt: now, updatedAt: now, failureCode: nil)
        let detail = SagaDetail(
            record: SagaRecord(row: row, instance: instance), definition: definition, timers: [], journal: [], now: now)
        #expect(detail.steps.map(\.kind) == [.choice, .command, .command])
        #expect(detail.steps.map(\.status) == [.succeeded, .bypassed, .running])
        let text = ShowView.text(detail)
        let routeLine = try #require(text.split(separator: "\n").first { $0.contains("route ") }, "\(text)")
        #expect(routeLine.contains("succeeded"), "\(text)")
        #expect(routeLine.contains("-> express (rule 0)"), "\(text)")
        #expect(text.split(separator: "\n").contains { $0.contains("standard") && $0.contains("bypassed") }, "\(text)")
        #expect(ShowView.json(detail)["steps"]?.arrayValue?.first?["kind"] == "choice")
    }
}
