import SagaEngine
import Testing
import WaybillDefinition

@testable import WaybillWorker

/// The worker's limiter on its own: what it admits, holds, releases and counts in flight.
@Suite("Participant limiter")
struct ParticipantLimiterTests {
    static let limits = ParticipantLimits(
        limits: [ParticipantLimit(commands: "erp.#", maxInFlight: 2)], aging: .seconds(10))
    static let start = Timestamp(milliseconds: 1_000_000)

    static func held(_ id: String, priority: Int, at: Timestamp = start, partition: Int = 0) -> ParticipantLimiter.Held
    {
        ParticipantLimiter.Held(
            partition: partition, key: SagaKey(workflow: "w", id: id),
            command: HeldCommand(
                timerId: "t-\(id)", messageId: "m-\(id)", routingKey: "erp.order.accept", priority: priority,
                heldAt: at, timeout: .seconds(30)))
    }

    @Test("commands under no limit always go; limited ones go while there is room and nothing waits")
    func admission() {
        let limiter = ParticipantLimiter(limits: Self.limits, now: Self.start)
        #expect(limiter.admit(routingKey: "wms.w1.release", messageId: "x", timeout: .seconds(5), now: Self.start))
        #expect(!limiter.isLimited("wms.w1.release"))
        #expect(limiter.isLimited("erp.order.accept"))
        #expect(limiter.admit(routingKey: "erp.order.accept", messageId: "a", timeout: .seconds(5), now: Self.start))
        #expect(limiter.admit(routingKey: "erp.order.cancel", messageId: "b", timeout: .seconds(5), now: Self.start))
        #expect(!limiter.admit(routingKey: "erp.order.accept", messageId: "c", timeout: .seconds(5), now: Self.start))
        limiter.answered("a", now: Self.start)
        #expect(limiter.admit(routingKey: "erp.order.accept", messageId: "c", timeout: .seconds(5), now: Self.start))
        // Held commands go first: with one waiting, a new command does not overtake it even when there is room.
        limiter.answered("b", now: Self.start)
        limiter.hold([Self.held("h", priority: PriorityLane.normal)])
        #expect(!limiter.admit(routingKey: "erp.order.accept", messageId: "d", timeout: .seconds(5), now: Self.start))
    }

    @Test("releases go highest lane first, oldest first within a lane, as room comes back")
    func lanes() {
        let limiter = ParticipantLimiter(limits: Self.limits, now: Self.start)
        limiter.hold([
            Self.held("low-1", priority: PriorityLane.low),
            Self.held("normal-1", priority: PriorityLane.normal, at: Self.start.adding(milliseconds: 5)),
            Self.held("high-1", priority: PriorityLane.high, at: Self.start.adding(milliseconds: 9)),
            Self.held("high-2", priority: PriorityLane.high, at: Self.start.adding(milliseconds: 10)),
        ])
        #expect(limiter.hasHeld)
        // Found held again (a partition claimed twice): it still waits once.
        limiter.hold([Self.held("low-1", priority: PriorityLane.low)])
        #expect(limiter.status(now: Self.start).first?.held == [PriorityLane.low: 1, 1: 1, 2: 2])
        let now = Self.start.adding(milliseconds: 20)
        #expect(limiter.releases(now: now).map(\.key.id) == ["high-1", "high-2"])
        #expect(limiter.releases(now: now).isEmpty, "two in flight: no room")
        limiter.answered("m-high-1", now: now)
        #expect(limiter.releases(now: now).map(\.key.id) == ["normal-1"])
        // Twenty seconds of waiting lifts the low command two lanes, past a fresh normal one.
        let later = Self.start.adding(milliseconds: 20_000)
        limiter.hold([Self.held("normal-2", priority: PriorityLane.normal, at: later)])
        limiter.answered("m-high-2", now: later)
        #expect(limiter.releases(now: later).map(\.key.id) == ["low-1"])
    }

    @Test("a command never answered frees its place at its reply timeout")
    func expiry() {
        let limiter = ParticipantLimiter(limits: Self.limits, now: Self.start)
        #expect(limiter.admit(routingKey: "erp.a", messageId: "a", timeout: .seconds(5), now: Self.start))
        #expect(limiter.admit(routingKey: "erp.b", messageId: "b", timeout: .seconds(5), now: Self.start))
        limiter.hold([Self.held("h", priority: PriorityLane.normal)])
        #expect(limiter.releases(now: Self.start.adding(milliseconds: 4_999)).isEmpty)
        #expect(limiter.releases(now: Self.start.adding(milliseconds: 5_000)).map(\.key.id) == ["h"])
    }

    @Test("rate_limited halves the limit; a lost partition's held commands are forgotten; adopted ones count")
    func backPressureAndOwnership() {
        let limiter = ParticipantLimiter(
            limits: ParticipantLimits(limits: [ParticipantLimit(commands: "erp.#", maxInFlight: 8)]), now: Self.start)
        #expect(limiter.admit(routingKey: "erp.a", messageId: "a", timeout: .seconds(5), now: Self.start))
        limiter.answered("a", rateLimited: true, now: Self.start)
        #expect(limiter.status(now: Self.start).first?.maxInFlight == 4)
        #expect(limiter.status(now: Self.start).first?.binds == true)

        limiter.hold([Self.held("p0", priority: 1, partition: 0), Self.held("p1", priority: 1, partition: 1)])
        limiter.adopt(
            inFlight: [
                ("old-1", "erp.order.accept", Self.start.adding(milliseconds: 1_000)),
                ("old-2", "wms.w1.release", Self.start.adding(milliseconds: 1_000)),
                ("old-3", "erp.order.accept", Self.start.adding(milliseconds: 1_000)),
            ], now: Self.start)
        #expect(limiter.status(now: Self.start).first?.inFlight == 2, "only the limited commands count")
        // Partition 0 goes to another worker: its held command and its command in flight are that worker's now.
        limiter.keep(partitions: [1]) { $0 == "old-1" ? 0 : 1 }
        #expect(limiter.status(now: Self.start).first?.held == [1: 1])
        #expect(limiter.status(now: Self.start).first?.inFlight == 1)

        // An unsent release gives its token back, and a command no limit covers is handed back to go at once.
        let uncovered = limiter.hold([
            ParticipantLimiter.Held(
                partition: 1, key: SagaKey(workflow: "w", id: "x"),
                command: HeldCommand(
                    timerId: "t", messageId: "m", routingKey: "tms.shipment.create", priority: 1, heldAt: Self.start,
                    timeout: .seconds(1)))
        ])
        #expect(uncovered.map(\.key.id) == ["x"])
    }
}
