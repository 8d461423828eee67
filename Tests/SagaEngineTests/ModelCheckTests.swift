import SagaEngine
import SeededRandom
import Synchronization
import Testing
import WaybillDefinition
import WaybillTestSupport

/// The model checker draws from the seeded generator, so every run can be replayed from its seed.
extension SplitMix64 {
    mutating func chance(_ probability: Double) -> Bool {
        Double.random(in: 0..<1, using: &self) < probability
    }
}

/// Drives thousands of random sagas through the engine against a random participant model: ok, retryable and
/// non-retryable replies, silence (timeouts), late and duplicate replies, out_of_stock, replies reordered across
/// sagas, and an operator who retries or skips suspended sagas. It checks the saga invariants as it goes and after
/// draining, among them: every branch that may have taken effect (it succeeded, or a forward attempt of it was sent
/// and never answered) is compensated, in reverse order, before a saga ends compensated or re-plans it away.
struct ModelChecker {
    enum Delivery {
        case start(sagaId: String, input: JSONValue)
        case reply(sagaId: String, messageId: String, outcome: ReplyOutcome, duplicate: Bool)
        case timer(sagaId: String, timerId: String)
        case signal(sagaId: String, waitId: String, message: JSONValue)
        case repair(sagaId: String)
    }

    struct Scheduled {
        var at: Int64
        var sequence: Int
        var delivery: Delivery
    }

    /// What the model remembers per saga to check the engine against.
    struct Ledger {
        /// Successful forward branches with a compensation, in completion order; compensation must pop from the end.
        var undoStack: [String] = []
        /// Every forward command of a step with a compensation: its idempotency key, message id and step index.
        var forwardCommands: [(key: String, messageId: String, step: Int)] = []
        /// Forward keys that got an ok reply at least once.
        var succeededKeys: Set<String> = []
        /// Forward keys that never succeeded whose compensation succeeded.
        var undoneUnknown: Set<String> = []
        var pivotPassed = false
        var compensationsSent = 0
        var repairs = 0
        var liveTimers: Set<String> = []
        /// Waits for a message the saga recorded and has not forgotten.
        var liveWaits: Set<String> = []
        var stock: JSONValue = []
    }

    var random: SplitMix64
    let engine: SagaEngine
    let definition: WorkflowDefinition
    var sagas: [String: SagaInstance] = [:]
    var ledgers: [String: Ledger] = [:]
    var sent: [String: CommandMessage] = [:]
    var appliedReplies: Set<String> = []
    var queue: [Scheduled] = []
    var sequence = 0
    var violations: [String] = []
    var transitions = 0
    var suspensions = 0
    /// Compensations of branches whose outcome was unknown that succeeded.
    var unknownUndone = 0

    /// Messages that ended a wait.
    var signalsApplied = 0
    /// Commands held back by the random limiter, and `rate_limited` replies sent (the `limits` variant).
    var held = 0
    var rateLimited = 0
    /// Whether the participants answer `rate_limited` now and then (`limits` variant).
    let pushesBack: Bool

    /// A checker of the order-fulfillment saga; with `creditCheck`, a choice routes orders of one line around a
    /// credit hold that the others run and may have to undo; with `paymentWait`, each saga waits for its payment
    /// message after accepting, which comes late, twice, for another order, or never.
    /// With `limits`, a random limiter holds back 40 % of the ERP and WMS commands (releasing each a few seconds
    /// later), and those participants answer `rate_limited` to 10 % of them.
    init(seed: UInt64, creditCheck: Bool = false, paymentWait: Bool = false, limits: Bool = false) {
        random = SplitMix64(seed: seed)
        engine = SagaEngine(jitterSeed: seed, admission: limits ? RandomAdmission(seed: seed) : nil)
        pushesBack = limits
        let retry = RetryPolicy(
            maxAttempts: .limited(3), initialInterval: .milliseconds(500), backoff: 2, maxInterval: .seconds(5),
            jitter: .full)
        definition = TestWorkflows.orderFulfillment(
            retry: retry, creditCheck: creditCheck, paymentWait: paymentWait)
    }

    mutating func schedule(_ delivery: Delivery, at: Int64) {
        sequence += 1
        queue.append(Scheduled(at: at, sequence: sequence, delivery: delivery))
    }

    mutating func violation(_ sagaId: String, _ text: String) {
        if violations.count < 20 { violations.append("saga \(sagaId): \(text)") }
    }

    mutating func randomOrder(_ index: Int) -> (JSONValue, JSONValue) {
        let skus = ["A", "B", "C", "D", "E", "F", "G"].shuffled(using: &random)
        let lineCount = Int.random(in: 1...6, using: &random)
        let warehouses = ["w1", "w2", "w3", "w4", "w5"].prefix(Int.random(in: 3...5, using: &random))
        var lines: [(String, Int)] = []
        var stock: [(String, String, Int)] = []
        for sku in skus.prefix(lineCount) {
            let quantity = Int.random(in: 1...4, using: &random)
            lines.append((sku, quantity))
            for warehouse in warehouses where random.chance(0.6) {
                stock.append((warehouse, sku, Int.random(in: 0...quantity + 1, using: &random)))
            }
        }
        return (OrderJSON.order("o-\(index)", lines: lines), OrderJSON.stock(stock))
    }

    mutating func run(sagaCount: Int) {
        for index in 0..<sagaCount {
            let (order, stock) = randomOrder(index)
            ledgers["o-\(index)", default: Ledger()].stock = stock
            schedule(.start(sagaId: "o-\(index)", input: order), at: Int64.random(in: 0...600_000, using: &random))
        }
        // A binary heap would be faster; sorting by (time, sequence) in batches keeps the model obviously correct.
        while !queue.isEmpty {
            queue.sort { ($0.at, $0.sequence) > ($1.at, $1.sequence) }
            let batch = min(queue.count, 64)
            var ready: [Scheduled] = []
            for _ in 0..<batch { ready.append(queue.removeLast()) }
            for item in ready { deliver(item) }
        }
        for (sagaId, instance) in sagas {
            let ledger = ledgers[sagaId] ?? Ledger()
            switch instance.status {
            case .completed:
                let expected = completedUndoableBranches(instance)
                if ledger.undoStack.count != expected {
                    violation(
                        sagaId, "completed with \(ledger.undoStack.count) undoable successes, expected \(expected)")
                }
            case .compensated:
                if !ledger.undoStack.isEmpty {
                    violation(sagaId, "compensated but \(ledger.undoStack) were never undone")
                }
            case .suspended:
                if !ledger.pivotPassed && instance.compensation == nil {
                    violation(sagaId, "suspended before its pivot without a stuck compensation")
                }
            case .running, .compensating, .cancelled:
                violation(sagaId, "ended the run \(instance.status.rawValue)")
            }
            if instance.status == .completed || instance.status == .compensated {
                // A key re-planned away by a reallocation, or left behind by a compensation, must have been undone.
                let owed = possiblyDone(ledger).subtracting(ledger.undoneUnknown)
                if !owed.isEmpty {
                    violation(sagaId, "ended \(instance.status.rawValue) but \(owed.sorted()) may have taken effect")
                }
            }
            if !instance.status.isTerminal && instance.status != .suspended { continue }
            if !ledger.liveTimers.isEmpty { violation(sagaId, "finished with live timers \(ledger.liveTimers)") }
            if !ledger.liveWaits.isEmpty { violation(sagaId, "finished with live waits \(ledger.liveWaits)") }
            // Only a branch of a step that failed anyway may end on a rate_limited refusal (it is not held again);
            // anywhere else it was taken as a failed attempt, and it must never be why a saga failed.
            for branch in instance.steps.flatMap(\.branches)
            where branch.lastError?.code == StepError.rateLimitedCode && pushesBack && branch.status != .failed {
                violation(sagaId, "a rate_limited reply to a limited command was taken as a failed attempt")
            }
            if instance.failure?.error.code == StepError.rateLimitedCode && pushesBack {
                violation(sagaId, "failed because of a rate_limited reply")
            }
            let pending = instance.steps.flatMap(\.branches).filter { $0.pending != nil }
            if !pending.isEmpty { violation(sagaId, "finished with \(pending.count) commands pending") }
        }
    }

    /// Forward keys of steps with a compensation that never succeeded and had an attempt that was never answered.
    func possiblyDone(_ ledger: Ledger) -> Set<String> {
        Set(
            ledger.forwardCommands.filter { !appliedReplies.contains($0.messageId) }.map(\.key)
        ).subtracting(ledger.succeededKeys)
    }

    func completedUndoableBranches(_ instance: SagaInstance) -> Int {
        var count = 0
        for (index, step) in instance.steps.enumerated() where definition.steps[index].compensate != nil {
            count += step.branches.filter { $0.status == .succeeded }.count
        }
        return count
    }

    mutating func deliver(_ item: Scheduled) {
        let now = Timestamp(milliseconds: item.at)
        switch item.delivery {
        case .start(let sagaId, let input):
            let transition = engine.start(
                definition: definition, definitionHash: "model", sagaId: sagaId, input: input, now: now)
            record(sagaId, transition, now: now)
        case .reply(let sagaId, let messageId, let outcome, let duplicate):
            guard let instance = sagas[sagaId] else { return }
            let transition = engine.apply(
                .reply(correlationId: messageId, outcome: outcome), to: instance, definition: definition, now: now)
            if transition.isApplied {
                if duplicate && appliedReplies.contains(messageId) {
                    violation(sagaId, "duplicate reply \(messageId) advanced the saga again")
                }
                appliedReplies.insert(messageId)
                if case .ok = outcome, let command = sent[messageId] { checkSuccess(sagaId, command) }
            } else if transition.instance != instance || !transition.actions.isEmpty {
                violation(sagaId, "an ignored reply changed the saga")
            }
            record(sagaId, transition, now: now)
        case .timer(let sagaId, let timerId):
            guard let instance = sagas[sagaId] else { return }
            let live = ledgers[sagaId]?.liveTimers.contains(timerId) ?? false
            let transition = engine.apply(.timerFired(timerId: timerId), to: instance, definition: definition, now: now)
            if transition.isApplied != live {
                violation(sagaId, "timer \(timerId) live=\(live) but applied=\(transition.isApplied)")
            }
            ledgers[sagaId]?.liveTimers.remove(timerId)
            record(sagaId, transition, now: now)
        case .signal(let sagaId, let waitId, let message):
            guard let instance = sagas[sagaId] else { return }
            let live = ledgers[sagaId]?.liveWaits.contains(waitId) ?? false
            let matches = message["orderId"] == .string(sagaId)
            let transition = engine.apply(
                .signal(waitId: waitId, message: message), to: instance, definition: definition, now: now)
            if transition.isApplied != (live && matches) {
                violation(
                    sagaId,
                    "message for wait \(waitId) live=\(live) matches=\(matches) but applied=\(transition.isApplied)")
            }
            if transition.isApplied {
                signalsApplied += 1
                if transition.actions.contains(.cancelAwait(id: waitId)) == false {
                    violation(sagaId, "the message that ended wait \(waitId) did not forget it")
                }
            }
            record(sagaId, transition, now: now)
        case .repair(let sagaId):
            guard let instance = sagas[sagaId], instance.status == .suspended else { return }
            let action: OperatorCommand.Action =
                random.chance(0.5) || instance.compensation != nil
                ? .retry(step: nil)
                : .skip(step: definition.steps[instance.cursor].id, output: ["skipped": true])
            let transition = engine.apply(
                .operatorCommand(OperatorCommand(action: action, by: "model", reason: "model check")), to: instance,
                definition: definition, now: now)
            if !transition.isApplied { violation(sagaId, "repair \(action) refused: \(transition.outcome)") }
            record(sagaId, transition, now: now)
        }
    }

    mutating func checkSuccess(_ sagaId: String, _ command: CommandMessage) {
        guard let index = definition.stepIndex(of: command.step) else { return }
        let step = definition.steps[index]
        switch command.kind {
        case .do:
            if step.pivot { ledgers[sagaId]?.pivotPassed = true }
            if step.compensate != nil {
                ledgers[sagaId]?.undoStack.append(command.idempotencyKey)
                ledgers[sagaId]?.succeededKeys.insert(command.idempotencyKey)
            }
        case .compensate:
            let undone = String(command.idempotencyKey.dropLast("/compensate".count))
            if command.compensates != undone {
                violation(sagaId, "compensation \(command.idempotencyKey) names \(command.compensates ?? "nothing")")
            }
            guard let ledger = ledgers[sagaId] else { return }
            // Reverse order across steps: nothing of a later step that may have taken effect may still wait.
            let steps = Dictionary(ledger.forwardCommands.map { ($0.key, $0.step) }) { first, _ in first }
            let waiting = ledger.undoStack + possiblyDone(ledger).subtracting(ledger.undoneUnknown).sorted()
            if let later = waiting.first(where: { $0 != undone && (steps[$0] ?? -1) > index }) {
                violation(sagaId, "compensated \(undone) before \(later) of a later step")
            }
            if ledger.undoStack.contains(undone) {
                if command.outcomeUnknown { violation(sagaId, "succeeded \(undone) compensated as outcome unknown") }
                if ledger.undoStack.last != undone {
                    violation(
                        sagaId, "compensated \(undone) but the latest completion is \(ledger.undoStack.last ?? "-")")
                }
                ledgers[sagaId]?.undoStack.removeAll { $0 == undone }
                return
            }
            guard possiblyDone(ledger).contains(undone) else {
                violation(sagaId, "compensation \(undone) succeeded with nothing to undo")
                return
            }
            if !command.outcomeUnknown { violation(sagaId, "unanswered \(undone) compensated as if it succeeded") }
            if ledgers[sagaId]?.undoneUnknown.insert(undone).inserted == true { unknownUndone += 1 }
        }
    }

    mutating func record(_ sagaId: String, _ transition: Transition, now: Timestamp) {
        transitions += 1
        sagas[sagaId] = transition.instance
        for action in transition.actions {
            switch action {
            case .sendCommand(let command):
                if sent[command.messageId] != nil { violation(sagaId, "message \(command.messageId) sent twice") }
                sent[command.messageId] = command
                if command.kind == .do, let index = definition.stepIndex(of: command.step),
                    definition.steps[index].compensate != nil
                {
                    ledgers[sagaId]?.forwardCommands.append((command.idempotencyKey, command.messageId, index))
                }
                if command.kind == .compensate {
                    ledgers[sagaId]?.compensationsSent += 1
                    if ledgers[sagaId]?.pivotPassed == true {
                        violation(sagaId, "compensation \(command.idempotencyKey) sent after the pivot succeeded")
                    }
                }
                participant(sagaId, command, now: now)
            case .scheduleTimer(let timer):
                ledgers[sagaId]?.liveTimers.insert(timer.id)
                // A hold timer is fired by the limiter (below), never by the clock.
                if timer.kind != .hold {
                    schedule(.timer(sagaId: sagaId, timerId: timer.id), at: timer.dueAt.milliseconds)
                }
            case .holdCommand(let command):
                held += 1
                if sent[command.messageId] != nil { violation(sagaId, "held \(command.messageId) after sending it") }
                schedule(
                    .timer(sagaId: sagaId, timerId: command.timerId),
                    at: now.milliseconds + Int64.random(in: 1...5_000, using: &random))
            case .cancelTimer(let id):
                if ledgers[sagaId]?.liveTimers.remove(id) != nil, random.chance(0.05) {
                    // A cancelled timer that fires anyway (a race in a real worker) must be ignored.
                    schedule(.timer(sagaId: sagaId, timerId: id), at: now.milliseconds + 1)
                }
            case .awaitMessage(let wait):
                if ledgers[sagaId]?.liveWaits.insert(wait.id).inserted == false {
                    violation(sagaId, "wait \(wait.id) recorded twice")
                }
                if wait.match != sagaId { violation(sagaId, "wait \(wait.id) matches '\(wait.match)'") }
                // The payment comes within the 10 minutes, after them, twice, for another order, or never.
                let roll = Double.random(in: 0..<1, using: &random)
                let at = now.milliseconds + Int64.random(in: 0...(roll < 0.7 ? 590_000 : 900_000), using: &random)
                if roll < 0.9 {
                    schedule(.signal(sagaId: sagaId, waitId: wait.id, message: ["orderId": .string(sagaId)]), at: at)
                }
                if random.chance(0.1) {
                    let again = at + Int64.random(in: 0...60_000, using: &random)
                    schedule(.signal(sagaId: sagaId, waitId: wait.id, message: ["orderId": .string(sagaId)]), at: again)
                }
                if random.chance(0.1) {
                    schedule(.signal(sagaId: sagaId, waitId: wait.id, message: ["orderId": "o-other"]), at: at - 1)
                }
            case .cancelAwait(let id):
                if ledgers[sagaId]?.liveWaits.remove(id) == nil { violation(sagaId, "forgot wait \(id) twice") }
            case .finished(.suspended):
                suspensions += 1
                if (ledgers[sagaId]?.repairs ?? 0) < 2 {
                    ledgers[sagaId]?.repairs += 1
                    schedule(.repair(sagaId: sagaId), at: now.milliseconds + 60_000)
                }
            case .publishMilestone, .finished:
                break
            }
        }
    }

    /// The random participant: how (and whether) it answers a command.
    mutating func participant(_ sagaId: String, _ command: CommandMessage, now: Timestamp) {
        var output: JSONValue = [:]
        if command.routingKey == "inventory.reserve" {
            output = ["reservationId": .string("r-\(sagaId)"), "stock": ledgers[sagaId]?.stock ?? []]
        } else if command.routingKey == "tms.shipment.create" {
            output = ["tracking": .string("T-\(command.messageId)")]
        }
        let roll = Double.random(in: 0..<1, using: &random)
        let outcome: ReplyOutcome?
        if pushesBack, engine.admission?.isLimited(command.routingKey) == true, random.chance(0.1) {
            rateLimited += 1
            outcome = .error(StepError(code: StepError.rateLimitedCode, message: "slow down", retryable: true))
        } else if command.kind == .compensate {
            outcome =
                roll < 0.8
                ? .ok(output: nil)
                : roll < 0.9 ? .error(StepError(code: "busy", message: "try later", retryable: true)) : nil
        } else if roll < 0.80 {
            outcome = .ok(output: output)
        } else if roll < 0.87 {
            outcome = .error(StepError(code: "busy", message: "try later", retryable: true))
        } else if roll < 0.89 {
            outcome = .error(StepError(code: "rejected", message: "no", retryable: false))
        } else if roll < 0.94 && command.routingKey.hasSuffix(".release") {
            outcome = .error(StepError(code: "out_of_stock", message: "gone", retryable: false))
        } else {
            outcome = nil
        }
        if let outcome {
            let at = now.milliseconds + Int64.random(in: 1...8_000, using: &random)
            schedule(.reply(sagaId: sagaId, messageId: command.messageId, outcome: outcome, duplicate: false), at: at)
            if random.chance(0.05) {
                let again = at + Int64.random(in: 0...20_000, using: &random)
                schedule(
                    .reply(sagaId: sagaId, messageId: command.messageId, outcome: outcome, duplicate: true), at: again)
            }
        } else if random.chance(0.5) {
            // Silence past the timeout, then a late answer.
            schedule(
                .reply(sagaId: sagaId, messageId: command.messageId, outcome: .ok(output: output), duplicate: false),
                at: now.milliseconds + 45_000)
        }
    }
}

/// Holds back a random share of the ERP and WMS commands (seeded, so a run replays).
final class RandomAdmission: CommandAdmission {
    private let random: Mutex<SplitMix64>

    init(seed: UInt64) {
        random = Mutex(SplitMix64(seed: seed ^ 0x4C49_4D49_5453))
    }

    func isLimited(_ routingKey: String) -> Bool {
        routingKey.hasPrefix("erp.") || routingKey.hasPrefix("wms.")
    }

    func admit(routingKey: String, messageId: String, timeout: Duration, now: Timestamp) -> Bool {
        guard isLimited(routingKey) else { return true }
        return random.withLock { !$0.chance(0.4) }
    }
}

@Suite("Model check")
struct ModelCheckTests {
    @Test(
        "10,000 random sagas drain to end states with compensation in reverse, once per success",
        arguments: [
            UInt64(1), 2, 3, 4,
        ])
    func randomSagas(seed: UInt64) {
        var checker = ModelChecker(seed: seed)
        checker.run(sagaCount: 2_500)
        #expect(checker.violations.isEmpty, "seed \(seed): \(checker.violations.joined(separator: "\n"))")
        let statuses = Dictionary(grouping: checker.sagas.values, by: \.status).mapValues(\.count)
        // The random model must really exercise every outcome, or the invariants above prove little.
        #expect(statuses[.completed, default: 0] > 100, "seed \(seed): \(statuses)")
        #expect(statuses[.compensated, default: 0] > 100, "seed \(seed): \(statuses)")
        #expect(checker.suspensions > 10, "seed \(seed): only \(checker.suspensions) suspensions")
        let split = checker.definition.stepIndex(of: "split") ?? 0
        let reallocated = checker.sagas.values.filter { $0.steps[split].round > 0 }.count
        #expect(reallocated > 10, "seed \(seed): only \(reallocated) sagas reallocated")
        #expect(checker.unknownUndone > 20, "seed \(seed): only \(checker.unknownUndone) unknown outcomes undone")
    }

    @Test(
        "with a choice routing orders around a credit hold, every invariant holds on both paths",
        arguments: [
            UInt64(5), 6,
        ])
    func randomSagasWithAChoice(seed: UInt64) throws {
        var checker = ModelChecker(seed: seed, creditCheck: true)
        checker.run(sagaCount: 2_500)
        #expect(checker.violations.isEmpty, "seed \(seed): \(checker.violations.joined(separator: "\n"))")
        let credit = try #require(checker.definition.stepIndex(of: "credit"))
        let paths = Dictionary(grouping: checker.sagas.values, by: { $0.steps[credit].status }).mapValues(\.count)
        #expect(paths[.bypassed, default: 0] > 200, "seed \(seed): \(paths)")
        #expect(paths[.succeeded, default: 0] > 200, "seed \(seed): \(paths)")
        // Sagas that ran the credit hold and then compensated undid it: the ledger checks each undo's order above.
        let undoneCredit = checker.sagas.values.filter {
            $0.status == .compensated && $0.steps[credit].branches.first?.status == .compensated
        }.count
        #expect(undoneCredit > 20, "seed \(seed): only \(undoneCredit) credit holds undone")
    }

    @Test(
        "with a wait for a payment message that comes late, twice, for another order or never, every invariant holds",
        arguments: [
            UInt64(7), 8,
        ])
    func randomSagasWithAMessageWait(seed: UInt64) throws {
        var checker = ModelChecker(seed: seed, paymentWait: true)
        checker.run(sagaCount: 2_500)
        #expect(checker.violations.isEmpty, "seed \(seed): \(checker.violations.joined(separator: "\n"))")
        let payment = try #require(checker.definition.stepIndex(of: "payment"))
        let timedOut = checker.sagas.values.filter {
            $0.failure?.error.code == StepError.waitTimeoutCode && $0.status == .compensated
        }.count
        let paid = checker.sagas.values.filter { $0.steps[payment].status == .succeeded }.count
        #expect(timedOut > 200, "seed \(seed): only \(timedOut) sagas compensated after their wait timed out")
        #expect(paid > 1_000, "seed \(seed): only \(paid) payments arrived in time")
        #expect(checker.signalsApplied == paid, "seed \(seed): a wait ended twice, or without its step succeeding")
    }

    @Test(
        "with commands held back by a limiter and participants answering rate_limited, every invariant holds",
        arguments: [
            UInt64(9), 10,
        ])
    func randomSagasUnderLimits(seed: UInt64) {
        var checker = ModelChecker(seed: seed, limits: true)
        checker.run(sagaCount: 2_500)
        #expect(checker.violations.isEmpty, "seed \(seed): \(checker.violations.joined(separator: "\n"))")
        #expect(checker.held > 1_000, "seed \(seed): only \(checker.held) commands held")
        #expect(checker.rateLimited > 200, "seed \(seed): only \(checker.rateLimited) rate_limited replies")
        let statuses = Dictionary(grouping: checker.sagas.values, by: \.status).mapValues(\.count)
        #expect(statuses[.completed, default: 0] > 100, "seed \(seed): \(statuses)")
        #expect(statuses[.compensated, default: 0] > 100, "seed \(seed): \(statuses)")
    }
}
