import AMQPTransport
import Foundation
import PlainText
import SagaEngine
import SagaStore
import Synchronization
import WaybillDefinition
import WaybillWire

/// Something a reconciliation found: a participant's record that does not match what the saga says about the effect
/// of one step (or branch), or a question it could not get answered.
public struct ReconcileFinding: Sendable, Hashable, Codable {
    /// What kind of mismatch.
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        /// A completed saga kept the effect; the participant has no trace of it.
        case missingEffect = "missing_effect"
        /// A completed saga kept the effect; the participant undid it.
        case undoneEffect = "undone_effect"
        /// The saga undid the effect (or its step failed); the participant still has it.
        case leakedEffect = "leaked_effect"
        /// No answer within the wait, or nothing bound to the query's routing key.
        case unanswered
        /// The participant answered the query with an error.
        case refused
        /// The answer is not `applied`, `undone` or `absent`.
        case unreadable
        /// The query could not be built from the saga's data.
        case unbuildable

        /// Whether the saga's record and the participant's disagree (the other kinds are questions left open).
        public var isDrift: Bool { self == .missingEffect || self == .undoneEffect || self == .leakedEffect }
    }

    public var workflow: String
    public var sagaId: String
    /// The saga's status when it was checked.
    public var sagaStatus: String
    /// The step, or the branch (`release[1]`).
    public var step: String
    /// The participant: the first word of the query's routing key (`inventory`, `wms`).
    public var participant: String
    /// The query's routing key.
    public var query: String
    /// The forward command's idempotency key.
    public var idempotencyKey: String
    public var kind: Kind
    /// What the saga says: `applied` or `not_applied`.
    public var expected: String
    /// What the participant said (`applied`, `undone`, `absent`), or `nil` without an answer.
    public var observed: String?
    /// The finding in words, with what to do.
    public var message: String
    /// The participant's details, as it gave them.
    public var details: JSONValue?
    /// Whether `--repair` can fix it: the saga undid the effect and the undo can be sent again under its key.
    public var repairable: Bool
    /// What a repair did (`repaired`, or why not); `nil` when none was tried.
    public var repair: String?
    /// Whether the finding was written to the saga's journal (by this pass, or by the earlier pass that found it
    /// first: a finding still open is not journaled again).
    public var journaled: Bool
    /// The pass that first found it, while it stayed open (``ReconcileReports/openDrift()``); `nil` in a report
    /// written before open drift was kept.
    public var firstFound: String?

    /// The saga's key.
    public var key: SagaKey { SagaKey(workflow: workflow, id: sagaId) }

    /// What identifies the effect across passes: the saga and the forward command's idempotency key.
    public var effect: String { Self.effect(key, idempotencyKey: idempotencyKey) }

    /// ``effect`` of the forward command keyed `idempotencyKey` of saga `key`.
    static func effect(_ key: SagaKey, idempotencyKey: String) -> String {
        "\(key.workflow)/\(key.id)#\(idempotencyKey)"
    }
}

/// What a reconciliation learnt about a suspended saga's effect: reported, not judged.
public struct ReconcileObservation: Sendable, Hashable, Codable {
    public var workflow: String
    public var sagaId: String
    public var step: String
    public var participant: String
    /// `applied`, `undone`, `absent`, or what went wrong.
    public var observed: String
}

/// One reconciliation pass, as `waybill reconcile` prints it and `waybill reconcile report` reads it back.
public struct ReconcileReport: Sendable, Hashable, Codable {
    /// `20261206T174000.123Z`: when it started, also its file name.
    public var id: String
    public var startedAt: Int64
    public var finishedAt: Int64
    /// Who ran it.
    public var by: String
    /// The sagas it took: ended (or suspended) at or after this time, of this workflow.
    public var since: Int64?
    public var workflow: String?
    /// Whether it only counted (nothing sent).
    public var dryRun: Bool
    /// Whether it repaired what it could.
    public var repair: Bool
    /// Sagas checked, by status.
    public var sagas: [String: Int]
    /// Queries per participant.
    public var queries: [String: Int]
    /// Queries answered.
    public var answered: Int
    public var findings: [ReconcileFinding]
    public var observations: [ReconcileObservation]

    /// Sagas checked.
    public var sagaCount: Int { sagas.values.reduce(0, +) }
    /// Queries sent (or, in a dry run, that would be).
    public var queryCount: Int { queries.values.reduce(0, +) }
}

/// Compares what ended sagas say about their effects with what the participants answer to each step's `verify`
/// query (`waybill reconcile`): a completed saga expects every effect it kept applied, a compensated or cancelled
/// saga every effect it undid (or whose step failed) undone or absent, and a suspended saga's answers are reported,
/// not judged. It reads the partition files, sends the queries itself (never through the workers, so the hot loop is
/// not disturbed), at most ``rate`` per second and within the participants' limits, writes each finding to its
/// saga's journal through the owning worker, and with ``repair`` sends an undone effect's compensation again under
/// its idempotency key.
public struct Reconciler: Sendable {
    public var inspector: SagaInspector
    /// Where the sagas' owners are (journal notes go through them); `nil` journals nothing.
    public var route: RepairRoute?
    /// The commands exchange the queries and repairs go to.
    public var commandsExchange: String
    /// Sagas that ended at or after this time.
    public var since: Timestamp?
    public var workflow: String?
    /// At most this many queries per second; `nil` sends as fast as answers come.
    public var rate: Double?
    /// Queries awaiting an answer at once.
    public var maxInFlight: Int
    /// How long to wait for each answer.
    public var timeout: Duration
    /// The participants' limits: a pass takes at most half of each one's rate and in-flight share.
    public var limits: ParticipantLimits?
    /// Send the compensation again for every effect the saga undid that is still applied.
    public var repair: Bool
    /// Who runs it (journaled as the actor).
    public var by: String
    public var now: @Sendable () -> Timestamp

    public init(
        inspector: SagaInspector, route: RepairRoute?, commandsExchange: String, since: Timestamp?, workflow: String?,
        rate: Double?, maxInFlight: Int = 32, timeout: Duration = .seconds(10), limits: ParticipantLimits? = nil,
        repair: Bool = false, by: String, now: @escaping @Sendable () -> Timestamp
    ) {
        self.inspector = inspector
        self.route = route
        self.commandsExchange = commandsExchange
        self.since = since
        self.workflow = workflow
        self.rate = rate
        self.maxInFlight = maxInFlight
        self.timeout = timeout
        self.limits = limits
        self.repair = repair
        self.by = by
        self.now = now
    }

    /// The statuses a pass looks at.
    static let statuses: [SagaStatus] = [.completed, .compensated, .cancelled, .suspended]

    /// Sagas read (with their state) at a time.
    static let chunk = 500

    /// One query to send: the saga and the engine's verification.
    struct Question: Sendable {
        var key: SagaKey
        var status: SagaStatus
        var verification: Verification
        var participant: String { Reconciler.participant(of: verification.routingKey) }
    }

    /// The participant a routing key belongs to: its first word.
    static func participant(of routingKey: String) -> String {
        String(routingKey.prefix { $0 != "." })
    }

    /// A routing key template's text before its first expression (`wms.` of `wms.${shipment.warehouse}.status`).
    static func literalPrefix(of template: Template) -> String {
        switch template {
        case .literal(let value): value.stringValue ?? ""
        case .interpolated(let segments):
            segments.prefix { if case .text = $0 { true } else { false } }.map {
                if case .text(let text) = $0 { text } else { "" }
            }.joined()
        case .value, .array, .object: ""
        }
    }

    /// The selected sagas' keys, oldest progress first.
    func selectedKeys() throws(OperationsError) -> [SagaKey] {
        var filter = SagaFilter()
        filter.statuses = Self.statuses
        filter.since = since
        filter.workflow = workflow
        return try inspector.list(filter, now: now()).rows.map(\.key)
    }

    /// Calls `body` with the questions of each chunk of sagas, and the findings no question is needed for.
    func questions(
        _ keys: [SagaKey], _ body: ([Question], [ReconcileFinding], [SagaStatus]) async throws(OperationsError) -> Void
    ) async throws(OperationsError) {
        let engine = SagaEngine()
        for start in stride(from: 0, to: keys.count, by: Self.chunk) {
            let slice = Array(keys[start..<min(start + Self.chunk, keys.count)])
            let records = try inspector.sagas(slice)
            var questions: [Question] = []
            var unbuildable: [ReconcileFinding] = []
            var statuses: [SagaStatus] = []
            for key in slice {
                guard let record = records[key] else { continue }
                statuses.append(record.instance.status)
                guard let definition = try inspector.definition(hash: record.instance.definitionHash) else {
                    unbuildable.append(
                        ReconcileFinding(
                            workflow: key.workflow, sagaId: key.id, sagaStatus: record.instance.status.rawValue,
                            step: "-", participant: "-", query: "", idempotencyKey: "", kind: .unbuildable,
                            expected: "-", observed: nil,
                            message: "the definition \(record.instance.definitionHash.prefix(12)) the saga ran is not "
                                + "stored in its partition file, so its verify queries cannot be built",
                            details: nil, repairable: false, repair: nil, journaled: false))
                    continue
                }
                let (verifications, broken) = engine.verifications(of: record.instance, definition: definition)
                questions += verifications.map {
                    Question(key: key, status: record.instance.status, verification: $0)
                }
                for problem in broken {
                    let label = problem.label
                    let verify = definition.steps.first { $0.id == problem.step }?.verify
                    let query = verify.map { Self.literalPrefix(of: $0.routingKey) } ?? ""
                    unbuildable.append(
                        ReconcileFinding(
                            workflow: key.workflow, sagaId: key.id, sagaStatus: record.instance.status.rawValue,
                            step: label, participant: Self.participant(of: query), query: query,
                            idempotencyKey: problem.idempotencyKey, kind: .unbuildable, expected: "-", observed: nil,
                            message: "the verify query of \(label) cannot be built from the saga's data: "
                                + "\(problem.message); fix the workflow's verify input",
                            details: nil, repairable: false, repair: nil, journaled: false))
                }
            }
            try await body(questions, unbuildable, statuses)
        }
    }

    /// Counts what a pass would ask, sending nothing.
    public func plan() async throws(OperationsError) -> ReconcileReport {
        let started = now()
        var report = emptyReport(started: started, dryRun: true)
        try await questions(try selectedKeys()) { questions, unbuildable, statuses in
            for status in statuses { report.sagas[status.rawValue, default: 0] += 1 }
            for question in questions { report.queries[question.participant, default: 0] += 1 }
            report.findings += unbuildable
        }
        report.finishedAt = now().milliseconds
        return report
    }

    /// Runs a pass: asks every question, judges the answers, journals the findings (and repairs, with ``repair``).
    /// `progress` is called after each chunk of sagas with the sagas checked so far and how many were selected.
    public func run(
        broker: BrokerSettings, progress: @Sendable (Int, Int) -> Void = { _, _ in }
    ) async throws -> ReconcileReport {
        let keys = try selectedKeys()
        let started = now()
        return try await RequestReplyClient.with(broker: broker) { requests in
            var report = emptyReport(started: started, dryRun: false)
            let pacing = LimitPacing(limits: limits, rate: rate)
            var checked = 0
            var asked: Set<String> = []
            try await questions(keys) { questions, unbuildable, statuses throws(OperationsError) in
                for status in statuses { report.sagas[status.rawValue, default: 0] += 1 }
                report.findings += unbuildable
                let answers = await ask(questions, requests: requests, pacing: pacing)
                for (question, answer) in zip(questions, answers) {
                    asked.insert(
                        ReconcileFinding.effect(question.key, idempotencyKey: question.verification.idempotencyKey))
                    report.queries[question.participant, default: 0] += 1
                    if case .replied = answer.outcome { report.answered += 1 }
                    let verdict = Self.judge(question, answer: answer.answer)
                    if let observed = verdict.observation {
                        report.observations.append(observed)
                    } else if var finding = verdict.finding {
                        if repair, finding.repairable, let undo = question.verification.undo {
                            finding.repair = await self.repair(
                                question, undo: undo, requests: requests, pacing: pacing)
                        }
                        report.findings.append(finding)
                    }
                }
                checked += statuses.count
                progress(checked, keys.count)
                // A pass stopped halfway (a worker shutting down) reads every later query as unanswered: stop here.
                if Task.isCancelled { throw OperationsError(.timeout, "the reconciliation pass was stopped") }
            }
            if Task.isCancelled { throw OperationsError(.timeout, "the reconciliation pass was stopped") }
            // Drift still open from an earlier pass was journaled then; only what is new is journaled now.
            let reports = inspector.pool.map { ReconcileReports(dataDirectory: $0.path) }
            let open = Dictionary(
                (reports?.openDrift() ?? []).map { ($0.effect, $0) }, uniquingKeysWith: { first, _ in first })
            for index in report.findings.indices {
                guard let earlier = open[report.findings[index].effect], earlier.kind == report.findings[index].kind
                else { continue }
                report.findings[index].journaled = earlier.journaled
                report.findings[index].firstFound = earlier.firstFound
            }
            if let route {
                let fresh = report.findings.indices.filter { report.findings[$0].firstFound == nil }
                let noted = await journal(fresh.map { report.findings[$0] }, route: route, requests: requests)
                for (index, finding) in zip(fresh, noted) { report.findings[index] = finding }
            }
            for index in report.findings.indices where report.findings[index].firstFound == nil {
                report.findings[index].firstFound = report.id
            }
            try reports?.updateOpenDrift(asked: asked, found: report.findings)
            report.finishedAt = now().milliseconds
            return report
        }
    }

    private func emptyReport(started: Timestamp, dryRun: Bool) -> ReconcileReport {
        ReconcileReport(
            id: Self.reportId(started), startedAt: started.milliseconds, finishedAt: started.milliseconds, by: by,
            since: since?.milliseconds, workflow: workflow, dryRun: dryRun, repair: repair, sagas: [:], queries: [:],
            answered: 0, findings: [], observations: [])
    }

    /// `20261206T174000.123Z`: to the millisecond, so passes close together keep a report each.
    static func reportId(_ time: Timestamp) -> String {
        UTCTime(millisecondsSinceEpoch: time.milliseconds).text(.milliseconds).filter { $0 != "-" && $0 != ":" }
    }

    // MARK: Asking

    /// How one question went.
    struct Asked: Sendable {
        var outcome: RequestReplyClient.Outcome
        var answer: VerifyQuery.Answer?
    }

    /// Asks `questions` (at most ``maxInFlight`` at once, paced), answers in the same order.
    func ask(_ questions: [Question], requests: RequestReplyClient, pacing: LimitPacing) async -> [Asked] {
        var answers = [Asked?](repeating: nil, count: questions.count)
        await withTaskGroup(of: (Int, Asked).self) { group in
            var inFlight = 0
            for (index, question) in questions.enumerated() {
                // Wait for room (overall, then in the participant's lane) by collecting answers: only an answer
                // frees a place.
                var turn = pacing.tryAdmit(question.verification.routingKey, force: false)
                while inFlight >= maxInFlight || turn == nil {
                    guard let (done, asked) = await group.next() else { break }
                    inFlight -= 1
                    answers[done] = asked
                    pacing.finished(questions[done].verification.routingKey)
                    if turn == nil { turn = pacing.tryAdmit(question.verification.routingKey, force: false) }
                }
                // Nothing left in flight and still no room (a lane smaller than the queries of one saga): go anyway.
                let due = turn ?? pacing.tryAdmit(question.verification.routingKey, force: true)
                if let due = due ?? nil { try? await ContinuousClock().sleep(until: due) }
                inFlight += 1
                let message = query(question)
                let timeout = timeout
                group.addTask {
                    let outcome = await requests.request(message, timeout: timeout)
                    if case .replied(let delivery) = outcome {
                        return (index, Asked(outcome: outcome, answer: VerifyQuery.answer(delivery.body)))
                    }
                    return (index, Asked(outcome: outcome, answer: nil))
                }
            }
            for await (done, asked) in group {
                answers[done] = asked
                pacing.finished(questions[done].verification.routingKey)
            }
        }
        return answers.map { $0 ?? Asked(outcome: .timedOut, answer: nil) }
    }

    /// The query message: like a command, with `waybill-action: verify` and the forward command's key; not
    /// persistent, and dropped by the broker once nobody could answer in time.
    func query(_ question: Question) -> OutboundMessage {
        let verification = question.verification
        let properties = MessageProperties(
            contentType: WireContentType.json,
            headers: [
                WireHeader.idempotencyKey: .string(verification.idempotencyKey),
                WireHeader.sagaId: .string(question.key.id), WireHeader.workflow: .string(question.key.workflow),
                WireHeader.step: .string(verification.step), WireHeader.action: .string(VerifyQuery.action),
            ],
            persistent: false, expiration: String(max(1, timeout.milliseconds)), timestamp: Date(),
            appID: "waybill-reconcile")
        return OutboundMessage(
            exchange: commandsExchange, routingKey: verification.routingKey,
            body: Data(JSONText.encodeBytes(verification.body)), mandatory: true, properties: properties)
    }

    // MARK: Judging

    /// What one answer means.
    static func judge(
        _ question: Question, answer: VerifyQuery.Answer?
    ) -> (finding: ReconcileFinding?, observation: ReconcileObservation?) {
        let verification = question.verification
        let key = question.key
        func finding(
            _ kind: ReconcileFinding.Kind, observed: String?, details: JSONValue? = nil, _ message: String
        ) -> ReconcileFinding {
            ReconcileFinding(
                workflow: key.workflow, sagaId: key.id, sagaStatus: question.status.rawValue,
                step: verification.label, participant: question.participant, query: verification.routingKey,
                idempotencyKey: verification.idempotencyKey, kind: kind, expected: verification.expectation.rawValue,
                observed: observed, message: message, details: details,
                repairable: kind == .leakedEffect && verification.undo != nil, repair: nil, journaled: false)
        }
        let effect = "the effect of \(verification.label) (\(verification.idempotencyKey))"
        func observation(_ observed: String) -> ReconcileObservation {
            ReconcileObservation(
                workflow: key.workflow, sagaId: key.id, step: verification.label, participant: question.participant,
                observed: observed)
        }
        // A suspended saga is reported, not judged: whatever came back (or did not) is an observation.
        if verification.expectation == .unjudged {
            switch answer {
            case .state(let state, _)?: return (nil, observation(state.rawValue))
            case .refused(let code, _)?: return (nil, observation("error \(code)"))
            case .unreadable?: return (nil, observation("unreadable"))
            case nil: return (nil, observation("unanswered"))
            }
        }
        guard let answer else {
            return (
                finding(
                    .unanswered, observed: nil,
                    "\(verification.routingKey) gave no answer about \(effect); check that the participant answers "
                        + "verify queries"), nil
            )
        }
        let state: VerifyQuery.State
        let details: JSONValue?
        switch answer {
        case .refused(let code, let message):
            return (
                finding(
                    .refused, observed: "error \(code)",
                    "\(verification.routingKey) answered error \(code) about \(effect): \(message)"), nil
            )
        case .unreadable(let why):
            return (
                finding(.unreadable, observed: nil, "\(verification.routingKey) about \(effect): \(why)"), nil
            )
        case .state(let answered, let given):
            state = answered
            details = given
        }
        switch (verification.expectation, state) {
        case (.unjudged, _):
            return (nil, observation(state.rawValue))
        case (.applied, .applied), (.notApplied, .undone), (.notApplied, .absent):
            return (nil, nil)
        case (.applied, .absent):
            return (
                finding(
                    .missingEffect, observed: state.rawValue, details: details,
                    "the saga \(question.status.rawValue) keeping \(effect), but \(question.participant) has no trace "
                        + "of it; an operator must restore it or correct the order"), nil
            )
        case (.applied, .undone):
            return (
                finding(
                    .undoneEffect, observed: state.rawValue, details: details,
                    "the saga \(question.status.rawValue) keeping \(effect), but \(question.participant) undid it; "
                        + "an operator must restore it or correct the order"), nil
            )
        case (.notApplied, .applied):
            let how =
                verification.undo != nil
                ? "the saga undid it; `waybill reconcile --repair` sends the undo again under its idempotency key"
                : "the saga has no undo to send again for it (its step failed, or the undo cannot be built from the "
                    + "saga's data); an operator must undo it at the participant"
            return (
                finding(
                    .leakedEffect, observed: state.rawValue, details: details,
                    "\(question.participant) still has \(effect): \(how)"), nil
            )
        }
    }

    // MARK: Repairing

    /// How many times a repair sends the undo before it gives up.
    static let repairAttempts = 3

    /// Sends the undo again under its idempotency key, then asks again: `repaired` once the participant says the
    /// effect is undone or absent. An undo answered ok whose effect stays is sent again (a later attempt number),
    /// up to ``repairAttempts`` times.
    func repair(
        _ question: Question, undo: CommandMessage, requests: RequestReplyClient, pacing: LimitPacing
    ) async -> String {
        var outcome = ""
        for round in 0..<Self.repairAttempts {
            var attempt = undo
            attempt.attempt += round
            if let (problem, retryable) = await sendUndo(question, undo: attempt, requests: requests, pacing: pacing) {
                // A participant that says "later" (busy, rate_limited) gets the next attempt; anything else is final.
                outcome = problem
                if retryable { continue }
                return problem
            }
            let again = await ask([question], requests: requests, pacing: pacing)
            if case .state(let state, _)? = again.first?.answer, state != .applied { return "repaired" }
            outcome =
                "not repaired: \(undo.routingKey) answered ok \(round + 1) times but the effect is still applied; an "
                + "operator must undo it"
        }
        return outcome
    }

    /// Sends one undo and waits for its reply: `nil` when it was answered ok, else why not and whether trying again
    /// may work.
    private func sendUndo(
        _ question: Question, undo: CommandMessage, requests: RequestReplyClient, pacing: LimitPacing
    ) async -> (String, retryable: Bool)? {
        if let due = pacing.tryAdmit(undo.routingKey, force: true) ?? nil {
            try? await ContinuousClock().sleep(until: due)
        }
        defer { pacing.finished(undo.routingKey) }
        var headers: AMQPTable = [
            WireHeader.idempotencyKey: .string(undo.idempotencyKey), WireHeader.sagaId: .string(question.key.id),
            WireHeader.workflow: .string(question.key.workflow), WireHeader.step: .string(undo.step),
            WireHeader.action: .string(CommandKind.compensate.rawValue),
            WireHeader.attempt: .string(String(undo.attempt)),
        ]
        if let forward = undo.compensates { headers[WireHeader.compensates] = .string(forward) }
        let message = OutboundMessage(
            exchange: commandsExchange, routingKey: undo.routingKey, body: Data(JSONText.encodeBytes(undo.body)),
            mandatory: true,
            properties: MessageProperties(
                contentType: WireContentType.json, headers: headers, persistent: true, timestamp: Date(),
                appID: "waybill-reconcile"))
        switch await requests.request(message, timeout: timeout) {
        case .replied(let delivery):
            do {
                if case .error(let error) = try WireMessages.reply(delivery.body) {
                    return (
                        "not repaired: \(undo.routingKey) answered error \(error.code): \(error.message)",
                        error.retryable
                    )
                }
                return nil
            } catch {
                return ("not repaired: the answer to \(undo.routingKey) is unreadable (\(error.message))", false)
            }
        case .timedOut:
            return ("not repaired: \(undo.routingKey) did not answer the undo in time; run the repair again", true)
        case .notSent(let outcome):
            return ("not repaired: the broker did not take the undo (\(outcome))", false)
        case .failed(let error):
            return ("not repaired: publishing the undo failed (\(error))", false)
        }
    }

    // MARK: Journaling

    /// Writes each finding to its saga's journal through the partition's owner (a `note`); one whose owner does not
    /// answer in time stays in the report only.
    func journal(
        _ findings: [ReconcileFinding], route: RepairRoute, requests: RequestReplyClient
    ) async -> [ReconcileFinding] {
        let channel = AMQPControlChannel(requests: requests)
        var journaled = findings
        for index in journaled.indices {
            let finding = journaled[index]
            guard (try? await route.awaitOwners(of: [finding.key])) != nil else { continue }
            var facts: [String: JSONValue] = [
                "reconcile": .string(finding.kind.rawValue), "participant": .string(finding.participant),
                "query": .string(finding.query), "idempotencyKey": .string(finding.idempotencyKey),
                "expected": .string(finding.expected),
            ]
            if let observed = finding.observed { facts["observed"] = .string(observed) }
            if let repair = finding.repair { facts["repair"] = .string(repair) }
            var reason = "reconciliation found \(finding.kind.rawValue): \(finding.message)"
            if let repair = finding.repair { reason += " (\(repair))" }
            let note = ControlMessage(
                workflow: finding.workflow, sagaId: finding.sagaId,
                command: OperatorCommand(action: .note(step: finding.step, facts: facts), by: by, reason: reason))
            if case .replied(let reply) = await channel.request(
                note, queue: route.queue(of: finding.key), timeout: timeout),
                reply.status == .applied
            {
                journaled[index].journaled = true
            }
        }
        return journaled
    }
}

/// Keeps a pass within its own rate and within half of each participant's limits, so the hot loop's commands keep
/// most of every participant's capacity.
final class LimitPacing: Sendable {
    private struct Lane {
        var pace: Pace
        var inFlight = 0
        var maxInFlight: Int
    }

    private let limits: ParticipantLimits?
    private let overall: Mutex<Pace>
    private let lanes = Mutex<[String: Lane]>([:])

    init(limits: ParticipantLimits?, rate: Double?) {
        self.limits = limits
        overall = Mutex(Pace(perSecond: rate))
    }

    /// Takes a place for a query to `routingKey`: `nil` when its participant's lane is full (collect an answer and
    /// ask again), else when it may go (`.some(nil)`: at once). `force` takes the place even in a full lane.
    func tryAdmit(_ routingKey: String, force: Bool) -> ContinuousClock.Instant?? {
        var due: ContinuousClock.Instant?
        if let limit = limits?.limit(for: routingKey) {
            let admitted: ContinuousClock.Instant?? = lanes.withLock { lanes in
                var lane =
                    lanes[limit.commands]
                    ?? Lane(
                        pace: Pace(perSecond: limit.perSecond.map { $0 / 2 }),
                        maxInFlight: max(1, (limit.maxInFlight ?? Int.max / 2) / 2))
                guard force || lane.inFlight < lane.maxInFlight else { return nil }
                lane.inFlight += 1
                let turn = lane.pace.nextTurn()
                lanes[limit.commands] = lane
                return .some(turn)
            }
            guard let admitted else { return nil }
            due = admitted
        }
        let overallTurn = overall.withLock { $0.nextTurn() }
        return .some([due, overallTurn].compactMap { $0 }.max())
    }

    /// A query to `routingKey` was answered (or given up on).
    func finished(_ routingKey: String) {
        guard let limit = limits?.limit(for: routingKey) else { return }
        lanes.withLock { $0[limit.commands]?.inFlight -= 1 }
    }
}

/// Where reconciliation passes are kept: `reconcile/<id>.json` in the pool's data directory, one file per pass, so
/// `waybill reconcile report` shows the latest (or any) pass without running one.
public struct ReconcileReports: Sendable {
    /// The folder.
    public let directory: String

    /// The reports of the pool whose data directory is `dataDirectory`.
    public init(dataDirectory: String) {
        directory = (dataDirectory as NSString).appendingPathComponent("reconcile")
    }

    /// Passes kept; older report files are removed as new ones come.
    public static let kept = 200

    /// The file of the drift still open (``openDrift()``).
    static let openDriftFile = "open-drift.json"

    /// Writes `report` (whole or not at all: a temporary file renamed into place) and removes reports beyond
    /// ``kept``.
    public func save(_ report: ReconcileReport) throws(OperationsError) {
        try write(report, to: (directory as NSString).appendingPathComponent("\(report.id).json"))
        for old in ids().dropLast(Self.kept) {
            try? FileManager.default.removeItem(atPath: (directory as NSString).appendingPathComponent("\(old).json"))
        }
    }

    /// The drift no pass has seen resolved yet, across passes: every unrepaired `missing_effect`, `undone_effect` and
    /// `leaked_effect` a pass found, until a later pass asks about the same effect and finds it right (or repairs
    /// it). What `waybill sagas stuck` lists for an operator.
    public func openDrift() -> [ReconcileFinding] {
        let path = (directory as NSString).appendingPathComponent(Self.openDriftFile)
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return (try? JSONDecoder().decode([ReconcileFinding].self, from: data)) ?? []
    }

    /// Folds a pass into the open drift: the effects it `asked` about leave it, then its unrepaired drift goes in.
    func updateOpenDrift(asked: Set<String>, found: [ReconcileFinding]) throws(OperationsError) {
        var open = openDrift().filter { !asked.contains($0.effect) }
        open += found.filter { $0.kind.isDrift && $0.repair != "repaired" }
        open.sort { ($0.workflow, $0.sagaId, $0.idempotencyKey) < ($1.workflow, $1.sagaId, $1.idempotencyKey) }
        try write(open, to: (directory as NSString).appendingPathComponent(Self.openDriftFile))
    }

    private func write(_ value: some Encodable, to path: String) throws(OperationsError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            try encoder.encode(value).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw OperationsError(.database, "cannot write \(path)", cause: error)
        }
    }

    /// The ids of the kept passes, oldest first.
    public func ids() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".json") && $0 != Self.openDriftFile }.map { String($0.dropLast(5)) }
            .sorted()
    }

    /// The pass `id`, or the latest one.
    public func load(_ id: String? = nil) throws(OperationsError) -> ReconcileReport {
        guard let id = id ?? ids().last else {
            throw OperationsError(
                .notFound, "no reconciliation has run on this pool yet; run one with `waybill reconcile`")
        }
        let path = (directory as NSString).appendingPathComponent("\(id).json")
        guard let data = FileManager.default.contents(atPath: path) else {
            throw OperationsError(
                .notFound, "no reconciliation pass \(id); passes kept: \(ids().suffix(5).joined(separator: ", "))")
        }
        do {
            return try JSONDecoder().decode(ReconcileReport.self, from: data)
        } catch {
            throw OperationsError(.corrupt, "\(path) is not a reconciliation report", cause: error)
        }
    }
}
