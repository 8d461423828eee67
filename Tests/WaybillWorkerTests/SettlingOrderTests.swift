import Synchronization
import Testing

@testable import WaybillWorker

/// Sent batches complete in any order and on any thread, and are settled in the order they were sent, each once.
struct SettlingOrderTests {
    @Test("entries completed out of order are settled in order, each once, as soon as every earlier one is complete")
    func outOfOrderCompletionsSettleInOrder() {
        let order = SettlingOrder<String, Int>()
        let numbers = ["a", "b", "c", "d"].map { order.append($0) }
        var settled: [String] = []
        order.complete(numbers[2], with: 3) { entry, _ in settled.append(entry) }
        order.complete(numbers[1], with: 2) { entry, _ in settled.append(entry) }
        #expect(settled.isEmpty, "a is not complete yet")
        #expect(order.count == 4)
        order.complete(numbers[0], with: 1) { entry, outcome in settled.append("\(entry)\(outcome)") }
        #expect(settled == ["a1", "b2", "c3"])
        order.complete(numbers[3], with: 4) { entry, outcome in settled.append("\(entry)\(outcome)") }
        #expect(settled == ["a1", "b2", "c3", "d4"])
        #expect(order.count == 0)
        // Numbering goes on after the settled entries.
        let next = order.append("e")
        order.complete(next, with: 5) { entry, outcome in settled.append("\(entry)\(outcome)") }
        #expect(settled.last == "e5")
    }

    @Test("a settle that completes a later entry on the same thread neither deadlocks nor settles it out of turn")
    func completingFromInsideASettle() {
        let order = SettlingOrder<String, Int>()
        let first = order.append("a")
        let second = order.append("b")
        var settled: [String] = []
        func settle(_ entry: String, _ outcome: Int) {
            settled.append("\(entry)\(outcome)")
            // Settling a finishes b (as a batch's handler could): b is settled after a, by the same call.
            if entry == "a" { order.complete(second, with: 2, settle: settle) }
            settled.append("/\(entry)")
        }
        order.complete(first, with: 1, settle: settle)
        #expect(settled == ["a1", "/a", "b2", "/b"])
        #expect(order.count == 0)
    }

    @Test("completions racing on many threads still settle every entry once, in order, one at a time")
    func concurrentCompletionsSettleInOrder() async {
        final class Probe: Sendable {
            let settled = Mutex<[Int]>([])
            /// Settlers running now, and whether two ever ran at once.
            let inside = Mutex((now: 0, overlapped: false))
        }
        let order = SettlingOrder<Int, Int>()
        let count = 2_000
        let numbers = (0..<count).map { order.append($0) }
        let probe = Probe()
        await withTaskGroup(of: Void.self) { group in
            // Four completers take every fourth entry, backwards, so most completions find an earlier one missing.
            for lane in 0..<4 {
                group.addTask {
                    for index in stride(from: count - 1 - lane, through: 0, by: -4) {
                        order.complete(numbers[index], with: index) { entry, outcome in
                            probe.inside.withLock { inside in
                                inside.now += 1
                                if inside.now > 1 { inside.overlapped = true }
                            }
                            probe.settled.withLock { $0.append(entry == outcome ? entry : -1) }
                            probe.inside.withLock { $0.now -= 1 }
                        }
                    }
                }
            }
        }
        #expect(probe.settled.withLock { $0 } == Array(0..<count))
        #expect(!probe.inside.withLock { $0.overlapped }, "two threads settled at the same time")
        #expect(order.count == 0)
    }
}
