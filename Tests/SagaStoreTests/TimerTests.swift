import Testing
import WaybillTestSupport

@testable import SagaEngine
@testable import SagaStore

/// Durable timers: due in order, moved and cancelled by later commits, named per saga.
@Suite struct TimerTests {
    @Test func timersComeDueInOrderAndCanBeMovedAndCancelled() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.commit([
            Fixtures.change("ord-1", schedule: [Fixtures.timer("t-1", due: 300)]),
            Fixtures.change("ord-2", schedule: [Fixtures.timer("t-2", .retry, due: 100)]),
            Fixtures.change("ord-3", schedule: [Fixtures.timer("t-3", due: 200), Fixtures.timer("t-4", due: 900)]),
        ])
        #expect(try store.nextTimerDue() == Timestamp(milliseconds: 100))
        let due = try store.dueTimers(before: Timestamp(milliseconds: 250), limit: 10)
        #expect(due.map(\.id) == ["t-2", "t-3"])
        #expect(
            due[0]
                == StoredTimer(key: Fixtures.key("ord-2"), id: "t-2", kind: .retry, dueAt: Timestamp(milliseconds: 100))
        )
        #expect(try store.dueTimers(before: Timestamp(milliseconds: 250), limit: 1).map(\.id) == ["t-2"])
        #expect(try store.dueTimers(before: Timestamp(milliseconds: 200), limit: 10).map(\.id) == ["t-2", "t-3"])

        // Upsert moves t-1 to the front; cancelling t-2 and t-3 removes them.
        try store.commit([
            Fixtures.change("ord-1", schedule: [Fixtures.timer("t-1", .retry, due: 50)]),
            Fixtures.change("ord-2", cancel: ["t-2"]),
            Fixtures.change("ord-3", cancel: ["t-3", "unknown"]),
        ])
        #expect(try store.dueTimers(before: Timestamp(milliseconds: 1_000), limit: 10).map(\.id) == ["t-1", "t-4"])
        #expect(try store.timers(of: Fixtures.key("ord-1")).map(\.kind) == [.retry])
        #expect(try store.nextTimerDue() == Timestamp(milliseconds: 50))
        #expect(try store.counts()["timers"] == 2)
    }

    @Test func timerIdsAreScopedToTheirSaga() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        try store.commit([
            Fixtures.change("ord-1", schedule: [Fixtures.timer("t-1", due: 10)]),
            Fixtures.change("ord-2", schedule: [Fixtures.timer("t-1", due: 20)]),
        ])
        try store.commit([Fixtures.change("ord-1", cancel: ["t-1"])])
        #expect(try store.dueTimers(before: Timestamp(milliseconds: 100), limit: 10).map(\.key.id) == ["ord-2"])
    }
}
