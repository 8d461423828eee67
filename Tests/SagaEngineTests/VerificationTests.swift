import SagaEngine
import Testing
import WaybillDefinition
import WaybillTestSupport

/// The `verify` queries a reconciliation sends for an ended saga of the shipped order-fulfillment workflow: one per
/// branch of each step with a `verify`, keyed by the forward command's idempotency key, expecting what the saga says.
@Suite("Verify queries of ended sagas")
struct VerificationTests {
    static func shipped() throws -> WorkflowDefinition {
        let source = try WorkflowSource.read(file: Repository.workflow("order-fulfillment.yaml").path)
        return try WorkflowLoader.load(source)
    }

    /// Accept and reserve answered ok, with stock for A at w1 and B at w2: two release branches in flight.
    static func released(_ definition: WorkflowDefinition) -> SagaDriver {
        var saga = SagaDriver(definition, input: OrderJSON.order("o-1", lines: [("A", 1), ("B", 2)]))
        saga.reply(saga.last.commands[0], ["orderId": "o-1"])
        saga.reply(
            saga.last.commands[0],
            ["reservationId": "r-1", "stock": OrderJSON.stock([("w1", "A", 5), ("w2", "B", 5)])])
        return saga
    }

    @Test("a completed saga expects every effect it kept applied; a running one is not asked about")
    func completedExpectsApplied() throws {
        let definition = try Self.shipped()
        var saga = Self.released(definition)
        #expect(saga.engine.verifications(of: saga.instance, definition: definition).queries.isEmpty)
        for release in saga.last.commands { saga.reply(release) }
        for ship in saga.last.commands { saga.reply(ship, ["trackingId": "T"]) }
        saga.reply(saga.last.commands[0], ["invoiceId": "i-1"])
        #expect(saga.instance.status == .completed)

        let (queries, unbuildable) = saga.engine.verifications(of: saga.instance, definition: definition)
        #expect(unbuildable.isEmpty)
        #expect(queries.map(\.label) == ["accept", "reserve", "release[0]", "release[1]"])
        #expect(
            queries.map(\.routingKey) == [
                "erp.order.status", "inventory.reservation.status", "wms.w1.shipment.status",
                "wms.w2.shipment.status",
            ])
        #expect(queries.map(\.idempotencyKey) == ["o-1/accept", "o-1/reserve", "o-1/release/0", "o-1/release/1"])
        #expect(queries.allSatisfy { $0.expectation == .applied && $0.undo == nil })
        #expect(queries[0].body == ["orderId": "o-1"])
        #expect(queries[3].body == ["shipmentId": "o-1-w2"])
    }

    @Test("a compensated saga expects what it undid undone or absent, with the undo to send again; a failed branch too")
    func compensatedExpectsNotApplied() throws {
        let definition = try Self.shipped()
        var saga = Self.released(definition)
        let releases = saga.last.commands
        saga.reply(releases[0])
        saga.fail(releases[1], code: "rejected", retryable: false)
        // Undone last first: release[0], then reserve, then accept.
        while saga.instance.status == .compensating, let undo = saga.last.commands.first {
            saga.reply(undo)
        }
        #expect(saga.instance.status == .compensated)

        let queries = saga.engine.verifications(of: saga.instance, definition: definition).queries
        #expect(queries.map(\.label) == ["accept", "reserve", "release[0]", "release[1]"])
        #expect(queries.allSatisfy { $0.expectation == .notApplied })
        #expect(queries.map { $0.undo?.routingKey } == ["erp.order.cancel", "inventory.release", "wms.w1.cancel", nil])
        let undo = try #require(queries[2].undo)
        #expect(undo.idempotencyKey == "o-1/release/0/compensate")
        #expect(undo.compensates == "o-1/release/0")
        #expect(undo.kind == .compensate)
        #expect(undo.body == ["shipmentId": "o-1-w1"])
    }

    @Test("a suspended saga's effects are asked about but not judged")
    func suspendedIsUnjudged() throws {
        let definition = try Self.shipped()
        var saga = Self.released(definition)
        for release in saga.last.commands { saga.reply(release) }
        for ship in saga.last.commands { saga.reply(ship, ["trackingId": "T"]) }
        saga.fail(saga.last.commands[0], code: "account_closed", retryable: false)
        #expect(saga.instance.status == .suspended)
        let queries = saga.engine.verifications(of: saga.instance, definition: definition).queries
        #expect(queries.count == 4)
        #expect(queries.allSatisfy { $0.expectation == .unjudged })
    }

    @Test("a branch a reallocation replaced is still asked about: undone, with its own undo")
    func reallocatedBranchIsAskedAbout() throws {
        let definition = try Self.shipped()
        var saga = SagaDriver(definition, input: OrderJSON.order("o-1", lines: [("A", 1)]))
        saga.reply(saga.last.commands[0], ["orderId": "o-1"])
        saga.reply(
            saga.last.commands[0],
            ["reservationId": "r-1", "stock": OrderJSON.stock([("w1", "A", 5), ("w2", "A", 5)])])
        let first = try #require(saga.last.commands.first)
        #expect(first.routingKey == "wms.w1.release")
        saga.fail(first, code: "out_of_stock", retryable: false)
        let again = try #require(saga.last.commands.first)
        #expect(again.routingKey == "wms.w2.release")
        #expect(again.idempotencyKey == "o-1/release/0/r1")
        saga.reply(again)
        for ship in saga.last.commands { saga.reply(ship, ["trackingId": "T"]) }
        saga.reply(saga.last.commands[0], ["invoiceId": "i-1"])
        #expect(saga.instance.status == .completed)

        let release = try #require(definition.stepIndex(of: "release"))
        #expect(saga.instance.steps[release].retired.map(\.state.round) == [0])
        let queries = saga.engine.verifications(of: saga.instance, definition: definition).queries
        let releases = queries.filter { $0.step == "release" }
        #expect(releases.map(\.idempotencyKey) == ["o-1/release/0", "o-1/release/0/r1"])
        #expect(releases.map(\.routingKey) == ["wms.w1.shipment.status", "wms.w2.shipment.status"])
        #expect(releases.map(\.expectation) == [.notApplied, .applied])
        #expect(releases[0].undo == nil, "it failed: nothing of it to undo")
    }
}
