import Testing

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

    @Test("a pattern an earlier one covers is found for *, # and plain words")
    func covering() {
        #expect(WorkflowReader.covers("erp.#", "erp.*.accept"))
        #expect(WorkflowReader.covers("#", "anything.#"))
        #expect(!WorkflowReader.covers("erp.*", "erp.#"))
        #expect(!WorkflowReader.covers("erp.order.accept", "erp.*"))
    }
}
