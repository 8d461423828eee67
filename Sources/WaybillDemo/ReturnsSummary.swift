import PlainText
import SagaEngine
import WaybillDefinition
import WaybillSimulator

/// The returns part of a demo run: customers send back part of the orders that completed, and the returns workflow
/// authorizes, receives, inspects, restocks and credits them; a customer whose account is closed gets no credit, and
/// that return is undone (restocked units out again, authorization voided).
public struct ReturnsSummary: Sendable {
    /// `finished`, `timed out` or `interrupted`.
    public var outcome: String
    /// Returns published.
    public var published: Int
    /// Return sagas by status, as the returns pool's files have them.
    public var byStatus: [SagaStatus: Int]
    /// Why returns compensated or were suspended: status to error code to count.
    public var reasons: [SagaStatus: [String: Int]]
    /// Credit notes billing issued.
    public var credits: Int
    /// Returned units back in stock (restocked and not taken out again).
    public var restockedUnits: Int
    /// Things held for returns that ended compensated (an open authorization, restocked units), one line each.
    public var leaks: [String]
    /// Effects the participants' ledgers show applied more than once, and stock rows that do not balance, once the
    /// returns ended (orders and returns together; must be empty).
    public var duplicateEffects: [String]
    /// The returns pool's data directory.
    public var dataDirectory: String

    /// Returns in an end state (suspended included).
    public var ended: Int {
        byStatus.filter { $0.key != .running && $0.key != .compensating }.values.reduce(0, +)
    }

    /// Whether every return published reached an end state, with nothing left held.
    public var everyReturnEnded: Bool { ended == published && outcome == "finished" }

    /// The return requests for the completed orders among `orders`: every tenth customer's account is closed.
    static func requests(
        for orders: [(sagaId: String, body: [UInt8])], completed: Set<String>, count: Int, warehouse: String
    ) throws -> [(sagaId: String, body: [UInt8])] {
        var requests: [(sagaId: String, body: [UInt8])] = []
        for (index, order) in orders.filter({ completed.contains($0.sagaId) }).prefix(count).enumerated() {
            let lines = try JSONText.decode(order.body)["lines"] ?? []
            let customer = (index + 1) % 10 == 0 ? "closed-c-\(index + 1)" : "c-\(index + 1)"
            let returnId = "r-" + order.sagaId
            let body: JSONValue = [
                "returnId": .string(returnId), "orderId": .string(order.sagaId), "customerId": .string(customer),
                "currency": "EUR", "warehouse": .string(warehouse), "lines": lines,
            ]
            requests.append((returnId, JSONText.encodeBytes(body)))
        }
        return requests
    }

    init(stage: DemoStage, sagaIds: [String], simulator: ParticipantSimulator, outcome: OrderFeed.Outcome) throws {
        let tally = StatusTally(try stage.storedSagas(sagaIds))
        let ledger = simulator.ledger()
        self.outcome = outcome.text
        published = stage.monitor.tally.published
        byStatus = tally.byStatus
        reasons = tally.reasons
        credits = sagaIds.filter { ledger.credits[$0] != nil }.count
        restockedUnits = ledger.restocks.values.filter { sagaIds.contains($0.sagaId) }.reduce(0) {
            $0 + $1.line.quantity
        }
        leaks = ledger.leaks(finishedSagas: tally.finished).map(\.description)
        duplicateEffects =
            ledger.effectMismatches.map(\.description)
            + (ledger.stockImbalances.isEmpty ? [] : ["\(ledger.stockImbalances.count) stock rows do not balance"])
        dataDirectory = stage.dataDirectory
    }

    /// The summary's returns section.
    var lines: [String] {
        var lines = [
            "Returns (customers sending back part of the completed orders; a pool of its own, \(dataDirectory))"
        ]
        let rows: [(String, SagaStatus, String)] = [
            ("completed", .completed, "authorized, received, inspected, resellable lines restocked, credited"),
            (
                "compensated", .compensated,
                "failed before the credit; restocked units taken out again, authorization voided"
            ),
            ("suspended", .suspended, "needs an operator"),
        ]
        for (label, status, meaning) in rows {
            let count = byStatus[status] ?? 0
            if status == .suspended && count == 0 { continue }
            lines.append(
                "  \(label.padded(to: 14)) \(Format.grouped(count).padded(to: 7, .right))   \(meaning)"
                    + StatusTally.because(reasons[status]))
        }
        let open = published - ended
        if open > 0 {
            lines.append("  \("still running".padded(to: 14)) \(Format.grouped(open).padded(to: 7, .right))")
        }
        lines.append(
            "  credits issued: \(credits) · units back in stock: \(restockedUnits) · leaks: \(leaks.count) · "
                + "effects applied twice: \(duplicateEffects.count)")
        for problem in (leaks + duplicateEffects).prefix(10) { lines.append("    ! \(problem)") }
        return lines
    }
}
