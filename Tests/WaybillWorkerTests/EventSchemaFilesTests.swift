import Foundation
import SagaEngine
import Testing
import WaybillDefinition
import WaybillTestSupport
import WaybillWire

@testable import WaybillWorker

/// The JSON Schemas in `schemas/events`: one per event of the shipped workflows, named by the `dataschema` the worker
/// puts on the event, and describing the event the workflow says it is (a step's, a branch's, or an end).
@Suite("Event schema files")
struct EventSchemaFilesTests {
    static let folder = Repository.root.appendingPathComponent("schemas/events")

    static func schema(_ type: String) throws -> JSONValue {
        let url = folder.appendingPathComponent("\(type).v\(EventSchema.version).json")
        return try JSONText.decode(Array(try Data(contentsOf: url)))
    }

    @Test("every milestone of Workflows/ has its schema, and each schema's step and status are the workflow's")
    func everyEventHasItsSchema() throws {
        var expected: Set<String> = []
        for name in try FileManager.default.contentsOfDirectory(atPath: Repository.workflows.path).sorted()
        where name.hasSuffix(".yaml") && !ParticipantLimits.isLimitsFile(name) {
            let url = Repository.workflow(name)
            let definition = try WorkflowLoader.load(yaml: String(contentsOf: url, encoding: .utf8), file: url.path)
            for step in definition.steps {
                for (type, branch) in [(step.milestone, false), (step.branchMilestone, true)] {
                    guard let type else { continue }
                    expected.insert(type)
                    let schema = try Self.schema(type)
                    #expect(schema["$id"] == .string(EventSchema.identifier(of: type)))
                    #expect(schema["properties"]?["step"]?["const"] == .string(step.id), "\(type) names its step")
                    #expect(schema["properties"]?["status"]?["const"] == "running")
                    let output = schema["properties"]?["output"]?["description"]?.stringValue ?? ""
                    #expect(
                        output.hasPrefix("the array") == (step.forEach != nil && !branch),
                        "\(type): a for_each step's event carries the array of its branch outputs")
                    let required = schema["required"]?.arrayValue ?? []
                    #expect(required.contains("branch") == branch, "\(type): a branch event requires its branch")
                }
            }
            let ends: [(String?, String)] = [
                (definition.milestones.completed, "completed"), (definition.milestones.compensated, "compensated"),
                (definition.milestones.failed, "suspended"), (definition.milestones.cancelled, "cancelled"),
            ]
            for case (let type?, let status) in ends {
                expected.insert(type)
                let schema = try Self.schema(type)
                #expect(schema["properties"]?["status"]?["const"] == .string(status), "\(type)")
                #expect((schema["required"]?.arrayValue ?? []).contains("failure") == (status != "completed"))
            }
        }
        // The current version's files are exactly the shipped workflows' events; older versions stay beside them.
        let shipped = try FileManager.default.contentsOfDirectory(atPath: Self.folder.path).filter {
            $0.hasSuffix(".v\(EventSchema.version).json")
        }
        #expect(
            Set(shipped) == Set(expected.map { "\($0).v\(EventSchema.version).json" }),
            "schemas/events has exactly the shipped workflows' events")
    }

    @Test("a milestone event names its schema in dataschema")
    func eventsNameTheirSchema() throws {
        let wire = WireFormat(commandsExchange: "c", eventsExchange: "e", replyQueue: "q")
        let url = Repository.workflow("order-fulfillment.yaml")
        let definition = try WorkflowLoader.load(yaml: String(contentsOf: url, encoding: .utf8), file: url.path)
        let started = SagaEngine().start(
            definition: definition, definitionHash: "h", sagaId: "o-1",
            input: ["orderId": "o-1", "lines": [["sku": "A", "quantity": 1]]], now: Timestamp(milliseconds: 1))
        let accept = try #require(
            started.actions.compactMap { if case .sendCommand(let c) = $0 { c } else { nil } }.first)
        let accepted = SagaEngine().apply(
            .reply(correlationId: accept.messageId, outcome: .ok(output: ["orderId": "o-1"])), to: started.instance,
            definition: definition, now: Timestamp(milliseconds: 2))
        let message = try #require(
            wire.outbox(for: accepted.actions, of: accepted.instance).first { $0.exchange == "e" })
        let body = try JSONText.decode(message.body)
        #expect(body["dataschema"] == "urn:waybill:event:order.accepted:v1")
    }
}
