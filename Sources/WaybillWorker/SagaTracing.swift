import AMQPTransport
import SagaEngine
import SagaStore
import SeededRandom
import Tracing
import W3CTraceContext

/// W3C Trace Context for sagas: one order is one trace. The start message's `traceparent` (and `tracestate`) header
/// becomes the saga's trace, or the worker begins a trace when the start has none (or an unreadable one); every command
/// and milestone of the saga carries the same trace id on, each with a span id of its own, so the participants and the
/// event consumers continue the same trace. docs/metrics.md describes it.
///
/// Spans go to the `Tracer` the worker is given (swift-distributed-tracing; `InstrumentationSystem.tracer` unless a
/// test passes one): one span per finished step, from the step's start to its end, child of the start message's span.
/// With no tracer bootstrapped nothing is recorded, but the headers still travel.
struct SagaTracing: Sendable {
    static let parentHeader = "traceparent"
    static let stateHeader = "tracestate"

    let tracer: any Tracer

    /// The trace a saga started by a message with these headers belongs to. A `tracestate` that cannot be read is
    /// dropped, keeping the `traceparent` (W3C Trace Context's rule); a `traceparent` that cannot be read starts a new
    /// trace.
    static func trace(from headers: AMQPTable) -> SagaTrace {
        if let parent = headers[parentHeader]?.stringValue,
            let context = try? TraceContext(traceParentHeaderValue: parent)
        {
            let state = headers[stateHeader]?.stringValue.flatMap {
                try? TraceContext(traceParentHeaderValue: parent, traceStateHeaderValue: $0).traceStateHeaderValue
            }
            return SagaTrace(traceParent: context.traceParentHeaderValue, traceState: state)
        }
        let context = TraceContext(traceID: .random(), spanID: .random(), flags: .sampled, state: TraceState())
        return SagaTrace(traceParent: context.traceParentHeaderValue)
    }

    /// The trace id of `trace` (32 hex digits), for log lines.
    static func traceId(_ trace: SagaTrace) -> String {
        let parts = trace.traceParent.split(separator: "-")
        return parts.count == 4 ? String(parts[1]) : trace.traceParent
    }

    /// Adds the trace headers to a saga's outgoing messages: the saga's trace id and flags, and a span id per message
    /// derived from its message id (unique, and the same if the message is ever built again). Hot path: the saga's
    /// `traceparent` was checked when the saga took it, so this only swaps the span id's 16 hex digits.
    static func stamp(_ outbox: inout [OutboxMessage], with trace: SagaTrace) {
        let parent = trace.traceParent.utf8
        // `00-` + 32 hex + `-` | 16 hex | `-` + 2 hex
        guard !outbox.isEmpty, parent.count == 55 else { return }
        let prefix = Array(parent.prefix(36))
        let suffix = Array(parent.suffix(3))
        for index in outbox.indices {
            var hash = StableHash(seed: 0x7370_616E)
            hash.combine(outbox[index].messageId)
            var bytes = prefix
            bytes.reserveCapacity(55)
            let span = max(1, hash.value)
            for shift in stride(from: 60, through: 0, by: -4) {
                bytes.append(Self.hexDigits[Int((span >> UInt64(shift)) & 0xF)])
            }
            bytes += suffix
            outbox[index].headers[parentHeader] = String(decoding: bytes, as: UTF8.self)
            if let state = trace.traceState { outbox[index].headers[stateHeader] = state }
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Records a span per step that finished in committed transitions.
    func record(_ observations: [WorkerMetrics.Observation]) {
        guard !(tracer is NoOpTracer) else { return }
        for observation in observations where !observation.finishedSteps.isEmpty {
            guard let trace = observation.trace else { continue }
            var context = ServiceContext.topLevel
            var carrier = [Self.parentHeader: trace.traceParent]
            if let state = trace.traceState { carrier[Self.stateHeader] = state }
            tracer.extract(carrier, into: &context, using: DictionaryExtractor())
            for step in observation.finishedSteps {
                let span = tracer.startSpan(
                    "waybill.step \(step.step)", context: context, ofKind: .internal,
                    at: MillisecondInstant(step.startedAt))
                span.attributes["waybill.workflow"] = observation.workflow
                span.attributes["waybill.saga.id"] = observation.sagaId
                span.attributes["waybill.step"] = step.step
                if step.failed { span.setStatus(SpanStatus(code: .error)) }
                span.end(at: MillisecondInstant(step.finishedAt))
            }
        }
    }
}

/// A store timestamp as a tracer instant.
private struct MillisecondInstant: TracerInstant {
    var nanosecondsSinceEpoch: UInt64

    init(_ timestamp: Timestamp) { nanosecondsSinceEpoch = UInt64(max(0, timestamp.milliseconds)) * 1_000_000 }

    static func < (lhs: Self, rhs: Self) -> Bool { lhs.nanosecondsSinceEpoch < rhs.nanosecondsSinceEpoch }
}

/// Reads trace headers out of a string dictionary for `Tracer.extract`.
private struct DictionaryExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}
