import Testing
import WaybillDefinition
import WaybillSimulator
import WaybillTestSupport

/// Injected failures, silences, lost replies and latencies.
@Suite struct BehaviourTests {
    enum Injected: String, CaseIterable {
        case busy, rejected, silence

        var behaviour: CommandBehaviour {
            switch self {
            case .busy: CommandBehaviour(pattern: "wms.e*.release", busyRate: 1)
            case .rejected: CommandBehaviour(pattern: "wms.e*.release", rejectRate: 1)
            case .silence: CommandBehaviour(pattern: "wms.e*.release", silenceRate: 1)
            }
        }
    }

    @Test(arguments: Injected.allCases)
    func anInjectedFailureAppliesNothingAndALaterRetryWithTheSameKeyAppliesItOnce(_ injected: Injected) throws {
        let participants = try simulator(behaviours: [injected.behaviour])
        let saga = SagaCommands(sagaId: "f-1")
        let take = OrderJSON.lines(["sku-a": 2])

        let failed = participants.handle(saga.release(branch: 0, warehouse: "east", take, attempt: 1))
        switch injected {
        case .busy:
            #expect(failed.errorCode == "busy")
            #expect(failed.isRetryable == true)
        case .rejected:
            #expect(failed.errorCode == "rejected")
            #expect(failed.isRetryable == false)
        case .silence:
            #expect(failed == .silence)
        }
        var ledger = participants.ledger()
        #expect(ledger.stock == twoWarehouses)
        #expect(ledger.shipments.isEmpty)
        #expect(ledger.counts("wms.east.release").effectsApplied == 0)
        // Routing keys the pattern does not match are unaffected.
        #expect(participants.handle(saga.release(branch: 1, warehouse: "west", take)).isOK)

        try participants.setBehaviours([])
        let retried = participants.handle(saga.release(branch: 0, warehouse: "east", take, attempt: 2))
        #expect(retried.isOK)
        #expect(participants.handle(saga.release(branch: 0, warehouse: "east", take, attempt: 3)) == retried)

        ledger = participants.ledger()
        #expect(ledger.stock["east"]?["sku-a"] == 1)
        let counts = ledger.counts("wms.east.release")
        #expect(counts.received == 3)
        #expect(counts.effectsApplied == 1)
        #expect(counts.duplicatesAbsorbed == 1)
        #expect(counts.injectedBusy == (injected == .busy ? 1 : 0))
        #expect(counts.injectedRejected == (injected == .rejected ? 1 : 0))
        #expect(counts.injectedSilences == (injected == .silence ? 1 : 0))
    }

    @Test func retriesAtAFiftyPercentBusyRateEventuallyApplyTheEffectExactlyOnce() throws {
        let participants = try simulator(behaviours: [CommandBehaviour(pattern: "*", busyRate: 0.5)], seed: 11)
        let saga = SagaCommands(sagaId: "f-2")
        var busyBeforeSuccess = 0
        var attempt = 1
        while attempt <= 40 {
            let response = participants.handle(
                saga.release(branch: 0, warehouse: "west", OrderJSON.lines(["sku-a": 3]), attempt: attempt))
            if response.isOK { break }
            #expect(response.errorCode == "busy")
            #expect(participants.ledger().stock["west"]?["sku-a"] == 10)
            busyBeforeSuccess += 1
            attempt += 1
        }
        #expect(attempt <= 40, "40 attempts at 50% busy never succeeded")
        // Later attempts with the same key replay the reply instead of drawing again.
        for later in (attempt + 1)...(attempt + 10) {
            #expect(
                participants.handle(
                    saga.release(branch: 0, warehouse: "west", OrderJSON.lines(["sku-a": 3]), attempt: later)
                ).isOK)
        }
        let counts = participants.ledger().counts("wms.west.release")
        #expect(counts.injectedBusy == busyBeforeSuccess)
        #expect(counts.effectsApplied == 1)
        #expect(counts.duplicatesAbsorbed == 10)
        #expect(participants.ledger().stock["west"]?["sku-a"] == 7)
    }

    @Test func compensationsAreNotRejectedUnlessAsked() throws {
        let rejectEverything = CommandBehaviour(pattern: "*", rejectRate: 1)
        let participants = try simulator(behaviours: [rejectEverything])
        let saga = SagaCommands(sagaId: "f-3")
        #expect(participants.handle(saga.accept(OrderJSON.lines(["sku-a": 1]))).errorCode == "rejected")
        #expect(participants.handle(saga.cancelOrder()).isOK)

        var strict = rejectEverything
        strict.rejectsCompensations = true
        try participants.setBehaviours([strict])
        var again = saga.cancelOrder()
        again.idempotencyKey += "/again"
        #expect(participants.handle(again).errorCode == "rejected")
    }

    @Test func behavioursCanBeLimitedToOneAction() throws {
        let participants = try simulator(behaviours: [
            CommandBehaviour(pattern: "*", actions: [.compensate], latency: .fixed(.milliseconds(5))),
            CommandBehaviour(pattern: "*", latency: .fixed(.milliseconds(50)), busyRate: 1),
        ])
        let saga = SagaCommands(sagaId: "f-4")
        let forward = participants.handle(saga.accept(OrderJSON.lines(["sku-a": 1])))
        #expect(forward.errorCode == "busy")
        #expect(forward.delay == .milliseconds(50))
        let undo = participants.handle(saga.cancelOrder())
        #expect(undo.isOK)
        #expect(undo.delay == .milliseconds(5))
    }

    @Test func aLostReplyAppliesTheEffectAndTheRetryGetsTheRememberedReply() throws {
        let participants = try simulator(behaviours: [CommandBehaviour(pattern: "wms.*.release", lostReplyRate: 1)])
        let saga = SagaCommands(sagaId: "f-5")
        let take = OrderJSON.lines(["sku-a": 4])
        #expect(participants.handle(saga.release(branch: 0, warehouse: "west", take, attempt: 1)) == .silence)
        #expect(participants.ledger().stock["west"]?["sku-a"] == 6)

        let retried = participants.handle(saga.release(branch: 0, warehouse: "west", take, attempt: 2))
        #expect(retried.output == ["shipmentId": "f-5-west", "warehouse": "west"])
        let counts = participants.ledger().counts("wms.west.release")
        #expect(counts.effectsApplied == 1)
        #expect(counts.lostReplies == 1)
        #expect(counts.duplicatesAbsorbed == 1)
        #expect(participants.ledger().stock["west"]?["sku-a"] == 6)
    }

    @Test func silenceAndBusyComeAtTheConfiguredRates() throws {
        let participants = try simulator(
            behaviours: [CommandBehaviour(pattern: "tms.*", busyRate: 0.1, silenceRate: 0.25)], seed: 2024)
        let total = 4000
        var silences = 0
        var busy = 0
        for index in 0..<total {
            let saga = SagaCommands(sagaId: "s-\(index)")
            let response = participants.handle(saga.ship(branch: 0, warehouse: "east"))
            if response == .silence { silences += 1 }
            if response.errorCode == "busy" { busy += 1 }
        }
        // Binomial: mean n p, standard deviation sqrt(n p (1 - p)); allow 4 deviations.
        #expect(abs(silences - 1000) <= 4 * 28, "silences: \(silences) of \(total)")
        #expect(abs(busy - 400) <= 4 * 19, "busy: \(busy) of \(total)")
        let counts = participants.ledger().counts("tms.shipment.create")
        #expect(counts.injectedSilences == silences)
        #expect(counts.injectedBusy == busy)
        #expect(counts.effectsApplied == total - silences - busy)
        #expect(participants.ledger().trackingIds.count == total - silences - busy)
    }

    @Test func theSameSeedGivesTheSameFatesInAnyOrderAndAnotherSeedDoesNot() throws {
        let behaviours = [
            CommandBehaviour(
                pattern: "*", latency: .uniform(.milliseconds(1)...(.milliseconds(500))), busyRate: 0.2,
                silenceRate: 0.2)
        ]
        let commands = (0..<200).map { SagaCommands(sagaId: "d-\($0)").accept(OrderJSON.lines(["sku-a": 1])) }
        func fates(seed: UInt64, _ commands: [SimulatedCommand]) throws -> [String: String] {
            let participants = try simulator(behaviours: behaviours, seed: seed)
            var fates: [String: String] = [:]
            for command in commands {
                let response = participants.handle(command)
                fates[command.idempotencyKey] =
                    "\(response.errorCode ?? (response == .silence ? "silence" : "ok"))"
                    + " after \(String(describing: response.delay))"
            }
            return fates
        }
        let forward = try fates(seed: 5, commands)
        #expect(try fates(seed: 5, commands.reversed()) == forward)
        #expect(try fates(seed: 6, commands) != forward)
    }

    @Test func latenciesFollowTheirDistributions() throws {
        let participants = try simulator(behaviours: [
            CommandBehaviour(pattern: "erp.*", latency: .fixed(.milliseconds(120))),
            CommandBehaviour(pattern: "inventory.*", latency: .uniform(.milliseconds(10)...(.milliseconds(30)))),
            CommandBehaviour(pattern: "billing.*", latency: .exponential(mean: .milliseconds(100), max: .seconds(1))),
        ])
        var uniform: [Duration] = []
        var exponential: [Duration] = []
        for index in 0..<2000 {
            let saga = SagaCommands(sagaId: "l-\(index)")
            if index < 20 {
                #expect(participants.handle(saga.accept(OrderJSON.lines(["sku-a": 1]))).delay == .milliseconds(120))
            }
            uniform.append(try #require(participants.handle(saga.reserve(OrderJSON.lines(["sku-a": 1]))).delay))
            exponential.append(try #require(participants.handle(saga.invoice([])).delay))
        }
        #expect(uniform.allSatisfy { (.milliseconds(10)...(.milliseconds(30))).contains($0) })
        #expect(Set(uniform).count == 21, "every millisecond from 10 to 30 should occur in 2000 draws")
        #expect(exponential.allSatisfy { $0 >= .zero && $0 <= .seconds(1) })
        let mean = exponential.reduce(Duration.zero, +) / exponential.count
        // Standard error of the mean is 100 ms / sqrt(2000) ≈ 2.2 ms (the cap at 10 means barely matters).
        #expect(mean > .milliseconds(90) && mean < .milliseconds(110), "mean \(mean)")
        #expect(exponential.filter { $0 > .milliseconds(300) }.count < 150, "tail too heavy")
        // Commands nothing matches answer at once.
        #expect(participants.handle(SagaCommands(sagaId: "l-x").ship(branch: 0, warehouse: "east")).delay == .zero)
    }

    @Test(arguments: [
        ("*", "erp.order.accept", true),
        ("#", "wms.east.release", true),
        ("wms.*.release", "wms.east.release", true),
        ("wms.*.release", "wms.east.cancel", false),
        ("wms.*.release", "wms..release", true),
        ("wms.*", "wms.east.cancel", true),
        ("erp.order.accept", "erp.order.accept", true),
        ("erp.order.accept", "erp.order.acceptx", false),
        ("*.create", "tms.shipment.create", true),
        ("*.create", "tms.shipment.created", false),
        ("tms", "tms.shipment.create", false),
    ])
    func patternsMatchRoutingKeys(pattern: String, routingKey: String, matches: Bool) {
        #expect(CommandBehaviour(pattern: pattern).matches(routingKey: routingKey, action: .do) == matches)
    }
}
