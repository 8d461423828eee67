import Synchronization
import Testing
import WaybillTestSupport

@testable import WaybillWorker

/// The bound on batches waiting for their confirms: a full window holds the hot loop until a batch is settled, and a
/// drain waits for all of them.
struct PublishWindowTests {
    @Test("a full window lets the next batch in only when one is settled; a drain waits for every batch")
    func windowBoundsAndDrains() async throws {
        let window = PublishWindow(size: 2)
        await window.reserve()
        await window.reserve()
        #expect(window.open == 2)
        let third = Task { await window.reserve() }
        let drained = Mutex(false)
        let drain = Task {
            await window.waitUntilEmpty()
            drained.withLock { $0 = true }
        }
        window.release()
        try await within(5, "the third batch let in") { await third.value }
        #expect(window.open == 2)
        #expect(!drained.withLock { $0 }, "two batches are still open")
        window.release()
        window.release()
        try await within(5, "the drain") { await drain.value }
        #expect(window.open == 0)
        await window.waitUntilEmpty()
    }
}
