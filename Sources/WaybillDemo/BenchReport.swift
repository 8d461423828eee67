import PlainText

/// Messages one side of a round consumed and published.
struct MessageCounts: Sendable, Hashable {
    var consumed = 0
    var published = 0
}

/// What the rounds of one kind (end to end, or the pattern ceiling) did, added up over the rounds.
struct BenchPhase: Sendable {
    /// Ended sagas per second in each round (steady state: between 10% and 90% of the round's ends).
    var rates: [Double] = []
    /// Sagas fed, and how many of them completed (the others were compensated: only the mixed shape has those).
    var sagas = 0
    var completed = 0
    /// The worker side: the worker's batches (in-process workers), or the replay's own counts; `nil` when not observed
    /// (worker processes report nothing to the bench).
    var worker: MessageCounts?
    /// The simulated participants: commands consumed, replies published (from their ledger).
    var participants = MessageCounts()
    /// CPU over the whole rounds, ramp-up and tail included.
    var cpu = CPUUsage()

    /// The median rate.
    var rate: Double { BenchRunner.median(rates) }
}

/// The figures of one benchmark run.
public struct BenchReport: Sendable {
    /// The orders' shape.
    public var shape: BenchShape
    /// Orders per throughput round.
    public var orders: Int
    /// Sagas in flight during the throughput rounds.
    public var inFlight: Int
    /// Workers of the end-to-end pool.
    public var workers: Int
    /// Whether the throughput rounds' workers were `waybill worker` processes (else they ran in the bench process).
    public var workerProcesses: Bool
    var endToEndPhase = BenchPhase()
    var ceilingPhase = BenchPhase()
    /// CPUs online: the machine shares are of all of them.
    var cores = 1
    /// The broker's process as found on this machine (`beam.smp (pid 1234)`).
    var brokerLabel = "broker"
    /// Orders per second offered during the step-overhead run.
    public var overheadRate: Double = 0
    /// Only the step-overhead run ran, at a rate given by `--overhead-rate`: no throughput figures.
    var overheadOnly: Bool
    /// Reply consumed -> the batch's publish (its next commands) confirmed.
    public var overhead: LatencySummary?
    /// The CPU the machine spent during the step-overhead run, by party.
    var overheadCPU: CPUUsage?
    /// The same run through the pattern replay: reply consumed -> its next commands confirmed, without an engine or
    /// SQLite, so the least the messages alone take at that rate on this broker and machine.
    public var overheadFloor: LatencySummary?
    /// The CPU the machine spent during the floor's run.
    var overheadFloorCPU: CPUUsage?
    /// Sagas the memory run reached.
    public var memorySagas: Int
    /// The worker's peak resident set (VmHWM) in bytes, `nil` when the run was skipped.
    public var peakRSS: Int?
    /// How long the memory run took to get its sagas in flight.
    public var memoryRampUp: Duration?
    /// Why a figure is missing or what to keep in mind.
    public var notes: [String] = []

    /// Below this idle share during the step-overhead run, the report says its figures include waiting for a CPU.
    static let saturatedIdleShare = 0.15

    /// Takes the step-overhead runs' figures, with a note for each run during which the machine had next to no idle CPU.
    mutating func record(_ runs: OverheadRuns) {
        let run = runs.workers
        overhead = run.latency
        overheadCPU = run.cpu
        overheadFloor = runs.floor?.latency
        overheadFloorCPU = runs.floor?.cpu
        for (cpu, name) in [(run.cpu, "the step-overhead run"), (runs.floor?.cpu, "the floor's run")] {
            guard let idle = cpu?.idleShare, idle < Self.saturatedIdleShare else { continue }
            notes.append(
                "the CPUs were \(Format.fixed(idle * 100, 0)) % idle during \(name): at that rate the "
                    + "machine is saturated, so its figures include waiting for a CPU (docs/bench.md)")
        }
    }

    /// An empty report for `options`.
    init(options: BenchOptions) {
        shape = options.shape
        orders = options.orders
        inFlight = options.inFlight
        workers = options.workers
        workerProcesses = options.workerProcesses
        memorySagas = options.memorySagas
        overheadOnly = options.overheadRate != nil
    }

    /// Ended sagas per second through the worker in each round.
    public var endToEndRounds: [Double] { endToEndPhase.rates }
    /// Ended sagas per second through the replay of the same message pattern in each round.
    public var ceilingRounds: [Double] { ceilingPhase.rates }
    /// The median end-to-end throughput.
    public var endToEnd: Double { endToEndPhase.rate }
    /// The median pattern ceiling.
    public var ceiling: Double { ceilingPhase.rate }
    /// ``endToEnd`` / ``ceiling``; only like with like when the shape is not ``BenchShape/mixed``.
    public var ratio: Double { ceiling > 0 ? endToEnd / ceiling : 0 }

    /// The targets of issue 13 (docs/bench.md).
    static let ratioTarget = 0.70
    static let overheadP50Target: Duration = .milliseconds(2)
    static let overheadP99Target: Duration = .milliseconds(5)
    static let rssTargetMegabytes = 150.0

    /// The figures as people read them.
    public var text: String {
        func verdict(_ met: Bool) -> String { met ? "met" : "MISSED" }
        func rounds(_ values: [Double]) -> String {
            values.count > 1 ? " (median of \(values.map { Format.fixed($0, 1) }.joined(separator: ", ")))" : ""
        }
        let ends = shape == .mixed ? "ended" : "completed"
        var lines: [String] = []
        lines.append("Shape \(shape.rawValue): \(Self.describe(shape))")
        if !overheadOnly {
            let pool =
                workerProcesses
                ? "\(workers) `waybill worker` process\(workers == 1 ? "" : "es") on one pool"
                : (workers == 1 ? "1 worker in this process" : "a pool of \(workers) workers in this process")
            lines.append(
                "End-to-end: \(Format.grouped(orders)) order sagas per round, at most \(Format.grouped(inFlight)) in "
                    + "flight; \(pool); simulated participants, feeder and monitor in this process; synchronous=FULL, "
                    + "persistent messages, publisher confirms")
            lines.append(
                "  throughput        \(Format.fixed(endToEnd, 1)) \(ends) sagas/s\(rounds(endToEndRounds)); steady state: "
                    + "10%-90% of each round's ends")
            if shape == .mixed {
                lines.append(
                    "  ended             \(Format.grouped(endToEndPhase.completed)) completed, "
                        + "\(Format.grouped(endToEndPhase.sagas - endToEndPhase.completed)) compensated or cancelled "
                        + "(short stock)")
            }
            lines.append(
                "Pattern ceiling: the worker's messages for the \(shape.replayed.rawValue) shape replayed with the raw AMQP "
                    + "client in this process (no engine, no SQLite): the worker's queues and arguments, batches of up to "
                    + "256, one confirmed publish per batch, `multiple` acks; the same simulated participants")
            lines.append("  throughput        \(Format.fixed(ceiling, 1)) completed sagas/s\(rounds(ceilingRounds))")
            if shape == .mixed {
                lines.append(
                    "  ratio             \(Format.fixed(ratio, 2)) (not like with like: the ceiling replays "
                        + "two-shipment orders; the target is for --shape two-shipment)")
            } else if shape == .twoShipment {
                lines.append(
                    "  ratio             \(Format.fixed(ratio, 2)) (target >= \(Format.fixed(Self.ratioTarget, 2)): "
                        + "\(verdict(ratio >= Self.ratioTarget)))")
            } else {
                lines.append(
                    "  ratio             \(Format.fixed(ratio, 2)) (the >= \(Format.fixed(Self.ratioTarget, 2)) target is "
                        + "for --shape two-shipment)")
            }
            lines += table
        }
        lines.append(
            "Step overhead at \(Format.fixed(overheadRate, 0)) orders/s "
                + (overheadOnly ? "(--overhead-rate), " : "(half the end-to-end rate), ")
                + (workers == 1 ? "1 worker" : "\(workers) workers")
                + " in this process (it reads their batch timings): a reply consumed by the worker -> the batch "
                + "carrying its next command confirmed by the broker")
        if let overhead {
            lines.append(
                "  p50 \(Format.milliseconds(overhead.p50)) · p99 \(Format.milliseconds(overhead.p99)) · "
                    + "max \(Format.milliseconds(overhead.max)) over \(Format.grouped(overhead.count)) replies")
            if let overheadCPU { lines.append("  CPU meanwhile: \(overheadCPU.sharesText(cores: cores))") }
            lines.append(
                "  target p50 <= \(Format.milliseconds(Self.overheadP50Target)): "
                    + "\(verdict(overhead.p50 <= Self.overheadP50Target)) · target p99 <= "
                    + "\(Format.milliseconds(Self.overheadP99Target)): \(verdict(overhead.p99 <= Self.overheadP99Target))"
            )
        } else {
            lines.append("  no replies measured")
        }
        if let floor = overheadFloor {
            lines.append(
                "  floor, the same orders through the pattern replay (raw AMQP, no engine, no SQLite): p50 "
                    + "\(Format.milliseconds(floor.p50)) · p99 \(Format.milliseconds(floor.p99)) · max "
                    + "\(Format.milliseconds(floor.max)) over \(Format.grouped(floor.count)) replies")
            if let overheadFloorCPU { lines.append("  CPU meanwhile: \(overheadFloorCPU.sharesText(cores: cores))") }
        }
        lines.append(
            "Memory: peak RSS (VmHWM) of a `waybill worker` child process holding \(Format.grouped(memorySagas)) sagas "
                + "in flight, participants never replying")
        if let peakRSS {
            let megabytes = Double(peakRSS) / 1_048_576
            let ramp = memoryRampUp.map { ", \($0.readable) to get them in flight" } ?? ""
            let target = Format.fixed(Self.rssTargetMegabytes, 0)
            lines.append(
                "  \(Format.fixed(megabytes, 1)) MB\(ramp) (target <= \(target) MB at 100,000: "
                    + (memorySagas >= 100_000
                        ? verdict(megabytes <= Self.rssTargetMegabytes) : "not measured at 100,000 in --quick") + ")")
        } else {
            lines.append("  not measured")
        }
        for note in notes { lines.append("note: \(note)") }
        return lines.joined(separator: "\n")
    }

    /// The per-saga message counts and the CPU figures, end to end beside the ceiling.
    private var table: [String] {
        let (left, right) = (endToEndPhase, ceilingPhase)
        func row(_ label: String, _ a: String, _ b: String) -> String {
            "  " + label.padded(to: 36) + a.padded(to: 10, .right) + b.padded(to: 10, .right)
        }
        func perSaga(_ value: Int?, _ phase: BenchPhase) -> String {
            guard let value, phase.sagas > 0 else { return "-" }
            return Format.fixed(Double(value) / Double(phase.sagas), 2)
        }
        func milliseconds(_ ticks: Int?, _ phase: BenchPhase) -> String {
            CPUUsage.millisecondsPerSaga(ticks, sagas: phase.sagas).map { Format.fixed($0, 2) } ?? "-"
        }
        func percent(_ value: Double?) -> String { value.map { Format.fixed($0 * 100, 0) + " %" } ?? "-" }
        var lines = [
            "Per saga, over all rounds".padded(to: 38) + "end-to-end".padded(to: 10, .right)
                + "ceiling".padded(to: 10, .right),
            row(
                "worker side: deliveries consumed", perSaga(left.worker?.consumed, left),
                perSaga(right.worker?.consumed, right)),
            row(
                "worker side: messages published", perSaga(left.worker?.published, left),
                perSaga(right.worker?.published, right)),
            row(
                "participants: commands consumed", perSaga(left.participants.consumed, left),
                perSaga(right.participants.consumed, right)),
            row(
                "participants: replies published", perSaga(left.participants.published, left),
                perSaga(right.participants.published, right)),
            row("bench process: CPU-ms", milliseconds(left.cpu.bench, left), milliseconds(right.cpu.bench, right)),
            row("worker processes: CPU-ms", milliseconds(left.cpu.workers, left), "-"),
            "Share of \(cores) CPUs during the rounds".padded(to: 38)
                + "end-to-end".padded(to: 10, .right) + "ceiling".padded(to: 10, .right),
            row(
                brokerLabel, percent(left.cpu.machineShare(left.cpu.broker, cores: cores)),
                percent(right.cpu.machineShare(right.cpu.broker, cores: cores))),
            row(
                "bench process", percent(left.cpu.machineShare(left.cpu.bench, cores: cores)),
                percent(right.cpu.machineShare(right.cpu.bench, cores: cores))),
            row("worker processes", percent(left.cpu.machineShare(left.cpu.workers, cores: cores)), "-"),
            row("idle (idle + iowait)", percent(left.cpu.idleShare), percent(right.cpu.idleShare)),
            row(
                "everything else", percent(left.cpu.otherShare(cores: cores)),
                percent(right.cpu.otherShare(cores: cores))),
        ]
        lines.append(
            "  The worker side is "
                + (workerProcesses
                    ? "not observed end to end (worker processes report nothing to the bench; run without "
                        + "--worker-processes to count it)"
                    : "the in-process workers' batches end to end: their inputs, which include a timer tick every "
                        + "50 ms per worker besides the deliveries")
                + ", and the replay's own counts for the ceiling. The bench process runs the participants, the "
                + "feeder and the monitor, plus "
                + (workerProcesses ? "nothing else end to end" : "the worker(s) end to end")
                + " and the replay for the ceiling. Everything else is other programs and the kernel: well above "
                + "a few percent, the machine was not quiet and the figures are off.")
        return lines
    }

    /// What one saga of `shape` does.
    static func describe(_ shape: BenchShape) -> String {
        switch shape {
        case .twoShipment:
            "every order ships from two warehouses; per saga 1 start, 7 commands (accept, reserve, release x2, "
                + "ship x2, invoice), 7 replies, 8 milestone events"
        case .oneShipment:
            "every order ships from one warehouse; per saga 1 start, 5 commands (accept, reserve, release, ship, "
                + "invoice), 5 replies, 7 milestone events"
        case .mixed:
            "the demo's orders over its partly stocked catalogue: one to several shipments, some orders cancelled "
                + "for short stock (no injected failures, no latency)"
        }
    }
}

/// The step-overhead run's figures: reply -> confirmed latencies, and the CPU spent meanwhile.
struct StepOverhead: Sendable {
    var latency: LatencySummary?
    var cpu: CPUUsage
}
