import SagaEngine
import WaybillDefinition

/// Measures the pure engine: order sagas driven start to finish with in-memory replies, on one core.
enum EngineBenchmark {
    /// Runs `sagas` three-warehouse order sagas (each ~9 transitions) and returns a report line.
    static func run(sagas: Int) throws -> String {
        let definition = try BenchmarkWorkflow.orderFulfillment()
        let engine = SagaEngine(jitterSeed: 7)
        let stock: JSONValue = .array(
            [("w1", "A"), ("w2", "B"), ("w3", "C"), ("w2", "A")].map {
                ["warehouse": .string($0.0), "sku": .string($0.1), "quantity": 10]
            })
        let reservation: JSONValue = ["reservationId": "r-1", "stock": stock]
        let tracking: JSONValue = ["tracking": "T-1"]
        var transitions = 0
        var completed = 0
        let clock = ContinuousClock()
        let started = clock.now
        let cpuStarted = CPUTime.thread()
        var now = Timestamp(milliseconds: 1_700_000_000_000)
        for index in 0..<sagas {
            let input: JSONValue = [
                "orderId": .string("o-\(index)"),
                "lines": [["sku": "A", "quantity": 2], ["sku": "B", "quantity": 1], ["sku": "C", "quantity": 3]],
            ]
            var transition = engine.start(
                definition: definition, definitionHash: "bench", sagaId: "o-\(index)", input: input, now: now)
            transitions += 1
            var pending = commands(in: transition)
            while let command = pending.popLast() {
                now = now.adding(milliseconds: 1)
                let output: JSONValue? =
                    command.routingKey == "inventory.reserve"
                    ? reservation : command.routingKey == "tms.shipment.create" ? tracking : nil
                transition = engine.apply(
                    .reply(correlationId: command.messageId, outcome: .ok(output: output)), to: transition.instance,
                    definition: definition, now: now)
                transitions += 1
                pending.append(contentsOf: commands(in: transition))
            }
            if transition.instance.status == .completed { completed += 1 }
        }
        let cpu = CPUTime.thread() - cpuStarted
        let elapsed = clock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return "engine: \(transitions) transitions for \(completed)/\(sagas) completed sagas: "
            + "\(Int(Double(transitions) / cpu)) transitions per CPU-second on one core "
            + "(\(format(cpu)) s CPU; \(Int(Double(transitions) / seconds))/s wall clock over \(format(seconds)) s); "
            + "target >= 200,000"
    }

    private static func commands(in transition: Transition) -> [CommandMessage] {
        transition.actions.compactMap { if case .sendCommand(let command) = $0 { command } else { nil } }
    }

    static func format(_ value: Double) -> String {
        String(Double(Int(value * 1000)) / 1000)
    }
}
