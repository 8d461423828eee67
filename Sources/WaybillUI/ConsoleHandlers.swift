import Foundation
import Hummingbird
import Logging
import NIOCore
import SagaEngine
import SagaStore
import WaybillDefinition
import WaybillOperations
import WaybillWire

/// The console's request handlers: read what a page needs, render it, or run a repair. Failures become pages with a
/// status (a bad filter 400, an unknown saga 404, a refused repair 403), never a bare error.
struct ConsoleHandlers: Sendable {
    let inspector: SagaInspector
    let configuration: ConsoleConfiguration
    let sessions: ConsoleSessions
    let logger: Logger

    // MARK: Pages

    func overview(_ request: Request) -> Response {
        let access = access(request)
        return page(access) {
            let now = Timestamp.now()
            let pool = inspector.pool.map { PoolStatus.read($0, now: now) }
            return ConsolePages.overview(stats: try inspector.stats(now: now), pool: pool, access: access)
        }
    }

    struct ListQuery: Decodable {
        var status: String?
        var workflow: String?
        var step: String?
    }

    func list(_ request: Request) -> Response {
        let access = access(request)
        return page(access) {
            let query = try Self.decode(ListQuery.self, request.uri.query ?? "")
            var filter = SagaFilter()
            if let status = query.status, !status.isEmpty { filter.statuses = try SagaFilter.parseStatuses(status) }
            filter.workflow = query.workflow.flatMap { $0.isEmpty ? nil : $0 }
            filter.step = query.step.flatMap { $0.isEmpty ? nil : $0 }
            filter.limit = 100
            let now = Timestamp.now()
            return ConsolePages.list(try inspector.list(filter, now: now), filter: filter, now: now, access: access)
        }
    }

    func saga(_ request: Request, key: SagaKey) -> Response {
        let access = access(request)
        let flash = sessions.takeFlash(request.cookies[ConsoleSessions.cookie]?.value, key: key)
        return page(access) {
            let now = Timestamp.now()
            let detail = try inspector.detail(
                SagaReference(key), journal: 0, now: now, policy: configuration.policy,
                poolName: configuration.poolName)
            let journal = try inspector.journal(of: key)
            var choices: ConsolePages.RepairChoices?
            if let record = try inspector.saga(key) {
                choices = Self.choices(record, inspector: inspector, detail: detail, now: now)
            }
            return ConsolePages.saga(detail, journal: journal, choices: choices, flash: flash, access: access)
        }
    }

    struct StuckQuery: Decodable {
        var group: String?
        var code: String?
    }

    func stuck(_ request: Request) -> Response {
        let access = access(request)
        return page(access) {
            let query = try Self.decode(StuckQuery.self, request.uri.query ?? "")
            let grouping = try query.group.flatMap { $0.isEmpty ? nil : $0 }.map {
                text throws(OperationsError) in try StuckGrouping.parse(text)
            }
            let code = query.code.flatMap { $0.isEmpty ? nil : $0 }
            return ConsolePages.stuck(
                try inspector.stuckGroups(
                    now: Timestamp.now(), policy: configuration.policy, grouping: grouping ?? .code,
                    selection: StuckSelection(code: code)),
                access: access)
        }
    }

    struct SearchQuery: Decodable {
        var q: String?
    }

    /// An order id or saga id (or `workflow/id`): straight to its page.
    func search(_ request: Request) -> Response {
        let access = access(request)
        let text = ((try? Self.decode(SearchQuery.self, request.uri.query ?? ""))?.q ?? "")
            .trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else {
            return Self.html(
                ConsolePages.message(title: "Find a saga", "Type an order id or a saga id.", access: access),
                status: .badRequest)
        }
        do {
            let key: SagaKey
            switch try inspector.locate(try SagaReference(parsing: text)) {
            case .stored(let stored): key = stored
            case .archived(let saga, _): key = saga.key
            }
            return Response.redirect(to: ConsolePages.sagaPath(key), type: .found)
        } catch {
            return failure(error, access: access)
        }
    }

    func deadLetters(_ request: Request) async -> Response {
        let access = access(request)
        guard let broker = configuration.broker else {
            return Self.html(
                ConsolePages.deadLetters(
                    [], queue: configuration.deadLetterQueue,
                    error: "no broker is configured: start waybill ui with --amqp-url (or WAYBILL_AMQP_URL)",
                    now: Date(), access: access))
        }
        do {
            let letters = try await DeadLetterQueue(queue: configuration.deadLetterQueue, idle: .milliseconds(500))
                .browse(broker: broker, limit: 100)
            return Self.html(
                ConsolePages.deadLetters(
                    letters, queue: configuration.deadLetterQueue, error: nil, now: Date(), access: access))
        } catch {
            return Self.html(
                ConsolePages.deadLetters(
                    [], queue: configuration.deadLetterQueue, error: error.description, now: Date(), access: access),
                status: .serviceUnavailable)
        }
    }

    // MARK: Sign-in

    func loginPage(_ request: Request) -> Response {
        let access = access(request)
        guard configuration.token != nil else {
            return Self.html(
                ConsolePages.message(
                    title: "Read-only",
                    "This console was started without an operator token, so it cannot repair; start waybill ui with "
                        + "WAYBILL_UI_TOKEN or --token-file to allow repairs.", access: access),
                status: .forbidden)
        }
        return Self.html(ConsolePages.login(error: nil, access: access))
    }

    struct LoginForm: Decodable {
        var actor: String?
        var token: String?
    }

    func login(_ request: Request) async -> Response {
        let access = access(request)
        guard let expected = configuration.token else { return loginPage(request) }
        guard Self.sameOrigin(request) else { return refusedOrigin(access) }
        let form = try? Self.decode(LoginForm.self, await Self.body(request))
        let actor = (form?.actor ?? "").trimmingCharacters(in: .whitespaces)
        guard Self.constantTimeEqual(form?.token ?? "", expected) else {
            logger.warning("operator console: sign-in refused (wrong token)", metadata: ["actor": "\(actor)"])
            // Slows guessing down; a person does not notice.
            try? await Task.sleep(for: .milliseconds(500))
            return Self.html(
                ConsolePages.login(error: "That is not the operator token.", access: access), status: .unauthorized)
        }
        guard !actor.isEmpty, actor.count <= 64, !actor.contains(where: \.isNewline) else {
            return Self.html(
                ConsolePages.login(
                    error: "Give your name (up to 64 characters): repairs are journaled with it.", access: access),
                status: .badRequest)
        }
        let session = sessions.open(actor: actor)
        logger.notice("operator console: signed in", metadata: ["actor": "\(actor)"])
        var response = Response.redirect(to: "/", type: .normal)
        response.setCookie(
            Cookie(
                name: ConsoleSessions.cookie, value: session,
                maxAge: Int(ConsoleSessions.lifetime.components.seconds), path: "/", httpOnly: true,
                sameSite: .strict))
        return response
    }

    func logout(_ request: Request) -> Response {
        let id = request.cookies[ConsoleSessions.cookie]?.value
        guard Self.sameOrigin(request) else { return refusedOrigin(access(request)) }
        sessions.close(id)
        var response = Response.redirect(to: "/", type: .normal)
        response.setCookie(
            Cookie(name: ConsoleSessions.cookie, value: "", maxAge: 0, path: "/", httpOnly: true, sameSite: .strict))
        return response
    }

    // MARK: Repairs

    struct RepairForm: Decodable {
        var action: String?
        var step: String?
        var branch: String?
        var output: String?
        var reason: String?
    }

    /// Runs one repair as `waybill sagas retry|skip|compensate|cancel` would, for the signed-in operator: the local
    /// check first, then the owning worker, then back to the saga page, which shows the outcome once.
    func repair(_ request: Request, key: SagaKey) async -> Response {
        let access = access(request)
        guard let actor = access.actor, let session = request.cookies[ConsoleSessions.cookie]?.value else {
            logger.warning("operator console: repair refused (not signed in)", metadata: ["saga": "\(key)"])
            let text =
                configuration.token == nil
                ? "This console is read-only: it was started without an operator token."
                : "Sign in with the operator token to repair."
            return Self.html(ConsolePages.message(title: "Refused", text, access: access), status: .forbidden)
        }
        guard Self.sameOrigin(request) else { return refusedOrigin(access) }
        let back = Response.redirect(to: ConsolePages.sagaPath(key), type: .normal)
        func done(_ ok: Bool, _ message: String) -> Response {
            sessions.setFlash(session, key: key, ConsolePages.Flash(ok: ok, message: message))
            return back
        }
        guard let form = try? Self.decode(RepairForm.self, await Self.body(request)) else {
            return done(false, "The repair form could not be read; nothing was sent.")
        }
        let reason = (form.reason ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard !reason.isEmpty else { return done(false, "Say why (the reason is journaled); nothing was sent.") }
        let action: ControlMessage.Action
        switch form.action ?? "" {
        case "retry": action = .retry
        case "skip": action = .skip
        case "compensate": action = .compensate
        case "cancel": action = .cancel
        case "reset": action = .reset
        default: return done(false, "Unknown repair '\(form.action ?? "")'; nothing was sent.")
        }
        var output: JSONValue?
        if action == .skip, let text = form.output, !text.trimmingCharacters(in: .whitespaces).isEmpty {
            do {
                output = try JSONText.decode(text)
            } catch {
                return done(false, "The output is not JSON (\(error.description)); nothing was sent.")
            }
        }
        let repair = RepairRequest(
            action: action,
            step: action == .skip || action == .reset ? form.step.flatMap { $0.isEmpty ? nil : $0 } : nil,
            output: output,
            branch: action == .skip ? form.branch.flatMap { $0.isEmpty ? nil : $0 } : nil, by: actor, reason: reason)
        do {
            guard let record = try inspector.saga(key) else {
                return done(false, "Saga \(key) is not in this pool.")
            }
            let plan = inspector.plan(repair, records: [record], filter: nil, now: Timestamp.now())
            if let refusal = plan.checks.first?.refusal {
                return done(false, "\(repair.verb) refused here, nothing was sent: \(refusal)")
            }
            guard let broker = configuration.broker, let pool = inspector.pool else {
                return done(false, "No broker is configured, so nothing can be sent to the worker.")
            }
            let route = RepairRoute(pool: pool, poolName: configuration.poolName)
            let timeout = configuration.repairTimeout
            logger.notice(
                "operator console: sending \(repair.verb)",
                metadata: ["saga": "\(key)", "actor": "\(actor)", "reason": "\(reason)"])
            let run = try await AMQPControlChannel.with(broker: broker) { channel in
                try await RepairRunner(
                    inspector: inspector, channel: channel, route: route, timeout: timeout, now: { Timestamp.now() }
                ).run(plan)
            }
            let outcome = run.outcomes.first?.outcome ?? .failed("nothing was sent")
            let applied: Bool
            if case .replied(let reply) = outcome, reply.status == .applied { applied = true } else { applied = false }
            logger.notice(
                "operator console: \(repair.verb) \(outcome.label)",
                metadata: ["saga": "\(key)", "actor": "\(actor)", "outcome": "\(outcome.message)"])
            return done(applied, "\(repair.verb) by \(actor): \(outcome.label): \(outcome.message)")
        } catch {
            return done(false, "\(repair.verb) not done: \(error)")
        }
    }

    /// What the saga page offers: retry, compensate and cancel as the local check judges them now, and the failed
    /// steps (with their failed branches) a skip could name.
    static func choices(
        _ record: SagaRecord, inspector: SagaInspector, detail: SagaDetail, now: Timestamp
    ) -> ConsolePages.RepairChoices {
        let definition = (try? inspector.definition(hash: record.row.definitionHash)) ?? nil
        func check(_ action: ControlMessage.Action) -> RepairCheck {
            RepairPlanner.check(
                RepairRequest(action: action, by: "-", reason: "-"), record: record, definition: definition, now: now)
        }
        let skippable = detail.steps.compactMap { step -> ConsolePages.RepairChoices.Skippable? in
            let failed = step.branches.filter { $0.status == .failed }
            guard !failed.isEmpty || step.status == .failed else { return nil }
            return .init(step: step.id, branches: step.fansOut ? failed.map { $0.itemLabel ?? String($0.index) } : [])
        }
        let pivot = detail.pivotPassed ? detail.steps.firstIndex(where: \.pivot) : nil
        let resettable = detail.steps.enumerated().compactMap { index, step -> String? in
            guard step.startedAt != nil, index > (pivot ?? -1) else { return nil }
            return step.id
        }
        return ConsolePages.RepairChoices(
            retry: check(.retry), compensate: check(.compensate), cancel: check(.cancel),
            skippable: record.row.status == .suspended || record.row.status == .compensating ? skippable : [],
            resettable: record.row.status == .compensating ? [] : resettable)
    }

    // MARK: Helpers

    private func access(_ request: Request) -> ConsoleAccess {
        guard configuration.token != nil else { return .readOnly }
        if let actor = sessions.actor(request.cookies[ConsoleSessions.cookie]?.value) { return .signedIn(actor: actor) }
        return .signedOut
    }

    /// Renders what `body` builds; an error becomes a page saying what went wrong.
    private func page(_ access: ConsoleAccess, _ body: () throws -> HTML) -> Response {
        do {
            return Self.html(try body())
        } catch {
            return failure(error, access: access)
        }
    }

    private func failure(_ error: any Error, access: ConsoleAccess) -> Response {
        guard let error = error as? OperationsError else {
            return Self.html(
                ConsolePages.message(title: "Bad request", "\(error)", access: access), status: .badRequest)
        }
        let (title, status): (String, HTTPResponse.Status) =
            switch error.code {
            case .notFound: ("Not found", .notFound)
            case .badArgument: ("Bad request", .badRequest)
            default: ("Cannot read the pool", .internalServerError)
            }
        return Self.html(ConsolePages.message(title: title, error.description, access: access), status: status)
    }

    private func refusedOrigin(_ access: ConsoleAccess) -> Response {
        Self.html(
            ConsolePages.message(
                title: "Refused", "This form was not sent from the console's own pages.", access: access),
            status: .forbidden)
    }

    /// A POST comes from the console's own pages: its `Origin` (sent by browsers on every POST) names the host the
    /// request was sent to. Without an `Origin` header the SameSite=Strict cookie is the only guard.
    static func sameOrigin(_ request: Request) -> Bool {
        guard let origin = request.headers[.origin] else { return true }
        guard let authority = request.head.authority else { return false }
        return origin == "http://\(authority)" || origin == "https://\(authority)"
    }

    static func constantTimeEqual(_ given: String, _ expected: String) -> Bool {
        let a = Array(given.utf8)
        let b = Array(expected.utf8)
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<b.count { difference |= (index < a.count ? a[index] : 0) ^ b[index] }
        return difference == 0
    }

    static func body(_ request: Request) async -> String {
        var request = request
        guard let buffer = try? await request.collectBody(upTo: 64 * 1024) else { return "" }
        return String(buffer: buffer)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        do {
            return try URLEncodedFormDecoder().decode(type, from: text)
        } catch {
            throw OperationsError(.badArgument, "the request's fields cannot be read: \(error)")
        }
    }

    static let securityHeaders: HTTPFields = [
        .contentType: "text/html; charset=utf-8",
        .cacheControl: "no-store",
        HTTPFields.Element.Name("Content-Security-Policy")!:
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
            + "frame-ancestors 'none'; base-uri 'none'",
        HTTPFields.Element.Name("X-Content-Type-Options")!: "nosniff",
        HTTPFields.Element.Name("Referrer-Policy")!: "same-origin",
    ]

    static func html(_ page: HTML, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: securityHeaders, body: ResponseBody(byteBuffer: ByteBuffer(string: page.rendered)))
    }
}
