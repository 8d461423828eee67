import AMQPTransport
import CodedError
import Foundation
import SagaStore
import WaybillDefinition
import WaybillWire
import Yams

/// Everything a worker needs, every field defaulted. ``load(file:environment:)`` maps the config file and the
/// environment onto it; the table in `docs/configuration.md` lists every key.
///
/// Secrets: the broker password comes from `WAYBILL_AMQP_PASSWORD`, or from the file named by `amqp_password_file`
/// (`WAYBILL_AMQP_PASSWORD_FILE`); never from a command-line argument, so it does not show in `ps`, and
/// ``description`` redacts it.
public struct WorkerConfiguration: Sendable, CustomStringConvertible {
    /// Names this worker in the pool (its member files, the `owner` of what it writes, its broker connection). Keep
    /// it stable across restarts; two live workers of one pool cannot share it (the second one refuses to start).
    public var workerId: String = WorkerConfiguration.defaultWorkerId()
    /// `amqp://user@host:port/vhost` or `amqps://...`.
    public var amqpURL: String = "amqp://guest@127.0.0.1:5672/"
    /// The broker password (from the environment or a file only).
    public var amqpPassword: String?
    /// TLS: a CA bundle to verify the broker with (`amqps://` only).
    public var tlsCAFile: String?
    /// TLS: a client certificate and key for mutual TLS.
    public var tlsCertificateFile: String?
    public var tlsKeyFile: String?
    /// The pool's data directory, shared by every worker of the pool on this host: `pool.json`, one SQLite file per
    /// partition, member files (docs/pool.md).
    public var dataDirectory: String = ".waybill/pool"
    /// The partition count of a new pool; `nil` takes the existing pool's count (or 16 for a new one). A worker
    /// refuses to start when it differs from the pool's: the count changes offline (`waybill pool repartition`).
    public var partitions: Int?
    /// Prefix of the pool's partition queues (`<pool_name>.p07`), so several pools can share a broker.
    public var poolName: String = "waybill"
    /// How often the worker rewrites its member status and rebalances partitions with the other workers.
    public var rebalanceInterval: Duration = .seconds(1)
    /// How long a stopping worker may take to hand its partitions off before it exits anyway.
    public var shutdownGrace: Duration = .seconds(30)
    /// The folder of workflow definitions (`*.yaml`).
    public var workflowsDirectory: String = "Workflows"
    /// Topic exchange for commands (docs/wire.md).
    public var commandsExchange: String = "waybill.commands"
    /// Topic exchange for milestone events.
    public var eventsExchange: String = "waybill.events"
    /// Exchange and queue for messages the worker refuses (with an `x-waybill-error` header).
    public var deadLetterExchange: String = "waybill.dead-letter"
    public var deadLetterQueue: String = "waybill.dead-letter"
    /// Most deliveries handled in one batch (one SQLite transaction per partition it touches). Batches are as big as
    /// what arrived while the previous one was being committed: small at low load, up to this at high load.
    public var batchSize: Int = 256
    /// Batches whose publish may wait for the broker's confirms while the next ones are read, decided and committed.
    public var publishWindow: Int = 4
    /// Sagas whose committed state a worker keeps in memory (split evenly over the pool's partitions), so a reply to a
    /// saga touched recently needs no read; 0 turns the cache off.
    public var sagaCache: Int = 4096
    /// How long a batch waits for more deliveries once it has one; 0 batches only what already arrived.
    public var batchLinger: Duration = .zero
    /// Unacknowledged deliveries the broker may push per consumer.
    public var prefetch: UInt16 = 1000
    /// Bodies larger than this are refused (dead-lettered, or journaled for a known saga).
    public var maxMessageBytes: Int = 1 << 20
    /// Redeliveries of a message the worker cannot even read before the broker dead-letters it.
    /// Partition queues allow four times as many: every hand-off of a partition (a takeover, a rebalance, a drain)
    /// gives its unacknowledged deliveries back to the broker, which counts that as a delivery.
    public var deliveryLimit: Int = 5
    /// `full` (default: a lost commit after an ack loses an order) or `normal`.
    public var durability: SagaStore.Configuration.Durability = .full
    /// How often due timers are looked for.
    public var timerPollInterval: Duration = .milliseconds(50)
    /// How long processed message ids are remembered to drop redeliveries; older inbox marks are pruned.
    public var inboxRetention: Duration = .seconds(7 * 24 * 3600)
    /// How long a finished saga stays in its partition file before it moves, with its journal, to the pool's archive
    /// (``SagaArchive``); `nil` (`off`) keeps every saga in the partition files.
    public var archiveAfter: Duration? = .seconds(30 * 24 * 3600)
    /// How often the worker looks for sagas to archive (sooner while a look finds a full batch).
    public var archiveInterval: Duration = .seconds(60)
    /// Sagas moved per archive batch: one gzip member, and one short transaction in the partition file.
    public var archiveBatch: Int = 100
    /// How often the pool reconciles its ended sagas with the participants (`waybill reconcile`), run by the worker
    /// that owns partition 0; `nil` (`off`, the default) runs no pass.
    public var reconcileEvery: Duration?
    /// Which sagas a scheduled pass looks at: those that ended (or were suspended) within this long.
    public var reconcileWindow: Duration = .seconds(24 * 3600)
    /// Verify queries per second a scheduled pass sends at most (and never more than half a participant's limits).
    public var reconcileRate: Double = 50
    /// Whether a scheduled pass sends an undone effect's compensation again when the participant still holds it.
    public var reconcileRepair = false
    /// Seeds retry jitter.
    public var jitterSeed: UInt64 = 0x5741_5942_494C_4C21
    /// Where `waybill worker` serves `/metrics`, `/healthz` and `/readyz`; `nil` (`off`) serves nothing. Loopback by
    /// default: the endpoints have no authentication.
    public var httpAddress: HTTPAddress? = HTTPAddress(host: "127.0.0.1", port: 9464)

    public init() {}

    /// The queue of one of the pool's partitions.
    public func partitionQueue(_ partition: Int) -> String { PoolQueues.partition(partition, pool: poolName) }

    public var description: String {
        "worker \(workerId) amqp=\(AMQPConfiguration.redacted(amqpURL)) password=\(amqpPassword == nil ? "unset" : "***") "
            + "data=\(dataDirectory) pool=\(poolName) workflows=\(workflowsDirectory) batch=\(batchSize) "
            + "durability=\(durability)"
    }

    static func defaultWorkerId() -> String {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count) == 0 else { return "worker" }
        let bytes = name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        let host = String(decoding: bytes, as: UTF8.self).lowercased().filter {
            $0.isLetter || $0.isNumber || $0 == "-"
        }
        return host.isEmpty ? "worker" : host
    }
}

/// Why a worker cannot start with its configuration: a key it cannot use, a config file it cannot read, workflow
/// files that do not make a set, or a broker without the plugin it needs. `waybill worker` prints the description,
/// `code: message (cause)`, and exits with status 78 (EX_CONFIG).
///
/// Match on the code, not on the message. Messages name the key or file and what it expects; they never contain
/// the broker password. The cause is the error underneath (reading a file, parsing YAML, the broker's refusal).
public typealias ConfigurationError = CodedError<ConfigurationErrorDomain>

/// The worker configuration's error family (``ConfigurationError``): its codes are `config.<snake_case>`.
public enum ConfigurationErrorDomain: ErrorDomain {}

/// What kind of configuration problem it is: the raw values (`config.<snake_case>`) are stable.
extension ErrorCode where Domain == ConfigurationErrorDomain {
    /// The config file or the password file cannot be read.
    public static let unreadableFile = Self(rawValue: "config.unreadable_file")
    /// The config file is not YAML, or not a flat mapping of keys.
    public static let badFile = Self(rawValue: "config.bad_file")
    /// The config file has a key the worker does not know (docs/configuration.md lists them).
    public static let unknownKey = Self(rawValue: "config.unknown_key")
    /// A key's value is out of range or not one of the allowed words.
    public static let badValue = Self(rawValue: "config.bad_value")
    /// `amqp_url` carries a password; it belongs in `WAYBILL_AMQP_PASSWORD` or `amqp_password_file`.
    public static let passwordInURL = Self(rawValue: "config.password_in_url")
    /// The workflows folder has no workflow file.
    public static let noWorkflows = Self(rawValue: "config.no_workflows")
    /// Two workflow files define the same name and version.
    public static let duplicateWorkflow = Self(rawValue: "config.duplicate_workflow")
}

extension WorkerConfiguration {
    /// Every key, with its environment variable and meaning: the single place the configuration surface is defined.
    public static let keys: [(key: String, environment: String, meaning: String)] = [
        ("worker_id", "WAYBILL_WORKER_ID", "stable name of this worker (queues, saga owner); default: host name"),
        (
            "amqp_url", "WAYBILL_AMQP_URL",
            "broker URL, amqp:// or amqps:// (no password here); a cluster: its nodes' URLs, comma-separated"
        ),
        ("amqp_password_file", "WAYBILL_AMQP_PASSWORD_FILE", "file holding the broker password"),
        ("-", "WAYBILL_AMQP_PASSWORD", "the broker password (environment only)"),
        ("tls_ca_file", "WAYBILL_TLS_CA_FILE", "CA bundle to verify the broker (amqps)"),
        ("tls_cert_file", "WAYBILL_TLS_CERT_FILE", "client certificate (amqps, mutual TLS)"),
        ("tls_key_file", "WAYBILL_TLS_KEY_FILE", "client key (amqps, mutual TLS)"),
        (
            "data_directory", "WAYBILL_DATA_DIRECTORY",
            "the pool's data directory, shared by its workers; default .waybill/pool"
        ),
        ("partitions", "WAYBILL_PARTITIONS", "partition count of a new pool (1-256); default 16, or the pool's"),
        ("pool_name", "WAYBILL_POOL_NAME", "prefix of the pool's partition queues; default waybill"),
        ("rebalance_interval_ms", "WAYBILL_REBALANCE_INTERVAL_MS", "member status and rebalance period; default 1000"),
        ("shutdown_grace_seconds", "WAYBILL_SHUTDOWN_GRACE_SECONDS", "most time a drain may take; default 30"),
        ("workflows", "WAYBILL_WORKFLOWS", "folder of workflow YAML files; default Workflows"),
        ("commands_exchange", "WAYBILL_COMMANDS_EXCHANGE", "topic exchange for commands; default waybill.commands"),
        ("events_exchange", "WAYBILL_EVENTS_EXCHANGE", "topic exchange for milestones; default waybill.events"),
        ("dead_letter_exchange", "WAYBILL_DEAD_LETTER_EXCHANGE", "exchange for refused messages"),
        ("dead_letter_queue", "WAYBILL_DEAD_LETTER_QUEUE", "queue for refused messages"),
        ("batch_size", "WAYBILL_BATCH_SIZE", "deliveries per transaction; default 256"),
        ("batch_linger_ms", "WAYBILL_BATCH_LINGER_MS", "wait for more deliveries per batch; default 0"),
        ("publish_window", "WAYBILL_PUBLISH_WINDOW", "batches awaiting confirms at once; default 4"),
        ("saga_cache", "WAYBILL_SAGA_CACHE", "recently touched sagas kept in memory; default 4096"),
        ("prefetch", "WAYBILL_PREFETCH", "unacked deliveries per consumer; default 1000"),
        ("max_message_bytes", "WAYBILL_MAX_MESSAGE_BYTES", "largest accepted body; default 1048576"),
        (
            "delivery_limit", "WAYBILL_DELIVERY_LIMIT",
            "redeliveries before the broker dead-letters; default 5 (x4 on partition queues)"
        ),
        ("synchronous", "WAYBILL_SYNCHRONOUS", "full (default) or normal"),
        (
            "http_address", "WAYBILL_HTTP_ADDRESS",
            "host:port of /metrics, /healthz and /readyz, or off; default 127.0.0.1:9464"
        ),
        ("timer_poll_ms", "WAYBILL_TIMER_POLL_MS", "how often due timers are looked for; default 50"),
        (
            "inbox_retention_hours", "WAYBILL_INBOX_RETENTION_HOURS",
            "how long processed message ids are kept to drop redeliveries; default 168"
        ),
        (
            "archive_after", "WAYBILL_ARCHIVE_AFTER",
            "age at which finished sagas move to the pool's archive (12h, 30d), or off; default 30d"
        ),
        (
            "reconcile_every", "WAYBILL_RECONCILE_EVERY",
            "how often the pool reconciles ended sagas with the participants (1h), or off; default off"
        ),
        (
            "reconcile_window", "WAYBILL_RECONCILE_WINDOW",
            "sagas a scheduled pass checks: those that ended within this long; default 24h"
        ),
        ("reconcile_rate", "WAYBILL_RECONCILE_RATE", "verify queries per second of a scheduled pass; default 50"),
        (
            "reconcile_repair", "WAYBILL_RECONCILE_REPAIR",
            "whether a scheduled pass re-sends undos a participant dropped (true or false); default false"
        ),
    ]

    /// Reads the config file (YAML mapping of the keys above, optional) and then the environment, which wins.
    public static func load(
        file: String?, environment: [String: String]
    ) throws(ConfigurationError)
        -> WorkerConfiguration
    {
        var values: [String: String] = [:]
        if let file {
            let text: String
            do {
                text = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw ConfigurationError(
                    .unreadableFile, "\(file): cannot read the config file; check the path and its permissions",
                    cause: error)
            }
            let parsed: Any?
            do {
                parsed = try Yams.load(yaml: text)
            } catch {
                throw ConfigurationError(.badFile, "\(file): not valid YAML", cause: error)
            }
            guard let mapping = parsed as? [String: Any] else {
                if parsed == nil { return try build(values, environment: environment, file: file) }
                throw ConfigurationError(.badFile, "\(file): expected a mapping of keys, e.g. 'worker_id: w1'")
            }
            let known = Set(keys.map(\.key))
            for (key, value) in mapping {
                guard known.contains(key) else {
                    throw ConfigurationError(
                        .unknownKey,
                        "\(file): unknown key '\(key)'; known keys: \(keys.map(\.key).filter { $0 != "-" }.joined(separator: ", "))"
                    )
                }
                values[key] = "\(value)"
            }
        }
        for entry in keys {
            if let value = environment[entry.environment], entry.key != "-" { values[entry.key] = value }
        }
        return try build(values, environment: environment, file: file)
    }

    private static func build(
        _ values: [String: String], environment: [String: String], file: String?
    )
        throws(ConfigurationError) -> WorkerConfiguration
    {
        var configuration = WorkerConfiguration()
        func integer(_ key: String, _ range: ClosedRange<Int>) throws(ConfigurationError) -> Int? {
            guard let text = values[key] else { return nil }
            guard let value = Int(text), range.contains(value) else {
                throw ConfigurationError(
                    .badValue,
                    "\(key): expected a whole number in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
            }
            return value
        }
        if let value = values["worker_id"] {
            guard !value.isEmpty, value.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw ConfigurationError(.badValue, "worker_id: use letters, digits, '-' and '_', got '\(value)'")
            }
            configuration.workerId = value
        }
        if let value = values["amqp_url"] {
            if AMQPConfiguration.hasPassword(value) {
                throw ConfigurationError(
                    .passwordInURL,
                    "amqp_url: do not put the password in the URL; set WAYBILL_AMQP_PASSWORD or amqp_password_file")
            }
            do {
                _ = try AMQPConfiguration(url: value)
            } catch {
                throw ConfigurationError(.badValue, "amqp_url: \(error.message)")
            }
            configuration.amqpURL = value
        }
        if let path = values["amqp_password_file"] {
            do {
                configuration.amqpPassword = try String(contentsOfFile: path, encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            } catch {
                throw ConfigurationError(
                    .unreadableFile, "amqp_password_file: cannot read \(path); check the path and its permissions",
                    cause: error)
            }
        }
        if let password = environment["WAYBILL_AMQP_PASSWORD"] { configuration.amqpPassword = password }
        configuration.tlsCAFile = values["tls_ca_file"]
        configuration.tlsCertificateFile = values["tls_cert_file"]
        configuration.tlsKeyFile = values["tls_key_file"]
        if let value = values["data_directory"] { configuration.dataDirectory = value }
        if let value = try integer("partitions", 1...256) { configuration.partitions = value }
        if let value = values["pool_name"] {
            guard !value.isEmpty, value.count <= 120,
                value.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." })
            else {
                throw ConfigurationError(
                    .badValue, "pool_name: use letters, digits, '-', '_' and '.', at most 120, got '\(value)'")
            }
            configuration.poolName = value
        }
        if let value = try integer("rebalance_interval_ms", 50...60_000) {
            configuration.rebalanceInterval = .milliseconds(value)
        }
        if let value = try integer("shutdown_grace_seconds", 1...3_600) {
            configuration.shutdownGrace = .seconds(value)
        }
        if let value = values["workflows"] { configuration.workflowsDirectory = value }
        if let value = values["commands_exchange"] { configuration.commandsExchange = value }
        if let value = values["events_exchange"] { configuration.eventsExchange = value }
        if let value = values["dead_letter_exchange"] { configuration.deadLetterExchange = value }
        if let value = values["dead_letter_queue"] { configuration.deadLetterQueue = value }
        if let value = try integer("batch_size", 1...10_000) { configuration.batchSize = value }
        if let value = try integer("batch_linger_ms", 0...1_000) { configuration.batchLinger = .milliseconds(value) }
        if let value = try integer("publish_window", 1...64) { configuration.publishWindow = value }
        if let value = try integer("saga_cache", 0...1_000_000) { configuration.sagaCache = value }
        if let value = try integer("prefetch", 1...65_535) { configuration.prefetch = UInt16(value) }
        if let value = try integer("max_message_bytes", 1_024...134_217_728) { configuration.maxMessageBytes = value }
        if let value = try integer("delivery_limit", 1...1_000) { configuration.deliveryLimit = value }
        if let value = try integer("timer_poll_ms", 1...60_000) {
            configuration.timerPollInterval = .milliseconds(value)
        }
        if let value = try integer("inbox_retention_hours", 1...87_600) {
            configuration.inboxRetention = .seconds(value * 3600)
        }
        if let value = values["archive_after"] {
            if ["off", "false"].contains(value.lowercased()) {  // YAML reads a bare off as false
                configuration.archiveAfter = nil
            } else {
                do {
                    configuration.archiveAfter = try DurationParser.parse(value)
                } catch {
                    throw ConfigurationError(.badValue, "archive_after: \(error.message), or off")
                }
            }
        }
        if let value = values["reconcile_every"] {
            if ["off", "false"].contains(value.lowercased()) {  // YAML reads a bare off as false
                configuration.reconcileEvery = nil
            } else {
                do {
                    configuration.reconcileEvery = try DurationParser.parse(value)
                } catch {
                    throw ConfigurationError(.badValue, "reconcile_every: \(error.message), or off")
                }
            }
        }
        if let value = values["reconcile_window"] {
            do {
                configuration.reconcileWindow = try DurationParser.parse(value)
            } catch {
                throw ConfigurationError(.badValue, "reconcile_window: \(error.message)")
            }
        }
        if let value = values["reconcile_rate"] {
            guard let rate = Double(value), rate > 0, rate.isFinite else {
                throw ConfigurationError(
                    .badValue, "reconcile_rate: expected queries per second like 50, got '\(value)'")
            }
            configuration.reconcileRate = rate
        }
        switch values["reconcile_repair"]?.lowercased() {
        case nil: break
        case "true", "yes", "on": configuration.reconcileRepair = true
        case "false", "no", "off": configuration.reconcileRepair = false
        case let other?: throw ConfigurationError(.badValue, "reconcile_repair: expected true or false, got '\(other)'")
        }
        if let value = values["http_address"] {
            if ["off", "false"].contains(value.lowercased()) {  // YAML reads a bare off as false
                configuration.httpAddress = nil
            } else {
                do {
                    configuration.httpAddress = try HTTPAddress(parsing: value)
                } catch {
                    throw ConfigurationError(.badValue, "http_address: \(error.message)")
                }
            }
        }
        switch values["synchronous"]?.lowercased() {
        case nil: break
        case "full": configuration.durability = .full
        case "normal": configuration.durability = .normal
        case let other?: throw ConfigurationError(.badValue, "synchronous: expected 'full' or 'normal', got '\(other)'")
        }
        return configuration
    }
}
