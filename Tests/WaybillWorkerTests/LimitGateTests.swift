import Testing
import WaybillDefinition

@testable import WaybillWorker

/// The limiter's arithmetic, on a made-up clock: rate, in-flight cap, shares, back-pressure and priority lanes.
@Suite("Limit gates and held commands")
struct LimitGateTests {
    /// Releases what the gate lets through between `from` and `to` (ms), trying every millisecond.
    private func releases(_ gate: inout LimitGate, from: Int64, to: Int64) -> Int {
        var count = 0
        for now in from..<to {
            while gate.mayRelease(now: now) {
                gate.released(now: now)
                gate.settled()
                count += 1
            }
        }
        return count
    }

    @Test func theRateLetsABurstThenItsPaceThrough() {
        var gate = LimitGate(limit: ParticipantLimit(commands: "erp.#", perSecond: 200, burst: 50), share: 1, now: 0)
        #expect(releases(&gate, from: 0, to: 1) == 50, "the burst goes at once")
        #expect((199...200).contains(releases(&gate, from: 1, to: 1_001)), "then 200 a second")
    }

    @Test func aGateThrottledToItsFloorStillTrickles() {
        var gate = LimitGate(limit: ParticipantLimit(commands: "erp.#", perSecond: 200, burst: 20), share: 1, now: 0)
        for _ in 0..<10 { gate.throttled(now: 0) }
        #expect(gate.factor == LimitGate.minimumFactor)
        // 200/s at 1/64 is about 3 a second, and a bucket of less than one command would never release any.
        let trickle = releases(&gate, from: 1, to: 1_000)
        #expect((2...5).contains(trickle), "\(trickle) released in the second after the throttles")
    }

    @Test func inFlightIsCappedUntilAnswersComeBack() {
        var gate = LimitGate(limit: ParticipantLimit(commands: "wms.#", maxInFlight: 10), share: 1, now: 0)
        for _ in 0..<10 {
            let open = gate.mayRelease(now: 0)
            #expect(open)
            gate.released(now: 0)
        }
        let full = !gate.mayRelease(now: 5)
        #expect(full)
        gate.settled()
        let freed = gate.mayRelease(now: 6)
        #expect(freed)
    }

    @Test func aWorkerTakesItsShareOfThePoolsLimitAndAtLeastOne() {
        let limit = ParticipantLimit(commands: "erp.#", maxInFlight: 10, perSecond: 200, burst: 40)
        var third = LimitGate(limit: limit, share: LimitGate.share(owned: 5, total: 16), now: 0)
        #expect(third.maxInFlight == 3)
        #expect(third.perSecond == 62.5)
        #expect(third.burst == 12.5)
        var tiny = LimitGate(limit: limit, share: LimitGate.share(owned: 1, total: 16), now: 0)
        #expect(tiny.maxInFlight == 1)
        tiny.reshare(1, now: 0)
        #expect(tiny.maxInFlight == 10)
        #expect(releases(&third, from: 0, to: 1_000) <= 12 + 63)
    }

    @Test func backPressureHalvesTheLimitPausesAndQuietSecondsGiveItBack() {
        var gate = LimitGate(
            limit: ParticipantLimit(commands: "tms.#", maxInFlight: 16, perSecond: 100, burst: 10), share: 1, now: 0)
        gate.throttled(now: 0, retryAfter: 500)
        #expect(gate.maxInFlight == 8 && gate.perSecond == 50)
        let paused = !gate.mayRelease(now: 499)
        #expect(paused, "nothing before retry_after")
        gate.throttled(now: 600)
        #expect(gate.factor == 0.25)
        for _ in 0..<20 { gate.throttled(now: 600) }
        #expect(gate.factor == LimitGate.minimumFactor, "never below a trickle")
        let trickle = gate.mayRelease(now: 700)
        #expect(trickle || gate.tokens < 1)
        _ = gate.mayRelease(now: 600 + 20_000)
        #expect(gate.factor > 0.99, "twenty quiet seconds give the whole limit back")
    }

    @Test func higherLanesGoFirstAndAgingLiftsALowPriorityCommandAbove() {
        var held = HeldCommands<String>(aging: .seconds(30))
        held.hold("low-1", priority: 0, at: 0)
        held.hold("high-1", priority: 2, at: 1_000)
        held.hold("high-2", priority: 2, at: 2_000)
        held.hold("normal-1", priority: 1, at: 3_000)
        var order = [held.next(now: 4_000)]
        // At 70 s: high-2 (held 68 s) is in lane 4, low-1 (held 70 s) and normal-1 (67 s) in lane 2 and 3, and the
        // new high-3 in lane 2, after low-1, which is older.
        held.hold("high-3", priority: 2, at: 70_000)
        while let next = held.next(now: 70_000) { order.append(next) }
        #expect(order == ["high-1", "high-2", "normal-1", "low-1", "high-3"])
    }
}
