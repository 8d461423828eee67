import Testing
import WaybillTestSupport

@testable import WaybillDefinition

/// `participants.yaml`: the limits a pool respects per command pattern.
@Suite("Participant limits file")
struct ParticipantLimitsTests {
    static let text = """
        participants:
          - commands: "erp.order.accept"
            max_in_flight: 2
          - commands: "erp.#"
            max_in_flight: 10
            rate: { per_second: 200, burst: 50 }
          - commands: "wms.*.release"
            rate: { per_second: 0.5 }
          - commands: "erp.order.cancel"
            max_in_flight: 1
        priority: { aging: 45s }
        """

    @Test("entries read in order; the first pattern that matches a routing key applies")
    func model() throws {
        let (limits, warnings) = try ParticipantLimitsLoader.loadReportingWarnings(
            yaml: Self.text, file: "participants.yaml")
        #expect(limits.aging == .seconds(45))
        #expect(limits.limits.map(\.commands) == ["erp.order.accept", "erp.#", "wms.*.release", "erp.order.cancel"])
        #expect(limits.limit(for: "erp.order.accept")?.maxInFlight == 2)
        #expect(limits.limit(for: "erp.order.cancel")?.commands == "erp.#", "the earlier erp.# wins")
        #expect(limits.limit(for: "erp.return.authorize")?.maxInFlight == 10)
        #expect(limits.limit(for: "wms.wh-1.release")?.perSecond == 0.5)
        #expect(limits.limit(for: "wms.wh-1.release")?.burst == 1, "a burst defaults to a second's worth, at least 1")
        #expect(limits.limit(for: "tms.shipment.create") == nil)
        #expect(limits.limits[1].summary == "erp.#: 10 in flight, 200/s (burst 50)")
        #expect(
            warnings.map(\.description) == [
                "participants.yaml:9:15: warning: commands 'erp.order.cancel' never applies: the earlier 'erp.#' "
                    + "matches every routing key it does; move it above"
            ])
    }

    @Test("waybill validate reads participants.yaml as limits, beside the workflows")
    func validated() {
        let result = WorkflowValidator.validate(WorkflowSource(file: "Workflows/participants.yaml", text: Self.text))
        #expect(result.isValid)
        #expect(
            result.summaryLines == [
                "Workflows/participants.yaml: ok: participant limits, 4 entries, aging 45s, 1 warning"
            ])
        #expect(ParticipantLimits.isLimitsFile("Workflows/participants.yaml"))
        #expect(!ParticipantLimits.isLimitsFile("Workflows/my-participants.yaml"))
        #expect(ParticipantLimits.isLimitsFile("participants.yml"), "workers read .yml files too")
    }

    @Test("validating a folder warns about a limit that matches no command of its workflows")
    func unmatchedPatternWarned() throws {
        let workflow = try String(contentsOf: Repository.workflow("order-fulfillment.yaml"), encoding: .utf8)
        let limits = """
            participants:
              - commands: erp.*
                max_in_flight: 10
              - commands: wms.*.release
                max_in_flight: 5
              - commands: wms.wh-01.cancel
                max_in_flight: 5
              - commands: billing.#
                max_in_flight: 5
            """
        let files = [
            "W/order-fulfillment.yaml": workflow, "W/participants.yaml": limits, "X/participants.yaml": limits,
        ]
        let report = WorkflowValidator.validate(files: files.keys.sorted()) { file in
            WorkflowSource(file: file, text: files[file] ?? "")
        }
        let result = try #require(report.files.first { $0.file == "W/participants.yaml" })
        #expect(result.isValid)
        #expect(
            result.warnings.map(\.description) == [
                "W/participants.yaml:2:15: warning: commands 'erp.*' matches no command of the workflows beside it, so "
                    + "it limits nothing; '*' is one word and '#' any number (erp.# covers erp.order.accept)"
            ])
        // Alone in its folder, a limits file has nothing to be checked against.
        #expect(report.files.first { $0.file == "X/participants.yaml" }?.warnings.isEmpty == true)
    }

    @Test("a limits file under another name validates as limits, with a warning that workers will not read it")
    func limitsUnderAnotherName() {
        let result = WorkflowValidator.validate(WorkflowSource(file: "docs/roomy.yaml", text: Self.text))
        #expect(result.isValid)
        #expect(
            result.warnings.first?.description
                == "docs/roomy.yaml:1:1: warning: a limits file; workers read it only as participants.yaml in the "
                + "workflows folder")
    }

    @Test("a pattern an earlier one covers is found for *, # and plain words")
    func covering() {
        #expect(WorkflowReader.covers("erp.#", "erp.*.accept"))
        #expect(WorkflowReader.covers("#", "anything.#"))
        #expect(!WorkflowReader.covers("erp.*", "erp.#"))
        #expect(!WorkflowReader.covers("erp.order.accept", "erp.*"))
    }
}
