import AMQPTransport
import Foundation
import InMemoryTracing
import SagaEngine
import SagaStore
import Testing
import Tracing
import WaybillDefinition
import WaybillTestSupport
import WaybillWire

@testable import WaybillWorker

/// W3C Trace Context through a real worker: one order is one trace, whatever its messages.
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
struct TraceTests {
    /// `traceparent` split into its four fields, or `nil` when it is not `00-<32 hex>-<16 hex>-<2 hex>`.
    static func fields(_ header: String?) -> (traceId: String, spanId: String, flags: String)? {
        guard let parts = header?.split(separator: "-").map(String.init), parts.count == 4, parts[0] == "00",
            parts[1].count == 32, parts[2].count == 16, parts[3].count == 2,
            (parts[1] + parts[2] + parts[3]).allSatisfy(\.isHexDigit)
        else { return nil }
        return (parts[1], parts[2], parts[3])
    }

    /// Places an order whose start message carries `headers`.
    static func placeOrder(_ id: String, headers: AMQPTable, in scenario: Scenario) async throws {
        var properties = MessageProperties(contentType: "application/json", persistent: true, messageID: "start-\(id)")
        properties.headers = headers
        let outcome = try await scenario.client.publish(
            OutboundMessage(
                exchange: scenario.names.triggerExchange, routingKey: "order.placed",
                body: Data(JSONText.encode(OrderJSON.order(id, lines: [("sku-1", 1)])).utf8), mandatory: true,
                properties: properties))
        #expect(outcome.isConfirmed)
    }

    /// The `traceparent` of every command and milestone of `sagaId`.
    static func traceParents(of sagaId: String, in scenario: Scenario) -> [String?] {
        scenario.participant.received(saga: sagaId).map { $0.headers["traceparent"] }
            + scenario.observer.events(of: sagaId).map { $0.headers["traceparent"] }
    }

    @Test(
        "a start's traceparent is carried on every command and milestone, each with a span of its own; tracestate too")
    func startTraceIsCarried() async throws {
        try await Scenario.run { scenario in
            let worker = try await scenario.startWorker()
            let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            try await Self.placeOrder(
                "t-1", headers: ["traceparent": .string(parent), "tracestate": .string("shop=web")], in: scenario)
            let saga = try await scenario.waitForStatus("t-1", .completed, in: worker)
            try await scenario.waitForEvent("order.completed", of: "t-1")
            #expect(saga.instance.trace == SagaTrace(traceParent: parent, traceState: "shop=web"))

            let headers = Self.traceParents(of: "t-1", in: scenario)
            let fields = headers.compactMap(Self.fields)
            #expect(headers.count >= 12, "7 commands and the milestones: \(headers.count)")
            #expect(fields.count == headers.count, "every message has a valid traceparent: \(headers)")
            #expect(fields.allSatisfy { $0.traceId == "4bf92f3577b34da6a3ce929d0e0e4736" && $0.flags == "01" })
            let spans = fields.map(\.spanId)
            #expect(Set(spans).count == spans.count, "a span id per message")
            #expect(!spans.contains("00f067aa0ba902b7"))
            #expect(scenario.participant.received(saga: "t-1").allSatisfy { $0.headers["tracestate"] == "shop=web" })
        }
    }

    @Test(
        "a start without a trace (or with an unreadable one) gets a new trace of its own, the same on all its messages")
    func newTracePerOrder() async throws {
        try await Scenario.run { scenario in
            let worker = try await scenario.startWorker()
            try await scenario.placeOrder("t-2")
            try await Self.placeOrder("t-3", headers: ["traceparent": .string("00-garbage-01")], in: scenario)
            for id in ["t-2", "t-3"] {
                try await scenario.waitForStatus(id, .completed, in: worker)
                try await scenario.waitForEvent("order.completed", of: id)
            }
            var traces: [String] = []
            for id in ["t-2", "t-3"] {
                let fields = Self.traceParents(of: id, in: scenario).map(Self.fields)
                #expect(fields.allSatisfy { $0 != nil }, "every message of \(id) has a valid traceparent")
                let ids = Set(fields.compactMap { $0?.traceId })
                #expect(ids.count == 1, "one trace for \(id): \(ids)")
                traces += ids
            }
            #expect(Set(traces).count == 2, "each order its own trace")
        }
    }

    @Test("a readable traceparent is kept when its tracestate is not; an unreadable one starts a new trace")
    func headerRules() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let kept = SagaTracing.trace(from: ["traceparent": .string(parent), "tracestate": .string("=,,=bad state")])
        #expect(kept == SagaTrace(traceParent: parent, traceState: nil))
        let both = SagaTracing.trace(from: ["traceparent": .string(parent), "tracestate": .string("shop=web")])
        #expect(both == SagaTrace(traceParent: parent, traceState: "shop=web"))
        let fresh = SagaTracing.trace(from: ["traceparent": .string("00-4BF92F-xyz-01")])
        #expect(Self.fields(fresh.traceParent) != nil)
        #expect(Self.fields(fresh.traceParent)?.traceId != "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(fresh.traceParent == fresh.traceParent.lowercased())
    }

    @Test(
        "the tracer gets a span per finished step with the saga's id; the saga's traceparent is what it extracts from")
    func spansPerStep() async throws {
        let tracer = InMemoryTracer()
        try await Scenario.run { scenario in
            let worker = try await scenario.startWorker(tracer: tracer)
            try await scenario.placeOrder("t-4")
            let saga = try await scenario.waitForStatus("t-4", .completed, in: worker)
            let trace = try #require(saga.instance.trace)
            try await eventually("the invoice step's span") {
                tracer.finishedSpans.contains { $0.operationName == "waybill.step invoice" }
            }
            let spans = tracer.finishedSpans.filter { $0.attributes["waybill.saga.id"]?.toSpanAttribute() == "t-4" }
            #expect(
                spans.map(\.operationName).sorted()
                    == ["accept", "backordered", "in-stock", "invoice", "release", "reserve", "ship", "split"].map {
                        "waybill.step \($0)"
                    })
            #expect(spans.allSatisfy { $0.endInstant.nanosecondsSinceEpoch >= $0.startInstant.nanosecondsSinceEpoch })
            let carriers = tracer.performedContextExtractions.compactMap { $0.carrier as? [String: String] }
            #expect(carriers.contains { $0["traceparent"] == trace.traceParent })
        }
    }
}
