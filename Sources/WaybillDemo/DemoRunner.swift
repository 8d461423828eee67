import Foundation
import Logging
import PlainText
import SagaEngine
import WaybillDefinition
import WaybillSimulator
import WaybillWire
import WaybillWorker

/// Everything `waybill demo` can be told. Every field has a default.
public struct DemoOptions: Sendable {
    /// The broker to run on.
    public var broker: BrokerAddress
    /// How many orders to publish.
    public var orders: Int = 1000
    /// How many workers run the pool, in this process (``workerRange``).
    public var workers: Int = 3
    /// Orders published per second; `nil` publishes as fast as ``maxInFlight`` allows.
    public var rate: Double?
    /// The share of commands that fail by injection (busy, rejected, lost reply), 0...1.
    public var failureRate: Double = 0.02
    /// Drift on purpose, for the reconciliation to find: this share of undos is answered ok and dropped, and a
    /// twentieth of it of forward effects is lost after its ok reply, 0...1.
    public var driftRate: Double = 0.05
    /// Once the orders ended, reconcile the sagas with the participants' records (and repair what can be).
    public var reconcile: Bool = true
    /// Warehouses in the catalogue, 3...5 (each has a WMS; orders split across them).
    public var warehouses: Int = 4
    /// Seeds the catalogue, the orders and the injected failures: the same seed gives the same run.
    public var seed: UInt64 = 2025
    /// Participants answer after a simulated latency (a few milliseconds) rather than at once.
    public var participantLatency: Bool = true
    /// Most sagas in flight at once; publishing pauses above it.
    public var maxInFlight: Int = 300
    /// The workflow file the workers run.
    public var workflowFile: String = "Workflows/order-fulfillment.yaml"
    /// Returns sent once the orders ended, for that many of the completed orders; `nil` is one in ten orders.
    public var returns: Int?
    /// The returns workflow they run.
    public var returnsWorkflowFile: String = "Workflows/returns.yaml"
    /// How long a backorder waits for stock before its remaining lines are cancelled: the demo's copy of the workflow
    /// has this instead of the shipped deadline, so a run shows both ends of a backorder.
    public var backorderDeadline: Duration = .seconds(15)
    /// How often stock arrives for the open backorders (but the discontinued SKU's).
    public var arrivalInterval: Duration = .seconds(2)
    /// The returns the run sends at most (fewer when fewer orders completed).
    public var returnCount: Int { max(0, returns ?? orders / 10) }
    /// The folder of the returns' pool (`pool`) and workflow copy: `returns` inside ``directory``.
    public var returnsDirectory: String { (directory as NSString).appendingPathComponent("returns") }
    /// Where the pool's data directory (`pool`), the workflow copy and the log go.
    public var directory: String = ".waybill/demo"
    /// The pool's data directory, `pool` inside ``directory``; each run replaces it.
    public var dataDirectory: String {
        (directory as NSString).appendingPathComponent(StageSetup.defaultPoolDirectoryName)
    }
    /// Prefix every broker name (tests); `nil` uses the shipped names.
    public var namespace: String?
    /// Give up waiting for the sagas to end after this long.
    public var timeout: Duration = .seconds(600)
    /// After the summary, keep the workers and participants running until SIGINT/SIGTERM.
    public var keepRunning: Bool = false
    /// Stop on SIGINT/SIGTERM (the CLI); tests leave it off.
    public var handleSignals: Bool = false
    /// How often progress is reported.
    public var progressInterval: Duration = .milliseconds(250)

    /// Options for `broker`, every other field defaulted.
    public init(broker: BrokerAddress) {
        self.broker = broker
    }

    /// The workers a run may have: one, up to one per partition of the default pool.
    public static let workerRange = 1...16

    /// Checks a `--workers` value against ``workerRange``; the message names the flag.
    public static func checkWorkers(_ workers: Int) throws(DemoError) {
        guard workerRange.contains(workers) else {
            throw DemoError(
                .invalidOption,
                "--workers must be between \(workerRange.lowerBound) and \(workerRange.upperBound), got \(workers)")
        }
    }

    /// Checks ranges; the message names the flag.
    public func validate() throws(DemoError) {
        guard orders >= 1 else { throw DemoError(.invalidOption, "--orders must be at least 1, got \(orders)") }
        try Self.checkWorkers(workers)
        if let rate, !(rate > 0) { throw DemoError(.invalidOption, "--rate must be above 0 orders/s, got \(rate)") }
        guard (0...1).contains(failureRate) else {
            throw DemoError(.invalidOption, "--failure-rate must be between 0 and 1, got \(failureRate)")
        }
        guard (0...1).contains(driftRate) else {
            throw DemoError(.invalidOption, "--drift-rate must be between 0 and 1, got \(driftRate)")
        }
        guard (3...5).contains(warehouses) else {
            throw DemoError(.invalidOption, "--warehouses must be 3, 4 or 5, got \(warehouses)")
        }
        guard maxInFlight >= 1 else { throw DemoError(.invalidOption, "--max-in-flight must be at least 1") }
        guard backorderDeadline >= .seconds(1) else {
            throw DemoError(.invalidOption, "--backorder-deadline must be at least 1s, got \(backorderDeadline)")
        }
        if let returns, returns < 0 { throw DemoError(.invalidOption, "--returns must be 0 or more, got \(returns)") }
    }
}

/// A snapshot of a demo run for the progress display.
public struct DemoProgress: Sendable, Hashable {
    /// Orders to publish in all.
    public var total: Int
    /// Orders published so far.
    public var published: Int
    /// Sagas that completed.
    public var completed: Int
    /// Sagas that undid their steps.
    public var compensated: Int
    /// Sagas waiting for an operator.
    public var suspended: Int
    /// Sagas cancelled by an operator.
    public var cancelled: Int
    /// Time since the first order was published.
    public var elapsed: Duration
    /// Sagas ended per second, recently.
    public var rate: Double
    /// Sagas published and not ended.
    public var inFlight: Int { max(0, published - ended) }
    /// Sagas in an end state (suspended included).
    public var ended: Int { completed + compensated + suspended + cancelled }
    /// The time left at the recent rate, when there is one.
    public var eta: Duration? {
        guard rate > 0.5, ended < total else { return nil }
        return .milliseconds(Int64(Double(total - ended) / rate * 1000))
    }
}

/// Runs the demo: a pool of workers with the shipped workflow, the simulated participants and a stream of varied
/// orders on one broker, in this process; reports progress while the orders run and returns the summary.
public enum DemoRunner {
    /// Runs the demo. `progress` is called every ``DemoOptions/progressInterval`` and once at the end; `summary`
    /// once, before the run stops (or keeps running, with ``DemoOptions/keepRunning``).
    public static func run(
        _ options: DemoOptions, logger: Logger, progress: @escaping @Sendable (DemoProgress) -> Void,
        summary: @escaping @Sendable (DemoSummary) -> Void = { _ in }
    ) async throws -> DemoSummary {
        try options.validate()
        let catalogue = catalogue(orders: options.orders, warehouses: options.warehouses, seed: options.seed)
        let simulator = try ParticipantSimulator(
            configuration: catalogue.configuration(
                behaviours: behaviours(
                    failureRate: options.failureRate, driftRate: options.driftRate, latency: options.participantLatency),
                seed: options.seed, discontinued: [discontinuedSKU(of: catalogue)].compactMap { $0 }))
        let deadline = options.backorderDeadline
        let setup = StageSetup(
            broker: options.broker, names: try DemoNames(namespace: options.namespace),
            workflowFile: options.workflowFile, directory: options.directory, workers: options.workers,
            respond: simulator.handle, handleSignals: options.handleSignals,
            removeTopologyWhenDone: options.namespace != nil, arrivals: simulator.receiveStock,
            arrivalInterval: options.arrivalInterval,
            editWorkflow: { try backorderDeadline(in: $0, to: deadline) })
        let returning = options.returnCount > 0
        if returning { try checkWorkflow(options.returnsWorkflowFile) }
        let (ordersSummary, returnable) = try await DemoStage.run(setup, logger: logger) { stage in
            let orders = try (1...options.orders).map { index in
                let id = "o-" + String(index).padded(to: 6, .right, fill: "0")
                let body = JSONText.encodeBytes(
                    catalogue.order(id: id, lines: 1...6, quantity: 1...4, seed: options.seed))
                let sagaId = try WireMessages.start(body, definition: stage.workflow).sagaId
                return (sagaId: sagaId, body: body)
            }
            let feed = OrderFeed(
                publisher: stage.publisher, monitor: stage.monitor, isRunning: { stage.isRunning },
                rate: options.rate, maxInFlight: options.maxInFlight, timeout: options.timeout,
                progressInterval: options.progressInterval)
            let outcome = try await feed.run(orders) { tally, elapsed in
                progress(
                    DemoProgress(
                        total: orders.count, published: tally.published, completed: tally.completed,
                        compensated: tally.compensated, suspended: tally.suspended, cancelled: tally.cancelled,
                        elapsed: elapsed, rate: stage.monitor.recentRate()))
            }
            // Reconciled (and repaired) before the summary counts leaks, so a dropped undo the pass repaired is none.
            var reconciliation: ReconciliationSummary?
            if options.reconcile, case .finished = outcome {
                reconciliation = try await ReconciliationSummary.run(stage: stage, simulator: simulator)
            }
            var result = try DemoSummary(
                stage: stage, sagaIds: orders.map(\.sagaId), simulator: simulator, outcome: outcome, options: options)
            result.reconciliation = reconciliation
            guard returning, case .finished = outcome else {
                try await finish(result, stage: stage, options: options, summary: summary)
                return (result, [(sagaId: String, body: [UInt8])]())
            }
            let completed = Set(
                try stage.storedSagas(orders.map(\.sagaId)).filter { $0.value.status == .completed }.keys)
            let requests = try ReturnsSummary.requests(
                for: orders, completed: completed, count: options.returnCount,
                warehouse: catalogue.warehouses.sorted().first ?? "")
            if requests.isEmpty { try await finish(result, stage: stage, options: options, summary: summary) }
            return (result, requests)
        }
        guard !returnable.isEmpty else { return ordersSummary }

        // The returns run on a pool of their own (in `returns/` of the demo's folder, beside the orders' pool and
        // workflow copy), with the same participants, and so the same stock.
        var returnsSetup = setup
        returnsSetup.arrivals = nil
        returnsSetup.workflowFile = options.returnsWorkflowFile
        returnsSetup.directory = options.returnsDirectory
        return try await DemoStage.run(returnsSetup, logger: logger) { stage in
            let ids = try returnable.map { try WireMessages.start($0.body, definition: stage.workflow).sagaId }
            let feed = OrderFeed(
                publisher: stage.publisher, monitor: stage.monitor, isRunning: { stage.isRunning },
                rate: options.rate, maxInFlight: options.maxInFlight, timeout: options.timeout,
                progressInterval: options.progressInterval)
            let outcome = try await feed.run(returnable)
            var result = ordersSummary
            result.returns = try ReturnsSummary(stage: stage, sagaIds: ids, simulator: simulator, outcome: outcome)
            // The participants' counters now include the returns' commands.
            result.participants = DemoSummary.participants(simulator.ledger())
            try await finish(result, stage: stage, options: options, summary: summary)
            return result
        }
    }

    /// Reads and validates a workflow file before anything runs, so a bad one fails the run at once rather than after
    /// the orders.
    private static func checkWorkflow(_ file: String) throws {
        _ = try DemoStage.loadWorkflow(try DemoStage.readWorkflow(file), file: file)
    }

    /// Hands the summary over and, with ``DemoOptions/keepRunning``, keeps the stage running until it stops.
    private static func finish(
        _ result: DemoSummary, stage: DemoStage, options: DemoOptions, summary: @Sendable (DemoSummary) -> Void
    ) async throws {
        summary(result)
        if options.keepRunning {
            while stage.isRunning { try? await Task.sleep(for: .milliseconds(200)) }
        }
    }

    /// A catalogue sized for `orders`: 30 SKUs over `warehouses` warehouses, 60% of the (warehouse, SKU) pairs
    /// stocked, unevenly. Each SKU holds 1.3-1.7 times the units the orders will ask for, so most orders ship (many
    /// from several warehouses); one SKU is short (half of its demand), so orders for it run out of stock as the run
    /// goes on, warehouses race for its last units, and those sagas reallocate or compensate.
    /// The SKU that never comes back in stock: the one the catalogue stocks at half its demand, so its backorders are
    /// cancelled at their deadline.
    static func discontinuedSKU(of catalogue: DemoCatalogue) -> String? { catalogue.skus.last }

    /// The workflow text with the `timeout` of its `await-stock` wait set to `deadline`; a workflow without that step
    /// (another file, the returns) is returned as it is.
    static func backorderDeadline(in text: String, to deadline: Duration) throws -> String {
        var lines = text.components(separatedBy: "\n")
        guard let step = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "- id: await-stock" })
        else { return text }
        let stepIndent = lines[step].prefix { $0 == " " }.count
        for index in (step + 1)..<lines.count {
            let line = lines[index]
            let indent = line.prefix { $0 == " " }.count
            if !line.trimmingCharacters(in: .whitespaces).isEmpty, indent <= stepIndent { break }
            guard line.trimmingCharacters(in: .whitespaces).hasPrefix("timeout:") else { continue }
            lines[index] =
                String(repeating: " ", count: indent) + "timeout: \(deadline.milliseconds)ms"
                + "   # the demo's backorder deadline (--backorder-deadline)"
            return lines.joined(separator: "\n")
        }
        throw DemoError(.fileProblem, "the await-stock step of the workflow has no timeout to shorten")
    }

    static func catalogue(orders: Int, warehouses: Int, seed: UInt64) -> DemoCatalogue {
        let skus = 30
        // Orders have 1-6 lines (3.5 on average) of 1-4 units (2.5 on average).
        let demandPerSKU = Double(orders) * 3.5 * 2.5 / Double(skus)
        var catalogue = DemoCatalogue(
            warehouses: warehouses, skus: skus, units: 10...100, stockedShare: 0.6, seed: seed)
        for (position, sku) in catalogue.skus.enumerated() {
            let rows = catalogue.stock.indices.filter { catalogue.stock[$0].sku == sku }
            guard !rows.isEmpty else { continue }
            // A SKU no warehouse stocks would fail every order that asks for it; give it one warehouse.
            if rows.allSatisfy({ catalogue.stock[$0].quantity == 0 }) {
                catalogue.stock[rows[position % rows.count]].quantity = 1
            }
            // The last SKU is short (and discontinued: its backorders are cancelled), the one before it short but
            // restocked (its backorders are filled); the others have more than the orders need.
            let factor =
                position == skus - 1 ? 0.5 : position == skus - 2 ? 0.7 : 1.3 + 0.4 * Double((position * 7) % 11) / 10
            let wanted = max(1, Int(demandPerSKU * factor))
            let held = rows.reduce(0) { $0 + catalogue.stock[$1].quantity }
            var assigned = 0
            for index in rows {
                let share = catalogue.stock[index].quantity * wanted / held
                catalogue.stock[index].quantity = share
                assigned += share
            }
            if let first = rows.first(where: { catalogue.stock[$0].quantity > 0 }) {
                catalogue.stock[first].quantity += wanted - assigned
            }
        }
        return catalogue
    }

    /// Latency and injected failures: `failureRate` of the commands fail, half of them with the retryable `busy`,
    /// a quarter `rejected` (not retryable: the saga compensates, or is suspended after the pivot), and a small share
    /// lose their reply after applying the effect (the saga times out, retries, and gets the remembered reply); returns
    /// lose none.
    ///
    /// `driftRate` of the undos (but the returns') are answered ok and dropped, and a twentieth of it of the forward
    /// effects is lost after the ok reply: the drift the reconciliation finds.
    static func behaviours(failureRate: Double, driftRate: Double = 0, latency: Bool) -> [CommandBehaviour] {
        let busy = failureRate * 0.5
        let reject = failureRate * 0.25
        let lost = failureRate * 0.05
        // The returns workflow waits minutes for a reply (a dock scans a parcel, QA inspects it), so its commands
        // fail only with busy and rejected: a lost reply would hold the demo for that long.
        let returns = ["*.return.*", "inventory.restock", "inventory.unstock", "billing.credit.*"].map { pattern in
            CommandBehaviour(
                pattern: pattern,
                latency: latency ? .exponential(mean: .milliseconds(3), max: .milliseconds(40)) : .none,
                busyRate: busy, rejectRate: reject)
        }
        return returns + [
            CommandBehaviour(
                pattern: "wms.*", latency: latency ? .uniform(.milliseconds(1) ... .milliseconds(8)) : .none,
                busyRate: busy, rejectRate: reject, lostReplyRate: lost, dropUndoRate: driftRate,
                loseEffectRate: driftRate / 20),
            CommandBehaviour(
                pattern: "*", latency: latency ? .exponential(mean: .milliseconds(3), max: .milliseconds(40)) : .none,
                busyRate: busy, rejectRate: reject, lostReplyRate: lost, dropUndoRate: driftRate,
                loseEffectRate: driftRate / 20),
        ]
    }
}

extension DemoProgress {
    /// One terminal line: a bar of `width` cells, then the counts, the rate and the ETA.
    public func bar(width: Int = 28) -> String {
        ProgressBar.text(done: ended, total: total, width: width) + "  " + counts
    }

    /// A line for logs and pipes: the same figures without the bar.
    public var plainLine: String {
        "\(elapsed.readable): \(ended)/\(total) ended  " + counts
    }

    private var counts: String {
        let eta =
            eta.map { " · ETA \($0.readable)" }
            ?? (inFlight > 0 && rate <= 0.5 && elapsed > .seconds(3) ? " · waiting for replies or timeouts" : "")
        return "done \(completed) · compensated \(compensated) · suspended \(suspended) · in flight \(inFlight) · "
            + "\(Format.fixed(rate, 0))/s\(eta)"
    }
}
