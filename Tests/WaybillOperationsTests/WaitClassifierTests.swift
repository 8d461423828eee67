import SagaEngine
import SagaStore
import Testing
import WaybillDefinition
import WaybillOperations
import WaybillTestSupport

/// A saga in a `wait` step is on schedule, however long it waits, until its timer is overdue.
@Suite("Stuck classes of a waiting saga")
struct WaitClassifierTests {
    @Test("waiting is on schedule for hours; a wait whose end is overdue is timer-overdue")
    func waitingIsOnSchedule() throws {
        let definition = try WorkflowLoader.load(yaml: WorkflowTexts.paced, file: "paced.yaml")
        let engine = SagaEngine(jitterSeed: 1)
        let start = Timestamp(milliseconds: 1_700_000_000_000)
        let started = engine.start(
            definition: definition, definitionHash: "h", sagaId: "o-1", input: ["id": "o-1"], now: start)
        guard
            case .sendCommand(let accept)? = started.actions.first(where: {
                if case .sendCommand = $0 { true } else { false }
            })
        else {
            Issue.record("no accept command: \(started.actions)")
            return
        }
        let waiting = engine.apply(
            .reply(correlationId: accept.messageId, outcome: .ok(output: nil)), to: started.instance,
            definition: definition, now: start.adding(milliseconds: 10)
        ).instance
        let policy = StuckPolicy()
        #expect(StuckClassifier.classify(waiting, now: start.adding(.seconds(3_600)), policy: policy) == .onSchedule)
        #expect(
            StuckClassifier.classify(waiting, now: start.adding(.seconds(7_200 + 120)), policy: policy) == .timerOverdue
        )
        let detail = SagaDetail(
            record: SagaRecord(
                row: SagaRow(
                    key: waiting.key, definitionHash: "h", version: 1, status: waiting.status,
                    currentStep: "cooling-off", owner: "w1", startedAt: start, updatedAt: waiting.updatedAt,
                    failureCode: nil),
                instance: waiting),
            definition: definition, timers: [], journal: [], now: start.adding(.seconds(3_600)))
        #expect(detail.diagnosis.reason.hasPrefix("not stuck: cooling-off waits until"), "\(detail.diagnosis)")
        #expect(ShowView.text(detail).contains("wait ends"), "\(ShowView.text(detail))")
    }

    @Test("a saga waiting for a message says which message, with what key, until when and what happens then")
    func waitingForAMessage() throws {
        let definition = try WorkflowLoader.load(yaml: WorkflowTexts.awaitingPaymentOrRemind, file: "remind.yaml")
        let engine = SagaEngine(jitterSeed: 1)
        let start = Timestamp(milliseconds: 1_700_000_000_000)
        let started = engine.start(
            definition: definition, definitionHash: "h", sagaId: "o-7", input: ["id": "o-7"], now: start)
        let accept = try #require(
            started.actions.lazy.compactMap { if case .sendCommand(let command) = $0 { command } else { nil } }.first)
        let waiting = engine.apply(
            .reply(correlationId: accept.messageId, outcome: .ok(output: nil)), to: started.instance,
            definition: definition, now: start.adding(milliseconds: 10)
        ).instance
        let detail = SagaDetail(
            record: SagaRecord(
                row: SagaRow(
                    key: waiting.key, definitionHash: "h", version: 2, status: waiting.status, currentStep: "payment",
                    owner: "w1", startedAt: start, updatedAt: waiting.updatedAt, failureCode: nil),
                instance: waiting),
            definition: definition, timers: [], journal: [], now: start.adding(.seconds(3_600)))
        #expect(detail.diagnosis.stuckClass == .onSchedule)
        #expect(
            detail.diagnosis.reason.hasPrefix(
                "not stuck: payment waits for a message on payments payment.*.confirmed whose ${message.orderId} is "
                    + "'o-7', until"),
            "\(detail.diagnosis.reason)")
        #expect(detail.diagnosis.reason.hasSuffix("(then remind)"), "\(detail.diagnosis.reason)")
    }
}
