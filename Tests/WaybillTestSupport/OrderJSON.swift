import WaybillDefinition

/// The JSON documents of the order-fulfillment workflow (`Workflows/order-fulfillment.yaml`) as tests write them: an
/// order, its lines, and warehouse stock. Quantities are whole numbers; nothing here checks them.
public enum OrderJSON {
    /// `[{"sku": ..., "quantity": ...}]` from `(sku, quantity)` pairs, in the order given; a SKU may repeat.
    public static func lines(_ lines: [(String, Int)]) -> JSONValue {
        .array(lines.map { ["sku": .string($0.0), "quantity": .number(Double($0.1))] })
    }

    /// The same lines written as a literal, `["sku-a": 2, "sku-b": 1]`, in the order written; a SKU may repeat.
    public static func lines(_ pairs: KeyValuePairs<String, Int>) -> JSONValue {
        lines(pairs.map { ($0.key, $0.value) })
    }

    /// `{"orderId": id, "lines": [...]}`: the body of an `order.placed` start message.
    public static func order(_ id: String, lines: [(String, Int)]) -> JSONValue {
        ["orderId": .string(id), "lines": Self.lines(lines)]
    }

    /// `[{"warehouse": ..., "sku": ..., "quantity": ...}]` from `(warehouse, sku, quantity)` rows: the `stock` of an
    /// `inventory.reserve` reply, which the split step plans from.
    public static func stock(_ rows: [(String, String, Int)]) -> JSONValue {
        .array(rows.map { ["warehouse": .string($0.0), "sku": .string($0.1), "quantity": .number(Double($0.2))] })
    }
}
