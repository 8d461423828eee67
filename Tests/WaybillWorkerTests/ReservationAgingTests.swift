import Foundation
import SagaEngine
import SagaStore
import Testing
import WaybillDefinition
import WaybillTestSupport

@testable import WaybillWorker

/// `waybill_reservation_age_seconds`: per step with an undo, the oldest saga that holds its effect and may still undo
/// it.
@Suite("Reservation aging")
struct ReservationAgingTests {
    static func definition() throws -> WorkflowDefinition {
        let url = Repository.workflow("order-fulfillment.yaml")
        return try WorkflowLoader.load(yaml: String(contentsOf: url, encoding: .utf8), file: url.path)
    }

    @Test("steps before the current one hold their effects until the pivot; past it nothing is undoable")
    func holdersByStep() throws {
        let definition = try Self.definition()
        let at = { (seconds: Int64) in Timestamp(milliseconds: seconds * 1_000) }
        let groups = [
            ActiveStepGroup(definitionHash: "h", currentStep: "reserve", compensating: false, oldestStart: at(50)),
            ActiveStepGroup(definitionHash: "h", currentStep: "ship", compensating: false, oldestStart: at(20)),
            ActiveStepGroup(definitionHash: "h", currentStep: "invoice", compensating: false, oldestStart: at(1)),
            ActiveStepGroup(definitionHash: "h", currentStep: "release", compensating: true, oldestStart: at(10)),
            ActiveStepGroup(definitionHash: "other", currentStep: "accept", compensating: false, oldestStart: at(0)),
        ]
        let oldest = ReservationAging.oldest(groups) { $0 == "h" ? definition : nil }
        let byStep = Dictionary(uniqueKeysWithValues: oldest.map { ($0.step, $0.since) })
        // accept is held by all three before the pivot (the compensating one from 10 s is the oldest), and so is
        // reserve; release by the saga at ship and by the compensating one at release (it may be undoing its
        // branches); the saga at invoice passed the pivot and holds nothing it could undo.
        #expect(byStep == ["accept": at(10), "reserve": at(10), "release": at(10)])
        #expect(oldest.allSatisfy { $0.workflow == "order-fulfillment" })
    }

    @Test("the store groups unfinished sagas by definition and step with their oldest start")
    func storeGroups() throws {
        let definition = try Self.definition()
        let directory = try TemporaryDirectory()
        let store = try SagaStore(
            configuration: SagaStore.Configuration(path: directory.file("p.sqlite"), durability: .normal))
        let engine = SagaEngine()
        var changes: [SagaChange] = []
        for (index, id) in ["o-1", "o-2", "o-3"].enumerated() {
            let input: JSONValue = ["orderId": .string(id), "lines": [["sku": "A", "quantity": 1]]]
            let now = Timestamp(milliseconds: Int64(1_000 * (index + 1)))
            let started = engine.start(
                definition: definition, definitionHash: "h", sagaId: id, input: input, now: now)
            changes.append(
                SagaChange(
                    event: .start(input: input), before: nil, transition: started, definition: definition, at: now,
                    owner: "w1", inboxMessageId: "s-\(id)"))
        }
        try store.commit(changes)
        let groups = try store.oldestActiveByStep()
        #expect(
            groups == [
                ActiveStepGroup(
                    definitionHash: "h", currentStep: "accept", compensating: false,
                    oldestStart: Timestamp(milliseconds: 1_000))
            ])
        try store.close()
    }
}
