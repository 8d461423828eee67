import Testing
import WaybillDefinition

@testable import SagaEngine
@testable import WaybillWorker

/// The hot loop's in-memory copy of recently committed sagas: bounded, most recently used kept, failed commits
/// evicted.
struct SagaCacheTests {
    static func saga(_ id: String, sequence: Int = 0) -> SagaInstance {
        SagaInstance(
            key: SagaKey(workflow: "w", id: id), version: 1, definitionHash: "h", status: .running, input: .null,
            steps: [], cursor: 0, completions: [], compensation: nil, pivotPassed: false, failure: nil,
            startedAt: Timestamp(milliseconds: 1), updatedAt: Timestamp(milliseconds: 1), sequence: sequence)
    }

    @Test("holds the latest state, at most its capacity, and keeps the sagas used recently")
    func boundedAndRecent() {
        var cache = SagaCache(capacity: 4)
        cache.insert(Self.saga("a"))
        cache.insert(Self.saga("a", sequence: 7))
        #expect(cache.instance(SagaKey(workflow: "w", id: "a"))?.sequence == 7)
        cache.insert(Self.saga("b"))  // young full: a and b become the old generation
        cache.insert(Self.saga("c"))
        // a used: young again, beside c; the young generation is full, so it becomes the old one and b is dropped.
        #expect(cache.instance(SagaKey(workflow: "w", id: "a")) != nil)
        cache.insert(Self.saga("d"))
        #expect(cache.instance(SagaKey(workflow: "w", id: "b")) == nil)
        #expect(cache.instance(SagaKey(workflow: "w", id: "a")) != nil)
        #expect(cache.count <= 4)
        for index in 0..<100 { cache.insert(Self.saga("s\(index)")) }
        #expect(cache.count <= 4)
    }

    @Test("evicted sagas are read again; a cache of size 0 holds nothing")
    func evictionAndOff() {
        var cache = SagaCache(capacity: 100)
        cache.insert(Self.saga("a"))
        cache.insert(Self.saga("b"))
        cache.evict([SagaKey(workflow: "w", id: "a")])
        #expect(cache.instance(SagaKey(workflow: "w", id: "a")) == nil)
        #expect(cache.instance(SagaKey(workflow: "w", id: "b")) != nil)
        var off = SagaCache(capacity: 0)
        off.insert(Self.saga("a"))
        #expect(off.count == 0)
    }
}
