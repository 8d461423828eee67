import Foundation
import Logging
import Testing
import WaybillDemo
import WaybillSimulator

/// The demo against a real RabbitMQ: `scripts/test` exports `WAYBILL_TEST_AMQP_URL`. Without it the suite is skipped
/// (and says why); with it, an unreachable broker fails the test.
@Suite(
    .enabled(
        if: ProcessInfo.processInfo.environment["WAYBILL_TEST_AMQP_URL"] != nil,
        "WAYBILL_TEST_AMQP_URL is not set: run scripts/test, or eval \"$(scripts/rabbitmq env)\" first"),
    .timeLimit(.minutes(3))
)
struct DemoRunnerTests {
    /// The repository root, from this file's path.
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func options(orders: Int, failureRate: Double) throws -> (DemoOptions, String) {
        let url = try #require(ProcessInfo.processInfo.environment["WAYBILL_TEST_AMQP_URL"])
        let tag = String(UInt64.random(in: 0..<UInt64.max), radix: 16)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-demo-test-\(tag)").path
        var options = DemoOptions(broker: BrokerAddress(url: url))
        options.orders = orders
        options.failureRate = failureRate
        options.namespace = "demo-test-\(tag)"
        options.workflowFile = repository.appendingPathComponent("Workflows/order-fulfillment.yaml").path
        options.directory = directory
        options.timeout = .seconds(150)
        options.progressInterval = .seconds(1)
        return (options, directory)
    }

    /// 50 orders with a high injected failure rate: busy replies (retries), rejected commands (compensations, and
    /// suspensions after the pivot) and lost replies (timeouts, then the remembered reply). Every saga ends, nothing is
    /// left reserved for a saga that compensated, and no effect is applied twice.
    @Test func fiftyOrdersAllEndWithNoLeakedReservationsAndNoDuplicateEffects() async throws {
        let (options, directory) = try Self.options(orders: 50, failureRate: 0.2)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var logger = Logger(label: "demo-test")
        logger.logLevel = .error
        let summary = try await DemoRunner.run(options, logger: logger, progress: { _ in })

        #expect(summary.outcome == "finished", "\(summary.text)")
        #expect(summary.published == 50)
        #expect(summary.everySagaEnded, "\(summary.text)")
        #expect(summary.leakedReservations == 0, "\(summary.text)")
        #expect(summary.otherLeaks.isEmpty, "\(summary.otherLeaks)")
        #expect(summary.duplicateEffects == 0, "\(summary.duplicateEffectDetails)")
        #expect(summary.stockImbalances == 0)
        let totals = summary.participants.reduce(SimulationLedger.CommandCounts()) { $0 + $1.counts }
        #expect(totals.injectedBusy + totals.injectedRejected + totals.lostReplies > 0, "failures were injected")
        #expect((summary.byStatus[.completed] ?? 0) > 0, "\(summary.text)")
    }
}
