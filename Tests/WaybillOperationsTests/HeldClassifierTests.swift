import SagaEngine
import SagaStore
import Synchronization
import Testing
import WaybillDefinition
import WaybillOperations
import WaybillTestSupport

/// Holds back every command (a participant's limit that binds).
private final class ClosedGate: CommandAdmission {
    func isLimited(_ routingKey: String) -> Bool { true }
    func admit(routingKey: String, messageId: String, timeout: Duration, now: Timestamp) -> Bool { false }
}

/// A saga whose command a participant's limit holds back waits by design: the stuck report, the diagnosis and
/// `sagas show` say so, however long it waits.
@Suite("Stuck classes of a held saga")
struct HeldClassifierTests {
    @Test("a saga held for hours is on schedule, in the stuck report of its file and in its diagnosis")
    func heldIsOnSchedule() throws {
        let text = WorkflowTexts.paced.replacingOccurrences(
            of: "saga_id: \"${input.id}\" }", with: "saga_id: \"${input.id}\", priority: \"${input.tier}\" }")
        let definition = try WorkflowLoader.load(yaml: text, file: "paced.yaml")
        let engine = SagaEngine(jitterSeed: 1, admission: ClosedGate())
        let start = Timestamp(milliseconds: 1_700_000_000_000)
        let input: JSONValue = ["id": "o-1", "tier": "high"]
        let held = engine.start(definition: definition, definitionHash: "h", sagaId: "o-1", input: input, now: start)
        #expect(held.actions.contains { if case .holdCommand = $0 { true } else { false } })

        let directory = try TemporaryDirectory()
        let path = directory.file("p.sqlite")
        let store = try SagaStore(configuration: SagaStore.Configuration(path: path, durability: .normal))
        let hash = try store.saveDefinition(name: "paced", version: 1, source: text, at: start)
        var instance = held.instance
        instance.definitionHash = hash
        var transition = held
        transition.instance = instance
        try store.commit([
            SagaChange(
                event: .start(input: input), before: nil, transition: transition, definition: definition, at: start,
                owner: "w1", inboxMessageId: "start-1")
        ])
        try store.close()

        let later = start.adding(.seconds(3 * 3_600))
        let report = try SagaInspector(path: path).stuckReport(now: later, policy: StuckPolicy())
        let counts = Dictionary(report.summaries.map { ($0.stuckClass, $0.count) }, uniquingKeysWith: +)
        #expect(counts[StuckClass.onSchedule] == 1, "\(StuckView.text(report))")
        #expect(counts[StuckClass.noProgress, default: 0] == 0)

        let detail = SagaDetail(
            record: SagaRecord(
                row: SagaRow(
                    key: instance.key, definitionHash: hash, version: 1, status: instance.status,
                    currentStep: "accept", owner: "w1", startedAt: start, updatedAt: instance.updatedAt,
                    failureCode: nil),
                instance: instance),
            definition: definition, timers: [], journal: [], now: later)
        #expect(detail.diagnosis.stuckClass == .onSchedule)
        #expect(
            detail.diagnosis.reason.hasPrefix("not stuck: erp.accept (accept) is held back by a participant's limit"),
            "\(detail.diagnosis.reason)")
        let shown = ShowView.text(detail)
        #expect(shown.contains("priority       high"), "\(shown)")
        #expect(shown.contains("held back by a participant's limit since"), "\(shown)")
        #expect(!shown.contains("timer released"), "a hold timer is not shown as a timer")
    }
}
