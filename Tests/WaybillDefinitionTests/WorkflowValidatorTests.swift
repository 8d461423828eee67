import Foundation
import Testing
import WaybillTestSupport

@testable import WaybillDefinition

@Suite("waybill validate report")
struct WorkflowValidatorTests {
    static let invalid = """
        name: Demo
        version: 1
        trigger: { exchange: orders, routing_key: order.placed, saga_id: "${input.orderId}" }
        steps:
          - id: accept
            command: erp.order.accept
            timeout: 30x
        """

    /// Reads the shipped workflow under its relative name, an in-memory invalid file, and fails on anything else.
    static func read(_ file: String) throws(WorkflowSourceReadError) -> WorkflowSource {
        switch file {
        case "Workflows/order-fulfillment.yaml":
            let url = Repository.workflow("order-fulfillment.yaml")
            guard let text = try? String(contentsOf: url, encoding: .utf8) else {
                throw WorkflowSourceReadError(file: file, reason: "fixture missing")
            }
            return WorkflowSource(file: file, text: text)
        case "bad.yaml":
            return WorkflowSource(file: file, text: invalid)
        default:
            throw WorkflowSourceReadError(file: file, reason: "no such file")
        }
    }

    @Test("a valid file prints one summary line and exits 0")
    func validFile() {
        let report = WorkflowValidator.validate(files: ["Workflows/order-fulfillment.yaml"], read: Self.read)
        #expect(
            report.standardOutput
                == "Workflows/order-fulfillment.yaml: ok: order-fulfillment v2, 15 steps, pivot ship, "
                + "trigger orders/order.placed\n")
        #expect(report.standardError == "")
        #expect(report.exitCode == 0)
    }

    @Test("invalid and unreadable files print every problem and exit 1")
    func mixedFiles() {
        let report = WorkflowValidator.validate(
            files: ["Workflows/order-fulfillment.yaml", "bad.yaml", "missing.yaml"], read: Self.read)
        #expect(
            report.text == """
                Workflows/order-fulfillment.yaml: ok: order-fulfillment v2, 15 steps, pivot ship, trigger orders/order.placed
                bad.yaml:1:7: bad workflow name 'Demo'; use lowercase letters, digits and '-', e.g. order-fulfillment
                bad.yaml:7:14: bad duration '30x'; write a number and a unit: 500ms, 30s, 5m, 2h
                missing.yaml: cannot read file: no such file

                """)
        #expect(
            report.standardError == """
                bad.yaml:1:7: bad workflow name 'Demo'; use lowercase letters, digits and '-', e.g. order-fulfillment
                bad.yaml:7:14: bad duration '30x'; write a number and a unit: 500ms, 30s, 5m, 2h
                missing.yaml: cannot read file: no such file

                """)
        #expect(report.exitCode == 1)
        #expect(report.files.map(\.isValid) == [true, false, false])
        guard case .unreadable(let error) = report.files[2].outcome else {
            Issue.record("missing.yaml is not reported unreadable")
            return
        }
        #expect(error.code == .unreadableFile && error.code.rawValue == "workflow.unreadable_file")
    }

    @Test("the summary names a missing pivot and counts one step in the singular")
    func summaryWithoutPivot() throws {
        let yaml = """
            name: tiny
            version: 3
            trigger: { exchange: orders, routing_key: order.placed, saga_id: "${input.orderId}" }
            steps:
              - id: accept
                command: erp.order.accept
            """
        let result = WorkflowValidator.validate(WorkflowSource(file: "tiny.yaml", text: yaml))
        #expect(result.lines == ["tiny.yaml: ok: tiny v3, 1 step, no pivot, trigger orders/order.placed"])
        guard case .valid(_, let hash) = result.outcome else {
            Issue.record("tiny.yaml should be valid")
            return
        }
        #expect(hash == ContentHash.sha256Hex(Array(yaml.utf8)))
    }

    @Test("a compensate that reads its own step's output is valid, with a warning on standard error")
    func compensationReadingItsOwnOutputWarns() throws {
        let yaml = """
            name: tiny
            version: 1
            trigger: { exchange: orders, routing_key: order.placed, saga_id: "${input.orderId}" }
            steps:
              - id: reserve
                command: inventory.reserve
                compensate:
                  command: inventory.release.${steps.reserve.output.pool}
                  input: { reservationId: "${steps.reserve.output.reservationId}", orderId: "${input.orderId}" }
            """
        let report = WorkflowValidator.validate(files: ["tiny.yaml"]) { file in WorkflowSource(file: file, text: yaml) }
        #expect(report.exitCode == 0)
        #expect(report.files[0].isValid)
        #expect(
            report.standardOutput
                == "tiny.yaml: ok: tiny v1, 1 step, no pivot, trigger orders/order.placed, 2 warnings\n")
        let tail =
            ", which is null when the step's reply never came (it is then compensated in case it took effect); undo "
            + "by what the command sent (an order or shipment id) or by the waybill-compensates header instead\n"
        #expect(
            report.standardError
                == "tiny.yaml:8:34: warning: the compensate of step 'reserve' reads its own output "
                + "${steps.reserve.output.pool}" + tail
                + "tiny.yaml:9:32: warning: the compensate of step 'reserve' reads its own output "
                + "${steps.reserve.output.reservationId}" + tail)
        #expect(report.text == report.standardOutput + report.standardError)
        #expect(report.files[0].warnings.map(\.code) == [.compensationReadsOwnOutput, .compensationReadsOwnOutput])
        #expect(report.files[0].warnings.allSatisfy { $0.severity == .warning })
        // The loader that workers use still loads it.
        #expect(try WorkflowLoader.load(yaml: yaml, file: "tiny.yaml").steps.count == 1)
    }

    @Test("reading real files: a missing file and a directory")
    func realFiles() throws {
        let scratch = try TemporaryDirectory()
        let missing = scratch.file("no-such-file.yaml")
        let directory = scratch.path
        let report = WorkflowValidator.validate(files: [missing, directory])
        #expect(
            report.text
                == "\(missing): cannot read file: no such file\n\(directory): cannot read file: it is a directory\n")
        #expect(report.exitCode == 1)
    }

    @Test("no files is not a success")
    func noFiles() {
        #expect(WorkflowValidator.validate(files: []).exitCode == 1)
    }
}
