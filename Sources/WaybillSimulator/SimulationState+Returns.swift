import SeededRandom
import WaybillDefinition

extension ParticipantRequest {
    /// Whether the request belongs to the returns participants (ERP returns, the returns dock, QA, restocking, credit).
    var isReturn: Bool {
        switch self {
        case .authorizeReturn, .voidReturn, .receiveReturn, .inspectReturn, .restock, .unstock, .issueCredit: true
        case .acceptOrder, .cancelOrder, .reserve, .releaseReservation, .releaseShipment, .cancelShipment,
            .createShipment, .createInvoice, .createBackorder, .cancelBackorder, .cancelOrderLines:
            false
        }
    }
}

/// The returns participants of the `returns` workflow: the ERP authorizes (and voids) a return, the returns dock of a
/// warehouse receives the parcel, QA inspects it (about one line in five is found damaged, the same lines every run of
/// a seed), inventory puts resellable lines back into stock (and takes them out again), and billing issues the credit
/// (refused, `account_closed`, for customers whose id starts with `closed-`).
extension SimulationState {
    /// The price of one returned unit in the simulated price list: the refund is this times the resellable units.
    static let refundPerUnit = 12.5

    /// Runs one returns request; `key` is the command's idempotency key (a restock's effect is kept under it).
    /// `keyed` says the undo named the forward command it undoes (the `waybill-compensates` header): then only that
    /// command's effect is undone, never one found by the body (another branch may have restocked the same line).
    mutating func performReturn(
        _ request: ParticipantRequest, sagaId: String, key: String, undoing: Effect?, keyed: Bool
    ) -> Outcome {
        switch request {
        case .authorizeReturn(let returnId, let orderId, let lines):
            if let existing = returns[returnId], existing.status == .authorized {
                return .alreadyApplied(
                    ["authorizationId": .string(existing.authorizationId), "returnId": .string(returnId)])
            }
            lastAuthorization += 1
            let authorizationId = Self.identifier("rma", lastAuthorization)
            var authorized = SimulationLedger.Return(
                returnId: returnId, orderId: orderId, sagaId: sagaId, authorizationId: authorizationId,
                status: .authorized, receiptId: nil, lines: lines)
            if let voided = returns[returnId] {
                authorized.authorizations = voided.authorizations + 1
                authorized.voids = voided.voids
            }
            returns[returnId] = authorized
            return .applied(["authorizationId": .string(authorizationId), "returnId": .string(returnId)])

        case .voidReturn(let bodyReturnId):
            var returnId = bodyReturnId
            if case .returnAuthorization(let keyed)? = undoing { returnId = keyed }
            guard let returnId, returns[returnId]?.status == .authorized else {
                return .nothingToUndo(["returnId": returnId.map(JSONValue.string) ?? .null, "undone": false])
            }
            returns[returnId]?.status = .voided
            returns[returnId]?.voids += 1
            return .applied(["returnId": .string(returnId), "undone": true])

        case .receiveReturn(let returnId, let warehouse, _):
            guard let authorized = returns[returnId], authorized.status == .authorized else {
                return .refused(.conflict, "return \(returnId) is not authorized; authorize it before it is received")
            }
            guard warehouses.contains(warehouse) else {
                return .refused(.conflict, "no returns dock at warehouse \(warehouse)")
            }
            if let receiptId = authorized.receiptId {
                return .alreadyApplied(["receiptId": .string(receiptId), "returnId": .string(returnId)])
            }
            lastReceipt += 1
            let receiptId = Self.identifier("rcp", lastReceipt)
            returns[returnId]?.receiptId = receiptId
            return .applied(
                ["receiptId": .string(receiptId), "returnId": .string(returnId), "warehouse": .string(warehouse)])

        case .inspectReturn(let returnId):
            guard let received = returns[returnId], received.receiptId != nil else {
                return .refused(.conflict, "return \(returnId) has not been received; inspect it once it is")
            }
            var resellable: [JSONValue] = []
            var damaged: [JSONValue] = []
            var units = 0
            for line in received.lines {
                var random = SplitMix64.keyed(seed: seed, ["inspect", returnId, line.sku])
                let entry: JSONValue = ["sku": .string(line.sku), "quantity": .number(Double(line.quantity))]
                if random.unit() < 0.2 {
                    damaged.append(entry)
                } else {
                    resellable.append(entry)
                    units += line.quantity
                }
            }
            return .applied(
                [
                    "returnId": .string(returnId), "resellable": .array(resellable), "damaged": .array(damaged),
                    "refundAmount": .number(Double(units) * Self.refundPerUnit),
                ])

        case .restock(let returnId, let line):
            guard warehouses.contains(line.warehouse) else {
                return .refused(.conflict, "no warehouse \(line.warehouse) to restock")
            }
            let output: JSONValue = [
                "returnId": .string(returnId), "warehouse": .string(line.warehouse), "sku": .string(line.sku),
                "quantity": .number(Double(line.quantity)),
            ]
            stock[line.warehouse, default: [:]][line.sku, default: 0] += line.quantity
            restocks[key] = SimulationLedger.Restock(returnId: returnId, sagaId: sagaId, line: line)
            return .applied(output)

        case .unstock(let returnId, let line):
            var found: String?
            if case .restock(let forward)? = undoing {
                found = forward
            } else if !keyed, let returnId, let line {
                found = restocks.first { $0.value.returnId == returnId && $0.value.line == line }?.key
            }
            guard let found, let restock = restocks.removeValue(forKey: found) else {
                return .nothingToUndo(["returnId": returnId.map(JSONValue.string) ?? .null, "undone": false])
            }
            stock[restock.line.warehouse, default: [:]][restock.line.sku, default: 0] -= restock.line.quantity
            return .applied(["returnId": .string(restock.returnId), "sku": .string(restock.line.sku), "undone": true])

        case .issueCredit(let returnId, let customerId, let amount):
            if let creditId = credits[returnId] {
                return .alreadyApplied(["creditId": .string(creditId), "returnId": .string(returnId)])
            }
            if customerId.hasPrefix("closed-") {
                return .refused(.accountClosed, "customer \(customerId)'s account is closed; no credit can be issued")
            }
            lastCredit += 1
            let creditId = Self.identifier("crd", lastCredit)
            credits[returnId] = creditId
            return .applied(
                ["creditId": .string(creditId), "returnId": .string(returnId), "amount": .number(amount)])

        case .acceptOrder, .cancelOrder, .reserve, .releaseReservation, .releaseShipment, .cancelShipment,
            .createShipment, .createInvoice, .createBackorder, .cancelBackorder, .cancelOrderLines:
            return .refused(.unknownCommand, "orders are handled by perform")
        }
    }
}
