import Hummingbird
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle
import Synchronization
import WaybillWorker

/// A worker's HTTP endpoints, served by Hummingbird beside the worker in its `ServiceGroup`:
///
/// - `GET /metrics`: the worker's metrics in Prometheus' text format (docs/metrics.md);
/// - `GET /healthz`: 200 while the process serves requests (liveness);
/// - `GET /readyz`: 200 when the worker takes work, else 503 with one line per problem (``SagaWorker/readiness``).
///
/// Bind it to loopback unless something outside the host scrapes it (the default `http_address` is
/// `127.0.0.1:9464`); it has no authentication.
public struct WorkerEndpoints: Service {
    /// The registry `/metrics` renders: give the worker `WorkerMetrics(registry:)` of the same one.
    public let registry: PrometheusCollectorRegistry
    private let address: HTTPAddress
    private let readiness: @Sendable () -> WorkerReadiness
    private let logger: Logger
    private let onListening: @Sendable (Int) async -> Void
    private let optional: Bool

    /// Endpoints on `address` (port 0 picks a free one; `onListening` gets the port once the server listens).
    /// `readiness` is asked on every `/readyz` request, so it must be cheap. When `optional`, an address that cannot
    /// be bound (another worker on the host has the default port) is logged and `run()` returns; otherwise it throws.
    public init(
        address: HTTPAddress, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        readiness: @escaping @Sendable () -> WorkerReadiness, logger: Logger, optional: Bool = false,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        self.optional = optional
        self.address = address
        self.registry = registry
        self.readiness = readiness
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        let router = Router()
        let registry = registry
        let readiness = readiness
        router.get("/metrics") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        router.get("/healthz") { _, _ -> Response in
            Self.text(.ok, "ok\n")
        }
        router.get("/readyz") { _, _ -> Response in
            let state = readiness()
            if state.isReady {
                return Self.text(.ok, "ready: \(state.partitions.count) partitions owned\n")
            }
            return Self.text(.serviceUnavailable, state.problems.map { "not ready: \($0)\n" }.joined())
        }
        let onListening = onListening
        let logger = logger
        let listening = Mutex(false)
        let app = Application(
            router: router,
            configuration: ApplicationConfiguration(
                address: .hostname(address.host, port: address.port), serverName: "waybill"),
            onServerRunning: { channel in
                listening.withLock { $0 = true }
                let port = channel.localAddress?.port ?? 0
                logger.info("serving /metrics, /healthz and /readyz", metadata: ["port": "\(port)"])
                await onListening(port)
            },
            logger: logger)
        do {
            try await app.run()
        } catch  where !listening.withLock({ $0 }) {
            if optional {
                logger.warning(
                    """
                    not serving /metrics, /healthz and /readyz: \(address) cannot be bound (\(error)); set \
                    http_address (WAYBILL_HTTP_ADDRESS) to a free host:port for each worker on this host
                    """)
                return
            }
            throw EndpointError(
                "cannot serve /metrics, /healthz and /readyz on \(address): \(error); give each worker on a host its own "
                    + "http_address (WAYBILL_HTTP_ADDRESS), or set it to off")
        }
    }

    /// Why the endpoints could not start: the message names the address and the fix.
    public struct EndpointError: Error, CustomStringConvertible {
        public var description: String

        init(_ description: String) { self.description = description }
    }

    private static func text(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(
            status: status, headers: [.contentType: "text/plain; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }
}

extension WorkerMetrics {
    /// Metrics recorded into `registry` (what ``WorkerEndpoints`` serves on `/metrics`), through swift-metrics, with
    /// the step histogram's buckets.
    public convenience init(registry: PrometheusCollectorRegistry) {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets[WorkerMetrics.Name.stepDuration] = WorkerMetrics.stepDurationBuckets
        factory.durationHistogramBuckets[WorkerMetrics.Name.eventLag] = WorkerMetrics.eventLagBuckets
        factory.durationHistogramBuckets[WorkerMetrics.Name.commandHold] = WorkerMetrics.holdBuckets
        self.init(factory: factory)
    }
}
