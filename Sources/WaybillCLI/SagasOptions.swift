import ArgumentParser
import Foundation
import SagaEngine
import SagaStore
import WaybillOperations
import WaybillWire
import WaybillWorker

/// `--data-dir` and `--config`: which pool (the workers' data directory).
struct PoolOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The pool's data directory (the workers' data_directory). Default: WAYBILL_DATA_DIRECTORY, then "
                + "`data_directory` in --config, then .waybill/pool.", valueName: "dir"))
    var dataDir: String?

    @Option(
        help: ArgumentHelp(
            "A worker config file (YAML) to read `data_directory`, `pool_name` and `amqp_url` from.",
            valueName: "file"))
    var config: String?

    /// The worker configuration the file and environment describe; a ``ConfigurationError`` comes back as the cause
    /// of an `operations.bad_argument`, so its `config.*` code and its own cause still show.
    func workerConfiguration() throws(OperationsError) -> WorkerConfiguration {
        do {
            return try WorkerConfiguration.load(file: config, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw OperationsError(
                .badArgument,
                "the worker configuration (--config and the WAYBILL_ variables) cannot be used; fix it, or give the "
                    + "setting it was read for (--data-dir, --pool-name, --amqp-url, --queue) on the command line",
                cause: error)
        }
    }

    /// `--data-dir`, else the configuration's `data_directory` (environment, then --config, then the default).
    func dataDirectory() throws(OperationsError) -> String {
        if let dataDir { return dataDir }
        return try workerConfiguration().dataDirectory
    }
}

/// `--data-dir`, `--db`, `--pool-name` and `--config`: the pool to read (or one SQLite file) and its queues.
struct StoreOptions: ParsableArguments {
    @OptionGroup var pool: PoolOptions

    @Option(
        help: ArgumentHelp(
            "Read this one SQLite file instead of a pool: a partition file (DIR/partitions/p07.sqlite) or an old "
                + "single-worker file. Not with --data-dir; repairs need the pool.", valueName: "file"))
    var db: String?

    @Option(
        help: ArgumentHelp(
            "The prefix of the pool's queues (the workers' pool_name), where repairs go. Default: WAYBILL_POOL_NAME, "
                + "then `pool_name` in --config, then waybill.", valueName: "name"))
    var poolName: String?

    /// See ``PoolOptions/workerConfiguration()``.
    func workerConfiguration() throws(OperationsError) -> WorkerConfiguration {
        try pool.workerConfiguration()
    }

    /// `--pool-name`, else the configuration's `pool_name`.
    func resolvedPoolName() throws(OperationsError) -> String {
        if let poolName { return poolName }
        return try workerConfiguration().poolName
    }

    /// Opens every partition file of the pool read-only, or the one file of `--db`.
    func open() throws(OperationsError) -> SagaInspector {
        if let db {
            guard pool.dataDir == nil else {
                throw OperationsError(
                    .badArgument,
                    "--db \(db) reads one file and --data-dir \(pool.dataDir ?? "") a whole pool; give one of them")
            }
            return try SagaInspector(path: db)
        }
        return try SagaInspector(dataDirectory: try pool.dataDirectory())
    }

    /// Where the repairs of the sagas `database` reads go; a single file (`--db`) has no live owner to act
    /// through, so it is refused.
    func repairRoute(_ database: SagaInspector) throws(OperationsError) -> RepairRoute {
        guard let directory = database.pool else {
            throw OperationsError(
                .badArgument,
                "a repair acts through the live worker that owns the saga's partition, so it needs the pool: give "
                    + "its data directory with --data-dir instead of --db \(database.path) (--dry-run works with either)"
            )
        }
        return RepairRoute(pool: directory, poolName: try resolvedPoolName())
    }
}

/// `--json`.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print JSON for scripts instead of a table (times are UTC ISO-8601, durations in milliseconds).")
    var json = false
}

/// `--amqp-url`: where repair requests go. The password comes from WAYBILL_AMQP_PASSWORD only.
struct BrokerOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Broker URL without password (default: WAYBILL_AMQP_URL, then `amqp_url` in --config). The password is "
                + "read from WAYBILL_AMQP_PASSWORD.", valueName: "url"))
    var amqpUrl: String?

    @Option(help: ArgumentHelp("How long to wait for the worker's answer.", valueName: "duration"))
    var timeout = "30s"

    /// The broker to use.
    func settings(store: StoreOptions) throws(OperationsError) -> BrokerSettings {
        let environment = ProcessInfo.processInfo.environment
        var url = amqpUrl ?? environment["WAYBILL_AMQP_URL"]
        if url == nil { url = try store.workerConfiguration().amqpURL }
        return BrokerSettings(url: url ?? "", password: environment["WAYBILL_AMQP_PASSWORD"])
    }

    func wait() throws(OperationsError) -> Duration {
        try TimeText.parseDuration(timeout, option: "--timeout")
    }
}

/// The filters `list` and `--where` share (the current-step filter is `--step` on `list`, `--at-step` on repairs,
/// whose `--step` names the step to repair).
struct CommonFilterOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Only these statuses, comma separated: running, compensating, suspended, completed, compensated, "
                + "cancelled, or active / terminal.", valueName: "status"))
    var status: String?

    @Option(help: ArgumentHelp("Only this workflow.", valueName: "name"))
    var workflow: String?

    @Option(help: ArgumentHelp("Only sagas without progress for at least this long, e.g. 15m.", valueName: "duration"))
    var stuckFor: String?

    @Option(
        help: ArgumentHelp(
            "Only sagas that progressed since then: a duration ago (2h) or a UTC time (2025-01-15T10:00Z).",
            valueName: "time"))
    var since: String?

    @Option(
        help: ArgumentHelp(
            "Only sagas last written by this worker (not indexed: combine with --status on large files).",
            valueName: "worker"))
    var owner: String?

    @Flag(help: "Most recent progress first (the default is oldest progress first).")
    var newestFirst = false

    func filter(step: String?, limit: String?, defaultLimit: Int?, now: Timestamp) throws(OperationsError) -> SagaFilter
    {
        var filter = SagaFilter()
        if let status { filter.statuses = try SagaFilter.parseStatuses(status) }
        filter.workflow = workflow
        filter.step = step
        if let stuckFor { filter.stuckFor = try TimeText.parseDuration(stuckFor, option: "--stuck-for") }
        if let since { filter.since = try TimeText.parseTime(since, option: "--since", now: now) }
        filter.owner = owner
        filter.limit = try limit.map { text throws(OperationsError) in try SagaFilter.parseLimit(text) } ?? defaultLimit
        filter.newestFirst = newestFirst
        return filter
    }
}

/// Helpers every operator command shares: the clock, output, and turning errors into one line and an exit code.
enum Operator {
    /// Now, in the engine's milliseconds.
    static func now() -> Timestamp { Timestamp.now() }

    /// Writes to standard output.
    static func print(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    /// Writes to standard error.
    static func note(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// Runs `body` once the command line passed ``RepeatedOptions/check(_:)``, printing an ``OperationsError`` as
    /// `waybill <command>: code: message (cause)` and exiting with its exit code.
    static func run(_ command: String, _ body: () throws -> Void) throws {
        do {
            try RepeatedOptions.check(Array(CommandLine.arguments.dropFirst()))
            try body()
        } catch let error as OperationsError {
            note("waybill \(command): \(error)\n")
            throw ExitCode(error.exitCode)
        }
    }

    /// The async form of ``run(_:_:)``.
    static func run(_ command: String, _ body: () async throws -> Void) async throws {
        do {
            try RepeatedOptions.check(Array(CommandLine.arguments.dropFirst()))
            try await body()
        } catch let error as OperationsError {
            note("waybill \(command): \(error)\n")
            throw ExitCode(error.exitCode)
        }
    }

    /// The actor when `--by` is not given: the login name, else the uid (``OperatorIdentity``).
    static var user: String { OperatorIdentity.current() }

    /// Whether standard error is a terminal (progress bars redraw in place only there).
    static var stderrIsTerminal: Bool { isatty(STDERR_FILENO) == 1 }
}
