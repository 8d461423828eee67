import ChildProcess
import Foundation
import SagaEngine
import SagaStore
import Testing
import WaybillDefinition
import WaybillOperations
import WaybillTestSupport

@testable import WaybillWorker

/// Retention through a real worker: finished sagas past `archive_after` leave the partition files for the pool's
/// archive, in batches, while the worker runs; the operator reads still find them.
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
struct RetentionTests {
    @Test("finished sagas move to the archive with their journals; show and history read them there; zcat reads a day")
    func finishedSagasMoveToTheArchive() async throws {
        try await Scenario.run { scenario in
            let worker = try await scenario.startWorker(adjust: { configuration in
                configuration.archiveAfter = .milliseconds(1)
                configuration.archiveInterval = .milliseconds(50)
                configuration.archiveBatch = 2
            })
            let ids = (1...5).map { "o-\($0)" }
            for id in ids { try await scenario.placeOrder(id) }
            for id in ids { try await scenario.waitForEvent("order.completed", of: id) }

            let archive = try SagaArchive(dataDirectory: scenario.dataDirectory, readOnly: true)
            defer { try? archive.close() }
            try await eventually("the five sagas to leave the partition files") {
                try archive.count() == ids.count
                    && worker.store.sagas(ids.map(scenario.key)).isEmpty
                    && ids.allSatisfy { try worker.store.journal(of: scenario.key($0)).isEmpty }
            }

            let location = try #require(try archive.locate(sagaId: "o-3").first)
            let saga = try archive.load(location)
            #expect(saga.status == .completed)
            #expect(saga.owner == worker.id)
            #expect(saga.journal.first?.kind == "start")
            #expect(saga.journal.count >= 6, "the whole journal: \(saga.journal.map(\.detail))")
            #expect(saga.state.steps.allSatisfy { [.succeeded, .bypassed].contains($0.status) })

            // `waybill sagas show` and `history` read the archived saga.
            let inspector = try SagaInspector(dataDirectory: scenario.dataDirectory)
            let detail = try inspector.detail(
                SagaReference(parsing: "o-3"), journal: 3, now: Timestamp(milliseconds: saga.archivedAt + 1_000),
                poolName: nil)
            #expect(detail.archived?.file == archive.path(day: location.day))
            #expect(detail.row.status == .completed)
            #expect(detail.recentJournal.map(\.id) == saga.journal.suffix(3).map(\.id))
            #expect(detail.definitionKnown, "the definition stays in the partition file")
            #expect(ShowView.text(detail).contains("archived"))
            #expect(ShowView.json(detail)["saga"]?["archived"]?["file"] == .string(archive.path(day: location.day)))
            guard case .archived(let found, _) = try inspector.locate(SagaReference(parsing: "o-3")) else {
                Issue.record("o-3 is not found in the archive")
                return
            }
            #expect(found == saga)
            #expect(throws: OperationsError.self) { try inspector.locate(SagaReference(parsing: "o-404")) }
            let stats = try inspector.stats(now: Timestamp(milliseconds: saga.archivedAt))
            #expect((stats.archived?.lines ?? 0) >= ids.count)
            #expect(stats.archived?.days == 1)
            #expect(StatsView.text(stats).contains("Archived: "))

            // A day file is plain gzip'd JSON lines.
            let (termination, output) = try await ChildProcess.run(
                "/bin/sh", arguments: ["-c", "gzip -dc \(archive.path(day: location.day)) | wc -l"],
                timeout: .seconds(30))
            #expect(termination.shellStatus == 0)
            #expect(Int(output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0 >= 1)

            // The pool keeps running: a new order completes and is archived in turn.
            try await scenario.placeOrder("o-6")
            try await scenario.waitForEvent("order.completed", of: "o-6")
            try await eventually("o-6 to be archived") { try !archive.locate(sagaId: "o-6").isEmpty }
        }
    }
}
