import ArgumentParser
import Foundation
import SagaStore
import WaybillOperations

/// `waybill pool status|init|repartition`: the workers of a pool and their partitions, and the pool's partition
/// count.
struct PoolCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool",
        abstract: "The workers of a pool, who owns each partition, and the pool's partition count.",
        discussion: """
            A pool is a data directory the workers of one host share: pool.json (the partition count, fixed when \
            the pool is created), one SQLite file and one lock per partition, and one status file per worker. \
            Every saga lives in one partition (a stable hash of its id), owned by one live worker at a time.

            Examples:
              waybill pool status
              waybill pool init --data-dir /var/lib/waybill/pool --partitions 16
              waybill pool repartition --data-dir /var/lib/waybill/pool --partitions 32
            """,
        subcommands: [PoolStatusCommand.self, PoolInitCommand.self, PoolRepartitionCommand.self]
    )
}

/// `waybill pool status`.
struct PoolStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Each worker (live, or dead and not yet cleared) with its partitions, lag and sagas in flight.",
        discussion: """
            One line per worker: its state (waiting-for-broker, running, draining, or dead when its lock is free), \
            pid and host, the partitions it owns, its unfinished sagas, the messages waiting in its partitions' \
            queues (its lag), and when it last wrote its status (every rebalance interval, 1s by default). Then \
            each partition's owner: a partition whose lock nobody holds has none, its sagas wait and repairs to it \
            are refused.

            --json prints {schemaVersion, dataDirectory, partitionCount, now, workers[], partitions[], unowned[]}.

            Examples:
              waybill pool status
              waybill pool status --json | jq '.unowned'
            """
    )

    @OptionGroup var pool: PoolOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        try Operator.run("pool status") {
            let directory = try SagaInspector.openPool(try pool.dataDirectory())
            let status = PoolStatus.read(directory, now: Operator.now())
            Operator.print(output.json ? PrettyJSON.render(PoolStatusView.json(status)) : PoolStatusView.text(status))
        }
    }
}

/// `waybill pool init`.
struct PoolInitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a pool's data directory with a fixed partition count.",
        discussion: """
            A worker creates its pool on first start (with `partitions`, 16 by default); create it here to choose \
            the count first or to check a path. A pool that exists is left as it is.

            Examples:
              waybill pool init --data-dir /var/lib/waybill/pool --partitions 16
            """
    )

    @OptionGroup var pool: PoolOptions

    @Option(
        help: ArgumentHelp(
            "Partitions (1-256): at least the most workers the pool will run. Default: WAYBILL_PARTITIONS, then "
                + "`partitions` in --config, then 16.", valueName: "n"))
    var partitions: Int?

    func run() throws {
        try Operator.run("pool init") {
            let path = try pool.dataDirectory()
            let count =
                try partitions ?? pool.workerConfiguration().partitions ?? PoolDirectory.defaultPartitionCount
            let (directory, created) = try PoolAdministration.initialize(dataDirectory: path, partitions: count)
            Operator.print(
                created
                    ? "Created the pool \(directory.path) with \(directory.partitionCount) partitions.\n"
                    : "\(directory.path) is already a pool with \(directory.partitionCount) partitions; left as it is.\n"
            )
        }
    }
}

/// `waybill pool repartition`.
struct PoolRepartitionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repartition",
        abstract: "Change a pool's partition count, offline: every saga moves to its partition under the new count.",
        discussion: """
            Stop every worker of the pool first (SIGTERM drains a worker; let the partition queues empty before): \
            the command refuses while a worker runs or a partition lock is held. Each saga moves with its journal, \
            timers and outbox rows; workflow definitions and the inbox are copied to every new partition. The new \
            files are built beside the old ones and checked before they replace them, so an interrupted run \
            changes nothing or is finished by running the command again.

            Examples:
              waybill pool repartition --data-dir /var/lib/waybill/pool --partitions 32
            """
    )

    @OptionGroup var pool: PoolOptions

    @Option(help: ArgumentHelp("The new partition count (1-256).", valueName: "n"))
    var partitions: Int

    @Option(
        help: ArgumentHelp(
            "The prefix of the pool's queues, to name the ones a smaller count leaves unused. Default: "
                + "WAYBILL_POOL_NAME, then `pool_name` in --config, then waybill.", valueName: "name"))
    var poolName: String?

    func run() throws {
        try Operator.run("pool repartition") {
            let report = try PoolAdministration.repartition(
                dataDirectory: try pool.dataDirectory(), partitions: partitions, now: Operator.now())
            let name = try poolName ?? pool.workerConfiguration().poolName
            Operator.print(RepartitionView.text(report, poolName: name))
        }
    }
}
