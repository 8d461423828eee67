import SagaEngine
import SagaStore
import WaybillDefinition

/// `waybill sagas show`: the header, the one-line "why", the step timeline, compensation progress and the last
/// journal lines, as text for people or as one JSON document.
public enum ShowView {
    /// The text form.
    public static func text(_ detail: SagaDetail) -> String {
        let row = detail.row
        let now = detail.now
        var out = "\(row.key)  \(row.status.rawValue)\n"
        var header = TextTable(["", ""])
        var definitionText = "\(row.key.workflow)@v\(row.version)  definition \(row.definitionHash.prefix(12))"
        if !detail.definitionKnown { definitionText += " (not stored in this file: step names and limits unknown)" }
        header.add(["workflow", definitionText])
        if let placement = detail.placement {
            header.add([
                "partition",
                "\(PoolDirectory.name(ofPartition: placement.partition))  (queue \(placement.queue); its owner: "
                    + "waybill pool status)",
            ])
        }
        if let archived = detail.archived {
            header.add([
                "archived",
                "\(archived.file)  (moved out of its partition file \(TimeText.short(archived.at, now: now)))",
            ])
        }
        header.add(["written by", row.owner ?? "-"])
        header.add(["started", TimeText.withRelative(row.startedAt, now: now)])
        header.add(["last progress", TimeText.withRelative(row.updatedAt, now: now)])
        header.add(["age", TimeText.span(milliseconds: now.milliseconds - row.startedAt.milliseconds)])
        header.add(["current step", row.currentStep ?? "-"])
        if let priority = detail.priority { header.add(["priority", PriorityLane.name(priority)]) }
        if let failure = detail.failure {
            let label = failure.branch.map { "\(failure.step)[\($0)]" } ?? failure.step
            header.add([
                "failure",
                "\(label) \(failure.error.code): \(Words.cut(failure.error.message, 100))"
                    + "\(failure.error.retryable ? "" : " (not retryable)") at \(TimeText.short(failure.at, now: now))",
            ])
        }
        if let pivot = detail.pivotStep {
            header.add([
                "pivot", "\(pivot) (\(detail.pivotPassed ? "passed: failures now suspend" : "not passed yet"))",
            ])
        }
        out += header.renderRows(indent: "  ")
        out += "\n"
        let diagnosis = detail.diagnosis
        let title = diagnosis.stuckClass.map { $0.isStuck ? "Why stuck (\($0.shortTitle))" : "Why" } ?? "Why"
        out += "\(title): \(diagnosis.reason)\n"
        for suggestion in diagnosis.suggestions { out += "  -> \(suggestion)\n" }
        out += "\nSteps\n"
        out += timeline(detail)
        if let compensation = detail.compensation {
            out += "\nCompensation (\(compensation.purpose)): \(compensation.undone) of \(compensation.total) undone"
            if compensation.skipped > 0 { out += " (\(compensation.skipped) skipped by an operator)" }
            if !compensation.queue.isEmpty {
                out += "; next \(compensation.queue[0])"
                if compensation.queue.count > 1 {
                    out += ", then " + compensation.queue.dropFirst().joined(separator: ", ")
                }
            }
            out += "\n"
            if !compensation.unknownOutcome.isEmpty {
                out +=
                    "  outcome unknown (no reply came; undone in case it took effect): "
                    + compensation.unknownOutcome.joined(separator: ", ") + "\n"
            }
            if !compensation.owed.isEmpty {
                out +=
                    "  NOT UNDONE, outcome unknown (no reply came, never compensated; check the participant): "
                    + compensation.owed.joined(separator: ", ") + "\n"
            }
        }
        if !detail.strayTimers.isEmpty {
            out += "\nTimers no step knows about (a worker drops them when they fire):\n"
            for timer in detail.strayTimers {
                out += "  \(timer.id) \(timer.kind.rawValue) due \(TimeText.withRelative(timer.dueAt, now: now))\n"
            }
        }
        if !detail.recentJournal.isEmpty {
            out += "\nRecent history (all of it: waybill sagas history \(row.key))\n"
            out += HistoryView.table(detail.recentJournal, now: now, indent: "  ")
        }
        return out
    }

    /// The version of the JSON form: fields are only added under one version; removing, renaming or retyping one
    /// bumps it.
    public static let schemaVersion = 1

    /// The JSON form; see the field list in the `waybill sagas show --help` text.
    public static func json(_ detail: SagaDetail) -> JSONValue {
        var saga = JSONFields.row(detail.row, now: detail.now)
        saga["pivotStep"] = JSONFields.string(detail.pivotStep)
        saga["pivotPassed"] = .bool(detail.pivotPassed)
        saga["priority"] = detail.priority.map { .string(PriorityLane.name($0)) } ?? .null
        saga["definitionKnown"] = .bool(detail.definitionKnown)
        saga["partition"] = JSONFields.int(detail.placement?.partition)
        saga["queue"] = JSONFields.string(detail.placement?.queue)
        saga["archived"] =
            detail.archived.map { ["file": .string($0.file), "at": JSONFields.time($0.at)] } ?? .null
        saga["failure"] =
            detail.failure.map { failure in
                [
                    "step": .string(failure.step), "branch": JSONFields.int(failure.branch),
                    "error": JSONFields.error(failure.error), "at": JSONFields.time(failure.at),
                ]
            } ?? .null
        let steps: [JSONValue] = detail.steps.map { step in
            [
                "id": .string(step.id),
                "status": .string(step.status.rawValue),
                "kind": .string(step.kind.rawValue),
                "forEach": .bool(step.fansOut),
                "pivot": .bool(step.pivot),
                "timeoutMs": JSONFields.int(step.timeout?.milliseconds),
                "startedAt": JSONFields.time(step.startedAt),
                "finishedAt": JSONFields.time(step.finishedAt),
                "durationMs": JSONFields.int(duration(step.startedAt, step.finishedAt, now: detail.now)),
                "branches": .array(step.branches.map { branchJSON($0, now: detail.now) }),
                "output": step.output ?? .null,
            ]
        }
        let compensation: JSONValue =
            detail.compensation.map { compensation in
                [
                    "purpose": .string(compensation.purpose), "undone": JSONFields.int(compensation.undone),
                    "skipped": JSONFields.int(compensation.skipped), "total": JSONFields.int(compensation.total),
                    "queue": JSONFields.strings(compensation.queue), "active": .bool(compensation.active),
                    "unknownOutcome": JSONFields.strings(compensation.unknownOutcome),
                    "owed": JSONFields.strings(compensation.owed), "fullyUndone": .bool(compensation.fullyUndone),
                ]
            } ?? .null
        return [
            "schemaVersion": JSONFields.int(schemaVersion),
            "saga": .object(saga),
            "input": detail.input,
            "diagnosis": diagnosisJSON(detail.diagnosis),
            "steps": .array(steps),
            "compensation": compensation,
            "strayTimers": .array(
                detail.strayTimers.map {
                    ["id": .string($0.id), "kind": .string($0.kind.rawValue), "dueAt": JSONFields.time($0.dueAt)]
                }),
            "recentJournal": .array(detail.recentJournal.map { JSONFields.journal($0, key: detail.row.key) }),
        ]
    }

    static func diagnosisJSON(_ diagnosis: Diagnosis) -> JSONValue {
        [
            "class": JSONFields.string(diagnosis.stuckClass?.rawValue),
            "title": JSONFields.string(diagnosis.stuckClass?.title),
            "stuck": .bool(diagnosis.stuckClass?.isStuck ?? false),
            "reason": .string(diagnosis.reason),
            "brief": .string(diagnosis.brief),
            "suggestions": JSONFields.strings(diagnosis.suggestions),
        ]
    }

    private static func branchJSON(_ branch: SagaDetail.Branch, now: Timestamp) -> JSONValue {
        let pending: JSONValue =
            branch.pending.map { pending in
                [
                    "messageId": .string(pending.messageId), "routingKey": .string(pending.routingKey),
                    "kind": .string(pending.kind.rawValue), "attempt": JSONFields.int(pending.attempt),
                    "sentAt": JSONFields.time(pending.sentAt), "replyQueue": JSONFields.string(branch.replyQueue),
                ]
            } ?? .null
        let timer: JSONValue =
            branch.timer.map { timer in
                ["id": .string(timer.id), "kind": .string(timer.kind.rawValue), "dueAt": JSONFields.time(timer.dueAt)]
            } ?? .null
        return [
            "index": JSONFields.int(branch.index),
            "label": .string(branch.label),
            "item": branch.item ?? .null,
            "status": .string(branch.status.rawValue),
            "attempt": JSONFields.int(branch.attempt),
            "maxAttempts": branch.limitKnown ? (branch.maxAttempts.map { JSONFields.int($0) } ?? "unlimited") : .null,
            "compensationAttempt": JSONFields.int(branch.compensationAttempt),
            "startedAt": JSONFields.time(branch.startedAt),
            "finishedAt": JSONFields.time(branch.finishedAt),
            "durationMs": JSONFields.int(duration(branch.startedAt, branch.finishedAt, now: now)),
            "lastError": JSONFields.error(branch.lastError),
            "unansweredAttempts": JSONFields.int(branch.unansweredAttempts),
            "outcomeUnknown": .bool(branch.outcomeUnknown),
            "output": branch.output ?? .null,
            "pending": pending,
            "timer": timer,
        ]
    }

    // MARK: - Text pieces

    /// One line of a saga's timeline: a step, or (indented under its `for_each` step) one branch.
    public struct TimelineRow: Sendable, Hashable {
        /// The step's id.
        public var step: String
        /// The branch's index, for a branch line of a `for_each` step.
        public var branch: Int?
        /// What the first column shows: `ship (pivot)`, or `[0] wh-01` for a branch.
        public var name: String
        /// `succeeded`, `failed`, `undone`, `retry wait`, ... (a finished saga's unfinished branches: `stopped`).
        public var status: String
        /// `2 of 5`, `1 of 3, undo 2`, `local` (a split), or empty.
        public var attempts: String
        /// `took 1.2s`, `for 3m`, `ran 10s` (stopped with the saga), or empty.
        public var time: String
        /// The most telling fact: the error, `waiting for reply`, or the branch counts of a `for_each` step.
        public var detail: String
        /// More lines: the pending command, the timer, an earlier error.
        public var notes: [String]
    }

    /// The saga's steps and branches, forward order, as the text and the web view show them.
    public static func timelineRows(_ detail: SagaDetail) -> [TimelineRow] {
        let now = detail.now
        var rows: [TimelineRow] = []
        // A finished saga's unfinished branches stopped when the saga did.
        let stopped = detail.row.status.isTerminal
        let end = stopped ? detail.row.updatedAt : now
        func timeText(_ start: Timestamp?, _ finish: Timestamp?) -> String {
            guard let start else { return "" }
            if let finish { return "took " + TimeText.span(milliseconds: finish.milliseconds - start.milliseconds) }
            return (stopped ? "ran " : "for ") + TimeText.span(milliseconds: end.milliseconds - start.milliseconds)
        }
        for step in detail.steps {
            let stepTime = timeText(step.startedAt, step.finishedAt)
            let stepName = step.id + (step.pivot ? " (pivot)" : "")
            if step.fansOut && !step.branches.isEmpty {
                rows.append(
                    TimelineRow(
                        step: step.id, name: stepName, status: step.status.rawValue, attempts: "", time: stepTime,
                        detail: branchCounts(step.branches, saga: detail.row.status), notes: []))
                for branch in step.branches {
                    let (detailText, lines) = branchFacts(branch, step: step, now: now)
                    rows.append(
                        TimelineRow(
                            step: step.id, branch: branch.index,
                            name: "[\(branch.index)]" + (branch.itemLabel.map { " \($0)" } ?? ""),
                            status: branchStatus(branch, saga: detail.row.status),
                            attempts: attempts(branch, step: step), time: timeText(branch.startedAt, branch.finishedAt),
                            detail: detailText, notes: lines))
                }
            } else if let branch = step.branches.first, !step.isLocal {
                let (detailText, lines) = branchFacts(branch, step: step, now: now)
                rows.append(
                    TimelineRow(
                        step: step.id, name: stepName, status: branchStatus(branch, saga: detail.row.status),
                        attempts: attempts(branch, step: step), time: stepTime, detail: detailText, notes: lines))
            } else {
                rows.append(
                    TimelineRow(
                        step: step.id, name: stepName, status: step.status.rawValue,
                        attempts: step.isLocal && step.startedAt != nil ? "local" : "", time: stepTime,
                        detail: step.kind == .choice ? choiceText(step.output) : "", notes: []))
            }
        }
        return rows
    }

    /// `-> express (rule 1)` for a choice's `{next, rule}` output (rules counted from 0, as in the output), `-> standard (no rule held)`; empty before it ran.
    static func choiceText(_ output: JSONValue?) -> String {
        guard let next = output?["next"]?.stringValue else { return "" }
        let rule = output?["rule"]?.intValue.map { "rule \($0)" } ?? "no rule held"
        return "-> \(next) (\(rule))"
    }

    private static func timeline(_ detail: SagaDetail) -> String {
        let rows = timelineRows(detail)
        var table = TextTable(["STEP", "STATUS", "ATTEMPTS", "TIME", "DETAIL"])
        for row in rows {
            table.add([(row.branch == nil ? "" : "  ") + row.name, row.status, row.attempts, row.time, row.detail])
        }
        let lines = table.render(indent: "  ").split(separator: "\n").map(String.init)
        var out = lines[0] + "\n"
        for (index, line) in lines.dropFirst().enumerated() {
            out += line + "\n"
            for note in rows[index].notes { out += "        " + note + "\n" }
        }
        return out
    }

    /// `2 succeeded, 1 failed`.
    private static func branchCounts(_ branches: [SagaDetail.Branch], saga: SagaStatus) -> String {
        var counts: [(String, Int)] = []
        for branch in branches {
            let name = branchStatus(branch, saga: saga)
            if let index = counts.firstIndex(where: { $0.0 == name }) {
                counts[index].1 += 1
            } else {
                counts.append((name, 1))
            }
        }
        return Words.count(branches.count, "branch", "branches") + ": "
            + counts.map { "\($0.1) \($0.0)" }.joined(separator: ", ")
    }

    private static func branchStatus(_ branch: SagaDetail.Branch, saga: SagaStatus) -> String {
        if saga.isTerminal,
            [.inFlight, .retryWait, .compensating, .compensationRetryWait, .waiting].contains(branch.status)
        {
            return "stopped"
        }
        switch branch.status {
        case .inFlight: return "in flight"
        case .retryWait: return "retry wait"
        case .succeeded: return "succeeded"
        case .failed: return branch.outcomeUnknown ? "outcome unknown" : "failed"
        case .compensating: return "undoing"
        case .compensationRetryWait: return "undo retry wait"
        case .compensated: return "undone"
        case .skipped: return "skipped"
        case .waiting: return "waiting"
        }
    }

    private static func attempts(_ branch: SagaDetail.Branch, step: SagaDetail.Step) -> String {
        guard branch.attempt > 0 else { return "" }
        var text = "\(branch.attempt)"
        if branch.limitKnown { text += " of " + (branch.maxAttempts.map(String.init) ?? "unlimited") }
        if branch.compensationAttempt > 0 { text += ", undo \(branch.compensationAttempt)" }
        return text
    }

    /// The detail cell (the most telling fact) and the extra lines (pending command, timer, last error).
    private static func branchFacts(
        _ branch: SagaDetail.Branch, step: SagaDetail.Step, now: Timestamp
    )
        -> (String, [String])
    {
        var lines: [String] = []
        var cell = ""
        if let error = branch.lastError {
            let text =
                "\(error.code): \(Words.cut(error.message, 80))\(error.retryable ? "" : " (not retryable)")"
            if branch.status == .failed || branch.status == .retryWait || branch.status == .compensationRetryWait {
                cell = "error " + text
            } else {
                lines.append("last error  \(text)")
            }
        }
        if let pending = branch.pending, branch.timer?.kind == .hold {
            let what = pending.kind == .compensate ? "undo command" : "command"
            lines.append(
                "\(what) \(pending.routingKey)  held back by a participant's limit since "
                    + "\(TimeText.short(pending.sentAt, now: now)) (\(TimeText.relative(pending.sentAt, now: now))); "
                    + "attempt \(pending.attempt) goes out in its turn")
            if cell.isEmpty { cell = "held for its limit" }
        } else if let pending = branch.pending {
            let what = pending.kind == .compensate ? "undo command" : "command"
            lines.append(
                "\(what) \(pending.routingKey)  message \(pending.messageId)  sent \(TimeText.short(pending.sentAt, now: now)) "
                    + "(\(TimeText.relative(pending.sentAt, now: now)))"
                    + (branch.replyQueue.map { "  reply to \($0)" } ?? ""))
            if cell.isEmpty { cell = "waiting for reply" }
        }
        if let timer = branch.timer, timer.kind != .hold {
            let kind =
                switch timer.kind {
                case .replyTimeout: "reply timeout"
                case .retry: "next attempt"
                case .wait: "wait ends"
                case .hold: "released"
                }
            let late =
                timer.dueAt < now
                ? "overdue by \(TimeText.span(milliseconds: now.milliseconds - timer.dueAt.milliseconds))"
                : TimeText.relative(timer.dueAt, now: now)
            lines.append("timer \(kind) at \(TimeText.short(timer.dueAt, now: now)) (\(late))")
        }
        return (cell, lines)
    }

    private static func duration(_ start: Timestamp?, _ end: Timestamp?, now: Timestamp) -> Int64? {
        guard let start else { return nil }
        return (end ?? now).milliseconds - start.milliseconds
    }
}
