import Testing
import WaybillTestSupport

@testable import WaybillDefinition

/// Reading `wait` steps that wait for a message: the model the engine gets, and the path checks `on_timeout` joins.
@Suite("Message waits in workflow files")
struct WaitReaderTests {
    @Test("message, match, key, timeout and on_timeout read into the model")
    func model() throws {
        let definition = try WorkflowLoader.load(yaml: WorkflowTexts.awaitingPaymentOrRemind, file: "remind.yaml")
        guard case .wait(let spec) = definition.steps[1].action, let message = spec.message else {
            Issue.record("payment is not a message wait: \(definition.steps[1].action)")
            return
        }
        #expect(spec.duration == .seconds(86_400))
        #expect(spec.onTimeout == .step("remind"))
        #expect(message.exchange == "payments")
        #expect(message.routingKey == "payment.*.confirmed")
        #expect(message.keyText == "${message.orderId}")
        #expect(message.key == (try Template.parse(string: "${message.orderId}")))
        #expect(message.match == (try Template.parse(string: "${input.id}")))
        let delay = try WorkflowLoader.load(yaml: WorkflowTexts.paced, file: "paced.yaml")
        #expect(delay.steps[1].action == .wait(.delay(.seconds(7_200))))
    }

    @Test("on_timeout is a path: one that jumps over the pivot is refused, like a choice's")
    func timeoutPathOverPivot() throws {
        let text = WorkflowTexts.awaitingPaymentOrRemind.replacingOccurrences(
            of: "    command: tms.create\n", with: "    command: tms.create\n    pivot: true\n")
        #expect(text != WorkflowTexts.awaitingPaymentOrRemind)
        let error = try #require(throws: WorkflowDiagnostics.self) {
            try WorkflowLoader.load(yaml: text, file: "remind.yaml")
        }
        #expect(error.description.contains("a path reaches step 'remind'"))
    }

    @Test("the fail target of on_timeout reads its code and message")
    func failTarget() throws {
        let text = WorkflowTexts.awaitingPaymentOrRemind.replacingOccurrences(
            of: "on_timeout: { next: remind }", with: "on_timeout: { fail: { code: unpaid } }")
        let definition = try WorkflowLoader.load(yaml: text, file: "fail.yaml")
        guard case .wait(let spec) = definition.steps[1].action else {
            Issue.record("payment is not a wait")
            return
        }
        #expect(spec.onTimeout == .fail(code: "unpaid", message: "no message came before the wait payment timed out"))
    }
}
