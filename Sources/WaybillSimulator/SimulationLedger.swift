/// A snapshot of everything the simulated participants did and hold, for tests and the demo's summary.
///
/// Taken under the simulator's lock, so it is consistent: no command is half applied in it.
public struct SimulationLedger: Sendable, Hashable {
    /// What happened to the commands of one routing key. Every handled command adds 1 to ``received`` and exactly
    /// 1 to one of the other counters except ``lostReplies``, which also counts it when its reply was withheld.
    public struct CommandCounts: Sendable, Hashable {
        /// Commands handled, whatever their fate.
        public var received = 0
        /// Commands whose effect was applied (stock taken or restored, reservation made or ended, order accepted
        /// or cancelled, tracking or invoice created).
        public var effectsApplied = 0
        /// Redeliveries of an idempotency key that already had a reply: answered with that reply, nothing applied.
        public var duplicatesAbsorbed = 0
        /// Forward commands under a new idempotency key whose effect was already in place (the same order accepted,
        /// shipment released, booked or invoiced, or a second reservation for an order that holds one): answered
        /// like the first time, nothing applied.
        public var alreadyApplied = 0
        /// Compensations with nothing to undo (never applied, unknown or already undone): answered ok, nothing
        /// applied.
        public var noOpCompensations = 0
        /// Business refusals with no effect (`out_of_stock`, `conflict`, `already_compensated`).
        public var businessErrors = 0
        /// Injected `busy` replies.
        public var injectedBusy = 0
        /// Injected `rejected` replies.
        public var injectedRejected = 0
        /// Injected silences (no reply, no effect).
        public var injectedSilences = 0
        /// Replies withheld after the command ran (see ``CommandBehaviour/lostReplyRate``); the command is also
        /// counted by what it did (usually ``effectsApplied``).
        public var lostReplies = 0
        /// `bad_request` replies.
        public var badRequests = 0
        /// `unknown_command` replies.
        public var unknownCommands = 0
        /// Verify queries answered (they change nothing and are not counted anywhere else).
        public var verifyQueries = 0
        /// Compensations answered ok without undoing anything (``CommandBehaviour/dropUndoRate``): drift on purpose.
        public var droppedUndos = 0
        /// Forward effects lost after their ok reply (``CommandBehaviour/loseEffectRate``): drift on purpose.
        public var lostEffects = 0

        /// All counters zero.
        public init() {}

        /// The sum of two sets of counts.
        public static func + (lhs: CommandCounts, rhs: CommandCounts) -> CommandCounts {
            var sum = CommandCounts()
            sum.received = lhs.received + rhs.received
            sum.effectsApplied = lhs.effectsApplied + rhs.effectsApplied
            sum.duplicatesAbsorbed = lhs.duplicatesAbsorbed + rhs.duplicatesAbsorbed
            sum.alreadyApplied = lhs.alreadyApplied + rhs.alreadyApplied
            sum.noOpCompensations = lhs.noOpCompensations + rhs.noOpCompensations
            sum.businessErrors = lhs.businessErrors + rhs.businessErrors
            sum.injectedBusy = lhs.injectedBusy + rhs.injectedBusy
            sum.injectedRejected = lhs.injectedRejected + rhs.injectedRejected
            sum.injectedSilences = lhs.injectedSilences + rhs.injectedSilences
            sum.lostReplies = lhs.lostReplies + rhs.lostReplies
            sum.badRequests = lhs.badRequests + rhs.badRequests
            sum.unknownCommands = lhs.unknownCommands + rhs.unknownCommands
            sum.verifyQueries = lhs.verifyQueries + rhs.verifyQueries
            sum.droppedUndos = lhs.droppedUndos + rhs.droppedUndos
            sum.lostEffects = lhs.lostEffects + rhs.lostEffects
            return sum
        }
    }

    /// An order the ERP has seen.
    public struct Order: Sendable, Hashable {
        /// Where an ERP order stands.
        public enum Status: String, Sendable, Hashable {
            /// Accepted and not cancelled.
            case accepted
            /// Cancelled by `erp.order.cancel`.
            case cancelled
        }

        /// The order id from the body.
        public var orderId: String
        /// The saga that accepted it (the `waybill-saga-id` header).
        public var sagaId: String
        /// Accepted or cancelled.
        public var status: Status
        /// How many times it was accepted (again after a cancel: an operator's reset).
        public var acceptances = 1
        /// How many times it was cancelled.
        public var cancellations = 0
        /// The lines `erp.order.lines.cancel` cancelled (a backorder not filled by its deadline).
        public var cancelledLines: [ItemQuantity] = []
    }

    /// Lines inventory could not supply when the order was placed, waiting for stock (`inventory.backorder.create`).
    public struct Backorder: Sendable, Hashable {
        /// Where a backorder stands.
        public enum Status: String, Sendable, Hashable {
            /// Waiting for stock.
            case open
            /// Stock arrived for every line: its shipments hold the units until their release.
            case filled
            /// Cancelled (`inventory.backorder.cancel`): units it held went back into stock.
            case cancelled
        }

        public var orderId: String
        /// The saga that created it.
        public var sagaId: String
        public var lines: [ItemQuantity]
        public var status: Status
        /// The shipments allocated when it was filled, by warehouse.
        public var shipments: [Shipment] = []
        /// The ids of those shipments released since (their units left the hold for the shipment).
        public var released: Set<String> = []

        /// Units held for shipments not released yet (none unless filled).
        public var heldUnits: Int {
            guard status == .filled else { return 0 }
            return shipments.filter { !released.contains($0.id) }.reduce(0) {
                $0 + $1.lines.reduce(0) { $0 + $1.quantity }
            }
        }
    }

    /// A reservation `inventory.reserve` made that `inventory.release` has not ended.
    ///
    /// Reservations hold no units: stock is taken by the WMS release, so two orders can both see the same units and
    /// race for them there (the loser gets `out_of_stock`).
    public struct Reservation: Sendable, Hashable {
        /// The `reservationId` the reserve reply carried.
        public var id: String
        /// The order id from the body.
        public var orderId: String
        /// The saga that made it.
        public var sagaId: String
        /// The ordered lines (SKUs merged).
        public var lines: [ItemQuantity]
    }

    /// A customer return as the ERP holds it.
    public struct Return: Sendable, Hashable {
        /// Authorized (the RMA is open), or voided (its saga undid it).
        public enum Status: String, Sendable, Hashable {
            case authorized
            case voided
        }

        /// The return's id (the returns saga's id).
        public var returnId: String
        /// The order the goods came from.
        public var orderId: String
        /// The saga that authorized it.
        public var sagaId: String
        /// The latest authorization's id.
        public var authorizationId: String
        /// Where it stands now.
        public var status: Status
        /// The dock's receipt, once the parcel arrived.
        public var receiptId: String?
        /// The lines the customer sends back.
        public var lines: [ItemQuantity]
        /// How many times it was authorized (again after a void: an operator's reset).
        public var authorizations = 1
        /// How many times it was voided.
        public var voids = 0
    }

    /// Returned units put back into a warehouse's stock.
    public struct Restock: Sendable, Hashable {
        /// The return they came back with.
        public var returnId: String
        /// The saga that restocked them.
        public var sagaId: String
        /// Where, what and how many.
        public var line: StockRecord
    }

    /// A shipment a WMS released (its units taken from the warehouse) and that no `cancel` has restored.
    public struct Shipment: Sendable, Hashable {
        /// The `shipmentId` from the body.
        public var id: String
        /// The warehouse whose stock it took.
        public var warehouse: String
        /// The saga that released it.
        public var sagaId: String
        /// The units it took (SKUs merged).
        public var lines: [ItemQuantity]
    }

    /// Counts per routing key, including unknown ones.
    public var commands: [String: CommandCounts]
    /// Current units per warehouse and SKU (every warehouse and SKU of the initial stock is present, even at 0).
    public var stock: [String: [String: Int]]
    /// The configured units per warehouse and SKU.
    public var initialStock: [String: [String: Int]]
    /// ERP orders by order id.
    public var orders: [String: Order]
    /// Outstanding reservations, by id.
    public var reservations: [String: Reservation]
    /// Outstanding shipments per warehouse, by shipment id (a warehouse without any is absent).
    public var shipments: [String: [String: Shipment]]
    /// TMS tracking ids by shipment id.
    public var trackingIds: [String: String]
    /// Billing invoice ids by `<order id>/<shipment id>/...` (one invoice per delivery).
    public var invoiceIds: [String: String]
    /// Customer returns the ERP authorized, by return id (voided ones included).
    public var returns: [String: Return] = [:]
    /// Returned units put back into stock and not taken out again, by the idempotency key of their restock.
    public var restocks: [String: Restock] = [:]
    /// Credit notes issued, by return id.
    public var credits: [String: String] = [:]
    /// Backorders by order id.
    public var backorders: [String: Backorder] = [:]
    /// Units that arrived after the start (``ParticipantSimulator/receiveStock()``), per warehouse and SKU.
    public var arrivals: [String: [String: Int]] = [:]
    /// Forward idempotency keys whose undo was answered ok and dropped (drift on purpose).
    public var droppedUndoKeys: Set<String> = []
    /// Forward idempotency keys whose effect was lost after its ok reply (drift on purpose).
    public var lostEffectKeys: Set<String> = []

    /// The counts for `routingKey` (all zero when it was never seen).
    public func counts(_ routingKey: String) -> CommandCounts {
        commands[routingKey] ?? CommandCounts()
    }

    /// The counts of all routing keys added up.
    public var totals: CommandCounts {
        commands.values.reduce(CommandCounts(), +)
    }

    /// How many shipments are outstanding, over all warehouses.
    public var outstandingShipmentCount: Int {
        shipments.values.reduce(0) { $0 + $1.count }
    }

    /// Units the warehouses lost or gained outside the books: for each warehouse and SKU where the initial stock
    /// differs from the current stock plus the units outstanding shipments took, that difference (initial minus
    /// accounted). Always empty unless the simulator has a bug; the demo prints it as a sanity check.
    public var stockImbalances: [StockRecord] {
        var accounted = stock
        for (warehouse, byId) in shipments {
            for shipment in byId.values {
                for line in shipment.lines {
                    accounted[warehouse, default: [:]][line.sku, default: 0] += line.quantity
                }
            }
        }
        for restock in restocks.values {
            accounted[restock.line.warehouse, default: [:]][restock.line.sku, default: 0] -= restock.line.quantity
        }
        for (warehouse, skus) in arrivals {
            for (sku, quantity) in skus { accounted[warehouse, default: [:]][sku, default: 0] -= quantity }
        }
        for backorder in backorders.values where backorder.status == .filled {
            for shipment in backorder.shipments where !backorder.released.contains(shipment.id) {
                for line in shipment.lines {
                    accounted[shipment.warehouse, default: [:]][line.sku, default: 0] += line.quantity
                }
            }
        }
        var imbalances: [StockRecord] = []
        let warehouses = Set(accounted.keys).union(initialStock.keys)
        for warehouse in warehouses.sorted() {
            let skus = Set(accounted[warehouse]?.keys ?? [:].keys).union(initialStock[warehouse]?.keys ?? [:].keys)
            for sku in skus.sorted() {
                let difference = (initialStock[warehouse]?[sku] ?? 0) - (accounted[warehouse]?[sku] ?? 0)
                if difference != 0 {
                    imbalances.append(StockRecord(warehouse: warehouse, sku: sku, quantity: difference))
                }
            }
        }
        return imbalances
    }

    /// What participants still hold for sagas that have ended, where holding it is wrong.
    ///
    /// - A saga that ended `compensated` or `cancelled`: every outstanding reservation and shipment it made, and its
    ///   ERP order if still accepted, is a leak (for `cancelled`, an operator stopped it without undoing anything,
    ///   so the leak is expected but still needs cleaning up).
    /// - A saga that ended `completed` or `suspended`: its shipments stay taken (the goods left) and its reservation
    ///   may stay outstanding (the workflow has no step that consumes it); nothing is a leak.
    /// - Sagas missing from `finishedSagas` are still running and are not checked.
    ///
    /// Sorted by saga id, then resource.
    public func leaks(finishedSagas: [String: FinishedSagaOutcome]) -> [SimulationLeak] {
        func mustBeUndone(_ sagaId: String) -> Bool {
            switch finishedSagas[sagaId] {
            case .compensated?, .cancelled?: true
            case .completed?, .suspended?, nil: false
            }
        }
        var leaks: [SimulationLeak] = []
        for reservation in reservations.values where mustBeUndone(reservation.sagaId) {
            leaks.append(SimulationLeak(sagaId: reservation.sagaId, resource: .reservation(id: reservation.id)))
        }
        for byId in shipments.values {
            for shipment in byId.values where mustBeUndone(shipment.sagaId) {
                leaks.append(
                    SimulationLeak(
                        sagaId: shipment.sagaId, resource: .shipment(warehouse: shipment.warehouse, id: shipment.id)))
            }
        }
        for order in orders.values where order.status == .accepted && mustBeUndone(order.sagaId) {
            leaks.append(SimulationLeak(sagaId: order.sagaId, resource: .acceptedOrder(orderId: order.orderId)))
        }
        for authorized in returns.values where authorized.status == .authorized && mustBeUndone(authorized.sagaId) {
            leaks.append(
                SimulationLeak(sagaId: authorized.sagaId, resource: .authorizedReturn(returnId: authorized.returnId)))
        }
        for restock in restocks.values where mustBeUndone(restock.sagaId) {
            leaks.append(SimulationLeak(sagaId: restock.sagaId, resource: .restock(restock.line)))
        }
        // However a saga ended (but suspended, which waits for an operator), its backorder is filled and shipped, or
        // cancelled: an open one still waits for stock, a filled one not shipped holds units nobody else can take.
        for backorder in backorders.values where finishedSagas[backorder.sagaId].map({ $0 != .suspended }) ?? false {
            if backorder.status == .open || backorder.heldUnits > 0 {
                leaks.append(
                    SimulationLeak(
                        sagaId: backorder.sagaId,
                        resource: .backorder(orderId: backorder.orderId, heldUnits: backorder.heldUnits)))
            }
        }
        return leaks.sorted { ($0.sagaId, $0.resource.description) < ($1.sagaId, $1.resource.description) }
    }
}

/// A SKU and a number of units: an order line, a shipment line or a reservation line.
public struct ItemQuantity: Sendable, Hashable, Codable {
    /// The stock-keeping unit.
    public var sku: String
    /// Units (0 or more).
    public var quantity: Int

    /// A line.
    public init(sku: String, quantity: Int) {
        self.sku = sku
        self.quantity = quantity
    }
}

/// How a saga ended, as far as leak checking cares (mirrors the engine's terminal and suspended states without
/// depending on the engine).
public enum FinishedSagaOutcome: String, Sendable, Hashable, CaseIterable {
    /// Every step succeeded.
    case completed
    /// Every completed step was undone.
    case compensated
    /// An operator stopped the saga; nothing was undone.
    case cancelled
    /// A failure after the pivot left the saga for an operator.
    case suspended
}

/// Something a participant still holds for a saga that should not hold it any more.
public struct SimulationLeak: Sendable, Hashable, CustomStringConvertible {
    /// The held resource.
    public enum Resource: Sendable, Hashable, CustomStringConvertible {
        /// An inventory reservation never released.
        case reservation(id: String)
        /// A WMS shipment never cancelled: its units are still taken from the warehouse.
        case shipment(warehouse: String, id: String)
        /// An ERP order never cancelled.
        case acceptedOrder(orderId: String)
        /// A return authorization (RMA) never voided.
        case authorizedReturn(returnId: String)
        /// Returned units put back into stock and never taken out.
        case restock(StockRecord)
        /// A backorder still open, or filled and holding units for shipments never released.
        case backorder(orderId: String, heldUnits: Int)

        /// `reservation rsv-000001`, `shipment o-1-wh-01 in wh-01`, `accepted order o-1`, `authorized return r-1`,
        /// `2 × sku-1 restocked in wh-01`.
        public var description: String {
            switch self {
            case .reservation(let id): "reservation \(id)"
            case .shipment(let warehouse, let id): "shipment \(id) in \(warehouse)"
            case .acceptedOrder(let orderId): "accepted order \(orderId)"
            case .authorizedReturn(let returnId): "authorized return \(returnId)"
            case .restock(let line): "\(line.quantity) × \(line.sku) restocked in \(line.warehouse)"
            case .backorder(let orderId, let held):
                held > 0 ? "backorder of \(orderId) holding \(held) units" : "open backorder of \(orderId)"
            }
        }
    }

    /// The saga that made and should have undone it.
    public var sagaId: String
    /// What is held.
    public var resource: Resource

    /// `saga o-1 still holds shipment o-1-wh-01 in wh-01`.
    public var description: String { "saga \(sagaId) still holds \(resource)" }
}
