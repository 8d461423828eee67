import CoreMetrics
import SagaEngine
import SagaStore
import Synchronization
import WaybillDefinition
import WaybillOperations

/// A worker's metrics, through swift-metrics. `waybill worker` backs them with a Prometheus registry that it serves on
/// `/metrics`; the names follow Prometheus conventions and docs/metrics.md lists them with what each means.
///
/// Every metric is made from the factory given here, never from the global `MetricsSystem`, so several workers in one
/// process (tests, the demo) keep apart. Saga and step figures count committed work only: a batch whose commit fails
/// counts nothing, and its redelivery counts once.
public final class WorkerMetrics: Sendable {
    /// Metric names, for the endpoint's tests and docs/metrics.md.
    public enum Name {
        public static let sagasStarted = "waybill_sagas_started_total"
        public static let sagasCompleted = "waybill_sagas_completed_total"
        public static let sagasCompensated = "waybill_sagas_compensated_total"
        public static let sagasSuspended = "waybill_sagas_suspended_total"
        public static let sagasCancelled = "waybill_sagas_cancelled_total"
        public static let stepDuration = "waybill_step_duration_seconds"
        public static let sagasInFlight = "waybill_sagas_in_flight"
        public static let outboxDepth = "waybill_outbox_depth"
        public static let queuedMessages = "waybill_queued_messages"
        public static let timerLag = "waybill_timer_lag_seconds"
        public static let redeliveries = "waybill_redeliveries_total"
        public static let sagasArchived = "waybill_sagas_archived_total"
        public static let signals = "waybill_signals_total"
        public static let duplicatesAbsorbed = "waybill_duplicates_absorbed_total"
        public static let commandFailures = "waybill_command_failures_total"
        public static let eventLag = "waybill_event_lag_seconds"
        public static let deadLetters = "waybill_dead_letters_total"
        public static let partitionsOwned = "waybill_partitions_owned"
        public static let brokerConnected = "waybill_broker_connected"
        public static let commandsHeld = "waybill_commands_held"
        public static let commandHold = "waybill_command_hold_seconds"
        public static let participantRate = "waybill_participant_rate"
        public static let participantInFlight = "waybill_participant_in_flight"
        public static let reservationAge = "waybill_reservation_age_seconds"
        public static let reconcileFindings = "waybill_reconcile_findings"
        public static let reconcileLastPass = "waybill_reconcile_last_pass_timestamp_seconds"
    }

    /// Upper bounds of `waybill_event_lag_seconds`: from the commit that wrote a milestone event to the broker's
    /// confirm, milliseconds normally, seconds while the broker is away.
    public static let eventLagBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5), .seconds(30),
    ]

    /// Upper bounds of `waybill_step_duration_seconds`: a step is one command and its reply, from milliseconds to
    /// minutes (a participant's queue during a wave).
    public static let stepDurationBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
        .seconds(30), .seconds(60), .seconds(300),
    ]

    private let factory: any MetricsFactory
    private let perWorkflow = Mutex<[String: WorkflowCounters]>([:])
    private let steps = Mutex<[StepKey: Timer]>([:])
    /// Labelled counters made on first use, by their label values.
    private let labelled = Mutex<[[String]: Counter]>([:])
    private let gauges = Mutex<[[String]: Gauge]>([:])
    private let holdTimers = Mutex<[[String]: Timer]>([:])
    /// The priority lanes each limit last reported held commands in.
    private let heldLanes = Mutex<[String: Set<Int>]>([:])
    /// The workflow and step pairs the reservation aging gauge last reported.
    private let agedSteps = Mutex<Set<[String]>>([])
    private let eventLag: Timer
    private let redeliveries: Counter
    private let sagasArchived: Counter
    private let signalsMatched: Counter
    private let signalsUnmatched: Counter
    private let sagasInFlight: Gauge
    private let outboxDepth: Gauge
    private let queuedMessages: Gauge
    private let timerLag: Gauge
    private let partitionsOwned: Gauge
    private let brokerConnected: Gauge

    private struct WorkflowCounters {
        var started: Counter
        var ended: [SagaStatus: Counter]
    }

    private struct StepKey: Hashable {
        var workflow: String
        var step: String
    }

    /// Metrics made by `factory`; the default records nothing.
    public init(factory: any MetricsFactory = NOOPMetricsHandler.instance) {
        self.factory = factory
        redeliveries = Counter(label: Name.redeliveries, factory: factory)
        sagasArchived = Counter(label: Name.sagasArchived, factory: factory)
        signalsMatched = Counter(label: Name.signals, dimensions: [("outcome", "matched")], factory: factory)
        eventLag = Timer(label: Name.eventLag, factory: factory)
        signalsUnmatched = Counter(label: Name.signals, dimensions: [("outcome", "unmatched")], factory: factory)
        sagasInFlight = Gauge(label: Name.sagasInFlight, factory: factory)
        outboxDepth = Gauge(label: Name.outboxDepth, factory: factory)
        queuedMessages = Gauge(label: Name.queuedMessages, factory: factory)
        timerLag = Gauge(label: Name.timerLag, factory: factory)
        partitionsOwned = Gauge(label: Name.partitionsOwned, factory: factory)
        brokerConnected = Gauge(label: Name.brokerConnected, factory: factory)
    }

    /// What one applied transition changed, taken before its commit and counted after it (``record(_:)``).
    struct Observation: Sendable {
        /// A step that finished in the transition.
        struct FinishedStep: Sendable {
            var step: String
            var startedAt: Timestamp
            var finishedAt: Timestamp
            var failed: Bool

            var duration: Duration { .milliseconds(max(0, finishedAt.milliseconds - startedAt.milliseconds)) }
        }

        var workflow: String
        var sagaId: String
        var trace: SagaTrace?
        var started: Bool
        /// The terminal or suspended status the saga reached, if it reached one.
        var ended: SagaStatus?
        var finishedSteps: [FinishedStep]

        /// What `before` -> `after` changed; `nil` when nothing countable did.
        init?(before: SagaInstance?, after: SagaInstance, definition: WorkflowDefinition) {
            workflow = after.key.workflow
            sagaId = after.key.id
            trace = after.trace
            started = before == nil
            ended = nil
            if after.status != before?.status,
                [.completed, .compensated, .suspended, .cancelled].contains(after.status)
            {
                ended = after.status
            }
            finishedSteps = []
            for (index, state) in after.steps.enumerated() where index < definition.steps.count {
                guard let finished = state.finishedAt, let startedAt = state.startedAt,
                    index >= (before?.steps.count ?? 0) || before?.steps[index].finishedAt == nil
                else { continue }
                finishedSteps.append(
                    FinishedStep(
                        step: definition.steps[index].id, startedAt: startedAt, finishedAt: finished,
                        failed: state.status == .failed))
            }
            if !started && ended == nil && finishedSteps.isEmpty { return nil }
        }
    }

    /// Makes the counters of `workflows` and the histograms of their steps at zero, so that Prometheus sees a series
    /// before its first increase (`rate()` and `increase()` need two samples of it).
    func prepare(_ workflows: [WorkflowDefinition]) {
        for workflow in workflows {
            _ = counters(of: workflow.name)
            for step in workflow.steps { _ = timer(workflow.name, step.id) }
        }
    }

    /// Counts committed transitions.
    func record(_ observations: [Observation]) {
        for observation in observations {
            let counters = counters(of: observation.workflow)
            if observation.started { counters.started.increment() }
            if let ended = observation.ended { counters.ended[ended]?.increment() }
            for step in observation.finishedSteps {
                let duration = step.duration
                timer(observation.workflow, step.step).recordNanoseconds(
                    duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
            }
        }
    }

    /// One more message that the broker delivered again (its `redelivered` flag set).
    func redelivered() { redeliveries.increment() }

    /// Finished sagas this worker moved out of its partition files into the pool's archive.
    func archived(_ count: Int) { sagasArchived.increment(by: count) }

    /// A message for wait steps reached one of this worker's partitions: `matched` when some saga there waited for it.
    func signal(matched: Bool) { (matched ? signalsMatched : signalsUnmatched).increment() }

    /// Messages the worker took for something it had already done, by kind (`start`, `reply`, `timer`, `control`): a
    /// redelivery its inbox recognised, or a reply the engine ignored because no command waited for it any more (a
    /// duplicate, or one that came after its timeout).
    func duplicatesAbsorbed(_ kinds: [String]) {
        for kind in kinds { counter(Name.duplicatesAbsorbed, [("kind", kind)]).increment() }
    }

    /// Failed command attempts, by participant (the routing key's first word) and code (`timeout` and `unroutable`
    /// included).
    func commandFailures(_ failures: [(participant: String, code: String)]) {
        for failure in failures {
            counter(Name.commandFailures, [("participant", failure.participant), ("code", failure.code)]).increment()
        }
    }

    /// Upper bounds of `waybill_command_hold_seconds`: how long a participant's limit held a command back.
    public static let holdBuckets: [Duration] = [
        .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(300),
    ]

    /// A held command went out after `held`, under the limit for `commands`, in lane `priority`.
    func commandReleased(commands: String, priority: Int, after held: Duration) {
        let dimensions = [("participant", commands), ("priority", PriorityLane.name(priority))]
        let timer = Self.made(holdTimers, Name.commandHold, dimensions) {
            Timer(label: Name.commandHold, dimensions: dimensions, factory: factory)
        }
        timer.recordNanoseconds(held.components.seconds * 1_000_000_000 + held.components.attoseconds / 1_000_000_000)
    }

    /// Each limit's figures now: commands held by priority, this worker's effective rate and commands in flight.
    func limits(_ statuses: [LimitReport]) {
        let named: Set = [PriorityLane.high, PriorityLane.normal, PriorityLane.low]
        for status in statuses {
            // A numbered lane that emptied since the last report goes back to 0, like the named ones.
            let lanes = heldLanes.withLock { reported in
                defer { reported[status.commands] = Set(status.held.keys) }
                return named.union(reported[status.commands] ?? []).union(status.held.keys)
            }
            for lane in lanes {
                gauge(Name.commandsHeld, [("participant", status.commands), ("priority", PriorityLane.name(lane))])
                    .record(status.held[lane] ?? 0)
            }
            if let rate = status.perSecond {
                gauge(Name.participantRate, [("participant", status.commands)]).record(rate)
            }
            gauge(Name.participantInFlight, [("participant", status.commands)]).record(status.inFlight)
        }
    }

    /// The findings of the pool's latest reconciliation pass, by kind (every kind, 0 when it found none), and when it
    /// ran.
    func reconciliation(_ report: ReconcileReport) {
        for kind in ReconcileFinding.Kind.allCases {
            gauge(Name.reconcileFindings, [("kind", kind.rawValue)])
                .record(report.findings.count { $0.kind == kind })
        }
        gauge(Name.reconcileLastPass, []).record(Double(report.finishedAt) / 1_000)
    }

    /// The age of the oldest saga holding each step's effect that it may still undo; a step that no saga holds any
    /// more goes back to 0.
    func reservations(_ oldest: [ReservationAging.Oldest], now: Timestamp) {
        let current = Set(oldest.map { [$0.workflow, $0.step] })
        let gone = agedSteps.withLock { reported in
            defer { reported = current }
            return reported.subtracting(current)
        }
        for key in gone {
            gauge(Name.reservationAge, [("workflow", key[0]), ("step", key[1])]).record(0)
        }
        for entry in oldest {
            gauge(Name.reservationAge, [("workflow", entry.workflow), ("step", entry.step)])
                .record(Double(max(0, now.milliseconds - entry.since.milliseconds)) / 1_000)
        }
    }

    private func gauge(_ label: String, _ dimensions: [(String, String)]) -> Gauge {
        Self.made(gauges, label, dimensions) { Gauge(label: label, dimensions: dimensions, factory: factory) }
    }

    /// The metric of `label` with `dimensions` from `cache`, made by `make` on first use.
    private static func made<Metric>(
        _ cache: borrowing Mutex<[[String]: Metric]>, _ label: String, _ dimensions: [(String, String)],
        make: () -> Metric
    ) -> Metric {
        cache.withLock { metrics in
            let key = [label] + dimensions.flatMap { [$0.0, $0.1] }
            if let metric = metrics[key] { return metric }
            let metric = make()
            metrics[key] = metric
            return metric
        }
    }

    /// How long a milestone event took from its commit to the broker's confirm.
    func eventConfirmed(after lag: Duration) {
        eventLag.recordNanoseconds(lag.components.seconds * 1_000_000_000 + lag.components.attoseconds / 1_000_000_000)
    }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        Self.made(labelled, label, dimensions) { Counter(label: label, dimensions: dimensions, factory: factory) }
    }

    /// One more message this worker dead-lettered, by the code of its `x-waybill-error` reason.
    func deadLettered(code: String) {
        counter(Name.deadLetters, [("reason", code)]).increment()
    }

    /// How late the latest due timers fired: now minus the earliest due time among them (0 when none was due).
    func timersFired(lag: Duration) {
        timerLag.record(Double(lag.components.seconds) + Double(lag.components.attoseconds) / 1e18)
    }

    /// The worker's periodic figures: owned partitions, their unfinished sagas and unconfirmed outbox rows, the
    /// messages waiting in their queues, and whether the broker connection is up.
    func gauges(partitions: Int, inFlight: Int?, outbox: Int?, queued: Int?, connected: Bool) {
        partitionsOwned.record(partitions)
        if let inFlight { sagasInFlight.record(inFlight) }
        if let outbox { outboxDepth.record(outbox) }
        if let queued { queuedMessages.record(queued) }
        brokerConnected.record(connected ? 1 : 0)
    }

    private func counters(of workflow: String) -> WorkflowCounters {
        perWorkflow.withLock { all in
            if let counters = all[workflow] { return counters }
            let dimensions = [("workflow", workflow)]
            let counters = WorkflowCounters(
                started: Counter(label: Name.sagasStarted, dimensions: dimensions, factory: factory),
                ended: [
                    .completed: Counter(label: Name.sagasCompleted, dimensions: dimensions, factory: factory),
                    .compensated: Counter(label: Name.sagasCompensated, dimensions: dimensions, factory: factory),
                    .suspended: Counter(label: Name.sagasSuspended, dimensions: dimensions, factory: factory),
                    .cancelled: Counter(label: Name.sagasCancelled, dimensions: dimensions, factory: factory),
                ])
            all[workflow] = counters
            return counters
        }
    }

    private func timer(_ workflow: String, _ step: String) -> Timer {
        steps.withLock { timers in
            let key = StepKey(workflow: workflow, step: step)
            if let timer = timers[key] { return timer }
            let timer = Timer(
                label: Name.stepDuration, dimensions: [("workflow", workflow), ("step", step)], factory: factory)
            timers[key] = timer
            return timer
        }
    }
}
