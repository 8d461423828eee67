import ChildProcess
import Foundation
import Logging
import SagaEngine
import SagaStore
import ServiceLifecycle
import Synchronization
import Testing
import WaybillDefinition
import WaybillOperations
import WaybillTestSupport
import WaybillUI

/// The browser that checks the operator console: the Python with selenium that `scripts/test` prepares
/// (`WAYBILL_TEST_BROWSER_PYTHON`), driving Debian's chromium and chromium-driver.
enum TestBrowser {
    static let python = ProcessInfo.processInfo.environment["WAYBILL_TEST_BROWSER_PYTHON"].flatMap {
        $0.isEmpty ? nil : $0
    }
    static var isConfigured: Bool { python != nil && TestBroker.isConfigured }
    static let skipReason = Comment(
        rawValue:
            "needs the test broker and WAYBILL_TEST_BROWSER_PYTHON (scripts/test installs chromium, chromium-driver and "
            + "selenium, and sets both)")
    /// Where the screenshots go: `WAYBILL_TEST_ARTIFACTS`, else `.build/artifacts`, under `console/`.
    static var screenshots: String {
        let base =
            ProcessInfo.processInfo.environment["WAYBILL_TEST_ARTIFACTS"].flatMap { $0.isEmpty ? nil : $0 }
            ?? Repository.root.appendingPathComponent(".build/artifacts").path
        return base + "/console"
    }
}

/// `waybill ui` in a real browser: a pool with sagas in every state, the console on it, and headless Chromium
/// (selenium) opening every page, checking its content, doing one repair with the operator token and trying one
/// without it. Screenshots land in `.build/artifacts/console/`.
@Suite(.enabled(if: TestBrowser.isConfigured, TestBrowser.skipReason))
struct ConsoleBrowserTests {
    @Test(
        "every page shows a pool with sagas in every state; a repair needs the token, and is journaled with its actor")
    func consoleInABrowser() async throws {
        let script: Participant.Script = { command in
            switch (command.sagaId, command.routingKey) {
            case ("o-running", "erp.order.accept"): .hold
            case ("o-compensated", "inventory.reserve"), ("o-compensating", "inventory.reserve"):
                .error("out_of_stock", retryable: false)
            case ("o-compensating", "erp.order.cancel"): .hold
            case ("o-suspended", "billing.invoice.create"), ("o-cancel", "billing.invoice.create"):
                .error("account_locked", retryable: false)
            default: nil
            }
        }
        try await Scenario.run(script: script) { scenario in
            let worker = try await scenario.startWorker()
            for id in ["o-completed", "o-compensated", "o-compensating", "o-running", "o-suspended", "o-cancel"] {
                try await scenario.placeOrder(id)
            }
            try await scenario.publishStarts([Data("order 42, not JSON".utf8)])
            try await scenario.waitForStatus("o-completed", .completed, in: worker)
            try await scenario.waitForStatus("o-compensated", .compensated, in: worker)
            try await scenario.waitForStatus("o-suspended", .suspended, in: worker)
            try await scenario.waitForStatus("o-cancel", .suspended, in: worker)
            try await eventually("the held commands to arrive") {
                scenario.participant.received(saga: "o-running").contains { $0.routingKey == "erp.order.accept" }
                    && scenario.participant.received(saga: "o-compensating").contains {
                        $0.routingKey == "erp.order.cancel"
                    }
            }
            try await scenario.waitForStatus("o-running", .running, in: worker)
            try await scenario.waitForStatus("o-compensating", .compensating, in: worker)

            let journalBefore = try worker.store.journal(of: scenario.key("o-suspended")).count
            let listening = ConsolePort()
            let token = "browser-test-token-\(scenario.names.tag)"
            let (url, password) = try TestBroker.urlAndPassword()
            let console = OperatorConsole(
                inspector: try SagaInspector(dataDirectory: scenario.dataDirectory),
                configuration: ConsoleConfiguration(
                    port: 0, token: token, poolName: scenario.names.poolName,
                    broker: BrokerSettings(url: url, password: password),
                    deadLetterQueue: scenario.names.deadLetterQueue),
                logger: TestBroker.logger("console"),
                onListening: { port in listening.set(port) })
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(
                    services: [.init(service: console)], logger: TestBroker.logger("console-group")))
            let serving = Task { try await group.run() }
            defer { serving.cancel() }
            try await eventually("the console to listen") { listening.port != nil }
            let port = try #require(listening.port)

            let expect: JSONValue = [
                "workflow": .string(scenario.names.workflow), "completed": "o-completed",
                "compensated": "o-compensated", "compensating": "o-compensating", "running": "o-running",
                "suspended": "o-suspended", "cancel": "o-cancel", "code": "account_locked",
                "code_compensated": "out_of_stock", "deadLetterReason": "not JSON",
            ]
            let (termination, output) = try await ChildProcess.run(
                try #require(TestBrowser.python),
                arguments: [
                    Repository.root.appendingPathComponent("Tests/Browser/console_check.py").path,
                    "--url", "http://127.0.0.1:\(port)", "--token", token, "--screenshots", TestBrowser.screenshots,
                    "--expect", JSONText.encode(expect),
                ],
                timeout: .seconds(240))
            #expect(termination.shellStatus == 0, "\(output)")
            #expect(output.contains("console check passed"), "\(output)")
            await group.triggerGracefulShutdown()
            _ = try? await serving.value

            // What the browser did, as the pool records it: the one repair applied and journaled with its actor and
            // reason; the refused ones changed nothing.
            let cancelled = try await scenario.waitForStatus("o-cancel", .cancelled, in: worker)
            #expect(cancelled.instance.status == .cancelled)
            let journal = try worker.store.journal(of: scenario.key("o-cancel"))
            #expect(
                journal.contains {
                    $0.entry.actor == "ui-tester" && $0.entry.detail.contains("customer called to cancel, ticket UI-7")
                }, "\(journal.map { "\($0.entry.actor ?? "-") \($0.entry.detail)" })")
            let untouched = try #require(try worker.store.saga(scenario.key("o-suspended")))
            #expect(untouched.instance.status == .suspended)
            #expect(try worker.store.journal(of: scenario.key("o-suspended")).count == journalBefore)
        }
    }
}

/// Hands the console's port from its `onListening` callback to the test.
final class ConsolePort: Sendable {
    private let value = Mutex<Int?>(nil)

    var port: Int? { value.withLock { $0 } }

    func set(_ port: Int) { value.withLock { $0 = port } }
}
