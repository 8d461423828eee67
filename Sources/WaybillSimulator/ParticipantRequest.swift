import CodedError
import WaybillDefinition

/// The operations the simulated participants offer, by routing key.
enum Operation: Hashable {
    case acceptOrder
    case cancelOrder
    case reserve
    case releaseReservation
    case releaseShipment(warehouse: String)
    case cancelShipment(warehouse: String)
    case createShipment
    case createInvoice
    case authorizeReturn
    case voidReturn
    case receiveReturn
    case inspectReturn
    case restock
    case unstock
    case issueCredit
    case createBackorder
    case cancelBackorder
    case cancelOrderLines

    /// The routing keys that do not depend on the warehouses.
    static let fixedRoutingKeys: [String: Operation] = [
        "erp.order.accept": .acceptOrder,
        "erp.order.cancel": .cancelOrder,
        "inventory.reserve": .reserve,
        "inventory.release": .releaseReservation,
        "tms.shipment.create": .createShipment,
        "billing.invoice.create": .createInvoice,
        "erp.return.authorize": .authorizeReturn,
        "erp.return.void": .voidReturn,
        "wms.return.receive": .receiveReturn,
        "qa.return.inspect": .inspectReturn,
        "inventory.restock": .restock,
        "inventory.unstock": .unstock,
        "billing.credit.issue": .issueCredit,
        "inventory.backorder.create": .createBackorder,
        "inventory.backorder.cancel": .cancelBackorder,
        "erp.order.lines.cancel": .cancelOrderLines,
    ]

    /// The operation `routingKey` names, or `nil` when no participant handles it (including `wms.<warehouse>.*` for
    /// a warehouse that does not exist).
    init?(routingKey: String, warehouses: Set<String>) {
        if let operation = Self.fixedRoutingKeys[routingKey] {
            self = operation
            return
        }
        let words = routingKey.split(separator: ".", omittingEmptySubsequences: false)
        guard words.count == 3, words[0] == "wms", warehouses.contains(String(words[1])) else { return nil }
        switch words[2] {
        case "release": self = .releaseShipment(warehouse: String(words[1]))
        case "cancel": self = .cancelShipment(warehouse: String(words[1]))
        default: return nil
        }
    }

    /// Whether the operation undoes another one (what a `compensate` of order-fulfillment sends).
    var isUndo: Bool {
        switch self {
        case .cancelOrder, .releaseReservation, .cancelShipment, .voidReturn, .unstock, .cancelBackorder: true
        case .acceptOrder, .reserve, .releaseShipment, .createShipment, .createInvoice, .authorizeReturn,
            .receiveReturn, .inspectReturn, .restock, .issueCredit, .createBackorder, .cancelOrderLines:
            false
        }
    }

    /// Every routing key the participants handle for `warehouses`, sorted.
    static func routingKeys(warehouses: some Sequence<String>) -> [String] {
        var keys = Array(fixedRoutingKeys.keys)
        for warehouse in warehouses {
            keys.append("wms.\(warehouse).release")
            keys.append("wms.\(warehouse).cancel")
        }
        return keys.sorted()
    }
}

/// A command body checked against what its operation needs.
///
/// An undo names what it undoes by a body field (`orderId`, `reservationId` or `orderId`, `shipmentId`). When the
/// command also carries the forward command's key (the `waybill-compensates` header) that field may be missing or
/// null: a step whose reply never came is compensated with no output to read, and the key alone finds the effect.
enum ParticipantRequest {
    case acceptOrder(orderId: String, lines: [ItemQuantity])
    case cancelOrder(orderId: String?)
    case reserve(orderId: String, lines: [ItemQuantity])
    /// By reservation id, else the order's reservation.
    case releaseReservation(reservationId: String?, orderId: String?)
    case releaseShipment(warehouse: String, shipmentId: String, lines: [ItemQuantity])
    case cancelShipment(warehouse: String, shipmentId: String?)
    case createShipment(shipmentId: String, warehouse: String)
    case createInvoice(orderId: String, shipments: [JSONValue])
    case authorizeReturn(returnId: String, orderId: String, lines: [ItemQuantity])
    case voidReturn(returnId: String?)
    case receiveReturn(returnId: String, warehouse: String, lines: [ItemQuantity])
    case inspectReturn(returnId: String)
    case restock(returnId: String, line: StockRecord)
    /// By the forward command's key, else the body's return, warehouse and SKU.
    case unstock(returnId: String?, line: StockRecord?)
    case issueCredit(returnId: String, customerId: String, amount: Double)
    case createBackorder(orderId: String, lines: [ItemQuantity])
    /// By the order id (the hold's forward key is not needed: one backorder per order).
    case cancelBackorder(orderId: String)
    case cancelOrderLines(orderId: String, lines: [ItemQuantity])

    /// Why a command was refused; the participant answers it with the `bad_request` reply code. The message names
    /// fields and positions only, never the payload's values.
    typealias BadRequest = CodedError<ParticipantBadRequestDomain>

    /// Reads `command` for `operation`: it needs an idempotency key and a JSON body.
    init(_ operation: Operation, command: SimulatedCommand) throws(BadRequest) {
        guard !command.idempotencyKey.isEmpty else {
            throw BadRequest(.missingIdempotencyKey, message: "the idempotency-key header is missing or empty")
        }
        switch command.body {
        case .json(let body): try self.init(operation, body: body, keyed: command.compensates != nil)
        case .undecodable(let reason): throw BadRequest(.notJSON, message: "the body is not JSON: \(reason)")
        }
    }

    /// Reads `body` for `operation`. Fields other than the ones needed are ignored. `keyed` says the command carries
    /// the key of the forward command it undoes, so an undo may leave its identifying field out.
    init(_ operation: Operation, body: JSONValue, keyed: Bool = false) throws(BadRequest) {
        guard case .object(let fields) = body else {
            throw BadRequest(message: "the body must be a JSON object, got \(body.typeName)")
        }
        switch operation {
        case .acceptOrder:
            self = .acceptOrder(orderId: try Self.string("orderId", in: fields), lines: try Self.lines(in: fields))
        case .cancelOrder:
            let orderId = try Self.optionalString("orderId", in: fields)
            if orderId == nil && !keyed { throw BadRequest(message: "'orderId' is missing") }
            self = .cancelOrder(orderId: orderId)
        case .reserve:
            self = .reserve(orderId: try Self.string("orderId", in: fields), lines: try Self.lines(in: fields))
        case .releaseReservation:
            let reservationId = try Self.optionalString("reservationId", in: fields)
            let orderId = try Self.optionalString("orderId", in: fields)
            if reservationId == nil && orderId == nil && !keyed {
                throw BadRequest(message: "'reservationId' is missing, and so is 'orderId'")
            }
            self = .releaseReservation(reservationId: reservationId, orderId: orderId)
        case .releaseShipment(let warehouse):
            self = .releaseShipment(
                warehouse: warehouse, shipmentId: try Self.string("shipmentId", in: fields),
                lines: try Self.lines(in: fields))
        case .cancelShipment(let warehouse):
            let shipmentId = try Self.optionalString("shipmentId", in: fields)
            if shipmentId == nil && !keyed { throw BadRequest(message: "'shipmentId' is missing") }
            self = .cancelShipment(warehouse: warehouse, shipmentId: shipmentId)
        case .createShipment:
            self = .createShipment(
                shipmentId: try Self.string("shipmentId", in: fields),
                warehouse: try Self.string("warehouse", in: fields))
        case .createInvoice:
            guard case .array(let shipments)? = fields["shipments"] else {
                throw BadRequest(
                    message: "'shipments' must be an array, got \(fields["shipments"]?.typeName ?? "nothing")")
            }
            self = .createInvoice(orderId: try Self.string("orderId", in: fields), shipments: shipments)
        case .authorizeReturn:
            self = .authorizeReturn(
                returnId: try Self.string("returnId", in: fields), orderId: try Self.string("orderId", in: fields),
                lines: try Self.lines(in: fields))
        case .voidReturn:
            let returnId = try Self.optionalString("returnId", in: fields)
            if returnId == nil && !keyed { throw BadRequest(message: "'returnId' is missing") }
            self = .voidReturn(returnId: returnId)
        case .receiveReturn:
            self = .receiveReturn(
                returnId: try Self.string("returnId", in: fields), warehouse: try Self.string("warehouse", in: fields),
                lines: try Self.lines(in: fields))
        case .inspectReturn:
            self = .inspectReturn(returnId: try Self.string("returnId", in: fields))
        case .restock:
            self = .restock(returnId: try Self.string("returnId", in: fields), line: try Self.stockLine(in: fields))
        case .unstock:
            let returnId = try Self.optionalString("returnId", in: fields)
            let line = fields["sku"] == nil || fields["sku"] == .null ? nil : try Self.stockLine(in: fields)
            if (returnId == nil || line == nil) && !keyed {
                throw BadRequest(message: "'returnId', 'warehouse', 'sku' and 'quantity' are needed")
            }
            self = .unstock(returnId: returnId, line: line)
        case .issueCredit:
            guard case .number(let amount)? = fields["amount"], amount >= 0 else {
                throw BadRequest(
                    message: "'amount' must be a number of 0 or more, got \(fields["amount"]?.typeName ?? "nothing")")
            }
            self = .issueCredit(
                returnId: try Self.string("returnId", in: fields),
                customerId: try Self.string("customerId", in: fields),
                amount: amount)
        case .createBackorder:
            self = .createBackorder(orderId: try Self.string("orderId", in: fields), lines: try Self.lines(in: fields))
        case .cancelBackorder:
            self = .cancelBackorder(orderId: try Self.string("orderId", in: fields))
        case .cancelOrderLines:
            self = .cancelOrderLines(orderId: try Self.string("orderId", in: fields), lines: try Self.lines(in: fields))
        }
    }

    /// `warehouse`, `sku` and a `quantity` of 1 or more.
    private static func stockLine(in fields: [String: JSONValue]) throws(BadRequest) -> StockRecord {
        guard let quantity = fields["quantity"]?.intValue, quantity > 0 else {
            throw BadRequest(message: "'quantity' must be a whole number of 1 or more")
        }
        return StockRecord(
            warehouse: try string("warehouse", in: fields), sku: try string("sku", in: fields), quantity: quantity)
    }

    /// A non-empty string, or `nil` when the field is missing or null.
    private static func optionalString(_ name: String, in fields: [String: JSONValue]) throws(BadRequest) -> String? {
        if fields[name] == nil || fields[name] == .null { return nil }
        return try string(name, in: fields)
    }

    private static func string(_ name: String, in fields: [String: JSONValue]) throws(BadRequest) -> String {
        guard let value = fields[name] else { throw BadRequest(message: "'\(name)' is missing") }
        guard case .string(let text) = value, !text.isEmpty else {
            throw BadRequest(message: "'\(name)' must be a non-empty string, got \(value.typeName)")
        }
        return text
    }

    /// The `lines` array: `{sku, quantity}` objects, quantity an integer of 0 or more. Lines of the same SKU are
    /// merged (first position kept).
    private static func lines(in fields: [String: JSONValue]) throws(BadRequest) -> [ItemQuantity] {
        guard case .array(let elements)? = fields["lines"] else {
            throw BadRequest(
                message: "'lines' must be an array of {sku, quantity}, got \(fields["lines"]?.typeName ?? "nothing")")
        }
        var merged: [ItemQuantity] = []
        var positions: [String: Int] = [:]
        for (index, element) in elements.enumerated() {
            guard let sku = element["sku"]?.stringValue, !sku.isEmpty, let quantity = element["quantity"]?.intValue,
                quantity >= 0
            else {
                throw BadRequest(
                    message: "line \(index) needs a non-empty string 'sku' and an integer 'quantity' of 0 or more")
            }
            if let position = positions[sku] {
                let (sum, overflow) = merged[position].quantity.addingReportingOverflow(quantity)
                guard !overflow else { throw BadRequest(message: "the quantities of line \(index)'s SKU overflow") }
                merged[position].quantity = sum
            } else {
                positions[sku] = merged.count
                merged.append(ItemQuantity(sku: sku, quantity: quantity))
            }
        }
        return merged
    }
}

/// The simulated participants' refusal family (``ParticipantRequest/BadRequest``): its codes are
/// `simulator.<snake_case>`.
enum ParticipantBadRequestDomain: ErrorDomain {}

/// What is wrong with a command: the raw values (`simulator.<snake_case>`) are stable.
extension ErrorCode where Domain == ParticipantBadRequestDomain {
    /// The `idempotency-key` header is missing or empty.
    static let missingIdempotencyKey = Self(rawValue: "simulator.missing_idempotency_key")
    /// The body is not JSON.
    static let notJSON = Self(rawValue: "simulator.not_json")
    /// The body is not an object, or a field is missing or of the wrong type.
    static let badField = Self(rawValue: "simulator.bad_field")
}

extension CodedError where Domain == ParticipantBadRequestDomain {
    /// A refusal; the code is ``ErrorCode/badField`` unless the header or the body as a whole is wrong.
    init(_ code: Code = .badField, message: String) {
        self.init(code, message)
    }
}
