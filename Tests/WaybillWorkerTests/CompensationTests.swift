import Foundation
import SagaEngine
import Testing
import WaybillDefinition
import WaybillTestSupport
import WaybillWire

@testable import WaybillWorker

/// Failures before the pivot undo completed steps in reverse; failures after it suspend the saga.
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
struct CompensationTests {
    /// One failure and what the participant must see because of it.
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var lines: [(String, Int)]
        var stock: [(String, String, Int)]
        /// Routing keys answered with a non-retryable error.
        var failing: Set<String>
        /// Every command the participant receives, in order (`(undo)` marks compensations).
        var commands: [String]
        /// Every milestone of the saga, in order.
        var milestones: [String]
        /// What `order.cancelled` says failed: the code, the step, and the warehouses the failing branch may be of
        /// (empty for a step without branches; two when both branches fail and either may be first).
        var failure: (code: String, step: String, warehouses: Set<String>)

        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "accept fails: nothing to undo", lines: [("A", 1)], stock: [("w1", "A", 1)],
            failing: ["erp.order.accept"], commands: ["erp.order.accept"], milestones: ["order.cancelled"],
            failure: ("refused", "accept", [])),
        Case(
            name: "reserve fails: the order is cancelled", lines: [("A", 1)], stock: [("w1", "A", 1)],
            failing: ["inventory.reserve"],
            commands: ["erp.order.accept", "inventory.reserve", "erp.order.cancel (undo)"],
            milestones: ["order.accepted", "order.cancelled"], failure: ("refused", "reserve", [])),
        Case(
            name: "a release branch fails: the other branch, the reservation and the order are undone",
            lines: [("A", 1), ("B", 1)], stock: [("w1", "A", 1), ("w2", "B", 1)], failing: ["wms.w2.release"],
            commands: [
                "erp.order.accept", "inventory.reserve", "wms.w1.release", "wms.w2.release", "wms.w1.cancel (undo)",
                "inventory.release (undo)", "erp.order.cancel (undo)",
            ],
            milestones: ["order.accepted", "order.reserved", "order.cancelled"], failure: ("refused", "release", ["w2"])
        ),
        Case(
            name: "every ship branch fails before any succeeded: releases are undone in reverse",
            lines: [("A", 1), ("B", 1)], stock: [("w1", "A", 1), ("w2", "B", 1)],
            failing: ["tms.shipment.create"],
            commands: [
                "erp.order.accept", "inventory.reserve", "wms.w1.release", "wms.w2.release", "tms.shipment.create",
                "tms.shipment.create", "wms.w2.cancel (undo)", "wms.w1.cancel (undo)", "inventory.release (undo)",
                "erp.order.cancel (undo)",
            ],
            milestones: ["order.accepted", "order.reserved", "order.released", "order.cancelled"],
            failure: ("refused", "ship", ["w1", "w2"])),
        Case(
            name: "no line is in stock: the reservation and the order are undone", lines: [("A", 5)],
            stock: [("w1", "B", 2)], failing: [],
            commands: [
                "erp.order.accept", "inventory.reserve", "inventory.release (undo)", "erp.order.cancel (undo)",
            ],
            milestones: ["order.accepted", "order.reserved", "order.cancelled"],
            failure: ("out_of_stock", "in-stock", [])),
    ]

    @Test("a failure before the pivot compensates in reverse and ends compensated", arguments: cases)
    func failureCompensates(_ failure: Case) async throws {
        let failing = failure.failing
        let script: Participant.Script = { command in
            failing.contains(command.routingKey) && !command.isCompensation
                ? .error("refused", retryable: false) : nil
        }
        try await Scenario.run(stock: Participant.table(failure.stock), script: script) { scenario in
            let worker = try await scenario.startWorker()
            try await scenario.placeOrder("o-c", lines: failure.lines)
            let saga = try await scenario.waitForStatus("o-c", .compensated, in: worker)
            try await scenario.waitForEvent("order.cancelled", of: "o-c")

            let commands = scenario.participant.received(saga: "o-c")
            #expect(commands.map(\.summary) == failure.commands)
            for undo in commands where undo.isCompensation {
                #expect(undo.idempotencyKey.hasSuffix("/compensate"))
                #expect(undo.headers[WireHeader.action] == "compensate")
                #expect(
                    undo.headers[WireHeader.compensates] == String(undo.idempotencyKey.dropLast("/compensate".count)))
            }
            #expect(commands.allSatisfy { $0.isCompensation || $0.headers[WireHeader.compensates] == nil })
            if let release = commands.first(where: { $0.routingKey == "inventory.release" }) {
                #expect(release.body == ["orderId": "o-c"])
            }
            #expect(scenario.observer.types(of: "o-c") == failure.milestones)
            #expect(saga.instance.failure != nil)

            // order.cancelled says why, and which branch (by its index and its shipment) when a branch failed.
            let cancelled = try #require(scenario.observer.events(of: "o-c").last?.data)
            #expect(cancelled["status"] == "compensated")
            let reason = try #require(cancelled["failure"], "order.cancelled carries the failure")
            #expect(reason["code"]?.stringValue == failure.failure.code)
            #expect(reason["step"]?.stringValue == failure.failure.step)
            #expect(reason["message"]?.stringValue?.isEmpty == false)
            if failure.failure.code == "refused" { #expect(reason["message"] == "test participant") }
            if failure.failure.warehouses.isEmpty {
                #expect(reason["branch"] == nil)
            } else {
                let branch = try #require(reason["branch"])
                let warehouse = try #require(branch["item"]?["warehouse"]?.stringValue)
                #expect(failure.failure.warehouses.contains(warehouse))
                #expect(branch["item"]?["id"] == .string("o-c-\(warehouse)"))
                #expect(branch["index"]?.intValue == saga.instance.failure?.branch)
            }
            #expect(try worker.store.timers(of: scenario.key("o-c")).isEmpty, "a finished saga leaves no timers")
        }
    }

    @Test("a branch whose reply was lost while another failed is compensated, with the waybill-compensates header")
    func lostBranchReplyIsCompensated() async throws {
        let script: Participant.Script = { command in
            guard !command.isCompensation else { return nil }
            switch command.routingKey {
            case "wms.w1.release": return .silence  // it may have been applied; its reply never comes
            case "wms.w2.release": return .error("refused", retryable: false)
            default: return nil
            }
        }
        let edits = WorkflowEdits(stepKeys: ["release": ["timeout: 3s"]])
        try await Scenario.run(
            edits: edits, stock: Participant.table([("w1", "A", 1), ("w2", "B", 1)]), script: script
        ) { scenario in
            let worker = try await scenario.startWorker()
            try await scenario.placeOrder("o-lost", lines: [("A", 1), ("B", 1)])
            let saga = try await scenario.waitForStatus("o-lost", .compensated, in: worker)
            try await scenario.waitForEvent("order.cancelled", of: "o-lost")

            let commands = scenario.participant.received(saga: "o-lost")
            let lost = try #require(commands.first { $0.routingKey == "wms.w1.release" })
            let branch = try #require(Int(lost.idempotencyKey.split(separator: "/").last ?? ""))
            #expect(lost.idempotencyKey == "o-lost/release/\(branch)")
            let undo = try #require(commands.first { $0.routingKey == "wms.w1.cancel" })
            #expect(undo.isCompensation)
            #expect(undo.idempotencyKey == "o-lost/release/\(branch)/compensate")
            #expect(undo.headers[WireHeader.compensates] == "o-lost/release/\(branch)")
            #expect(undo.body == ["shipmentId": "o-lost-w1"])
            // The refused branch did nothing: it is not compensated. The lost one is undone first.
            #expect(
                commands.filter(\.isCompensation).map(\.summary) == [
                    "wms.w1.cancel (undo)", "inventory.release (undo)", "erp.order.cancel (undo)",
                ])
            let release = try Scenario.stepIndex("release")
            #expect(saga.instance.steps[release].branches[branch].status == .compensated)
            #expect(saga.instance.steps[release].branches[1 - branch].status == .failed)

            let journal = try worker.store.journal(of: scenario.key("o-lost")).map(\.entry.detail)
            #expect(
                journal.contains {
                    $0.contains("outcome unknown: compensating release[\(branch)] in case it took effect")
                },
                "\(journal)")
        }
    }

    @Test("a compensation that fails is retried until it succeeds, even after a non-retryable error")
    func compensationRetriedUntilItSucceeds() async throws {
        let edits = WorkflowEdits(stepKeys: ["reserve": ["retry: { max_attempts: 2, initial_interval: 10ms }"]])
        let script: Participant.Script = { command in
            switch (command.routingKey, command.attempt) {
            case ("tms.shipment.create", _): .error("no_carrier", retryable: false)
            case ("inventory.release", 1): .error("locked", retryable: false)
            case ("inventory.release", 2): .error("locked", retryable: true)
            case ("inventory.release", 3): .silence
            default: nil
            }
        }
        try await Scenario.run(edits: edits.adding(["reserve": ["timeout: 2s"]]), script: script) { scenario in
            let worker = try await scenario.startWorker()
            try await scenario.placeOrder("o-cr", lines: [("A", 1)])
            try await scenario.waitForStatus("o-cr", .compensated, in: worker)
            let undo = scenario.participant.received(saga: "o-cr").filter { $0.routingKey == "inventory.release" }
            // Past the step's max_attempts (2): compensations are never given up. (A reply slower than the timeout on a
            // loaded machine adds one more attempt, which is also correct, so only the first four are pinned.)
            #expect(Array(undo.map(\.attempt).prefix(4)) == [1, 2, 3, 4])
            #expect(undo.map(\.attempt) == Array(1...undo.count))
            #expect(Set(undo.map(\.idempotencyKey)) == ["o-cr/reserve/compensate"])
            #expect(
                scenario.participant.received(saga: "o-cr").last?.summary == "erp.order.cancel (undo)",
                "the order is cancelled only after the reservation was released")
        }
    }

    @Test("a failure after the pivot suspends the saga and publishes order.failed; nothing is undone")
    func failureAfterPivotSuspends() async throws {
        let script: Participant.Script = { command in
            command.routingKey == "billing.invoice.create" ? .error("account_closed", retryable: false) : nil
        }
        try await Scenario.run(script: script) { scenario in
            let worker = try await scenario.startWorker()
            try await scenario.placeOrder("o-p")
            let saga = try await scenario.waitForStatus("o-p", .suspended, in: worker)
            try await scenario.waitForEvent("order.failed", of: "o-p")

            #expect(saga.instance.failure?.step == "invoice")
            #expect(saga.instance.failure?.error.code == "account_closed")
            #expect(saga.instance.pivotPassed)
            let commands = scenario.participant.received(saga: "o-p")
            #expect(
                commands.map(\.summary) == [
                    "erp.order.accept", "inventory.reserve", "wms.w1.release", "tms.shipment.create",
                    "billing.invoice.create",
                ])
            #expect(
                scenario.observer.types(of: "o-p") == [
                    "order.accepted", "order.reserved", "order.released", "order.shipment.shipped", "order.shipped",
                    "order.failed",
                ])
            let failed = try #require(scenario.observer.events(of: "o-p").last?.data)
            #expect(failed["status"] == "suspended")
            #expect(failed["failure"] == ["code": "account_closed", "message": "test participant", "step": "invoice"])
        }
    }

    @Test("a ship branch failing after the other shipped suspends; order.failed names the failed branch")
    func shipBranchFailureNamesTheBranch() async throws {
        let script: Participant.Script = { command in
            command.routingKey == "tms.shipment.create" && command.body?["warehouse"] == "w2"
                ? .error("no_carrier", retryable: false) : nil
        }
        let stock = Participant.table([("w1", "A", 1), ("w2", "B", 1)])
        try await Scenario.run(stock: stock, script: script) { scenario in
            let worker = try await scenario.startWorker()
            try await scenario.placeOrder("o-b", lines: [("A", 1), ("B", 1)])
            let saga = try await scenario.waitForStatus("o-b", .suspended, in: worker)
            try await scenario.waitForEvent("order.failed", of: "o-b")

            // Only the branch that shipped has its event; no joined order.shipped, as the step did not succeed.
            #expect(
                scenario.observer.types(of: "o-b") == [
                    "order.accepted", "order.reserved", "order.released", "order.shipment.shipped", "order.failed",
                ])
            let events = scenario.observer.events(of: "o-b")
            let shipment = try #require(events.first { $0.type == "order.shipment.shipped" }?.data)
            #expect(shipment["branch"]?["item"]?["warehouse"] == "w1")
            #expect(shipment["output"] == ["trackingId": "T-o-b-w1"])

            let failure = try #require(events.last?.data?["failure"])
            let index = try #require(saga.instance.failure?.branch)
            let lines: JSONValue = [["sku": "B", "quantity": 1]]
            #expect(
                failure == [
                    "code": "no_carrier", "message": "test participant", "step": "ship",
                    "branch": [
                        "index": .number(Double(index)), "item": ["id": "o-b-w2", "warehouse": "w2", "lines": lines],
                    ],
                ])
        }
    }
}
