import AMQPTransport
import Foundation
import Logging
import SagaEngine
import SagaStore
import Testing
import WaybillDefinition
import WaybillTestSupport

@testable import WaybillWorker

/// What the wire and the process lifecycle can do wrong: unroutable commands, unreadable replies, restarts with
/// timers pending or a changed workflow file, cancellation.
@Suite(.enabled(if: TestBroker.isConfigured, TestBroker.skipReason))
struct FaultTests {
    @Test("an unroutable command is a retryable failure: retried, then the step fails and the saga compensates")
    func unroutableCommand() async throws {
        // Nobody listens for wms.w9.release; the undo commands still route.
        let bindings = ["erp.#", "inventory.#", "wms.*.cancel", "tms.#", "billing.#"]
        let edits = WorkflowEdits(stepKeys: ["release": ["retry: { max_attempts: 3, initial_interval: 10ms }"]])
        try await Scenario.run(edits: edits, stock: Participant.table([("w9", "A", 1)]), bindings: bindings) {
            scenario in
            let worker = try await scenario.startWorker()
            try await scenario.placeOrder("o-u", lines: [("A", 1)])
            let saga = try await scenario.waitForStatus("o-u", .compensated, in: worker)
            #expect(saga.instance.failure?.step == "release")
            #expect(saga.instance.failure?.error.code == StepError.unroutableCode)
            #expect(
                saga.instance.steps[try Scenario.stepIndex("release")].branches.first?.attempt == 3,
                "three attempts before giving up")
            let journal = try worker.store.journal(of: scenario.key("o-u"))
            #expect(journal.count { $0.entry.kind == .returned } == 3)
            #expect(
                scenario.participant.received(saga: "o-u").map(\.summary) == [
                    "erp.order.accept", "inventory.reserve", "inventory.release (undo)", "erp.order.cancel (undo)",
                ])
        }
    }

    @Test("an unreadable reply is journaled for its saga; the attempt times out and the retry completes it")
    func malformedReply() async throws {
        let edits = WorkflowEdits(stepKeys: [
            "reserve": ["timeout: 1s", "retry: { max_attempts: 4, initial_interval: 10ms }"]
        ])
        let script: Participant.Script = { command in
            command.routingKey == "inventory.reserve" && command.attempt == 1 ? .raw("{not json") : nil
        }
        try await Scenario.run(edits: edits, script: script) { scenario in
            let worker = try await scenario.startWorker()
            try await scenario.placeOrder("o-m", lines: [("A", 1)])
            try await scenario.waitForStatus("o-m", .completed, in: worker)
            let journal = try worker.store.journal(of: scenario.key("o-m"))
            #expect(journal.contains { $0.entry.kind == .note && $0.entry.detail.contains("malformed reply") })
            let reserves = scenario.participant.received(saga: "o-m").filter { $0.routingKey == "inventory.reserve" }
            #expect(Array(reserves.map(\.attempt).prefix(2)) == [1, 2])
            #expect(try await scenario.client.inspectQueue(scenario.names.deadLetterQueue).messageCount == 0)
        }
    }

    @Test("a milestone the broker refuses holds its saga's later messages until it goes out: events keep their order")
    func refusedMilestoneKeepsTheOrder() async throws {
        let script: Participant.Script = { $0.routingKey == "inventory.reserve" ? .hold : nil }
        try await Scenario.run(script: script) { scenario in
            // A queue that refuses every order.accepted, so the broker nacks it, and dead-letters each refusal for the
            // test to count (a quorum queue without a leader refuses publishes in the same way).
            let client = scenario.client
            let refusing = TestBroker.unique("refusing.q")
            let refusals = TestBroker.unique("refusals.q")
            let refusalsExchange = TestBroker.unique("refusals.x")
            try await client.declareExchange(ExchangeDeclaration(name: refusalsExchange, kind: .fanout, durable: false))
            _ = try await client.declareQueue(QueueDeclaration(name: refusals, durable: false))
            try await client.bind(QueueBinding(queue: refusals, exchange: refusalsExchange, bindingKey: ""))
            _ = try await client.declareQueue(
                QueueDeclaration(
                    name: refusing, durable: false,
                    arguments: [
                        "x-max-length": 0, "x-overflow": "reject-publish-dlx",
                        "x-dead-letter-exchange": .string(refusalsExchange),
                    ]))
            try await client.bind(
                QueueBinding(queue: refusing, exchange: scenario.names.eventsExchange, bindingKey: "order.accepted"))
            let worker = try await scenario.startWorker()
            try await scenario.placeOrder("o-n", lines: [("A", 1)])
            // Refused with its batch (whose reserve command went out), then by each flush of the partition's outbox.
            try await eventually("order.accepted refused twice") {
                try await client.inspectQueue(refusals).messageCount >= 2
            }
            try await scenario.participant.waitUntil("the reserve command") { $0.count == 2 }
            #expect(try await scenario.participant.answerHeld() == 1)
            let refusedBefore = try await client.inspectQueue(refusals).messageCount
            try await eventually("three more flushes refused") {
                try await client.inspectQueue(refusals).messageCount >= refusedBefore + 3
            }
            // A refused message still reaches the other queues it was routed to: the observer may hold copies of
            // order.accepted (one id), and nothing else.
            #expect(Set(scenario.observer.types(of: "o-n")).isSubset(of: ["order.accepted"]))
            #expect(
                scenario.participant.received(saga: "o-n").map(\.routingKey) == [
                    "erp.order.accept", "inventory.reserve",
                ],
                "the release waits behind order.accepted")

            _ = try await client.deleteQueue(refusing)
            try await scenario.waitForStatus("o-n", .completed, in: worker)
            try await scenario.observer.waitFor("order.completed", of: "o-n")
            var seen: Set<String?> = []
            let firstCopies = scenario.observer.events(of: "o-n").filter { seen.insert($0.messageId).inserted }
            #expect(firstCopies.compactMap(\.type) == HappyPathTests.milestones)
            _ = try await client.deleteQueue(refusals)
            try await client.deleteExchange(refusalsExchange)
        }
    }

    @Test("a retry timer survives a worker restart: the saga waits through it and completes")
    func retryTimerSurvivesRestart() async throws {
        let edits = WorkflowEdits(stepKeys: [
            "accept": ["retry: { max_attempts: 3, initial_interval: 1s, jitter: none }"]
        ])
        let script: Participant.Script = { command in
            command.routingKey == "erp.order.accept" && command.attempt == 1 ? .error("busy", retryable: true) : nil
        }
        try await Scenario.run(edits: edits, script: script) { scenario in
            let first = try await scenario.startWorker()
            try await scenario.placeOrder("o-t", lines: [("A", 1)])
            let key = scenario.key("o-t")
            try await eventually("the retry timer stored") {
                try first.store.timers(of: key).contains { $0.kind == .retry }
            }
            try await first.stop()

            let second = try await scenario.startWorker()
            try await scenario.waitForStatus("o-t", .completed, in: second)
            let accepts = scenario.participant.received(saga: "o-t").filter { $0.routingKey == "erp.order.accept" }
            #expect(accepts.map(\.attempt) == [1, 2])
            #expect(try second.store.timers(of: key).isEmpty)
        }
    }

    @Test("a reply timeout survives a worker restart: the unanswered attempt is retried after it")
    func replyTimeoutSurvivesRestart() async throws {
        let edits = WorkflowEdits(stepKeys: [
            "accept": ["timeout: 1s", "retry: { max_attempts: 3, initial_interval: 10ms }"]
        ])
        let script: Participant.Script = { command in
            command.routingKey == "erp.order.accept" && command.attempt == 1 ? .silence : nil
        }
        try await Scenario.run(edits: edits, script: script) { scenario in
            let first = try await scenario.startWorker()
            try await scenario.placeOrder("o-rt", lines: [("A", 1)])
            try await scenario.participant.waitUntil("the first accept") { !$0.isEmpty }
            try await first.stop()

            let second = try await scenario.startWorker()
            try await scenario.waitForStatus("o-rt", .completed, in: second)
            let accepts = scenario.participant.received(saga: "o-rt").filter { $0.routingKey == "erp.order.accept" }
            #expect(accepts.map(\.attempt) == [1, 2])
            let journal = try second.store.journal(of: scenario.key("o-rt"))
            #expect(journal.contains { $0.entry.kind == .timer && $0.entry.detail.contains("replyTimeout") })
        }
    }

    @Test("a saga keeps its workflow version when the file changes under a restart; new orders take the new one")
    func versionKeptAcrossRestart() async throws {
        let script: Participant.Script = { command in
            command.sagaId == "o-v1" && command.step == "invoice" ? .hold : nil
        }
        try await Scenario.run(script: script) { scenario in
            let first = try await scenario.startWorker()
            try await scenario.placeOrder("o-v1", lines: [("A", 1)])
            try await scenario.participant.waitUntil("the v1 invoice") { $0.contains { $0.step == "invoice" } }
            try await first.stop()

            try scenario.rewriteWorkflow(
                WorkflowEdits(replacements: [
                    ("version: 2 ", "version: 3 "),
                    ("command: billing.invoice.create", "command: billing.invoice.issue"),
                ]))
            let second = try await scenario.startWorker()
            try await scenario.participant.answerHeld()
            let old = try await scenario.waitForStatus("o-v1", .completed, in: second)
            try await scenario.placeOrder("o-v2", lines: [("A", 1)])
            let new = try await scenario.waitForStatus("o-v2", .completed, in: second)

            #expect(old.instance.version == 2)
            #expect(new.instance.version == 3)
            #expect(old.instance.definitionHash != new.instance.definitionHash)
            #expect(scenario.participant.received(saga: "o-v1").last?.routingKey == "billing.invoice.create")
            #expect(scenario.participant.received(saga: "o-v2").last?.routingKey == "billing.invoice.issue")
            try await scenario.waitForEvent("order.completed", of: "o-v2")
            #expect(scenario.observer.events(of: "o-v2").last?.body?["data"]?["version"] == 3)
        }
    }

    @Test("cancelling the task that runs a worker stops it (a Service must return when cancelled)")
    func cancellationStopsTheWorker() async throws {
        try await Scenario.run { scenario in
            let worker = SagaWorker(configuration: try scenario.configuration(), logger: TestBroker.logger("worker"))
            let run = Task { try await worker.run() }
            try await within(60, "the worker to run") { await worker.waitUntilRunning() }
            run.cancel()
            try await within(30, "the cancelled worker to return") { _ = try? await run.value }
            // Nothing was lost: a worker started again on the same file takes new orders.
            let again = try await scenario.startWorker()
            try await scenario.placeOrder("o-x", lines: [("A", 1)])
            try await scenario.waitForStatus("o-x", .completed, in: again)
        }
    }
}

extension FaultTests {
    @Test("a command AMQP cannot carry (a routing key over 255 bytes, from participant data) fails its step")
    func commandThatCannotBeSent() async throws {
        let warehouse = String(repeating: "w", count: 260)
        let edits = WorkflowEdits(stepKeys: [
            "release": ["timeout: 2s", "retry: { max_attempts: 2, initial_interval: 10ms }"]
        ])
        try await Scenario.run(edits: edits, stock: Participant.table([(warehouse, "A", 1)])) { scenario in
            let worker = try await scenario.startWorker()
            try await scenario.placeOrder("o-k", lines: [("A", 1)])
            let saga = try await scenario.waitForStatus("o-k", .compensated, in: worker)
            #expect(saga.instance.failure?.step == "release")
            // Reported like a command nobody can receive: retryable, so the attempts run out first.
            #expect(saga.instance.failure?.error.code == StepError.unroutableCode)
            #expect(saga.instance.steps[try Scenario.stepIndex("release")].branches.first?.attempt == 2)
            #expect(
                scenario.participant.received(saga: "o-k").map(\.summary) == [
                    "erp.order.accept", "inventory.reserve", "inventory.release (undo)", "erp.order.cancel (undo)",
                ])
            // The commands that could not be sent are not retried forever from the outbox.
            try await eventually("the outbox to drain") { try worker.store.pendingOutbox(limit: 10).isEmpty }
        }
    }
}

extension FaultTests {
    @Test("a reply over max_message_bytes is journaled for its saga (not dead-lettered); the retry completes it")
    func oversizeReply() async throws {
        let edits = WorkflowEdits(stepKeys: [
            "reserve": ["timeout: 1s", "retry: { max_attempts: 4, initial_interval: 10ms }"]
        ])
        let padding = String(repeating: "p", count: 4096)
        let script: Participant.Script = { command in
            command.routingKey == "inventory.reserve" && command.attempt == 1
                ? .raw(#"{"status": "ok", "output": {"padding": "\#(padding)"}}"#) : nil
        }
        try await Scenario.run(edits: edits, script: script) { scenario in
            let worker = try await scenario.startWorker(adjust: { $0.maxMessageBytes = 2048 })
            try await scenario.placeOrder("o-big", lines: [("A", 1)])
            try await scenario.waitForStatus("o-big", .completed, in: worker)
            let journal = try worker.store.journal(of: scenario.key("o-big"))
            #expect(journal.contains { $0.entry.kind == .note && $0.entry.detail.contains("max_message_bytes") })
            #expect(try await scenario.client.inspectQueue(scenario.names.deadLetterQueue).messageCount == 0)
        }
    }
}
