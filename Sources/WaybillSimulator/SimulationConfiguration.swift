import CodedError

/// Everything a ``ParticipantSimulator`` starts from: the warehouses and their stock, how each command behaves, and
/// the seed that makes injected failures and latencies repeatable.
public struct SimulationConfiguration: Sendable, Hashable {
    /// The initial stock. The warehouses named here are the only ones with a WMS (`wms.<warehouse>.release` and
    /// `.cancel`); list a warehouse with quantity 0 to give it a WMS and no stock. Rows for the same warehouse and
    /// SKU add up.
    public var stock: [StockRecord]
    /// How commands behave, tried in order: the first behaviour that matches a command decides its latency and
    /// injected failures. A command no behaviour matches is answered at once and never fails by injection.
    public var behaviours: [CommandBehaviour]
    /// The seed of every random draw. The same seed and the same commands give the same replies and delays, in any
    /// order and with any parallelism (each command draws from a generator keyed by its routing key, idempotency key
    /// and attempt).
    public var seed: UInt64
    /// SKUs that never arrive again (``ParticipantSimulator/receiveStock()`` brings every other SKU a backorder
    /// waits for): their backorders stay open until cancelled.
    public var discontinued: [String]

    /// A configuration; by default no warehouses, no latency, no injected failures, nothing discontinued.
    public init(
        stock: [StockRecord] = [], behaviours: [CommandBehaviour] = [], seed: UInt64 = 1, discontinued: [String] = []
    ) {
        self.stock = stock
        self.behaviours = behaviours
        self.seed = seed
        self.discontinued = discontinued
    }

    /// Checks names, quantities, rates and latencies; ``ParticipantSimulator/init(configuration:)`` calls it.
    public func validate() throws(SimulationConfigurationError) {
        for record in stock {
            try Self.validateWarehouseName(record.warehouse)
            if record.sku.isEmpty {
                throw SimulationConfigurationError(
                    .invalidStock, "a stock row of warehouse '\(record.warehouse)' has an empty SKU")
            }
            if record.quantity < 0 {
                throw SimulationConfigurationError(
                    .invalidStock,
                    "stock of \(record.sku) in warehouse '\(record.warehouse)' is \(record.quantity); "
                        + "quantities must be 0 or more")
            }
        }
        for (index, behaviour) in behaviours.enumerated() {
            try behaviour.validate(position: index + 1)
        }
    }

    static func validateWarehouseName(_ name: String) throws(SimulationConfigurationError) {
        let forbidden: Set<Character> = [".", "*", "#"]
        guard !name.isEmpty, !name.contains(where: { forbidden.contains($0) || $0.isWhitespace }) else {
            throw SimulationConfigurationError(
                .invalidWarehouseName,
                "warehouse name '\(name)' cannot be a routing key word: use letters, digits, '-' or '_' "
                    + "(no '.', '*', '#' or spaces)")
        }
    }
}

/// Units of one SKU in one warehouse: a row of the initial stock, of `inventory.reserve`'s `stock` output and of
/// the ledger.
public struct StockRecord: Sendable, Hashable, Codable {
    /// The warehouse name, also the middle word of its WMS routing keys.
    public var warehouse: String
    /// The stock-keeping unit.
    public var sku: String
    /// Units available (never negative).
    public var quantity: Int

    /// A stock row.
    public init(warehouse: String, sku: String, quantity: Int) {
        self.warehouse = warehouse
        self.sku = sku
        self.quantity = quantity
    }
}

/// Latency and injected failures for the commands whose routing key matches ``pattern``.
///
/// Injected failures apply no effect. Rates are probabilities per handled command and must add up to at most 1;
/// one draw picks at most one of them. Commands that are redeliveries of an already answered idempotency key,
/// unknown routing keys and malformed bodies are never failed by injection (they still get the latency).
public struct CommandBehaviour: Sendable, Hashable {
    /// A routing key pattern: `*` (or `#`) matches any run of characters, dots included, so `wms.*.release` matches
    /// every warehouse's release and `*` matches everything. Other characters match themselves.
    public var pattern: String
    /// Which commands, by their `waybill-action` header, the behaviour applies to (default: both).
    public var actions: Set<SimulatedCommand.Action>
    /// How long the participant takes to answer.
    public var latency: Latency
    /// Share of commands answered with the retryable error `busy`.
    public var busyRate: Double
    /// Share of commands answered with the non-retryable error `rejected`. Ignored for compensation commands unless
    /// ``rejectsCompensations`` is set: a rejected compensation leaves a saga that cannot finish undoing itself.
    public var rejectRate: Double
    /// Share of commands that get no reply at all (the saga's reply timeout fires), with no effect.
    public var silenceRate: Double
    /// Share of commands whose effect is applied but whose reply is lost: the saga times out and retries with the
    /// same idempotency key, which then gets the remembered reply. Exercises idempotency end to end.
    public var lostReplyRate: Double
    /// Whether ``rejectRate`` also applies to compensation commands (default `false`).
    public var rejectsCompensations: Bool
    /// Share of compensations answered ok that undo nothing and are forgotten at once: the effect stays, and the
    /// same undo sent again later works. Drift on purpose, for reconciliation to find (and repair).
    public var dropUndoRate: Double
    /// Share of forward effects lost right after their ok reply (a reservation or shipment vanishes, an order is
    /// cancelled, with the stock put back): drift on purpose, for reconciliation to find.
    public var loseEffectRate: Double

    /// A behaviour; by default it matches both actions, answers at once and never fails.
    public init(
        pattern: String, actions: Set<SimulatedCommand.Action> = [.do, .compensate], latency: Latency = .none,
        busyRate: Double = 0, rejectRate: Double = 0, silenceRate: Double = 0, lostReplyRate: Double = 0,
        rejectsCompensations: Bool = false, dropUndoRate: Double = 0, loseEffectRate: Double = 0
    ) {
        self.dropUndoRate = dropUndoRate
        self.loseEffectRate = loseEffectRate
        self.pattern = pattern
        self.actions = actions
        self.latency = latency
        self.busyRate = busyRate
        self.rejectRate = rejectRate
        self.silenceRate = silenceRate
        self.lostReplyRate = lostReplyRate
        self.rejectsCompensations = rejectsCompensations
    }

    /// Whether this behaviour applies to a command with `routingKey` and `action`.
    public func matches(routingKey: String, action: SimulatedCommand.Action) -> Bool {
        actions.contains(action) && Self.glob(Array(pattern.utf8), matches: Array(routingKey.utf8))
    }

    func validate(position: Int) throws(SimulationConfigurationError) {
        let name = "behaviour \(position) ('\(pattern)')"
        if pattern.isEmpty {
            throw SimulationConfigurationError(
                .invalidPattern, "behaviour \(position) has an empty pattern")
        }
        if actions.isEmpty {
            throw SimulationConfigurationError(
                .invalidPattern, "\(name) applies to no action; list .do, .compensate or both")
        }
        let rates = [
            ("busyRate", busyRate), ("rejectRate", rejectRate), ("silenceRate", silenceRate),
            ("lostReplyRate", lostReplyRate),
        ]
        for (label, rate) in rates where !(0...1).contains(rate) {
            throw SimulationConfigurationError(
                .invalidRate, "\(name): \(label) is \(rate); rates are between 0 and 1")
        }
        for (label, rate) in [("dropUndoRate", dropUndoRate), ("loseEffectRate", loseEffectRate)]
        where !(0...1).contains(rate) {
            throw SimulationConfigurationError(.invalidRate, "\(name): \(label) is \(rate); rates are between 0 and 1")
        }
        let total = rates.reduce(0) { $0 + $1.1 }
        if total > 1 + 1e-9 {
            throw SimulationConfigurationError(
                .invalidRate, "\(name): the failure rates add up to \(total); at most 1 is possible")
        }
        if let problem = latency.problem {
            throw SimulationConfigurationError(.invalidLatency, "\(name): \(problem)")
        }
    }

    /// Glob match where `*` and `#` match any run of bytes (the classic two-pointer algorithm, linear backtracking).
    static func glob(_ pattern: [UInt8], matches text: [UInt8]) -> Bool {
        let star = UInt8(ascii: "*")
        let hash = UInt8(ascii: "#")
        var p = 0
        var t = 0
        var starAt: Int?
        var resumeAt = 0
        while t < text.count {
            if p < pattern.count, pattern[p] == star || pattern[p] == hash {
                starAt = p
                resumeAt = t
                p += 1
            } else if p < pattern.count, pattern[p] == text[t] {
                p += 1
                t += 1
            } else if let starAt {
                p = starAt + 1
                resumeAt += 1
                t = resumeAt
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == star || pattern[p] == hash {
            p += 1
        }
        return p == pattern.count
    }
}

/// How long a participant takes to answer. Sampled at millisecond resolution from the command's seeded generator.
public enum Latency: Sendable, Hashable {
    /// Answers at once.
    case none
    /// Always the same delay.
    case fixed(Duration)
    /// Uniformly distributed between the bounds, both included.
    case uniform(ClosedRange<Duration>)
    /// Exponentially distributed with `mean`, cut at `max`: mostly quick, with a long tail that never stalls a demo.
    case exponential(mean: Duration, max: Duration)

    /// Why the latency cannot be sampled, or `nil` when it can.
    var problem: String? {
        switch self {
        case .none: nil
        case .fixed(let delay): delay < .zero ? "a fixed latency cannot be negative" : nil
        case .uniform(let range): range.lowerBound < .zero ? "a uniform latency cannot start below zero" : nil
        case .exponential(let mean, let max):
            mean < .zero || max < .zero ? "an exponential latency needs a mean and a maximum of zero or more" : nil
        }
    }
}

/// A configuration the simulator cannot run with: a stable code and a message that says what is wrong and how to
/// fix it (never a cause). Match on the code, not on the message.
public typealias SimulationConfigurationError = CodedError<SimulationConfigurationErrorDomain>

/// The simulator configuration's error family (``SimulationConfigurationError``): its codes are
/// `simulator.<snake_case>`.
public enum SimulationConfigurationErrorDomain: ErrorDomain {}

/// What kind of setting is wrong: the raw values (`simulator.<snake_case>`) are stable.
extension ErrorCode where Domain == SimulationConfigurationErrorDomain {
    /// A warehouse name that cannot be a routing key word.
    public static let invalidWarehouseName = Self(rawValue: "simulator.invalid_warehouse_name")
    /// A stock row with an empty SKU or a negative quantity.
    public static let invalidStock = Self(rawValue: "simulator.invalid_stock")
    /// An empty pattern, or a behaviour that applies to no action.
    public static let invalidPattern = Self(rawValue: "simulator.invalid_pattern")
    /// A failure rate outside 0...1, or rates adding up to more than 1.
    public static let invalidRate = Self(rawValue: "simulator.invalid_rate")
    /// A negative latency.
    public static let invalidLatency = Self(rawValue: "simulator.invalid_latency")
}
