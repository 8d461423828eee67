import Foundation
import PlainText
import SagaEngine
import SagaStore
import WaybillDefinition
import WaybillOperations

/// Who is looking at a page, and so which repair controls it shows.
public enum ConsoleAccess: Sendable, Hashable {
    /// Started without an operator token: nothing can be repaired from the browser.
    case readOnly
    /// Repairs are possible after signing in with the token.
    case signedOut
    /// Signed in; repairs are journaled with this actor.
    case signedIn(actor: String)

    var actor: String? {
        if case .signedIn(let actor) = self { return actor }
        return nil
    }
}

/// The console's pages, rendered on the server from the same reads and views as `waybill sagas|dlq|pool`. Pure:
/// data in, HTML out.
public enum ConsolePages {
    // MARK: - Layout

    /// The page shell: head, navigation with the search box, who is signed in, then `body`. `refresh` reloads the
    /// page every so many seconds (the overview and the stuck board keep themselves current without JavaScript).
    static func layout(
        title: String, access: ConsoleAccess, active: String, refresh: Int? = nil, _ body: HTML
    ) -> HTML {
        let links: [(String, String, String)] = [
            ("overview", "/", "Overview"), ("sagas", "/sagas", "Sagas"), ("stuck", "/stuck", "Stuck"),
            ("dead-letters", "/dead-letters", "Dead letters"),
        ]
        let nav = links.map { id, href, label -> HTML in
            "<a href=\"\(href)\"\(id == active ? HTML(" class=\"active\" aria-current=\"page\"") : .empty)>\(label)</a>"
        }
        let who: HTML
        switch access {
        case .readOnly:
            who = "<span class=\"access\" id=\"access\">read-only</span>"
        case .signedOut:
            who = "<a class=\"access\" id=\"access\" href=\"/login\">Sign in to repair</a>"
        case .signedIn(let actor):
            who = """
                <form class="access" id="access" method="post" action="/logout">signed in as <b>\(actor)</b> \
                <button type="submit">Sign out</button></form>
                """
        }
        let reload: HTML = refresh.map { "<meta http-equiv=\"refresh\" content=\"\($0)\">" } ?? .empty
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
            <title>\(title) · Waybill</title>\(reload)<style>\(HTML(stringLiteral: style))</style></head>
            <body><header><a class="brand" href="/">Waybill</a><nav>\(nav)</nav>
            <form class="search" method="get" action="/search" role="search"><input type="search" name="q" \
            placeholder="Order or saga id" aria-label="Order or saga id"><button type="submit">Find</button></form>
            \(who)</header><main>\(body)</main></body></html>

            """
    }

    static let style = """
        body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
        header{display:flex;gap:1.2em;align-items:center;padding:.6em 1.2em;background:#1d2430;color:#fff}
        header a{color:#cfd6e4;text-decoration:none}header a.active{color:#fff;font-weight:600}
        .brand{font-weight:700;color:#fff!important}nav{display:flex;gap:1em}.search{margin-left:auto}
        .access{color:#cfd6e4}main{padding:1em 1.2em;max-width:1200px}
        h1{font-size:1.35em;margin:.2em 0 .6em}h2{font-size:1.1em;margin:1.4em 0 .5em}
        table{border-collapse:collapse;background:#fff;margin:.3em 0 1em}
        th,td{text-align:left;padding:.3em .7em;border-bottom:1px solid #e3e6eb;vertical-align:top}
        th{background:#eef0f4;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
        .cards{display:flex;flex-wrap:wrap;gap:.8em}.card{background:#fff;border:1px solid #e3e6eb;
        padding:.6em 1em;min-width:8em;text-decoration:none;color:inherit}.card b{display:block;font-size:1.6em}
        .badge{display:inline-block;padding:0 .5em;border-radius:.7em;font-size:.9em;background:#e3e6eb}
        .s-completed,.s-succeeded{background:#d8f0dd}.s-compensated,.s-undone{background:#fbecc8}
        .s-suspended,.s-failed{background:#f8d3d3}.s-running,.s-in-flight{background:#d6e6fb}
        .s-compensating,.s-undoing{background:#fde2c4}.s-cancelled,.s-stopped,.s-skipped{background:#e3e6eb}
        .note{color:#5a6475;font-size:.92em}.flash{padding:.6em 1em;border:1px solid;margin-bottom:1em}
        .flash.ok{background:#e7f6ea;border-color:#8cc79a}.flash.bad{background:#fbe9e9;border-color:#e09a9a}
        .why{background:#fff;border-left:4px solid #8a94a6;padding:.5em 1em;margin:.5em 0 1em}.why.stuck{border-color:#c9532c}
        pre{background:#fff;border:1px solid #e3e6eb;padding:.6em;overflow:auto;max-height:24em}
        tr.branch td:first-child{padding-left:2em}.repairs{display:flex;flex-wrap:wrap;gap:1em}
        .repairs form{background:#fff;border:1px solid #e3e6eb;padding:.6em 1em;min-width:16em}
        .repairs label{display:block;margin:.3em 0}.repairs input,.repairs select{width:100%}
        .refused{color:#8a3b12}svg rect{fill:#4a78c2}
        """

    // MARK: - Overview

    /// `/`: counts by status, the active sagas by workflow and step, throughput, and the pool's workers.
    public static func overview(stats: SagaStats, pool: PoolStatus?, access: ConsoleAccess) -> HTML {
        let now = stats.now
        let cards = stats.byStatus.map { entry -> HTML in
            """
            <a class="card s-\(entry.status.rawValue)" id="count-\(entry.status.rawValue)" \
            href="/sagas?status=\(entry.status.rawValue)"><b>\(entry.count)</b>\(entry.status.rawValue)</a>
            """
        }
        var byWorkflow: [String: (running: Int, compensating: Int, suspended: Int)] = [:]
        for step in stats.bySteps {
            var sum = byWorkflow[step.workflow] ?? (0, 0, 0)
            sum.running += step.running
            sum.compensating += step.compensating
            sum.suspended += step.suspended
            byWorkflow[step.workflow] = sum
        }
        let workflowRows = byWorkflow.keys.sorted().map { workflow -> HTML in
            let sum = byWorkflow[workflow] ?? (0, 0, 0)
            return """
                <tr><td><a href="/sagas?workflow=\(URLText.component(workflow))">\(workflow)</a></td>\
                <td class="num">\(sum.running)</td><td class="num">\(sum.compensating)</td>\
                <td class="num">\(sum.suspended)</td></tr>
                """
        }
        let stepRows = stats.bySteps.map { step -> HTML in
            let query = URLText.query([("workflow", step.workflow), ("step", step.step)])
            return """
                <tr><td>\(step.workflow)</td><td><a href="/sagas\(query)">\(step.step)</a></td>\
                <td class="num">\(step.running)</td><td class="num">\(step.compensating)</td>\
                <td class="num">\(step.suspended)</td></tr>
                """
        }
        let throughput = stats.throughput
        let minutes = Int(throughput.window.milliseconds / 60_000)
        let finished = [SagaStatus.completed, .compensated, .cancelled, .suspended].map { status -> HTML in
            "<td class=\"num\">\(throughput.finished[status] ?? 0)</td>"
        }
        var body: HTML = """
            <h1>Overview</h1><p class="note">\(Words.count(stats.total, "saga")) in this pool at \
            \(TimeText.iso(now)); the page refreshes every 10 seconds.</p>
            <div class="cards" id="status-counts">\(cards)</div>
            <h2>Throughput, last \(minutes) minutes</h2>
            <table id="throughput"><tr><th>started</th><th>completed</th><th>compensated</th><th>cancelled</th>\
            <th>suspended</th></tr><tr><td class="num">\(throughput.started)</td>\(finished)</tr></table>
            \(bars(throughput))
            <h2>Active sagas by workflow</h2>
            """
        if workflowRows.isEmpty {
            body += "<p id=\"active-by-workflow\">No saga is running, compensating or suspended.</p>"
        } else {
            body += """
                <table id="active-by-workflow"><tr><th>workflow</th><th>running</th><th>compensating</th>\
                <th>suspended</th></tr>\(workflowRows)</table>
                <h2>Active sagas by step</h2><table id="active-by-step"><tr><th>workflow</th><th>step</th>\
                <th>running</th><th>compensating</th><th>suspended</th></tr>\(stepRows)</table>
                """
        }
        if let oldest = stats.oldestInFlight {
            body += """
                <p>Oldest unfinished: \(sagaLink(oldest.key)) at \(oldest.currentStep ?? "-"), started \
                \(TimeText.relative(oldest.startedAt, now: now)).</p>
                """
        }
        if let pool { body += workers(pool) }
        return layout(title: "Overview", access: access, active: "overview", refresh: 10, body)
    }

    /// Completions per bucket as an inline SVG bar chart (no script).
    static func bars(_ throughput: SagaStats.Throughput) -> HTML {
        let counts = throughput.completedPerBucket
        guard !counts.isEmpty else { return .empty }
        let peak = max(1, counts.max() ?? 1)
        let width = 18
        let height = 60
        let rects = counts.enumerated().map { index, count -> HTML in
            let barHeight = count * height / peak
            return """
                <rect x="\(index * width)" y="\(height - barHeight)" width="\(width - 3)" height="\(barHeight)">\
                <title>\(count) completed</title></rect>
                """
        }
        let seconds = Int(throughput.bucket.milliseconds / 1000)
        return """
            <figure><svg id="throughput-chart" role="img" aria-label="completions per \(seconds) seconds" \
            width="\(counts.count * width)" height="\(height)">\(rects)</svg><figcaption class="note">completed per \
            \(seconds) s, oldest first; the tallest bar is \(peak)</figcaption></figure>
            """
    }

    static func workers(_ pool: PoolStatus) -> HTML {
        let rows = pool.workers.map { worker -> HTML in
            """
            <tr><td>\(worker.worker)</td><td>\(worker.state.rawValue)</td><td>\(worker.host) pid \(Int(worker.pid))</td>\
            <td>\(PoolStatus.compact(worker.partitions))</td><td class="num">\(worker.inFlightSagas)</td>\
            <td>\(TimeText.relative(worker.updatedAt, now: pool.now))</td></tr>
            """
        }
        let unowned = pool.unowned
        return """
            <h2>Workers</h2><table id="workers"><tr><th>worker</th><th>state</th><th>where</th><th>partitions</th>\
            <th>in flight</th><th>heartbeat</th></tr>\(rows)</table>
            <p class="note">\(pool.partitionCount) partitions; \(unowned.isEmpty ? "every one has an owner" : "without an owner: \(PoolStatus.compact(unowned))").</p>
            """
    }

    // MARK: - Saga list

    /// `/sagas`: one page of sagas the filter selects.
    public static func list(_ page: SagaPage, filter: SagaFilter, now: Timestamp, access: ConsoleAccess) -> HTML {
        let statuses = ["", "active", "running", "compensating", "suspended", "completed", "compensated", "cancelled"]
        let current = filter.statuses.map(\.rawValue).joined(separator: ",")
        let options = statuses.map { status -> HTML in
            "<option value=\"\(status)\"\(status == current ? HTML(" selected") : .empty)>\(status.isEmpty ? "any" : status)</option>"
        }
        let rows = page.rows.map { row -> HTML in
            """
            <tr><td>\(sagaLink(row.key))</td><td>\(row.key.workflow)</td><td>\(statusBadge(row.status.rawValue))</td>\
            <td>\(row.currentStep ?? "-")</td><td>\(row.failureCode ?? "")</td>\
            <td>\(TimeText.relative(row.updatedAt, now: now))</td></tr>
            """
        }
        let body: HTML = """
            <h1>Sagas</h1>
            <form method="get" action="/sagas"><label>status <select name="status">\(options)</select></label> \
            <label>workflow <input name="workflow" value="\(filter.workflow ?? "")"></label> \
            <label>step <input name="step" value="\(filter.step ?? "")"></label> <button type="submit">Show</button></form>
            <table id="sagas"><tr><th>saga</th><th>workflow</th><th>status</th><th>step</th><th>failure</th>\
            <th>last progress</th></tr>\(rows)</table>
            <p class="note">\(page.rows.isEmpty ? "No saga matches." : "Oldest progress first")\
            \(page.hasMore ? HTML("; more match than this page shows: narrow the filter.") : ".")</p>
            """
        return layout(title: "Sagas", access: access, active: "sagas", body)
    }

    // MARK: - Stuck board

    /// `/stuck`: stuck sagas grouped by failure code (or step, or workflow), each group with its first members.
    public static func stuck(_ groups: StuckGroups, access: ConsoleAccess) -> HTML {
        let now = groups.now
        let tabs = StuckGrouping.allCases.map { grouping -> HTML in
            let query = URLText.query([("group", grouping.rawValue), ("code", groups.selection.code)])
            return grouping == groups.grouping
                ? "<b>by \(grouping.rawValue)</b>" : "<a href=\"/stuck\(query)\">by \(grouping.rawValue)</a>"
        }
        let sections = groups.groups.map { group -> HTML in
            let classes = group.classes.sorted { $0.key.rawValue < $1.key.rawValue }.map { entry -> HTML in
                "<span class=\"badge\">\(entry.value) \(entry.key.shortTitle)</span> "
            }
            let rows = group.members.map { member -> HTML in
                """
                <tr><td>\(sagaLink(member.row.key))</td><td>\(statusBadge(member.row.status.rawValue))</td>\
                <td>\(member.row.currentStep ?? "-")</td><td>\(member.diagnosis.brief)</td>\
                <td>\(TimeText.relative(member.row.updatedAt, now: now))</td></tr>
                """
            }
            let more: HTML =
                group.count > group.members.count
                ? "<p class=\"note\">and \(group.count - group.members.count) more</p>" : .empty
            return """
                <section class="group" data-key="\(group.key)"><h2>\(group.key) <span class="badge">\(group.count)</span> \
                \(classes)</h2><table><tr><th>saga</th><th>status</th><th>step</th><th>why</th><th>last progress</th>\
                </tr>\(rows)</table>\(more)</section>
                """
        }
        let filter: HTML =
            groups.selection.code.map { code in
                "<p>Only failure code <b>\(code)</b> (<a href=\"/stuck?group=\(groups.grouping.rawValue)\">all</a>).</p>"
            } ?? .empty
        let body: HTML = """
            <h1>Stuck sagas</h1><p>\(tabs)</p>\(filter)
            <p class="note" id="stuck-total">\(Words.count(groups.total, "stuck saga")); the page refreshes every 10 seconds.</p>
            \(sections.isEmpty ? "<p>Nothing is stuck.</p>" : sections.joined())
            """
        return layout(title: "Stuck", access: access, active: "stuck", refresh: 10, body)
    }

    // MARK: - Saga page

    /// What happened when a repair was sent from the saga page (shown once above it).
    public struct Flash: Sendable, Hashable {
        /// Whether it went as asked.
        public var ok: Bool
        /// One line.
        public var message: String

        public init(ok: Bool, message: String) {
            self.ok = ok
            self.message = message
        }
    }

    /// The repair controls of a saga page: each action with what the local check says of it.
    public struct RepairChoices: Sendable, Hashable {
        /// Retry (or resume): the engine's prediction, or why it is refused.
        public var retry: RepairCheck?
        /// Compensate.
        public var compensate: RepairCheck?
        /// Cancel.
        public var cancel: RepairCheck?
        /// A failed step a skip could name, with its failed branches (by item label; none for a plain step).
        public struct Skippable: Sendable, Hashable {
            public var step: String
            public var branches: [String]

            public init(step: String, branches: [String]) {
                self.step = step
                self.branches = branches
            }
        }

        /// The steps (and their failed branches) a skip could name.
        public var skippable: [Skippable]
        /// The steps a reset could run again (those that ran, after the pivot once it passed), in order.
        public var resettable: [String]

        public init(
            retry: RepairCheck?, compensate: RepairCheck?, cancel: RepairCheck?,
            skippable: [Skippable], resettable: [String] = []
        ) {
            self.retry = retry
            self.compensate = compensate
            self.cancel = cancel
            self.skippable = skippable
            self.resettable = resettable
        }
    }

    /// `/sagas/WORKFLOW/ID`: the facts, why it is where it is, the timeline of steps and branches (forward and
    /// compensation), input and outputs, the whole journal, and (signed in) the repairs.
    public static func saga(
        _ detail: SagaDetail, journal: [JournalLine], choices: RepairChoices?, flash: Flash?, access: ConsoleAccess
    ) -> HTML {
        let row = detail.row
        let now = detail.now
        var facts: [(String, HTML)] = [
            ("workflow", "\(row.key.workflow) v\(row.version) (definition \(String(row.definitionHash.prefix(12))))"),
            ("status", statusBadge(row.status.rawValue)),
            ("current step", "\(row.currentStep ?? "-")"),
            ("started", "\(TimeText.withRelative(row.startedAt, now: now))"),
            ("last progress", "\(TimeText.withRelative(row.updatedAt, now: now))"),
            ("written by", "\(row.owner ?? "-")"),
        ]
        if let placement = detail.placement {
            facts.append(
                ("partition", "\(PoolDirectory.name(ofPartition: placement.partition)) (queue \(placement.queue))"))
        }
        if let archived = detail.archived {
            facts.append(("archived", "\(archived.file) (\(TimeText.withRelative(archived.at, now: now)))"))
        }
        if let failure = detail.failure {
            let label = failure.branch.map { "\(failure.step)[\($0)]" } ?? failure.step
            facts.append(
                (
                    "failure",
                    """
                    <span id="failure-code">\(failure.error.code)</span> at \(label): \(failure.error.message)\
                    \(failure.error.retryable ? "" : " (not retryable)"), \(TimeText.relative(failure.at, now: now))
                    """
                ))
        }
        if let pivot = detail.pivotStep {
            facts.append(("pivot", "\(pivot) (\(detail.pivotPassed ? "passed: failures now suspend" : "not passed"))"))
        }
        let factRows = facts.map { name, value -> HTML in "<tr><th>\(name)</th><td>\(value)</td></tr>" }
        let diagnosis = detail.diagnosis
        let suggestions = diagnosis.suggestions.map { suggestion -> HTML in "<li>\(suggestion)</li>" }
        let timeline = ShowView.timelineRows(detail).map { line -> HTML in
            let notes = line.notes.map { note -> HTML in "<div class=\"note\">\(note)</div>" }
            return """
                <tr class="\(line.branch == nil ? "step" : "branch")" data-step="\(line.step)">\
                <td>\(line.name)</td><td>\(statusBadge(line.status))</td><td>\(line.attempts)</td>\
                <td>\(line.time)</td><td>\(line.detail)\(notes)</td></tr>
                """
        }
        var body: HTML = ""
        if let flash {
            body +=
                "<div class=\"flash \(flash.ok ? "ok" : "bad")\" id=\"flash\" role=\"status\">\(flash.message)</div>"
        }
        body += """
            <h1 id="saga-title">\(row.key.workflow)/\(row.key.id) \(statusBadge(row.status.rawValue))</h1>
            <table id="facts">\(factRows)</table>
            <div class="why\(diagnosis.stuckClass?.isStuck == true ? HTML(" stuck") : .empty)" id="diagnosis"><b>\(diagnosis.stuckClass.map { $0.isStuck ? "Why stuck (\($0.shortTitle))" : "Why" } ?? "Why")</b>: \
            \(diagnosis.reason)<ul>\(suggestions)</ul></div>
            <h2>Steps</h2>
            <table id="timeline"><tr><th>step</th><th>status</th><th>attempts</th><th>time</th><th>detail</th></tr>\
            \(timeline)</table>
            """
        if let compensation = detail.compensation {
            let queue = compensation.queue.map { step -> HTML in "<li>\(step)</li>" }
            body += """
                <h2>Compensation</h2><div id="compensation"><p>\(compensation.purpose): \(compensation.undone) of \
                \(compensation.total) undone\(compensation.skipped > 0 ? " (\(compensation.skipped) skipped by an operator)" : "").</p>
                \(queue.isEmpty ? HTML.empty : "<p>Still to undo, in this order:</p><ol>\(queue)</ol>")
                \(compensation.owed.isEmpty ? HTML.empty : "<p class=\"refused\">Not undone, outcome unknown (check the participant): \(compensation.owed.joined(separator: ", "))</p>")</div>
                """
        }
        if row.status.isTerminal {
            body +=
                "<h2>Repairs</h2><p class=\"note\" id=\"repairs\">This saga has finished: there is nothing to repair.</p>"
        } else if let choices {
            body += repairs(row.key, choices: choices, access: access)
        }
        let outputs = detail.steps.compactMap { step -> HTML? in
            guard let output = step.output else { return nil }
            return "<details><summary>\(step.id)</summary><pre>\(PrettyJSON.render(output))</pre></details>"
        }
        body += """
            <h2>Input</h2><pre id="input">\(PrettyJSON.render(detail.input))</pre>
            \(outputs.isEmpty ? HTML.empty : "<h2>Step outputs</h2><div id=\"outputs\">\(outputs)</div>")
            """
        let journalRows = journal.map { line -> HTML in
            let attempt = line.facts?["attempt"]?.intValue.map { String($0) } ?? ""
            let code = line.facts?["code"]?.stringValue ?? ""
            return """
                <tr><td>\(TimeText.iso(line.at))</td><td>\(line.kind)</td><td>\(line.step ?? "")</td>\
                <td class="num">\(attempt)</td><td>\(code)</td><td>\(line.actor ?? "")</td><td>\(line.detail)</td></tr>
                """
        }
        body += """
            <h2>Journal</h2><table id="journal"><tr><th>time (UTC)</th><th>kind</th><th>step</th><th>attempt</th>\
            <th>error</th><th>by</th><th>detail</th></tr>\(journalRows)</table>
            """
        return layout(title: "\(row.key.workflow)/\(row.key.id)", access: access, active: "sagas", body)
    }

    /// The repair forms, or how to get them.
    static func repairs(_ key: SagaKey, choices: RepairChoices, access: ConsoleAccess) -> HTML {
        switch access {
        case .readOnly:
            return """
                <h2>Repairs</h2><p class="note" id="repairs">This console is read-only. Repair with `waybill sagas \
                retry|skip|compensate|cancel|reset`, or start `waybill ui` with an operator token.</p>
                """
        case .signedOut:
            return "<h2>Repairs</h2><p id=\"repairs\"><a href=\"/login\">Sign in</a> to repair this saga.</p>"
        case .signedIn(let actor):
            let action = "/sagas/\(URLText.component(key.workflow))/\(URLText.component(key.id))/repair"
            let reason: HTML = """
                <label>reason (journaled) <input name="reason" required placeholder="why, e.g. ticket OPS-42"></label>
                """
            func form(_ verb: String, _ title: String, _ check: RepairCheck?, extra: HTML = .empty) -> HTML {
                let verdict: HTML
                if let refusal = check?.refusal {
                    verdict = "<p class=\"refused\">Refused here: \(refusal)</p>"
                } else if let preview = check?.preview {
                    verdict = "<p class=\"note\">Expected: \(preview)</p>"
                } else {
                    verdict = .empty
                }
                let disabled = check?.refusal != nil
                return """
                    <form method="post" action="\(action)" id="repair-\(verb)"><input type="hidden" name="action" \
                    value="\(verb)"><b>\(title)</b>\(verdict)\(extra)\(reason)<button type="submit"\
                    \(disabled ? HTML(" disabled") : .empty)>\(title)</button></form>
                    """
            }
            var forms = [
                form("retry", "Retry", choices.retry), form("compensate", "Compensate", choices.compensate),
                form("cancel", "Cancel", choices.cancel),
            ]
            if !choices.skippable.isEmpty {
                let steps = choices.skippable.map { entry -> HTML in "<option>\(entry.step)</option>" }
                let branches = choices.skippable.flatMap(\.branches).map { branch -> HTML in
                    "<option>\(branch)</option>"
                }
                let branchField: HTML =
                    branches.isEmpty
                    ? .empty
                    : "<label>branch <select name=\"branch\"><option value=\"\">every failed branch</option>\(branches)</select></label>"
                forms.append(
                    form(
                        "skip", "Skip", nil,
                        extra: """
                            <label>step <select name="step">\(steps)</select></label>\(branchField)\
                            <label>output (JSON) <input name="output" value="{}"></label>
                            """))
            }
            if !choices.resettable.isEmpty {
                let steps = choices.resettable.map { step -> HTML in "<option>\(step)</option>" }
                forms.append(
                    form(
                        "reset", "Reset to", nil,
                        extra: """
                            <p class="note">Undoes, last first, what the step and the later ones did, then runs the \
                            step again.</p><label>step <select name="step">\(steps)</select></label>
                            """))
            }
            return """
                <h2>Repairs</h2><p class="note">Sent to the worker that owns the saga, as \(actor); the page shows the \
                saga after the worker answered.</p><div class="repairs" id="repairs">\(forms)</div>
                """
        }
    }

    // MARK: - Dead letters

    /// `/dead-letters`: the head of the dead-letter queue, with why each message was refused and where it came from.
    public static func deadLetters(
        _ letters: [DeadLetter], queue: String, error: String?, now: Date, access: ConsoleAccess
    ) -> HTML {
        var body: HTML = "<h1>Dead letters</h1><p class=\"note\">The head of <b>\(queue)</b>, oldest first.</p>"
        if let error {
            body += "<p class=\"flash bad\" id=\"dlq-error\">The dead-letter queue cannot be read: \(error)</p>"
        } else if letters.isEmpty {
            body += "<p id=\"dead-letters\">The dead-letter queue is empty.</p>"
        } else {
            let rows = letters.map { letter -> HTML in
                let body = String(decoding: letter.body.prefix(4096), as: UTF8.self)
                let at = letter.at.map { Timestamp($0) }
                return """
                    <tr><td class="num">\(letter.position)</td><td>\(at.map { TimeText.iso($0) } ?? "-")</td>\
                    <td>\(letter.reason)</td><td>\(DeadLetterView.origin(letter))</td><td>\(letter.id)</td>\
                    <td><details><summary>\(letter.body.count) bytes</summary><pre>\(body)</pre></details></td></tr>
                    """
            }
            body += """
                <table id="dead-letters"><tr><th>#</th><th>dead-lettered (UTC)</th><th>reason</th><th>from</th>\
                <th>message id</th><th>body</th></tr>\(rows)</table>
                <p class="note">Replay with `waybill dlq replay` once the cause is fixed.</p>
                """
        }
        return layout(title: "Dead letters", access: access, active: "dead-letters", body)
    }

    // MARK: - Sign-in and messages

    /// `/login`.
    public static func login(error: String?, access: ConsoleAccess) -> HTML {
        let problem: HTML = error.map { "<p class=\"flash bad\" id=\"login-error\">\($0)</p>" } ?? .empty
        let body: HTML = """
            <h1>Sign in to repair</h1>\(problem)
            <form method="post" action="/login" id="login" class="repairs"><div>\
            <label>your name (journaled with every repair) <input name="actor" required autocomplete="username"></label>\
            <label>operator token <input name="token" type="password" required autocomplete="current-password"></label>\
            <button type="submit">Sign in</button></div></form>
            <p class="note">The token is the one `waybill ui` was started with (WAYBILL_UI_TOKEN or --token-file).</p>
            """
        return layout(title: "Sign in", access: access, active: "", body)
    }

    /// A page that only says something (not found, refused), with a way back.
    public static func message(title: String, _ text: String, access: ConsoleAccess) -> HTML {
        layout(
            title: title, access: access, active: "",
            "<h1>\(title)</h1><p id=\"message\">\(text)</p><p><a href=\"/\">Back to the overview</a></p>")
    }

    // MARK: - Pieces

    static func sagaLink(_ key: SagaKey) -> HTML {
        "<a href=\"\(sagaPath(key))\">\(key.id)</a>"
    }

    /// `/sagas/WORKFLOW/ID`, percent-encoded.
    public static func sagaPath(_ key: SagaKey) -> String {
        "/sagas/\(URLText.component(key.workflow))/\(URLText.component(key.id))"
    }

    static func statusBadge(_ status: String) -> HTML {
        "<span class=\"badge s-\(status.replacingOccurrences(of: " ", with: "-"))\">\(status)</span>"
    }
}
