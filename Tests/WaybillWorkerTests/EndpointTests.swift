import AMQPTransport
import Foundation
import Prometheus
import Synchronization
import Testing
import WaybillHTTP
import WaybillTestSupport

@testable import WaybillWorker

/// A worker's `/metrics`, `/healthz` and `/readyz`, served by ``WorkerEndpoints`` beside a real worker on the test
/// broker, and read over HTTP with ``HTTPProbe`` (what `waybill health` uses).
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
struct EndpointTests {
    /// Endpoints on a free loopback port for one worker, and the port once it listens.
    final class Served: Sendable {
        let registry = PrometheusCollectorRegistry()
        private let port = Mutex<Int?>(nil)

        var metrics: WorkerMetrics { WorkerMetrics(registry: registry) }

        func endpoints(for worker: SagaWorker) -> WorkerEndpoints {
            WorkerEndpoints(
                address: HTTPAddress(host: "127.0.0.1", port: 0), registry: registry,
                readiness: { worker.readiness }, logger: TestBroker.logger("http"),
                onListening: { port in self.port.withLock { $0 = port } })
        }

        func get(_ path: String) async throws -> HTTPProbe.Answer {
            try await eventually("the endpoints to listen", seconds: 10) { self.port.withLock { $0 } != nil }
            let port = try #require(self.port.withLock { $0 })
            return try await HTTPProbe.fetch(path, at: HTTPAddress(host: "127.0.0.1", port: port))
        }

        /// The value of one sample line of `/metrics` (`name{labels} value`), or `nil` when it is not there.
        func sample(_ series: String) async throws -> Double? {
            let text = try await get("/metrics").body
            for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
                return Double(line.dropFirst(series.count + 1))
            }
            return nil
        }
    }

    @Test("/metrics counts started and completed sagas, step durations and dead letters as orders flow")
    func metricsMoveWithTheOrders() async throws {
        try await Scenario.run { scenario in
            let served = Served()
            let worker = try await scenario.startWorker(endpoints: served.endpoints(for:), metrics: served.metrics)
            let workflow = "workflow=\"\(scenario.names.workflow)\""
            // Every series of the workflow is there at zero before the first saga, so rate() sees its first increase.
            #expect(try await served.sample("waybill_sagas_completed_total{\(workflow)}") == 0)
            #expect(try await served.sample("waybill_sagas_suspended_total{\(workflow)}") == 0)
            #expect(try await served.sample("waybill_step_duration_seconds_count{\(workflow),step=\"ship\"}") == 0)
            #expect(try await served.get("/metrics").status == 200)

            for id in ["m-1", "m-2", "m-3"] { try await scenario.placeOrder(id) }
            for id in ["m-1", "m-2", "m-3"] { try await scenario.waitForStatus(id, .completed, in: worker) }
            try await eventually("the completed sagas to be counted") {
                try await served.sample("waybill_sagas_completed_total{\(workflow)}") == 3
            }
            #expect(try await served.sample("waybill_sagas_started_total{\(workflow)}") == 3)
            #expect(try await served.sample("waybill_step_duration_seconds_count{\(workflow),step=\"accept\"}") == 3)
            let inf = try await served.sample(
                "waybill_step_duration_seconds_bucket{\(workflow),step=\"ship\",le=\"+Inf\"}")
            #expect(inf == 3)
            #expect(try await served.sample("waybill_partitions_owned") == Double(worker.worker.ownedPartitions.count))
            #expect(try await served.sample("waybill_broker_connected") == 1)

            try await scenario.publishStarts([Data("this is not JSON".utf8)])
            _ = try await scenario.deadLetters(1)
            try await eventually("the dead letter to be counted") {
                try await served.sample("waybill_dead_letters_total{reason=\"wire.not_json\"}") == 1
            }
        }
    }

    @Test("/metrics counts duplicates absorbed, failed attempts by participant and code, and the events' lag")
    func syncMetrics() async throws {
        // The carrier is busy at the first attempt of every shipment, and answers the first accept twice.
        let script: Participant.Script = { command in
            if command.routingKey == "tms.shipment.create", command.attempt == 1 {
                return .error("carrier_busy", retryable: true)
            }
            return command.routingKey == "erp.order.accept" ? .twice(.standard) : nil
        }
        try await Scenario.run(script: script) { scenario in
            let served = Served()
            let worker = try await scenario.startWorker(endpoints: served.endpoints(for:), metrics: served.metrics)
            try await scenario.placeOrder("d-1", messageId: "order-d-1")
            try await scenario.placeOrder("d-1", messageId: "order-d-1")
            try await scenario.waitForStatus("d-1", .completed, in: worker)
            try await eventually("the completed saga to be counted") {
                try await served.sample("waybill_sagas_completed_total{workflow=\"\(scenario.names.workflow)\"}") == 1
            }
            #expect(try await served.sample("waybill_duplicates_absorbed_total{kind=\"start\"}") == 1)
            #expect(try await served.sample("waybill_duplicates_absorbed_total{kind=\"reply\"}") == 1)
            #expect(
                try await served.sample("waybill_command_failures_total{participant=\"tms\",code=\"carrier_busy\"}")
                    == 1)
            let events = try #require(try await served.sample("waybill_event_lag_seconds_count"))
            #expect(events >= 6, "accepted, reserved, released, shipment shipped, shipped, invoiced, completed")
        }
    }

    @Test(
        "/readyz answers 503 with the reason while the broker is away and 200 again once it is back; /healthz stays 200"
    )
    func readinessFollowsTheBroker() async throws {
        let broker = try AMQPConfiguration(url: try #require(TestBroker.url))
        let link = try FaultyLink(brokerPort: UInt16(broker.endpoints[0].port))
        defer { link.stop() }
        let url = try StartupTests.url(through: link)
        try await Scenario.run { scenario in
            let served = Served()
            _ = try await scenario.startWorker(endpoints: served.endpoints(for:), metrics: served.metrics) {
                $0.amqpURL = url
            }
            try await eventually("the worker to be ready") { try await served.get("/readyz").status == 200 }
            #expect(try await served.get("/readyz").body.hasPrefix("ready: "))

            link.refuseNewConnections()
            link.cut()
            try await eventually("the worker to report the broker away") {
                let answer = try await served.get("/readyz")
                return answer.status == 503 && answer.body.contains("broker")
            }
            #expect(try await served.get("/healthz").status == 200)
            try await eventually("the broker connection gauge to drop") {
                try await served.sample("waybill_broker_connected") == 0
            }

            link.relayNewConnections()
            try await eventually("the worker to be ready again", seconds: 60) {
                try await served.get("/readyz").status == 200
            }
        }
    }
}
