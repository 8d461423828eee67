import Foundation
import GRDB
import Testing
import WaybillDefinition

@testable import SagaEngine
@testable import SagaStore

@Suite struct SagaQueryTests {
    /// Five sagas: three running (two at `release`, one at `ship`), one completed, one suspended.
    static func seeded(_ directory: TemporaryDirectory) throws -> SagaStore {
        let store = try SagaStore.open(in: directory)
        let rows: [(String, SagaStatus, String?, Int64)] = [
            ("ord-1", .running, "release", 100), ("ord-2", .running, "release", 300), ("ord-3", .running, "ship", 200),
            ("ord-4", .completed, nil, 400), ("ord-5", .suspended, "invoice", 50),
        ]
        try store.commit(
            rows.map { id, status, step, updatedAt in
                var instance = Fixtures.runningInstance(id: id, updatedAt: updatedAt)
                instance.status = status
                if status == .suspended { instance.failure = Fixtures.fullInstance().failure }
                return SagaChange(
                    key: instance.key, at: instance.updatedAt, instance: instance, currentStep: step, owner: "w1")
            })
        return store
    }

    @Test func listFiltersAndOrdersByLastProgress() throws {
        let directory = try TemporaryDirectory()
        let store = try Self.seeded(directory)
        #expect(try store.listSagas().map(\.key.id) == ["ord-4", "ord-2", "ord-3", "ord-1", "ord-5"])
        #expect(try store.listSagas(SagaFilter(limit: 2)).map(\.key.id) == ["ord-4", "ord-2"])
        #expect(
            try store.listSagas(SagaFilter(status: .running, order: .oldestUpdateFirst)).map(\.key.id)
                == ["ord-1", "ord-3", "ord-2"])
        #expect(
            try store.listSagas(SagaFilter(workflow: Fixtures.workflow, step: "release")).map(\.key.id)
                == ["ord-2", "ord-1"])
        let stuck = try store.listSagas(
            SagaFilter(status: .running, updatedBefore: Timestamp(milliseconds: 250), order: .oldestUpdateFirst))
        #expect(stuck.map(\.key.id) == ["ord-1", "ord-3"])
        let suspended = try #require(try store.listSagas(SagaFilter(status: .suspended)).first)
        #expect(
            suspended
                == SagaSummary(
                    key: Fixtures.key("ord-5"), status: .suspended, currentStep: "invoice", owner: "w1", version: 7,
                    startedAt: Timestamp(milliseconds: 1_700_000_000_000), updatedAt: Timestamp(milliseconds: 50),
                    failureCode: "out_of_stock"))
        #expect(try store.listSagas(SagaFilter(workflow: "returns")).isEmpty)
    }

    @Test func countsByStatus() throws {
        let directory = try TemporaryDirectory()
        let store = try Self.seeded(directory)
        #expect(try store.sagaCountsByStatus() == [.running: 3, .completed: 1, .suspended: 1])
    }

    @Test func pruneInboxForgetsOnlyOldMarks() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.commit((0..<30).map { Fixtures.change("ord-\($0)", message: "m-\($0)", at: Int64($0)) })
        #expect(try store.pruneInbox(before: Timestamp(milliseconds: 20), limit: 15) == 15)
        #expect(try store.pruneInbox(before: Timestamp(milliseconds: 20), limit: 15) == 5)
        #expect(try store.pruneInbox(before: Timestamp(milliseconds: 20)) == 0)
        #expect(try store.counts()["inbox"] == 10)
        #expect(try store.processedMessageIds(in: ["m-19", "m-20", "m-29"]) == ["m-20", "m-29"])
    }
}
