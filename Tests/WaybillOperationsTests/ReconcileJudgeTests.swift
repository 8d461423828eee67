import SagaEngine
import Testing
import WaybillDefinition
import WaybillWire

@testable import WaybillOperations

/// How a reconciliation reads one answer: every pair of what the saga says and what the participant says.
@Suite struct ReconcileJudgeTests {
    static func question(_ expectation: Verification.Expectation, undo: Bool = false) -> Reconciler.Question {
        let undoCommand = CommandMessage(
            messageId: "", routingKey: "wms.w1.cancel", idempotencyKey: "o-1/release/0/compensate", step: "release",
            branch: 0, kind: .compensate, attempt: 2, body: ["shipmentId": "o-1-w1"], compensates: "o-1/release/0",
            outcomeUnknown: false)
        return Reconciler.Question(
            key: SagaKey(workflow: "order-fulfillment", id: "o-1"),
            status: expectation == .applied ? .completed : .compensated,
            verification: Verification(
                step: "release", branch: 0, idempotencyKey: "o-1/release/0", routingKey: "wms.w1.shipment.status",
                body: ["shipmentId": "o-1-w1"], expectation: expectation, undo: undo ? undoCommand : nil))
    }

    static func kind(
        _ expectation: Verification.Expectation, _ answer: VerifyQuery.Answer?, undo: Bool = false
    )
        -> ReconcileFinding.Kind?
    {
        Reconciler.judge(question(expectation, undo: undo), answer: answer).finding?.kind
    }

    @Test func matchingAnswersAreNoFinding() {
        #expect(Self.kind(.applied, .state(.applied, details: nil)) == nil)
        #expect(Self.kind(.notApplied, .state(.undone, details: nil)) == nil)
        #expect(Self.kind(.notApplied, .state(.absent, details: nil)) == nil)
    }

    @Test func eachKindOfDrift() throws {
        #expect(Self.kind(.applied, .state(.absent, details: nil)) == .missingEffect)
        #expect(Self.kind(.applied, .state(.undone, details: nil)) == .undoneEffect)
        let leaked = try #require(
            Reconciler.judge(Self.question(.notApplied, undo: true), answer: .state(.applied, details: ["bin": "A1"]))
                .finding)
        #expect(leaked.kind == .leakedEffect && leaked.repairable)
        #expect(leaked.details == ["bin": "A1"])
        #expect(leaked.participant == "wms" && leaked.step == "release[0]" && leaked.expected == "not_applied")
        #expect(leaked.message.contains("waybill reconcile --repair"), "\(leaked.message)")
        let failedStep = try #require(
            Reconciler.judge(Self.question(.notApplied), answer: .state(.applied, details: nil)).finding)
        #expect(failedStep.kind == .leakedEffect && !failedStep.repairable, "nothing to send again")
        #expect(failedStep.message.contains("an operator must undo it"), "\(failedStep.message)")
    }

    @Test func questionsLeftOpen() {
        #expect(Self.kind(.applied, nil) == .unanswered)
        #expect(Self.kind(.applied, .refused(code: "unknown_command", message: "no such query")) == .refused)
        #expect(Self.kind(.applied, .unreadable("no state")) == .unreadable)
        #expect(![ReconcileFinding.Kind.unanswered, .refused, .unreadable, .unbuildable].contains { $0.isDrift })
    }

    @Test func suspendedSagasAreObservedNotJudged() {
        let verdict = Reconciler.judge(Self.question(.unjudged), answer: .state(.absent, details: nil))
        #expect(verdict.finding == nil)
        #expect(verdict.observation?.observed == "absent")
    }

    @Test func answersAreRead() {
        #expect(
            VerifyQuery.answer(Array(#"{"status":"ok","output":{"state":"undone"}}"#.utf8))
                == .state(.undone, details: nil))
        #expect(
            VerifyQuery.answer(Array(#"{"status":"ok","output":{"state":"applied","details":{"qty":2}}}"#.utf8))
                == .state(.applied, details: ["qty": 2]))
        #expect(
            VerifyQuery.answer(Array(#"{"status":"error","code":"unknown_key","message":"never seen"}"#.utf8))
                == .refused(code: "unknown_key", message: "never seen"))
        guard case .unreadable = VerifyQuery.answer(Array(#"{"status":"ok","output":{"state":"maybe"}}"#.utf8)) else {
            Issue.record("a state that is not applied, undone or absent is unreadable")
            return
        }
        guard case .unreadable = VerifyQuery.answer(Array("not json".utf8)) else {
            Issue.record("a body that is not JSON is unreadable")
            return
        }
    }
}
