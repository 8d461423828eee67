import SagaEngine
import WaybillSimulator

extension FinishedSagaOutcome {
    /// The outcome of a saga in `status`, or `nil` while it runs.
    init?(_ status: SagaStatus) {
        switch status {
        case .completed: self = .completed
        case .compensated: self = .compensated
        case .cancelled: self = .cancelled
        case .suspended: self = .suspended
        case .running, .compensating: return nil
        }
    }
}

extension OrderFeed.Outcome {
    /// `finished`, `timed out` or `interrupted`.
    var text: String {
        switch self {
        case .finished: "finished"
        case .timedOut: "timed out"
        case .interrupted: "interrupted"
        }
    }
}

/// How sagas ended, counted from their stored rows: by status, why (status to error code to count), and each saga's
/// outcome for the participants' leak check. The demo summary, its returns section and the chaos report share it.
struct StatusTally {
    var byStatus: [SagaStatus: Int] = [:]
    var reasons: [SagaStatus: [String: Int]] = [:]
    var finished: [String: FinishedSagaOutcome] = [:]

    init(_ stored: [String: SagaInstanceSummary]) {
        for (id, saga) in stored {
            byStatus[saga.status, default: 0] += 1
            if let code = saga.failureCode { reasons[saga.status, default: [:]][code, default: 0] += 1 }
            finished[id] = FinishedSagaOutcome(saga.status)
        }
    }

    /// ` (out_of_stock 3, rejected 1)`: the codes behind a count, most frequent first; empty without any.
    static func because(_ codes: [String: Int]?) -> String {
        guard let codes, !codes.isEmpty else { return "" }
        return " ("
            + codes.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { "\($0.key) \($0.value)" }
            .joined(separator: ", ") + ")"
    }
}
