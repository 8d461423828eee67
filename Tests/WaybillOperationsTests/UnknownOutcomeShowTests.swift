import Foundation
import SagaEngine
import SagaStore
import Testing
import WaybillDefinition
import WaybillOperations
import WaybillTestSupport

/// `waybill sagas show` for a saga that compensates a step whose reply never came: never "fully undone" while that
/// compensation is owed (docs/workflows.md, "Unknown outcomes").
@Suite("sagas show: unknown outcomes")
struct UnknownOutcomeShowTests {
    /// How far the saga got.
    enum Stage: Int, Comparable {
        /// reserve timed out, then its retry was refused: its compensation is sent, the order's is queued.
        case undoingReserve
        /// reserve's compensation succeeded; the order's is sent.
        case undoingAccept
        /// Both compensations succeeded.
        case compensated

        static func < (lhs: Stage, rhs: Stage) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    /// What `show` computes for the saga `o-2001` run to `stage` through the real engine and store.
    static func detail(at stage: Stage) throws -> SagaDetail {
        try saga(at: stage).detail
    }

    /// The saga `o-2001` run to `stage` through the real engine and store: its record, its definition and what
    /// `show` computes for it.
    static func saga(
        at stage: Stage
    ) throws -> (detail: SagaDetail, record: SagaRecord, definition: WorkflowDefinition) {
        let directory = try TemporaryDirectory()
        let path = directory.file("worker-a.sqlite")
        let store = try SagaStore(configuration: SagaStore.Configuration(path: path, durability: .normal))
        let definition = try WorkflowLoader.load(yaml: Fixture.orderYAML, file: "order-fulfillment.yaml")
        let hash = try store.saveDefinition(
            name: "order-fulfillment", version: 1, source: Fixture.orderYAML, at: Fixture.at(-86_400))
        var script = SagaScript(definition: definition, hash: hash, id: "o-2001", owner: "worker-a")
        script.start(at: Fixture.at(-300))
        script.reply("erp.order.accept", at: Fixture.at(-299))
        script.fireTimer(at: Fixture.at(-269))  // reserve's reply timeout: attempt 1 got no reply
        script.fireTimer(at: Fixture.at(-259))  // the retry
        script.fail(
            "inventory.reserve", code: "out_of_stock", message: "SKU B short by 1", retryable: false,
            at: Fixture.at(-250))
        if stage >= .undoingAccept { script.reply("inventory.release", at: Fixture.at(-200)) }
        if stage >= .compensated { script.reply("erp.order.cancel", at: Fixture.at(-100)) }
        try store.commit(script.changes)
        try store.close()

        let inspector = try SagaInspector(path: path)
        let key = SagaKey(workflow: "order-fulfillment", id: "o-2001")
        let record = try #require(try inspector.saga(key))
        let detail = SagaDetail(
            record: record, definition: try inspector.definition(hash: record.row.definitionHash),
            timers: try inspector.timers(of: key), journal: try inspector.journalTail(of: key, count: 20),
            now: Fixture.now)
        return (detail, record, definition)
    }

    /// The reserve step's branch in a `show --json` document.
    static func reserveBranch(_ json: JSONValue) -> JSONValue? {
        json["steps"]?.arrayValue?[1]["branches"]?.arrayValue?.first
    }

    @Test("while the compensation of the step whose reply never came is owed, nothing says fully undone")
    func owedWhileUndoing() throws {
        let detail = try Self.detail(at: .undoingReserve)
        #expect(detail.row.status == .compensating)
        let text = ShowView.text(detail)
        #expect(text.contains("Compensation (abort): 0 of 2 undone; next reserve, then accept\n"))
        #expect(text.contains("  outcome unknown (no reply came; undone in case it took effect): reserve\n"))
        #expect(text.contains("  reserve       undoing"))
        #expect(!text.contains("every step that may have taken effect was undone"))
        #expect(
            text.contains(
                "reply error out_of_stock (not retryable) for reserve: \"SKU B short by 1\" → compensating; "
                    + "sent 1 compensation, outcome unknown: compensating reserve in case it took effect"))

        let json = ShowView.json(detail)
        #expect(json["saga"]?["status"] == "compensating")
        #expect(json["compensation"]?["active"] == true)
        #expect(json["compensation"]?["fullyUndone"] == false)
        #expect(json["compensation"]?["undone"] == 0)
        #expect(json["compensation"]?["total"] == 2)
        #expect(json["compensation"]?["queue"] == ["reserve", "accept"])
        #expect(json["compensation"]?["unknownOutcome"] == ["reserve"])
        let reserve = Self.reserveBranch(json)
        #expect(reserve?["outcomeUnknown"] == true)
        #expect(reserve?["unansweredAttempts"] == 1)
        #expect(reserve?["pending"]?["routingKey"] == "inventory.release")
    }

    @Test("halfway, one undone and one owed is still not fully undone")
    func halfway() throws {
        let detail = try Self.detail(at: .undoingAccept)
        let text = ShowView.text(detail)
        #expect(text.contains("Compensation (abort): 1 of 2 undone; next accept\n"))
        #expect(text.contains("  outcome unknown (no reply came; undone in case it took effect): reserve\n"))
        let json = ShowView.json(detail)
        #expect(json["compensation"]?["fullyUndone"] == false)
        #expect(json["compensation"]?["undone"] == 1)
    }

    @Test("once every compensation is done, the saga is reported fully undone")
    func fullyUndoneAtTheEnd() throws {
        let detail = try Self.detail(at: .compensated)
        #expect(detail.row.status == .compensated)
        let text = ShowView.text(detail)
        #expect(text.contains("Compensation (abort): 2 of 2 undone\n"))
        #expect(text.contains("  outcome unknown (no reply came; undone in case it took effect): reserve\n"))
        #expect(text.contains("every step that may have taken effect was undone"))
        #expect(!text.contains("NOT UNDONE"))
        let json = ShowView.json(detail)
        #expect(json["compensation"]?["active"] == false)
        #expect(json["compensation"]?["fullyUndone"] == true)
        #expect(json["compensation"]?["owed"] == [])
        #expect(json["compensation"]?["unknownOutcome"] == ["reserve"])
        #expect(Self.reserveBranch(json)?["status"] == "compensated")
    }

    @Test("a saga an older worker compensated without undoing a timed-out branch is reported not fully undone")
    func olderWorkerLeftABranchOwed() throws {
        let (_, stored, definition) = try Self.saga(at: .compensated)
        // What an older engine stored: the timed-out reserve failed, nothing counted, never compensated.
        var record = stored
        record.instance.steps[1].branches[0].status = .failed
        record.instance.steps[1].branches[0].unansweredAttempts = 0
        record.instance.steps[1].branches[0].compensationAttempt = 0
        record.instance.steps[1].branches[0].lastError = StepError(
            code: StepError.timeoutCode, message: "no reply to order-fulfillment/o-2001/m3 within 30s",
            retryable: true)
        let detail = SagaDetail(record: record, definition: definition, timers: [], journal: [], now: Fixture.now)

        let text = ShowView.text(detail)
        #expect(text.contains("Compensation (abort): 1 of 2 undone\n"))
        #expect(
            text.contains(
                "  NOT UNDONE, outcome unknown (no reply came, never compensated; check the participant): reserve\n"))
        #expect(text.contains("but not fully undone: reserve got no reply and may have taken effect"))
        #expect(text.contains("(idempotency key o-2001/reserve)"))
        #expect(!text.contains("every step that may have taken effect was undone"))
        let json = ShowView.json(detail)
        #expect(json["compensation"]?["fullyUndone"] == false)
        #expect(json["compensation"]?["owed"] == ["reserve"])
        #expect(Self.reserveBranch(json)?["outcomeUnknown"] == true)

        // A participant's own error reply coded `timeout` is an answer, not a silence: nothing is owed.
        record.instance.steps[1].branches[0].lastError = StepError(
            code: StepError.timeoutCode, message: "upstream timed out", retryable: false)
        let answered = SagaDetail(record: record, definition: definition, timers: [], journal: [], now: Fixture.now)
        #expect(answered.compensation?.fullyUndone == true)
        #expect(answered.compensation?.owed == [])
    }
}
