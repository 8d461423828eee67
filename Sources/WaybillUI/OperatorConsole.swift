import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import SagaEngine
import SagaStore
import ServiceLifecycle
import Synchronization
import WaybillDefinition
import WaybillOperations
import WaybillWire

/// How `waybill ui` serves a pool.
public struct ConsoleConfiguration: Sendable {
    /// Where it listens (loopback by default: the console has no TLS).
    public var host: String
    /// The port; 0 picks a free one (``OperatorConsole`` reports it).
    public var port: Int
    /// The operator token; `nil` keeps the console read-only.
    public var token: String?
    /// The prefix of the pool's queues (where repairs go).
    public var poolName: String
    /// The broker, for repairs and the dead-letter queue; `nil` leaves both out.
    public var broker: BrokerSettings?
    /// The dead-letter queue the dead-letters page reads.
    public var deadLetterQueue: String
    /// How long a repair waits for the owning worker's answer.
    public var repairTimeout: Duration
    /// When a saga counts as stuck.
    public var policy: StuckPolicy

    public init(
        host: String = "127.0.0.1", port: Int = 8080, token: String? = nil, poolName: String,
        broker: BrokerSettings?, deadLetterQueue: String, repairTimeout: Duration = .seconds(30),
        policy: StuckPolicy = StuckPolicy()
    ) {
        self.host = host
        self.port = port
        self.token = token
        self.poolName = poolName
        self.broker = broker
        self.deadLetterQueue = deadLetterQueue
        self.repairTimeout = repairTimeout
        self.policy = policy
    }
}

/// The operator web view (`waybill ui`): server-rendered pages over a pool's partition files, through the same reads
/// as `waybill sagas` (``SagaInspector``), and repairs through the owning worker, as `waybill sagas retry|skip|...`
/// send them (``RepairRunner``).
///
/// Read-only unless started with a token. With one, an operator signs in with the token and a name; repairs are
/// then POSTed forms, accepted only with the session cookie (HttpOnly, SameSite=Strict) and from the console's own
/// origin, and journaled on the saga with that name as the actor. Every page is sent with a content security policy
/// that allows no script at all.
public struct OperatorConsole: Service {
    private let inspector: SagaInspector
    private let configuration: ConsoleConfiguration
    private let logger: Logger
    private let onListening: @Sendable (Int) async -> Void
    private let sessions = ConsoleSessions()

    /// A console on `configuration`'s address; `onListening` gets the port once the server listens.
    public init(
        inspector: SagaInspector, configuration: ConsoleConfiguration, logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        self.inspector = inspector
        self.configuration = configuration
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        try await application().run()
    }

    /// The console as a Hummingbird application (``run()`` serves it; tests drive it with HummingbirdTesting).
    public func application() -> some ApplicationProtocol {
        let router = Router()
        if Loopback.isLoopback(configuration.host) { router.add(middleware: LoopbackOnly()) }
        let handlers = ConsoleHandlers(
            inspector: inspector, configuration: configuration, sessions: sessions, logger: logger)
        // The pages read SQLite synchronously (a pool's files on one thread per core): they run on NIO's blocking
        // pool, not on the threads every task shares.
        let blocking = NIOThreadPool.singleton
        router.get("/") { request, _ in try await blocking.runIfActive { handlers.overview(request) } }
        router.get("/sagas") { request, _ in try await blocking.runIfActive { handlers.list(request) } }
        router.get("/sagas/:workflow/:id") { request, context in
            let key = try Self.key(context)
            return try await blocking.runIfActive { handlers.saga(request, key: key) }
        }
        router.post("/sagas/:workflow/:id/repair") { request, context in
            await handlers.repair(request, key: try Self.key(context))
        }
        router.get("/stuck") { request, _ in try await blocking.runIfActive { handlers.stuck(request) } }
        router.get("/search") { request, _ in try await blocking.runIfActive { handlers.search(request) } }
        router.get("/dead-letters") { request, _ in await handlers.deadLetters(request) }
        router.get("/login") { request, _ in handlers.loginPage(request) }
        router.post("/login") { request, _ in await handlers.login(request) }
        router.post("/logout") { request, _ in handlers.logout(request) }
        let onListening = onListening
        let logger = logger
        let readOnly = configuration.token == nil
        return Application(
            router: router,
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.host, port: configuration.port), serverName: "waybill-ui"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("operator console listening", metadata: ["port": "\(port)", "repairs": "\(!readOnly)"])
                await onListening(port)
            },
            logger: logger)
    }

    private static func key(_ context: BasicRequestContext) throws -> SagaKey {
        let workflow = try context.parameters.require("workflow")
        let id = try context.parameters.require("id")
        return SagaKey(
            workflow: workflow.removingPercentEncoding ?? workflow, id: id.removingPercentEncoding ?? id)
    }
}

/// Signed-in operators: a random session id (the cookie) per sign-in, with the name repairs are journaled under and
/// the outcome of the last repair to show once.
final class ConsoleSessions: Sendable {
    struct Session {
        var actor: String
        var expires: ContinuousClock.Instant
        var flash: (key: SagaKey, flash: ConsolePages.Flash)?
    }

    static let cookie = "waybill_session"
    static let lifetime = Duration.seconds(12 * 3600)
    private let sessions = Mutex<[String: Session]>([:])

    /// A new session for `actor`; returns its id.
    func open(actor: String) -> String {
        var generator = SystemRandomNumberGenerator()
        let id = (0..<4).map { _ in String(generator.next() as UInt64, radix: 16).leftPadded(to: 16) }.joined()
        let expires = ContinuousClock.now + Self.lifetime
        sessions.withLock { table in
            table = table.filter { $0.value.expires > ContinuousClock.now }
            table[id] = Session(actor: actor, expires: expires)
        }
        return id
    }

    /// The actor of the session `id`, if it is open.
    func actor(_ id: String?) -> String? {
        guard let id else { return nil }
        return sessions.withLock { table in
            guard let session = table[id], session.expires > ContinuousClock.now else { return nil }
            return session.actor
        }
    }

    func close(_ id: String?) {
        guard let id else { return }
        _ = sessions.withLock { $0.removeValue(forKey: id) }
    }

    func setFlash(_ id: String, key: SagaKey, _ flash: ConsolePages.Flash) {
        sessions.withLock { $0[id]?.flash = (key, flash) }
    }

    /// The flash left for `key`'s page, removed.
    func takeFlash(_ id: String?, key: SagaKey) -> ConsolePages.Flash? {
        guard let id else { return nil }
        return sessions.withLock { table in
            guard let pending = table[id]?.flash, pending.key == key else { return nil }
            table[id]?.flash = nil
            return pending.flash
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// On a console bound to loopback, refuses requests whose `Host` is not a loopback name: a web page on a domain that
/// re-resolves to 127.0.0.1 (DNS rebinding) would otherwise read the console as its own origin.
struct LoopbackOnly<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let authority = request.head.authority, Loopback.isLoopback(Loopback.host(of: authority)) else {
            return ConsoleHandlers.html(
                ConsolePages.message(
                    title: "Refused",
                    "This console answers only to localhost, 127.0.0.1 or [::1]; open it by one of those names.",
                    access: .readOnly),
                status: .misdirectedRequest)
        }
        return try await next(request, context)
    }
}

/// Loopback names and the host part of a `Host` header.
enum Loopback {
    /// Whether `host` names this machine's loopback interface.
    static func isLoopback(_ host: String) -> Bool {
        let name = host.lowercased()
        return name == "localhost" || name == "::1" || name.hasPrefix("127.")
    }

    /// The host of `host:port`, `[v6]:port`, or a bare host.
    static func host(of authority: String) -> String {
        if authority.hasPrefix("["), let end = authority.firstIndex(of: "]") {
            return String(authority[authority.index(after: authority.startIndex)..<end])
        }
        if authority.filter({ $0 == ":" }).count == 1, let colon = authority.firstIndex(of: ":") {
            return String(authority[..<colon])
        }
        return authority
    }
}
