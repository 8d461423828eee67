import Foundation
import PlainText
import SeededRandom
import WaybillDefinition

/// The mutable world of the simulated participants: one warehouse model shared by inventory and the WMSs, the
/// ERP's orders, TMS bookings, invoices, the reply cache and the counters. Only touched under the simulator's lock.
struct SimulationState {
    /// Identifies a remembered reply. Each participant keeps its own idempotency store, so the key is scoped by
    /// routing key: the same idempotency key sent to two routing keys is two commands.
    struct ReplyKey: Hashable {
        var routingKey: String
        var idempotencyKey: String
    }

    /// What one participant operation did.
    enum Outcome {
        /// The effect was applied; reply ok with this output.
        case applied(JSONValue)
        /// A forward command found its effect already in place (under another idempotency key); reply ok.
        case alreadyApplied(JSONValue)
        /// A compensation found nothing to undo; reply ok.
        case nothingToUndo(JSONValue)
        /// A business refusal; nothing changed.
        case refused(SimulatedErrorCode, String)
    }

    /// An effect a forward command put in place, found again by that command's idempotency key.
    enum Effect: Hashable {
        case order(orderId: String)
        case reservation(id: String)
        case shipment(warehouse: String, id: String)
        case returnAuthorization(returnId: String)
        /// Units put back into stock, found by the restock's own idempotency key.
        case restock(key: String)
        /// An order's backorder in inventory.
        case backorder(orderId: String)
    }

    /// What an injected failure draw picked.
    enum Injection {
        case busy
        case rejected
        case silence
        case lostReply
    }

    let seed: UInt64
    var behaviours: [CommandBehaviour]
    let warehouses: Set<String>
    let initialStock: [String: [String: Int]]
    var stock: [String: [String: Int]]
    var orders: [String: SimulationLedger.Order] = [:]
    var reservations: [String: SimulationLedger.Reservation] = [:]
    var shipments: [String: [String: SimulationLedger.Shipment]] = [:]
    var trackingIds: [String: String] = [:]
    var invoiceIds: [String: String] = [:]
    var returns: [String: SimulationLedger.Return] = [:]
    /// Restocked lines not taken back out, by the idempotency key of the restock that put them in.
    var restocks: [String: SimulationLedger.Restock] = [:]
    var credits: [String: String] = [:]
    /// Backorders by order id, and the open ones' order ids in the order they were created (filled first come first).
    var backorders: [String: SimulationLedger.Backorder] = [:]
    var openBackorders: [String] = []
    /// The order id of each shipment a filled backorder holds units for, until it is released.
    var heldShipments: [String: String] = [:]
    /// Units that arrived after the start, per warehouse and SKU.
    var arrivals: [String: [String: Int]] = [:]
    /// SKUs that never arrive again: their backorders wait until they are cancelled.
    let discontinued: Set<String>
    var lastAuthorization = 0
    var lastReceipt = 0
    var lastCredit = 0
    var replies: [ReplyKey: JSONValue] = [:]
    /// The effect each forward idempotency key applied (or found in place), for undos that name it by the
    /// `waybill-compensates` key.
    var effects: [String: Effect] = [:]
    /// Forward idempotency keys whose undo has run, whether it found something or not: the forward command arriving
    /// after it is refused, so an undo that found nothing stays final.
    var undoneKeys: Set<String> = []
    /// The forward keys whose undo was dropped (``CommandBehaviour/dropUndoRate``), and those whose effect was lost
    /// (``CommandBehaviour/loseEffectRate``): the drift a reconciliation should find.
    var droppedUndoKeys: Set<String> = []
    var lostEffectKeys: Set<String> = []
    var counts: [String: SimulationLedger.CommandCounts] = [:]
    var lastReservation = 0
    var lastTracking = 0
    var lastInvoice = 0

    /// A world with `configuration`'s stock; the configuration must have been validated.
    init(configuration: SimulationConfiguration) {
        seed = configuration.seed
        behaviours = configuration.behaviours
        var stock: [String: [String: Int]] = [:]
        for record in configuration.stock {
            stock[record.warehouse, default: [:]][record.sku, default: 0] += record.quantity
        }
        warehouses = Set(stock.keys)
        initialStock = stock
        self.stock = stock
        discontinued = Set(configuration.discontinued)
    }

    var ledger: SimulationLedger {
        SimulationLedger(
            commands: counts, stock: stock, initialStock: initialStock, orders: orders, reservations: reservations,
            shipments: shipments.filter { !$0.value.isEmpty }, trackingIds: trackingIds, invoiceIds: invoiceIds,
            returns: returns, restocks: restocks, credits: credits, backorders: backorders, arrivals: arrivals,
            droppedUndoKeys: droppedUndoKeys, lostEffectKeys: lostEffectKeys)
    }

    // MARK: Handling

    /// Handles one command. The order of the checks is the contract documented on
    /// ``ParticipantSimulator/handle(_:)``.
    mutating func handle(_ command: SimulatedCommand) -> SimulatedResponse {
        var random = SplitMix64.keyed(
            seed: seed, [command.routingKey, command.idempotencyKey, String(command.attempt)])
        // The fate is always the first draw, so changing a latency never changes which commands fail.
        let fate = random.unit()
        let behaviour = behaviours.first { $0.matches(routingKey: command.routingKey, action: command.action) }
        let delay = behaviour?.latency.sample(using: &random) ?? .zero
        let routingKey = command.routingKey
        if command.action == .verify {
            counts[routingKey, default: .init()].verifyQueries += 1
            return .reply(body: okReply(verify(command.idempotencyKey)), after: delay)
        }
        // Drawn after the fate and the latency, so adding drift never changes which commands fail.
        let drift = random.unit()
        counts[routingKey, default: .init()].received += 1

        let replyKey = ReplyKey(routingKey: routingKey, idempotencyKey: command.idempotencyKey)
        if !command.idempotencyKey.isEmpty, let remembered = replies[replyKey] {
            counts[routingKey, default: .init()].duplicatesAbsorbed += 1
            return .reply(body: remembered, after: delay)
        }
        guard let operation = Operation(routingKey: routingKey, warehouses: warehouses) else {
            counts[routingKey, default: .init()].unknownCommands += 1
            let message = "no simulated participant handles routing key '\(routingKey)'"
            return .reply(body: SimulatedErrorCode.unknownCommand.reply(message), after: delay)
        }
        let request: ParticipantRequest
        do throws(ParticipantRequest.BadRequest) {
            request = try ParticipantRequest(operation, command: command)
        } catch {
            counts[routingKey, default: .init()].badRequests += 1
            let message = "\(routingKey): \(error.message)"
            return .reply(body: SimulatedErrorCode.badRequest.reply(message), after: delay)
        }

        let injection = behaviour.flatMap { Self.injection(fate: fate, behaviour: $0, action: command.action) }
        switch injection {
        case .busy?:
            counts[routingKey, default: .init()].injectedBusy += 1
            let message = "\(routingKey) is busy (simulated); nothing was applied, retry later"
            return .reply(body: SimulatedErrorCode.busy.reply(message), after: delay)
        case .rejected?:
            counts[routingKey, default: .init()].injectedRejected += 1
            let message = "\(routingKey) rejected the command (simulated); nothing was applied"
            return .reply(body: SimulatedErrorCode.rejected.reply(message), after: delay)
        case .silence?:
            counts[routingKey, default: .init()].injectedSilences += 1
            return .silence
        case .lostReply?, nil:
            break
        }

        if command.action == .compensate, let behaviour, drift < behaviour.dropUndoRate {
            // Acknowledged and forgotten: nothing undone, nothing remembered, so the same undo works when sent again.
            counts[routingKey, default: .init()].droppedUndos += 1
            if let forward = command.compensates { droppedUndoKeys.insert(forward) }
            return .reply(body: okReply(["undone": true]), after: delay)
        }
        let body: JSONValue
        if injection == .lostReply { counts[routingKey, default: .init()].lostReplies += 1 }
        switch perform(request, command: command) {
        case .applied(let output):
            body = okReply(output)
            counts[routingKey, default: .init()].effectsApplied += 1
        case .alreadyApplied(let output):
            body = okReply(output)
            counts[routingKey, default: .init()].alreadyApplied += 1
        case .nothingToUndo(let output):
            body = okReply(output)
            counts[routingKey, default: .init()].noOpCompensations += 1
        case .refused(let code, let message):
            counts[routingKey, default: .init()].businessErrors += 1
            // Not remembered: nothing was applied, so a retry with the same key runs again (stock may be back).
            return injection == .lostReply ? .silence : .reply(body: code.reply(message), after: delay)
        }
        replies[replyKey] = body
        if command.action == .do, let behaviour, drift < behaviour.loseEffectRate,
            let effect = effects[command.idempotencyKey], lose(effect)
        {
            counts[routingKey, default: .init()].lostEffects += 1
            lostEffectKeys.insert(command.idempotencyKey)
        }
        return injection == .lostReply ? .silence : .reply(body: body, after: delay)
    }

    /// The answer to a verify query about the forward command keyed `key`: `applied` while its effect is in place,
    /// `undone` once an undo named it, `absent` when there is no trace of it (never applied, or lost).
    func verify(_ key: String) -> JSONValue {
        guard let effect = effects[key] else { return ["state": "absent"] }
        let details = JSONValue.string(Self.describe(effect))
        if isInPlace(effect) { return ["state": "applied", "details": ["effect": details]] }
        if undoneKeys.contains(key) { return ["state": "undone", "details": ["effect": details]] }
        return ["state": "absent", "details": ["effect": details]]
    }

    /// Whether `effect` is still in the participant's books.
    func isInPlace(_ effect: Effect) -> Bool {
        switch effect {
        case .order(let orderId): orders[orderId]?.status == .accepted
        case .reservation(let id): reservations[id] != nil
        case .shipment(let warehouse, let id): shipments[warehouse]?[id] != nil
        case .returnAuthorization(let returnId): returns[returnId]?.status == .authorized
        case .restock(let key): restocks[key] != nil
        case .backorder(let orderId): backorders[orderId].map { $0.status != .cancelled } ?? false
        }
    }

    static func describe(_ effect: Effect) -> String {
        switch effect {
        case .order(let orderId): "order \(orderId)"
        case .reservation(let id): "reservation \(id)"
        case .shipment(let warehouse, let id): "shipment \(id) at \(warehouse)"
        case .returnAuthorization(let returnId): "return \(returnId)"
        case .restock(let key): "restock \(key)"
        case .backorder(let orderId): "backorder of \(orderId)"
        }
    }

    /// Drops `effect` from the books without anyone asking (stock a shipment took goes back, so the warehouse still
    /// balances); `false` for effects this fault leaves alone.
    mutating func lose(_ effect: Effect) -> Bool {
        switch effect {
        case .order(let orderId):
            guard orders[orderId]?.status == .accepted else { return false }
            orders[orderId]?.status = .cancelled
        case .reservation(let id):
            guard reservations.removeValue(forKey: id) != nil else { return false }
        case .shipment(let warehouse, let id):
            guard let shipment = shipments[warehouse]?.removeValue(forKey: id) else { return false }
            for line in shipment.lines { stock[warehouse, default: [:]][line.sku, default: 0] += line.quantity }
        case .returnAuthorization, .restock, .backorder:
            return false
        }
        return true
    }

    /// Maps one uniform draw onto the behaviour's failure rates, laid end to end: busy, rejected, silence, lost reply.
    static func injection(fate: Double, behaviour: CommandBehaviour, action: SimulatedCommand.Action) -> Injection? {
        var bound = behaviour.busyRate
        if fate < bound { return .busy }
        bound += behaviour.rejectRate
        if fate < bound {
            // A compensation that must not fail permanently carries on as if nothing was drawn.
            return action == .compensate && !behaviour.rejectsCompensations ? nil : .rejected
        }
        bound += behaviour.silenceRate
        if fate < bound { return .silence }
        bound += behaviour.lostReplyRate
        if fate < bound { return .lostReply }
        return nil
    }

    // MARK: Participants

    /// Runs `request`. A forward command records the effect it applied (or found) under its idempotency key; an undo
    /// looks for its effect by the `waybill-compensates` key first, then by the body's ids, and marks that key undone.
    mutating func perform(_ request: ParticipantRequest, command: SimulatedCommand) -> Outcome {
        let sagaId = command.sagaId
        if !command.idempotencyKey.isEmpty, undoneKeys.contains(command.idempotencyKey) {
            return .refused(
                .alreadyCompensated,
                "\(command.routingKey) \(command.idempotencyKey) arrived after its compensation ran; nothing was applied"
            )
        }
        let undone = command.compensates.flatMap { effects[$0] }
        if let key = command.compensates { undoneKeys.insert(key) }
        let outcome =
            request.isReturn
            ? performReturn(
                request, sagaId: sagaId, key: command.idempotencyKey, undoing: undone, keyed: command.compensates != nil
            )
            : perform(request, sagaId: sagaId, undoing: undone)
        if case .applied(let output) = outcome,
            let effect = Self.effect(of: request, output: output, key: command.idempotencyKey)
        {
            effects[command.idempotencyKey] = effect
        } else if case .alreadyApplied(let output) = outcome,
            let effect = Self.effect(of: request, output: output, key: command.idempotencyKey)
        {
            effects[command.idempotencyKey] = effect
        }
        return outcome
    }

    /// The effect a forward request put in place, given its ok output; `nil` for an undo and for effects nothing
    /// undoes (tracking, invoices).
    static func effect(of request: ParticipantRequest, output: JSONValue, key: String) -> Effect? {
        switch request {
        case .acceptOrder(let orderId, _): .order(orderId: orderId)
        case .reserve: output["reservationId"]?.stringValue.map { .reservation(id: $0) }
        case .releaseShipment(let warehouse, let shipmentId, _): .shipment(warehouse: warehouse, id: shipmentId)
        case .authorizeReturn(let returnId, _, _): .returnAuthorization(returnId: returnId)
        case .restock: .restock(key: key)
        case .createBackorder(let orderId, _): .backorder(orderId: orderId)
        case .cancelBackorder, .cancelOrderLines: nil
        case .cancelOrder, .releaseReservation, .cancelShipment, .createShipment, .createInvoice, .voidReturn,
            .receiveReturn, .inspectReturn, .unstock, .issueCredit:
            nil
        }
    }

    /// `undoing` is the effect the undo's `waybill-compensates` key applied, if any; it wins over the body's ids.
    private mutating func perform(_ request: ParticipantRequest, sagaId: String, undoing: Effect?) -> Outcome {
        switch request {
        case .acceptOrder(let orderId, _):
            if orders[orderId]?.status == .accepted { return .alreadyApplied(["orderId": .string(orderId)]) }
            var accepted = SimulationLedger.Order(orderId: orderId, sagaId: sagaId, status: .accepted)
            if let cancelled = orders[orderId] {
                accepted.acceptances = cancelled.acceptances + 1
                accepted.cancellations = cancelled.cancellations
            }
            orders[orderId] = accepted
            return .applied(["orderId": .string(orderId)])

        case .cancelOrder(let bodyOrderId):
            var orderId = bodyOrderId
            if case .order(let keyed)? = undoing { orderId = keyed }
            guard let orderId, orders[orderId]?.status == .accepted else {
                return .nothingToUndo(["orderId": orderId.map(JSONValue.string) ?? .null, "undone": false])
            }
            orders[orderId]?.status = .cancelled
            orders[orderId]?.cancellations += 1
            return .applied(["orderId": .string(orderId), "undone": true])

        case .reserve(let orderId, let lines):
            let available = availableStock(for: lines)
            if let held = reservations.values.first(where: { $0.orderId == orderId }) {
                return .alreadyApplied(["reservationId": .string(held.id), "stock": available])
            }
            lastReservation += 1
            let id = Self.identifier("rsv", lastReservation)
            reservations[id] = SimulationLedger.Reservation(id: id, orderId: orderId, sagaId: sagaId, lines: lines)
            return .applied(["reservationId": .string(id), "stock": available])

        case .releaseReservation(let bodyReservationId, let orderId):
            var reservationId = bodyReservationId
            if case .reservation(let keyed)? = undoing {
                reservationId = keyed
            } else if reservationId == nil, let orderId {
                reservationId = reservations.values.first { $0.orderId == orderId }?.id
            }
            guard let reservationId, reservations.removeValue(forKey: reservationId) != nil else {
                return .nothingToUndo(
                    ["reservationId": reservationId.map(JSONValue.string) ?? .null, "undone": false])
            }
            return .applied(["reservationId": .string(reservationId), "undone": true])

        case .releaseShipment(let warehouse, let shipmentId, let lines):
            return releaseShipment(warehouse: warehouse, shipmentId: shipmentId, lines: lines, sagaId: sagaId)

        case .cancelShipment(let bodyWarehouse, let bodyShipmentId):
            var (warehouse, shipmentId) = (bodyWarehouse, bodyShipmentId)
            if case .shipment(let keyedWarehouse, let keyedId)? = undoing {
                (warehouse, shipmentId) = (keyedWarehouse, keyedId)
            }
            guard let shipmentId, let shipment = shipments[warehouse]?.removeValue(forKey: shipmentId) else {
                return .nothingToUndo(["shipmentId": shipmentId.map(JSONValue.string) ?? .null, "undone": false])
            }
            for line in shipment.lines {
                stock[warehouse, default: [:]][line.sku, default: 0] += line.quantity
            }
            return .applied(["shipmentId": .string(shipmentId), "undone": true])

        case .createShipment(let shipmentId, let warehouse):
            if let trackingId = trackingIds[shipmentId] {
                return .alreadyApplied(["trackingId": .string(trackingId), "shipmentId": .string(shipmentId)])
            }
            lastTracking += 1
            let trackingId = Self.identifier("trk", lastTracking)
            trackingIds[shipmentId] = trackingId
            return .applied(
                [
                    "trackingId": .string(trackingId), "shipmentId": .string(shipmentId),
                    "warehouse": .string(warehouse),
                ])

        case .createInvoice(let orderId, let shipments):
            // One invoice per delivery: the order and the shipments it bills (a backorder's delivery is billed again).
            let billed = shipments.compactMap { $0["shipmentId"]?.stringValue }.sorted()
            let key = ([orderId] + billed).joined(separator: "/")
            if let invoiceId = invoiceIds[key] {
                return .alreadyApplied(["invoiceId": .string(invoiceId), "orderId": .string(orderId)])
            }
            lastInvoice += 1
            let invoiceId = Self.identifier("inv", lastInvoice)
            invoiceIds[key] = invoiceId
            return .applied(["invoiceId": .string(invoiceId), "orderId": .string(orderId)])

        case .createBackorder(let orderId, let lines):
            return createBackorder(orderId: orderId, lines: lines, sagaId: sagaId)

        case .cancelBackorder(let orderId):
            return cancelBackorder(orderId: orderId)

        case .cancelOrderLines(let orderId, let lines):
            guard orders[orderId] != nil else {
                return .refused(.conflict, "order \(orderId) is not in the ERP; accept it before cancelling lines")
            }
            orders[orderId]?.cancelledLines = lines
            return .applied(["orderId": .string(orderId), "cancelledLines": .number(Double(lines.count))])

        case .authorizeReturn, .voidReturn, .receiveReturn, .inspectReturn, .restock, .unstock, .issueCredit:
            return .refused(.unknownCommand, "returns are handled by performReturn")
        }
    }

    /// Takes `lines` from `warehouse` all at once, or nothing when any line is short.
    private mutating func releaseShipment(
        warehouse: String, shipmentId: String, lines: [ItemQuantity], sagaId: String
    ) -> Outcome {
        let output: JSONValue = ["shipmentId": .string(shipmentId), "warehouse": .string(warehouse)]
        if let existing = shipments[warehouse]?[shipmentId] {
            guard existing.lines == lines else {
                return .refused(
                    .conflict,
                    "shipment \(shipmentId) is already released from \(warehouse) with other lines; "
                        + "cancel it first or use a new shipment id")
            }
            return .alreadyApplied(output)
        }
        if let orderId = heldShipments[shipmentId] {
            return releaseHeld(shipmentId, of: orderId, warehouse: warehouse, lines: lines, sagaId: sagaId)
        }
        let short = lines.compactMap { line -> String? in
            let available = stock[warehouse]?[line.sku] ?? 0
            return available < line.quantity ? "\(line.sku) (needs \(line.quantity), has \(available))" : nil
        }
        guard short.isEmpty else {
            return .refused(
                .outOfStock,
                "warehouse \(warehouse) cannot release shipment \(shipmentId): short of "
                    + short.joined(separator: ", "))
        }
        for line in lines {
            stock[warehouse, default: [:]][line.sku, default: 0] -= line.quantity
        }
        shipments[warehouse, default: [:]][shipmentId] = SimulationLedger.Shipment(
            id: shipmentId, warehouse: warehouse, sagaId: sagaId, lines: lines)
        return .applied(output)
    }

    /// The units on hand now, per warehouse, of the SKUs in `lines`: rows with a quantity of 0 are left out; sorted
    /// by warehouse, then SKU.
    private func availableStock(for lines: [ItemQuantity]) -> JSONValue {
        let skus = Set(lines.map(\.sku))
        var rows: [JSONValue] = []
        for warehouse in stock.keys.sorted() {
            for (sku, quantity) in (stock[warehouse] ?? [:]).sorted(by: { $0.key < $1.key })
            where quantity > 0 && skus.contains(sku) {
                rows.append(
                    ["warehouse": .string(warehouse), "sku": .string(sku), "quantity": .number(Double(quantity))])
            }
        }
        return .array(rows)
    }

    /// `rsv-000042`: readable ids in the order they were made.
    static func identifier(_ prefix: String, _ number: Int) -> String {
        prefix + "-" + String(number).padded(to: 6, .right, fill: "0")
    }
}

extension Latency {
    /// One delay drawn from `random`, at millisecond resolution.
    func sample(using random: inout SplitMix64) -> Duration {
        switch self {
        case .none:
            return .zero
        case .fixed(let delay):
            return delay
        case .uniform(let range):
            let low = Int(range.lowerBound.milliseconds)
            let high = Int(range.upperBound.milliseconds)
            return .milliseconds(random.int(in: low...max(low, high)))
        case .exponential(let mean, let max):
            // Inverse transform: -mean * ln(1 - u), with 1 - u in (0, 1].
            let drawn = -Double(mean.milliseconds) * log(1 - random.unit())
            return .milliseconds(Int64(Swift.min(drawn, Double(max.milliseconds)).rounded()))
        }
    }
}
