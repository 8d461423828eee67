import PlainText
import WaybillSimulator

/// The backorders of a demo run, from inventory's and the ERP's ledgers: orders that shipped what was in stock and
/// waited for the rest, and how each wait ended.
public struct BackorderSummary: Sendable, Hashable {
    /// Backorders inventory created (one per order at most).
    public var backordered: Int
    /// Filled by arriving stock, and every shipment of it released.
    public var shipped: Int
    /// Filled, with shipments not released yet (a saga still running, or suspended).
    public var filledNotShipped: Int
    /// Cancelled at the deadline (the hold undone).
    public var cancelled: Int
    /// Still waiting for stock.
    public var open: Int
    /// Order lines the ERP cancelled for backorders that were not filled.
    public var linesCancelled: Int
    /// Units that arrived during the run.
    public var unitsArrived: Int
    /// SKUs that never arrive.
    public var discontinued: [String]
    /// The deadline the run's workflow copy had.
    public var deadline: Duration

    init(_ ledger: SimulationLedger, discontinued: [String], deadline: Duration) {
        let all = ledger.backorders.values
        backordered = all.count
        shipped = all.filter { $0.status == .filled && $0.heldUnits == 0 }.count
        filledNotShipped = all.filter { $0.status == .filled && $0.heldUnits > 0 }.count
        cancelled = all.filter { $0.status == .cancelled }.count
        open = all.filter { $0.status == .open }.count
        linesCancelled = ledger.orders.values.reduce(0) { $0 + $1.cancelledLines.count }
        unitsArrived = ledger.arrivals.values.reduce(0) { $0 + $1.values.reduce(0, +) }
        self.discontinued = discontinued
        self.deadline = deadline
    }

    /// The summary's lines, with a heading.
    var lines: [String] {
        func row(_ label: String, _ count: Int, _ meaning: String) -> String {
            "  \(label.padded(to: 14)) \(Format.grouped(count).padded(to: 7, .right))   \(meaning)"
        }
        var lines = ["Backorders (ship what is in stock, wait for the rest)"]
        lines.append(row("backordered", backordered, "shipped what was in stock; the rest waited for stock"))
        lines.append(row("filled", shipped, "stock arrived: released, shipped and invoiced as a second delivery"))
        if filledNotShipped > 0 { lines.append(row("filled, held", filledNotShipped, "not shipped yet")) }
        lines.append(
            row(
                "cancelled", cancelled,
                "no stock by the deadline (\(deadline.readable) here): hold undone, "
                    + "\(Format.grouped(linesCancelled)) lines cancelled in the ERP"))
        if open > 0 { lines.append(row("still open", open, "waiting for stock")) }
        let never = discontinued.isEmpty ? "" : " (never \(discontinued.joined(separator: ", ")): discontinued)"
        lines.append("  \(Format.grouped(unitsArrived)) units arrived for them\(never)")
        return lines
    }
}
