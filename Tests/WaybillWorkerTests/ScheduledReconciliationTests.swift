import Foundation
import SagaEngine
import SagaStore
import Testing
import WaybillDefinition
import WaybillOperations
import WaybillTestSupport
import WaybillWire

@testable import WaybillWorker

/// `reconcile_every`: the worker that owns partition 0 reconciles the pool on a schedule, against a real broker and a
/// participant that answers verify queries from its books.
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
struct ScheduledReconciliationTests {
    @Test("a scheduled pass finds nothing on a clean pool, then the effect a participant lost, and journals it")
    func scheduledPassFindsLostEffect() async throws {
        try await Scenario.run { scenario in
            let worker = try await scenario.startWorker(adjust: { configuration in
                configuration.reconcileEvery = .milliseconds(300)
                configuration.reconcileWindow = .seconds(3600)
            })
            for id in ["o-1", "o-2"] { try await scenario.placeOrder(id) }
            for id in ["o-1", "o-2"] { try await scenario.waitForStatus(id, .completed, in: worker) }
            let reports = ReconcileReports(dataDirectory: scenario.dataDirectory)
            try await eventually("a clean pass over both sagas") {
                guard let report = try? reports.load() else { return false }
                return report.sagaCount == 2
            }
            let clean = try reports.load()
            #expect(clean.findings.isEmpty, "\(clean.findings)")
            #expect(clean.queryCount == 6 && clean.answered == 6, "accept, reserve and one release per saga")
            #expect(clean.by == "worker \(worker.id)")

            scenario.participant.lose("o-1/reserve")
            try await eventually("a pass that finds the lost reservation") {
                (try? reports.load())?.findings.contains { $0.idempotencyKey == "o-1/reserve" } == true
            }
            let report = try reports.load()
            let finding = try #require(report.findings.first)
            #expect(report.findings.count == 1)
            #expect(finding.kind == .missingEffect && finding.participant == "inventory" && finding.step == "reserve")
            #expect(finding.query == "inventory.reservation.status" && !finding.repairable)
            try await eventually("the finding in the saga's journal") {
                try worker.store.journal(of: scenario.key("o-1")).contains { $0.entry.kind == .note }
            }
            // Passes keep running every 300 ms and keep finding it: it is still journaled once.
            let passes = reports.ids().count
            try await eventually("two more passes over the same drift") { reports.ids().count >= passes + 2 }
            let notes = try worker.store.journal(of: scenario.key("o-1")).filter { $0.entry.kind == .note }
            #expect(notes.count == 1)
            let note = try #require(notes.last)
            #expect(note.entry.actor == "worker \(worker.id)")
            #expect(note.entry.step == "reserve")
            #expect(note.entry.facts?["reconcile"] == "missing_effect")
            #expect(try worker.store.saga(scenario.key("o-1"))?.instance.status == .completed, "a note moves nothing")
        }
    }

    @Test("a pass within a participant's in-flight limit asks everything, and finds an effect the participant undid")
    func passWithinLimitsFindsUndoneEffect() async throws {
        try await Scenario.run { scenario in
            let worker = try await scenario.startWorker()
            let ids = (1...6).map { "o-\($0)" }
            for id in ids { try await scenario.placeOrder(id) }
            for id in ids { try await scenario.waitForStatus(id, .completed, in: worker) }
            scenario.participant.undoInBooks("o-4/accept")

            // A limit of 2 in flight gives the pass a lane of 1, far below its 32 queries in flight.
            let inspector = try SagaInspector(dataDirectory: scenario.dataDirectory)
            let reconciler = Reconciler(
                inspector: inspector,
                route: RepairRoute(
                    pool: try SagaInspector.openPool(scenario.dataDirectory), poolName: scenario.names.poolName),
                commandsExchange: scenario.names.commandsExchange, since: nil, workflow: nil, rate: nil,
                limits: ParticipantLimits(limits: [ParticipantLimit(commands: "#", maxInFlight: 2)]), by: "test",
                now: { Timestamp.now() })
            let (url, password) = try TestBroker.urlAndPassword()
            let report = try await within(30, "a pass within the limits") {
                try await reconciler.run(broker: BrokerSettings.from(urlWithPassword: url, password: password))
            }
            #expect(report.queryCount == 18 && report.answered == 18)
            let finding = try #require(report.findings.first)
            #expect(report.findings.count == 1)
            #expect(finding.kind == .undoneEffect && finding.sagaId == "o-4" && finding.step == "accept")
            #expect(finding.journaled && finding.firstFound == report.id)

            // Found again by the next pass: still open, not journaled a second time.
            let again = try await reconciler.run(broker: BrokerSettings.from(urlWithPassword: url, password: password))
            #expect(again.findings.first?.firstFound == report.id)
            let notes = try worker.store.journal(of: scenario.key("o-4")).filter { $0.entry.kind == .note }
            #expect(notes.count == 1)
            #expect(ReconcileReports(dataDirectory: scenario.dataDirectory).openDrift().map(\.sagaId) == ["o-4"])
        }
    }
}
