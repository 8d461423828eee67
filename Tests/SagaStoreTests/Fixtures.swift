import Foundation
import WaybillDefinition

@testable import SagaEngine
@testable import SagaStore

/// Builders for hand-made sagas (the engine's transition logic is not needed to exercise the store).
enum Fixtures {
    static let workflow = "order-fulfillment"
    static let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

    static func key(_ id: String) -> SagaKey { SagaKey(workflow: workflow, id: id) }

    static func timer(_ id: String, _ kind: SagaTimer.Kind = .replyTimeout, due: Int64) -> SagaTimer {
        SagaTimer(id: id, kind: kind, dueAt: Timestamp(milliseconds: due))
    }

    /// A saga with every field of every nested type set to a non-default value.
    static func fullInstance(id: String = "ord-1") -> SagaInstance {
        let error = StepError(code: "out_of_stock", message: "SKU-1 short by 2 at \"berlin\"\n", retryable: false)
        var branch = BranchState(
            item: ["id": "ord-1-s0", "warehouse": "berlin", "lines": [["sku": "SKU-1", "quantity": 2]]], round: 2)
        branch.status = .compensationRetryWait
        branch.attempt = 3
        branch.compensationAttempt = 2
        branch.pending = PendingCommand(
            messageId: "ord-1/release/0/a3/m41-\(String(repeating: "x", count: 40))", routingKey: "wms.berlin.release",
            kind: .compensate, attempt: 2, sentAt: Timestamp(milliseconds: 1_700_000_000_123))
        branch.timer = timer("ord-1/t42", .retry, due: 1_700_000_030_000)
        branch.output = .null
        branch.lastError = error
        branch.startedAt = Timestamp(milliseconds: -5)
        branch.finishedAt = Timestamp(milliseconds: Int64.max)
        branch.unansweredAttempts = 2
        var step = StepState()
        step.status = .failing
        step.branches = [branch, BranchState(item: nil, round: 0)]
        step.output = ["released": true, "weight": 1.25, "big": 9_007_199_254_740_993.0, "neg": -0.0, "tiny": 1e-300]
        step.round = 2
        step.reallocations = 1
        step.excludedWarehouses = ["hamburg", "münchen-süd-long-warehouse-name"]
        step.startedAt = Timestamp(milliseconds: Int64.min)
        step.finishedAt = Timestamp(milliseconds: 0)
        var undone = branch
        undone.status = .compensated
        undone.round = 1
        undone.output = ["shipmentId": "ord-1-s0-r1"]
        step.retired = [
            RetiredBranch(index: 3, state: undone), RetiredBranch(index: 0, state: BranchState(item: nil, round: 0)),
        ]
        var instance = SagaInstance(
            key: key(id), version: 7, definitionHash: hash, status: .compensating,
            input: ["orderId": .string(id), "lines": [["sku": "SKU-1", "quantity": 2]], "note": "ünïcødé ✓ \u{0}"],
            steps: [step, StepState()], cursor: 1,
            completions: [BranchRef(step: 0, branch: 1), BranchRef(step: 1, branch: 0)],
            compensation: CompensationPlan(
                purpose: .reallocate(splitStep: 2, excludedWarehouses: ["berlin"]),
                queue: [BranchRef(step: 0, branch: 0)]),
            pivotPassed: true,
            failure: SagaFailure(
                step: "release", branch: 0, error: error, at: Timestamp(milliseconds: 1_700_000_000_999)),
            startedAt: Timestamp(milliseconds: 1_700_000_000_000),
            updatedAt: Timestamp(milliseconds: 1_700_000_000_999),
            sequence: 42)
        instance.trace = SagaTrace(
            traceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", traceState: "congo=t61rcWkgMzE")
        return instance
    }

    /// A small running saga waiting for one reply.
    static func runningInstance(id: String, step: Int = 0, updatedAt: Int64 = 1_700_000_000_000) -> SagaInstance {
        var instance = fullInstance(id: id)
        instance.status = .running
        instance.compensation = nil
        instance.failure = nil
        instance.pivotPassed = false
        instance.cursor = step
        instance.updatedAt = Timestamp(milliseconds: updatedAt)
        return instance
    }
}
