import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import WaybillOperations
import WaybillUI
import WaybillWorker

/// `waybill ui`: the operator web view of a pool.
struct UICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ui",
        abstract: "Serve the operator web view of a pool: overview, stuck board, sagas, dead letters, repairs.",
        discussion: """
            Pages are rendered on the server from the pool's partition files (the same reads as `waybill sagas`), \
            with no JavaScript. The console is read-only unless it has an operator token: put it in \
            WAYBILL_UI_TOKEN or in a file named by --token-file (never on the command line, where ps shows it). \
            With a token, an operator signs in with it and a name; repairs go to the worker that owns the saga, \
            as `waybill sagas retry|skip|compensate|cancel` send them, and are journaled with that name.

            It listens on 127.0.0.1:8080 by default. It has no TLS: keep it on loopback, or behind a proxy that \
            terminates TLS and restricts who reaches it.

            Examples:
              waybill ui --data-dir /var/lib/waybill
              WAYBILL_UI_TOKEN=$(cat /run/secrets/ui-token) waybill ui --address 127.0.0.1:8081
            """
    )

    @Option(help: ArgumentHelp("Where to listen (default 127.0.0.1:8080).", valueName: "host:port"))
    var address = "127.0.0.1:8080"

    @Option(
        help: ArgumentHelp(
            "A file holding the operator token that allows repairs (default: WAYBILL_UI_TOKEN; neither: read-only).",
            valueName: "file"))
    var tokenFile: String?

    @Option(help: ArgumentHelp("No progress for this long counts as stuck (default 15m).", valueName: "duration"))
    var stuckFor = "15m"

    @Option(
        help: ArgumentHelp(
            "The dead-letter queue (default: `dead_letter_queue` in --config, else waybill.dead-letter).",
            valueName: "queue"))
    var deadLetterQueue: String?

    @OptionGroup var store: StoreOptions
    @OptionGroup var broker: BrokerOptions

    func run() async throws {
        try await Operator.run("ui") {
            let listen: HTTPAddress
            do {
                listen = try HTTPAddress(parsing: address)
            } catch {
                throw OperationsError(
                    .badArgument, "--address '\(address)': expected host:port, e.g. 127.0.0.1:8080", cause: error)
            }
            let token = try readToken()
            let database = try store.open()
            guard database.pool != nil else {
                throw OperationsError(
                    .badArgument, "waybill ui serves a pool: give its data directory with --data-dir instead of --db")
            }
            let settings = try broker.settings(store: store)
            let configuration = ConsoleConfiguration(
                host: listen.host, port: listen.port, token: token, poolName: try store.resolvedPoolName(),
                broker: settings.url.isEmpty ? nil : settings,
                deadLetterQueue: try deadLetterQueue ?? store.workerConfiguration().deadLetterQueue,
                repairTimeout: try broker.wait(),
                policy: StuckPolicy(noProgressAfter: try TimeText.parseDuration(stuckFor, option: "--stuck-for")))
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = .info
                return handler
            }
            let logger = Logger(label: "waybill.ui")
            let console = OperatorConsole(
                inspector: database, configuration: configuration, logger: logger,
                onListening: { port in
                    Operator.print(
                        "waybill ui: http://\(listen.reachable.host):\(port)/ (\(token == nil ? "read-only" : "repairs with the operator token"))\n"
                    )
                })
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(
                    services: [.init(service: console)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            do {
                try await group.run()
            } catch {
                throw OperationsError(
                    .badArgument, "cannot serve on \(listen): \(error); pick a free --address", cause: error)
            }
        }
    }

    /// The token from --token-file, else WAYBILL_UI_TOKEN; `nil` when neither is given. A token shorter than 16
    /// characters is refused: it guards repairs.
    private func readToken() throws(OperationsError) -> String? {
        var token: String?
        if let tokenFile {
            guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
                throw OperationsError(.badArgument, "--token-file \(tokenFile): cannot be read")
            }
            token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        } else if let text = ProcessInfo.processInfo.environment["WAYBILL_UI_TOKEN"], !text.isEmpty {
            token = text
        }
        if let token, token.count < 16 {
            throw OperationsError(
                .badArgument,
                "the operator token is \(token.count) characters: use at least 16 (e.g. openssl rand -hex 16)")
        }
        return token
    }
}
