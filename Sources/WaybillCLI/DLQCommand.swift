import ArgumentParser
import Foundation
import WaybillDefinition
import WaybillOperations

/// `waybill dlq list|show|replay|edit`: messages the workers (or the broker) dead-lettered.
struct DLQCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "Dead-lettered messages with their reason; replay them once the cause is fixed.",
        discussion: """
            Listing leaves the messages in the queue. Replaying publishes a message to the exchange and routing key \
            it first went to and removes it from the dead-letter queue once the broker confirmed the replay.

            Examples:
              waybill dlq list
              waybill dlq show order-42
              waybill dlq replay --all --reason-contains "not JSON" \\
                --reason "producer fixed" --dry-run
            """,
        subcommands: [DLQListCommand.self, DLQShowCommand.self, DLQReplayCommand.self, DLQEditCommand.self]
    )
}

/// `--queue` and the broker options shared by the dlq commands.
struct DLQOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The dead-letter queue (default: `dead_letter_queue` in --config, else waybill.dead-letter).",
            valueName: "queue"))
    var queue: String?

    @Option(
        help: ArgumentHelp("Look at most this many messages from the head of the queue (default 100).", valueName: "n"))
    var limit = "100"

    func queueName(_ store: StoreOptions) throws(OperationsError) -> String {
        if let queue { return queue }
        return try store.workerConfiguration().deadLetterQueue
    }

    func count() throws(OperationsError) -> Int {
        min(65_535, try SagaFilter.parseLimit(limit))
    }
}

/// `--reason` and `--by` of the commands that send dead letters again.
struct DLQWho: ParsableArguments {
    @Option(help: ArgumentHelp("Why (required; added to the message headers).", valueName: "text"))
    var reason: String?

    @Option(help: ArgumentHelp("Who (default: your login name, else your uid).", valueName: "name"))
    var by: String?

    /// `--reason`, required; `hint` says what it should say.
    func reason(_ hint: String) throws(OperationsError) -> String {
        guard let reason, !reason.allSatisfy(\.isWhitespace) else {
            throw OperationsError(.badArgument, "--reason is required: \(hint)")
        }
        return reason
    }

    var actor: String { by ?? Operator.user }
}

/// `waybill dlq list`.
struct DLQListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "The messages at the head of the dead-letter queue, with why each was refused.",
        discussion: """
            Examples:
              waybill dlq list --limit 20
              waybill dlq list --json | jq '.messages[].reason'
            """
    )

    @OptionGroup var options: DLQOptions
    @OptionGroup var store: StoreOptions
    @OptionGroup var broker: BrokerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await Operator.run("dlq list") {
            let queue = try options.queueName(store)
            let letters = try await DeadLetterQueue(queue: queue).browse(
                broker: try broker.settings(store: store), limit: try options.count())
            Operator.print(
                output.json
                    ? PrettyJSON.render(DeadLetterView.listJSON(letters, queue: queue))
                    : DeadLetterView.listText(letters, queue: queue, now: Date()))
        }
    }
}

/// `waybill dlq show`.
struct DLQShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "One dead-lettered message: reason, origin, headers and body.",
        discussion: """
            ID is the message id shown by `waybill dlq list` (or its sha: handle for messages without one).

            Examples:
              waybill dlq show order-42
              waybill dlq show sha:3f2a9c1b7d4e --json
            """
    )

    @Argument(help: ArgumentHelp("The message id from `waybill dlq list`.", valueName: "id"))
    var id: String

    @OptionGroup var options: DLQOptions
    @OptionGroup var store: StoreOptions
    @OptionGroup var broker: BrokerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await Operator.run("dlq show") {
            let queue = try options.queueName(store)
            let letters = try await DeadLetterQueue(queue: queue).browse(
                broker: try broker.settings(store: store), limit: try options.count())
            guard let letter = letters.first(where: { $0.id == id }) else {
                throw OperationsError(
                    .notFound,
                    "no message '\(id)' among the first \(letters.count) of \(queue); see `waybill dlq list` "
                        + "(or raise --limit)")
            }
            Operator.print(
                output.json
                    ? PrettyJSON.render(DeadLetterView.showJSON(letter)) : DeadLetterView.showText(letter, now: Date()))
        }
    }
}

/// `waybill dlq replay`.
struct DLQReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Publish dead-lettered messages again to where they first went (alias: retry).",
        discussion: """
            Name messages by id, or choose with --all (optionally narrowed by --reason-contains and --source). \
            --reason is required and travels with the message (x-waybill-replay-reason, -replayed-by). A start \
            replayed twice is harmless: the worker ignores a second start of the same saga.

            Examples:
              waybill dlq replay order-42 --reason "ERP fixed the payload"
              waybill dlq replay --all --source replies --reason "late replies" --dry-run
              waybill dlq retry order-42 --reason "ERP fixed the payload"
            """,
        aliases: ["retry"]
    )

    @Argument(help: ArgumentHelp("Message ids from `waybill dlq list`.", valueName: "id"))
    var ids: [String] = []

    @Flag(help: "Replay every message among the first --limit (narrow with --reason-contains / --source).")
    var all = false

    @Option(help: ArgumentHelp("Only messages whose reason contains this text.", valueName: "text"))
    var reasonContains: String?

    @Option(
        help: ArgumentHelp(
            "Only messages from this source (starts/<workflow>, partition/<workflow>, replies).", valueName: "source"))
    var source: String?

    @OptionGroup var who: DLQWho

    @Flag(help: "Show what would be replayed; send nothing.")
    var dryRun = false

    @OptionGroup var options: DLQOptions
    @OptionGroup var store: StoreOptions
    @OptionGroup var broker: BrokerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await Operator.run("dlq replay") {
            let reason = try who.reason("say why the message can go through now")
            guard all != !ids.isEmpty else {
                throw OperationsError(.badArgument, "name message ids, or use --all (with --reason-contains/--source)")
            }
            let wanted = Set(ids)
            let contains = reasonContains?.lowercased()
            let source = source
            let select: @Sendable (DeadLetter) -> Bool = { letter in
                (wanted.isEmpty || wanted.contains(letter.id))
                    && (contains.map { letter.reason.lowercased().contains($0) } ?? true)
                    && (source.map { letter.source == $0 } ?? true)
            }
            let results = try await DeadLetterQueue(queue: try options.queueName(store)).replay(
                broker: try broker.settings(store: store), limit: try options.count(), dryRun: dryRun,
                by: who.actor, reason: reason, select: select)
            Operator.print(
                output.json
                    ? PrettyJSON.render(DeadLetterView.replayJSON(results, dryRun: dryRun))
                    : DeadLetterView.replayText(results, dryRun: dryRun))
            let missing = wanted.subtracting(results.map(\.0.id))
            if !missing.isEmpty {
                throw OperationsError(
                    .notFound,
                    "not found among the first \(try options.count()) messages: \(missing.sorted().joined(separator: ", "))"
                )
            }
        }
    }
}

/// `waybill dlq edit`.
struct DLQEditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edit",
        abstract: "Send a corrected copy of a dead-lettered message where it first went, keeping the original.",
        discussion: """
            Write the corrected body to a file (start from the original, as in the first example) and give it with \
            --body-file. The original, exactly as it was dead-lettered, is first kept in the queue \
            <dead-letter queue>.originals (declared when missing) with who, why and when it was edited; then the \
            corrected copy goes where the original first went, with the same properties and x-waybill-edited-by; \
            only when the broker confirmed both does the message leave the dead-letter queue. Nothing is lost if a \
            step fails: the command says which, and the message stays. A body that is not JSON is refused when the \
            original was JSON.

            Examples:
              waybill dlq show order-42 --json | jq -r '.bodyText // (.body | tojson)' > order-42.json
              waybill dlq edit order-42 --body-file order-42.json --reason "lines[0].quantity was a string" --dry-run
              waybill dlq edit order-42 --body-file order-42.json --reason "lines[0].quantity was a string"
            """
    )

    @Argument(help: ArgumentHelp("The message id from `waybill dlq list`.", valueName: "id"))
    var id: String

    @Option(help: ArgumentHelp("The corrected body.", valueName: "file"))
    var bodyFile: String

    @OptionGroup var who: DLQWho

    @Flag(help: "Check the message and the body; keep, send and remove nothing.")
    var dryRun = false

    @OptionGroup var options: DLQOptions
    @OptionGroup var store: StoreOptions
    @OptionGroup var broker: BrokerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await Operator.run("dlq edit") {
            let reason = try who.reason("say what was wrong with the message")
            guard let data = FileManager.default.contents(atPath: bodyFile) else {
                throw OperationsError(.badArgument, "--body-file \(bodyFile): cannot be read")
            }
            let body = [UInt8](data)
            let queue = DeadLetterQueue(queue: try options.queueName(store))
            let settings = try broker.settings(store: store)
            let bodyIsJSON = (try? JSONText.decode(String(decoding: body, as: UTF8.self))) != nil
            let file = bodyFile
            let result = try await queue.edit(
                broker: settings, id: id, body: body, limit: try options.count(), dryRun: dryRun,
                by: who.actor, reason: reason
            ) { letter in
                let wasJSON =
                    letter.properties.contentType?.contains("json") == true
                    || (try? JSONText.decode(String(decoding: letter.body, as: UTF8.self))) != nil
                return wasJSON && !bodyIsJSON ? "\(file) is not JSON, and the original was; fix the file" : nil
            }
            guard let (letter, outcome) = result else {
                throw OperationsError(
                    .notFound,
                    "no message '\(id)' among the first \(try options.count()) of \(queue.queue); see "
                        + "`waybill dlq list` (or raise --limit)")
            }
            let results = [(letter, outcome)]
            Operator.print(
                output.json
                    ? PrettyJSON.render(DeadLetterView.replayJSON(results, dryRun: dryRun))
                    : DeadLetterView.replayText(results, dryRun: dryRun)
                        + (dryRun || outcome != .replayed ? "" : "the original is kept in \(queue.originalsQueue)\n"))
            if case .kept = outcome { throw ExitCode(4) }
        }
    }
}
