import SagaEngine
import WaybillDefinition

extension JournalEntry {
    /// The journal line for one handled event: what arrived, what the saga did, and its effects, e.g.
    /// `reply ok for release[1] → running; sent 1 command` or `ignored: late reply m-17 (reply m-17)`.
    ///
    /// `before` is the saga as it was before the event (`nil` for a start); it is how a reply or timer is traced to
    /// its step and branch. Step outputs and error messages are quoted only up to ``summaryLimit`` characters; the
    /// start input and command bodies never appear.
    public static func describing(
        _ event: SagaEvent, before: SagaInstance?, transition: Transition, definition: WorkflowDefinition,
        at now: Timestamp
    ) -> [JournalEntry] {
        let after = transition.instance
        let place = JournalText.branch(event, in: before ?? after, definition: definition)
        let location = place?.label ?? JournalText.operatorStep(event)
        var facts: [String: JSONValue] = [:]
        if let place {
            facts["step"] = .string(place.step)
            if place.label != place.step { facts["branch"] = .number(Double(place.index)) }
            // A reply answers the command in flight (forward, or a compensation); a timer starts the next attempt
            // (or times this one out).
            var attempt = place.state.pending?.attempt ?? place.state.attempt
            if let pending = place.state.pending { facts["command"] = .string(pending.kind.rawValue) }
            if case .timerFired = event, place.stepIndex < after.steps.count,
                place.index < after.steps[place.stepIndex].branches.count
            {
                let next = after.steps[place.stepIndex].branches[place.index]
                let undoing =
                    place.state.pending?.kind == .compensate || place.state.status == .compensationRetryWait
                    || place.state.status == .compensating
                attempt = undoing ? next.compensationAttempt : next.attempt
                if undoing { facts["command"] = .string(CommandKind.compensate.rawValue) }
            }
            facts["attempt"] = .number(Double(attempt))
        }
        var actor: String?
        var what: String
        var kind: Kind
        switch event {
        case .start:
            facts["event"] = "start"
            facts["version"] = .number(Double(after.version))
            kind = .start
            what = "started \(after.key.workflow) v\(after.version) (definition \(after.definitionHash.prefix(12)))"
        case .reply(let correlationId, let outcome):
            facts["event"] = "reply"
            facts["correlationId"] = .string(correlationId)
            kind = .reply
            let target = location.map { " for \($0)" } ?? " \(correlationId)"
            switch outcome {
            case .ok(let output):
                facts["reply"] = "ok"
                what = "reply ok\(target)"
                if let output { what += " output \(JournalText.summary(output))" }
            case .error(let error):
                facts["reply"] = "error"
                facts["code"] = .string(error.code)
                facts["retryable"] = .bool(error.retryable)
                what =
                    "reply error \(error.code) (\(error.retryable ? "retryable" : "not retryable"))\(target): "
                    + JournalText.quote(error.message)
            }
        case .timerFired(let timerId):
            kind = .timer
            let timer = before.flatMap { JournalText.timer(timerId, in: $0) }
            facts["event"] = "timer"
            facts["timer"] = .string(timer?.kind.rawValue ?? timerId)
            what = "timer \(timer?.kind.rawValue ?? timerId) fired" + (location.map { " for \($0)" } ?? "")
        case .signal(let waitId, let message):
            kind = .signal
            facts["event"] = "signal"
            facts["wait"] = .string(waitId)
            what = "message arrived" + (location.map { " for \($0)" } ?? "") + " \(JournalText.summary(message))"
        case .commandReturned(let messageId):
            facts["event"] = "returned"
            facts["messageId"] = .string(messageId)
            kind = .returned
            what = "command \(messageId) returned unroutable" + (location.map { " for \($0)" } ?? "")
        case .operatorCommand(let command):
            if case .note(let step, let noted) = command.action {
                // A note is its own line: what someone found, with its facts; the saga did not move.
                var facts = noted
                facts["event"] = "note"
                facts["reason"] = .string(command.reason)
                if let step { facts["step"] = .string(step) }
                return [
                    JournalEntry(
                        at: now, kind: .note, step: step, actor: command.by,
                        detail: "note by \(command.by): \(command.reason)", facts: .object(facts))
                ]
            }
            kind = .operatorCommand
            actor = command.by
            facts["event"] = "operator"
            facts["action"] = .string(
                JournalText.action(command.action).split(separator: " ").first.map(String.init) ?? "")
            facts["reason"] = .string(command.reason)
            if place == nil, let step = location { facts["step"] = .string(step) }
            what =
                "operator \(JournalText.action(command.action)) by \(command.by): \(JournalText.quote(command.reason))"
        }
        let detail: String
        switch transition.outcome {
        case .applied:
            detail = "\(what) → \(after.status.rawValue)\(JournalText.effects(transition.actions))"
            facts["outcome"] = "applied"
            facts["status"] = .string(after.status.rawValue)
            JournalText.effectFacts(transition.actions, into: &facts)
        case .ignored(let reason):
            kind = .ignored
            detail = "ignored: \(JournalText.cut(reason)) (\(what))"
            facts["outcome"] = "ignored"
            facts["why"] = .string(JournalText.cut(reason))
        case .rejected(let reason):
            kind = .rejected
            detail = "rejected: \(JournalText.cut(reason)) (\(what))"
            facts["outcome"] = "rejected"
            facts["why"] = .string(JournalText.cut(reason))
        }
        return [
            JournalEntry(at: now, kind: kind, step: location, actor: actor, detail: detail, facts: .object(facts))
        ]
    }
}

/// Small text helpers for journal lines.
enum JournalText {
    /// The step an operator command names, if any.
    static func operatorStep(_ event: SagaEvent) -> String? {
        guard case .operatorCommand(let command) = event else { return nil }
        switch command.action {
        case .retry(let step): return step
        case .skip(let step, _, _): return step
        case .reset(let step): return step
        case .compensate, .cancel, .migrate: return nil
        case .note(let step, _): return step
        }
    }

    /// The branch a reply, returned command or timer is for: its step's id and index, its own index, its label (`release[1]`, or the
    /// step's id for a plain step) and its state; `nil` for other events, or when no branch matches.
    static func branch(
        _ event: SagaEvent, in instance: SagaInstance, definition: WorkflowDefinition
    ) -> (step: String, stepIndex: Int, index: Int, label: String, state: BranchState)? {
        let match: (BranchState) -> Bool
        switch event {
        case .reply(let correlationId, _): match = { $0.pending?.messageId == correlationId }
        case .commandReturned(let messageId): match = { $0.pending?.messageId == messageId }
        case .timerFired(let timerId), .signal(let timerId, _): match = { $0.timer?.id == timerId }
        case .operatorCommand, .start: return nil
        }
        for (stepIndex, step) in instance.steps.enumerated() {
            guard let branchIndex = step.branches.firstIndex(where: match) else { continue }
            let id = stepIndex < definition.steps.count ? definition.steps[stepIndex].id : "step\(stepIndex)"
            let fansOut = stepIndex < definition.steps.count && definition.steps[stepIndex].forEach != nil
            let label = fansOut || step.branches.count > 1 ? "\(id)[\(branchIndex)]" : id
            return (id, stepIndex, branchIndex, label, step.branches[branchIndex])
        }
        return nil
    }

    static func timer(_ id: String, in instance: SagaInstance) -> SagaTimer? {
        for step in instance.steps {
            for branch in step.branches where branch.timer?.id == id { return branch.timer }
        }
        return nil
    }

    static func action(_ action: OperatorCommand.Action) -> String {
        switch action {
        case .retry(let step): step.map { "retry \($0)" } ?? "retry"
        case .skip(let step, _, let branch): branch.map { "skip \(step)[\($0)]" } ?? "skip \(step)"
        case .compensate: "compensate"
        case .cancel: "cancel"
        case .reset(let step): "reset to \(step)"
        case .note: "note"
        case .migrate(let hash, let mapping):
            "migrate to \(hash.prefix(12))"
                + (mapping.isEmpty
                    ? ""
                    : " (" + mapping.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
                        + ")")
        }
    }

    /// `; sent 2 commands, sent 1 compensation, published order.released, scheduled 1 timer, finished completed`, and
    /// for each compensation of a forward command whose reply never came, `outcome unknown: compensating release[1]
    /// in case it took effect`.
    static func effects(_ actions: [SagaAction]) -> String {
        var commands = 0
        var compensations = 0
        var unknown: [String] = []
        var milestones: [String] = []
        var scheduled = 0
        var cancelled = 0
        var awaited = 0
        var held: [String] = []
        var finished: SagaStatus?
        for action in actions {
            switch action {
            case .sendCommand(let command):
                if command.kind == .compensate { compensations += 1 } else { commands += 1 }
                if command.outcomeUnknown {
                    unknown.append(command.branch.map { "\(command.step)[\($0)]" } ?? command.step)
                }
            case .publishMilestone(let milestone): milestones.append(milestone.name)
            case .scheduleTimer(let timer): if timer.kind != .hold { scheduled += 1 }
            case .holdCommand(let command): held.append(command.routingKey)
            case .cancelTimer: cancelled += 1
            case .awaitMessage: awaited += 1
            case .cancelAwait: break
            case .finished(let status): finished = status
            }
        }
        var parts: [String] = []
        if commands > 0 { parts.append("sent \(commands) command\(commands == 1 ? "" : "s")") }
        if compensations > 0 { parts.append("sent \(compensations) compensation\(compensations == 1 ? "" : "s")") }
        if !unknown.isEmpty {
            parts.append(
                "outcome unknown: compensating \(unknown.joined(separator: " and ")) in case "
                    + (unknown.count == 1 ? "it" : "they") + " took effect")
        }
        if !held.isEmpty {
            parts.append("held \(held.joined(separator: ", ")) back for a participant's limit")
        }
        if !milestones.isEmpty { parts.append("published \(milestones.joined(separator: ", "))") }
        if scheduled > 0 { parts.append("scheduled \(scheduled) timer\(scheduled == 1 ? "" : "s")") }
        if cancelled > 0 { parts.append("cancelled \(cancelled) timer\(cancelled == 1 ? "" : "s")") }
        if awaited > 0 { parts.append("waiting for \(awaited == 1 ? "a message" : "\(awaited) messages")") }
        if let finished { parts.append("finished \(finished.rawValue)") }
        return parts.isEmpty ? "" : "; " + parts.joined(separator: ", ")
    }

    /// ``effects(_:)`` as data: `commands` and `compensations` sent, `milestones` published, `finished`.
    static func effectFacts(_ actions: [SagaAction], into facts: inout [String: JSONValue]) {
        var commands = 0
        var compensations = 0
        var milestones: [JSONValue] = []
        var held = 0
        for action in actions {
            switch action {
            case .sendCommand(let command):
                if command.kind == .compensate { compensations += 1 } else { commands += 1 }
            case .holdCommand: held += 1
            case .publishMilestone(let milestone): milestones.append(.string(milestone.name))
            case .finished(let status): facts["finished"] = .string(status.rawValue)
            case .scheduleTimer, .cancelTimer, .awaitMessage, .cancelAwait: break
            }
        }
        if commands > 0 { facts["commands"] = .number(Double(commands)) }
        if compensations > 0 { facts["compensations"] = .number(Double(compensations)) }
        if !milestones.isEmpty { facts["milestones"] = .array(milestones) }
        if held > 0 { facts["held"] = .number(Double(held)) }
    }

    /// A step output as compact JSON, cut to the summary limit.
    static func summary(_ value: JSONValue) -> String {
        cut(JSONText.encode(value))
    }

    /// Free text in quotes, on one line, cut to the summary limit.
    static func quote(_ text: String) -> String {
        "\"" + cut(text) + "\""
    }

    /// One line of at most ``JournalEntry/summaryLimit`` characters, with `…` when cut.
    static func cut(_ text: String) -> String {
        let limit = JournalEntry.summaryLimit
        // Most text is ASCII without line breaks (step outputs as JSON): bytes are characters, so the first bytes
        // decide, without walking the whole text by grapheme.
        var scanned = 0
        for byte in text.utf8 {
            guard byte < 0x80, !(0x0A...0x0D).contains(byte) else { return cutAnyText(text) }
            scanned += 1
            if scanned > limit { return String(decoding: text.utf8.prefix(limit - 1), as: UTF8.self) + "…" }
        }
        return text
    }

    private static func cutAnyText(_ text: String) -> String {
        let limit = JournalEntry.summaryLimit
        let head = text.prefix(limit + 1)
        var line = String(head.map { $0.isNewline ? " " : $0 })
        if head.count > limit {
            line = String(line.prefix(limit - 1)) + "…"
        }
        return line
    }
}
