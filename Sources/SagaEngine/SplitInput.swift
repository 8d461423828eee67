import SplitPlanner
import WaybillDefinition

/// Converts between the split step's JSON inputs/outputs and the planner's types.
///
/// An input without the documented shape (docs/workflows.md, "The split step") throws
/// ``SplitPlanningError/invalidRequest(_:)``, like a request the planner rejects, so ``stepError(_:)`` turns both
/// into the `invalid_split_input` step error.
enum SplitInput {
    static func lines(_ value: JSONValue) throws -> [OrderLine] {
        guard case .array(let elements) = value else {
            throw SplitPlanningError.invalidRequest(
                "split lines must be an array of {sku, quantity}, got \(value.typeName)")
        }
        return try elements.enumerated().map { index, element in
            guard let sku = element["sku"]?.stringValue, let quantity = element["quantity"]?.intValue else {
                throw SplitPlanningError.invalidRequest(
                    "split line \(index) needs a string 'sku' and an integer 'quantity'")
            }
            return OrderLine(sku: sku, quantity: quantity)
        }
    }

    static func stock(_ value: JSONValue) throws -> [StockLevel] {
        guard case .array(let elements) = value else {
            throw SplitPlanningError.invalidRequest(
                "split stock must be an array of {warehouse, sku, quantity}, got \(value.typeName)")
        }
        return try elements.enumerated().map { index, element in
            guard let warehouse = element["warehouse"]?.stringValue, let sku = element["sku"]?.stringValue,
                let quantity = element["quantity"]?.intValue
            else {
                throw SplitPlanningError.invalidRequest(
                    "split stock entry \(index) needs string 'warehouse' and 'sku' and an integer 'quantity'")
            }
            return StockLevel(warehouse: warehouse, sku: sku, quantity: quantity)
        }
    }

    static func priority(_ value: JSONValue) throws -> [String] {
        guard case .array(let elements) = value else {
            throw SplitPlanningError.invalidRequest(
                "split priority must be an array of warehouse names, got \(value.typeName)")
        }
        return try elements.map { element in
            guard let name = element.stringValue else {
                throw SplitPlanningError.invalidRequest("split priority must list warehouse names as strings")
            }
            return name
        }
    }

    /// Warehouses ordered by the optional numeric `priority` of their stock entries (lower first).
    static func priorityFromStock(_ value: JSONValue) -> [String] {
        var best: [String: Double] = [:]
        for element in value.arrayValue ?? [] {
            guard let warehouse = element["warehouse"]?.stringValue, let rank = element["priority"]?.numberValue else {
                continue
            }
            best[warehouse] = min(best[warehouse] ?? rank, rank)
        }
        return best.sorted { ($0.value, $0.key) < ($1.value, $1.key) }.map(\.key)
    }

    static func json(_ line: OrderLine) -> JSONValue {
        ["sku": .string(line.sku), "quantity": .number(Double(line.quantity))]
    }

    static func json(_ plan: SplitPlan) -> JSONValue {
        let shipments = plan.shipments.map { shipment -> JSONValue in
            [
                "id": .string(shipment.id), "warehouse": .string(shipment.warehouse),
                "lines": .array(shipment.lines.map(json)),
            ]
        }
        return ["shipments": .array(shipments), "backordered": .array(plan.backordered.map(json))]
    }

    static func stepError(_ error: SplitPlanningError) -> StepError {
        switch error {
        case .insufficientStock(let short):
            let missing = short.map { "\($0.sku) x\($0.quantity)" }.joined(separator: ", ")
            return StepError(
                code: "insufficient_stock", message: "not enough stock: short \(missing)", retryable: false)
        case .invalidRequest(let reason):
            return StepError(code: "invalid_split_input", message: reason, retryable: false)
        }
    }
}
