import ArgumentParser
import Foundation
import Logging
import Prometheus
import ServiceLifecycle
import WaybillHTTP
import WaybillWorker

/// `waybill worker`: runs one worker until SIGTERM or SIGINT, then stops gracefully.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a worker of a pool: own a share of its partitions, drive their sagas, persist them in SQLite.",
        discussion: """
            Configuration comes from an optional YAML file (--config) and WAYBILL_* environment variables, which \
            win. The broker password is read from WAYBILL_AMQP_PASSWORD or the file named by amqp_password_file, \
            never from the command line. Every key is listed in docs/configuration.md.

            Workers with the same data directory (WAYBILL_DATA_DIRECTORY) form a pool: they share its partitions, \
            take over a dead worker's, and SIGTERM drains one (it hands its partitions off and exits 0). See \
            docs/pool.md.

            Examples:
              WAYBILL_AMQP_URL=amqp://waybill@rabbit:5672/ WAYBILL_AMQP_PASSWORD=... waybill worker
              waybill worker --config /etc/waybill/worker.yaml
              WAYBILL_WORKER_ID=w2 WAYBILL_DATA_DIRECTORY=/var/lib/waybill/pool WAYBILL_HTTP_ADDRESS=127.0.0.1:9465 \
              waybill worker
            """
    )

    @Option(help: ArgumentHelp("A YAML file of configuration keys.", valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error.", valueName: "level"))
    var logLevel: String = "info"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("unknown log level '\(logLevel)'; use trace, debug, info, notice, warning or error")
        }
    }

    func run() async throws {
        let configuration: WorkerConfiguration
        do {
            configuration = try WorkerConfiguration.load(file: config, environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(Data("waybill worker: \(error)\n".utf8))
            throw ExitCode(78)
        }
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "waybill.worker")
        logger.info("starting \(configuration)")
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let address = configuration.httpAddress {
            let registry = PrometheusCollectorRegistry()
            let worker = SagaWorker(
                configuration: configuration, logger: logger, metrics: WorkerMetrics(registry: registry))
            // The default address is a convenience: a second worker on the host runs without endpoints (and says so)
            // rather than not at all. An address the operator chose must work.
            let endpoints = WorkerEndpoints(
                address: address, registry: registry, readiness: { worker.readiness },
                logger: Logger(label: "waybill.http"), optional: address == WorkerConfiguration().httpAddress)
            services.append(.init(service: endpoints, successTerminationBehavior: .ignore))
            // The endpoints stop with the worker: once it drained, the process has nothing left to report.
            services.append(.init(service: worker, successTerminationBehavior: .gracefullyShutdownGroup))
        } else {
            services.append(.init(service: SagaWorker(configuration: configuration, logger: logger)))
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            logger.error("worker stopped with an error: \(error)")
            throw ExitCode(1)
        }
    }
}
