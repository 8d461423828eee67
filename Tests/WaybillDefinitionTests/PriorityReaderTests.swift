import Testing
import WaybillDefinition

/// A trigger's `priority`: a constant lane, a lane read from the start message, or a value mapped to lanes.
@Suite("Trigger priority")
struct PriorityReaderTests {
    static func definition(_ priority: String) throws -> WorkflowDefinition {
        try WorkflowLoader.load(
            yaml: """
                name: demo
                version: 1
                trigger:
                  exchange: orders
                  routing_key: order.placed
                  saga_id: "${input.id}"
                \(priority)
                steps:
                  - id: accept
                    command: erp.accept
                """, file: "demo.yaml")
    }

    @Test("the start message names the lane: high, normal, low or a number; anything else is normal")
    func fromTheMessage() throws {
        let definition = try Self.definition("  priority: ${input.priority}")
        #expect(definition.priorityLane(input: ["id": "1", "priority": "high"]) == PriorityLane.high)
        #expect(definition.priorityLane(input: ["id": "1", "priority": "LOW"]) == PriorityLane.low)
        #expect(definition.priorityLane(input: ["id": "1", "priority": 7]) == 7)
        #expect(definition.priorityLane(input: ["id": "1", "priority": "urgent"]) == PriorityLane.normal)
        #expect(definition.priorityLane(input: ["id": "1"]) == PriorityLane.normal, "a missing field is normal")
    }

    @Test("a map from the sales channel to lanes, with a default")
    func mapped() throws {
        let definition = try Self.definition(
            "  priority: { from: \"${input.channel}\", map: { b2b: high, web: high, marketplace: low }, default: low }")
        #expect(definition.priorityLane(input: ["id": "1", "channel": "b2b"]) == PriorityLane.high)
        #expect(definition.priorityLane(input: ["id": "1", "channel": "marketplace"]) == PriorityLane.low)
        #expect(definition.priorityLane(input: ["id": "1", "channel": "phone"]) == PriorityLane.low)
    }

    @Test("a constant lane, and no priority at all")
    func constantAndNone() throws {
        #expect(try Self.definition("  priority: high").priorityLane(input: ["id": "1"]) == PriorityLane.high)
        #expect(try Self.definition("").priorityLane(input: ["id": "1"]) == PriorityLane.normal)
        #expect(PriorityLane.name(PriorityLane.high) == "high")
        #expect(PriorityLane.name(-3) == "-3")
    }
}
