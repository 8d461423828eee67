import Foundation
import Logging
import SagaEngine
import SagaStore
import WaybillDefinition
import WaybillOperations

/// `reconcile_every`: the pool reconciles its ended sagas with the participants on a schedule, one pass at a time,
/// run by whichever worker owns partition 0. A pass is the same as `waybill reconcile --since <reconcile_window>`: it
/// reads the partition files, asks the participants directly (never through the hot loop), journals its findings
/// through the owners, and keeps its report in the pool's `reconcile/` folder.
final class ScheduledReconciliation: Sendable {
    let configuration: WorkerConfiguration
    let every: Duration
    let limits: ParticipantLimits?
    let partitions: OwnedPartitions
    let metrics: WorkerMetrics
    let logger: Logger

    init(
        configuration: WorkerConfiguration, every: Duration, limits: ParticipantLimits?, partitions: OwnedPartitions,
        metrics: WorkerMetrics, logger: Logger
    ) {
        self.configuration = configuration
        self.every = every
        self.limits = limits
        self.partitions = partitions
        self.metrics = metrics
        self.logger = logger
    }

    /// Runs a pass every ``every`` while this worker owns partition 0, until the task is cancelled.
    func run() async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: every)
            } catch {
                return
            }
            guard partitions.numbers.contains(0) else { continue }
            await pass()
        }
    }

    /// One pass; a failure is logged and the next pass tries again.
    func pass() async {
        do {
            let inspector = try SagaInspector(dataDirectory: configuration.dataDirectory)
            let now = Timestamp.now()
            let reconciler = Reconciler(
                inspector: inspector,
                route: RepairRoute(
                    pool: try SagaInspector.openPool(configuration.dataDirectory), poolName: configuration.poolName),
                commandsExchange: configuration.commandsExchange,
                since: now.adding(milliseconds: -configuration.reconcileWindow.milliseconds), workflow: nil,
                rate: configuration.reconcileRate, limits: limits, repair: configuration.reconcileRepair,
                by: "worker \(configuration.workerId)", now: { Timestamp.now() })
            let report = try await reconciler.run(
                broker: BrokerSettings.from(
                    urlWithPassword: configuration.amqpURL, password: configuration.amqpPassword))
            try ReconcileReports(dataDirectory: configuration.dataDirectory).save(report)
            metrics.reconciliation(report)
            let drift = report.findings.count { $0.kind.isDrift }
            let message: Logger.Message =
                "reconciliation \(report.id): \(report.sagaCount) sagas, \(report.queryCount) queries, \(report.findings.count) findings (\(drift) drift); waybill reconcile report --pass \(report.id)"
            logger.log(level: drift > 0 ? .warning : .info, message)
        } catch {
            logger.error("reconciliation pass failed: \(error); the next one runs in \(every)")
        }
    }
}
