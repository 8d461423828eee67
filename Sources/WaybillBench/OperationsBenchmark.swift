import Foundation
import PlainText
import SagaEngine
import SagaStore
import WaybillDefinition
import WaybillOperations

/// Measures the operator CLI's read commands on a large worker file: a million sagas in mixed states (mostly
/// completed, a few percent in flight, every stuck class present), with journal lines and timers, built once in a
/// temporary directory with raw INSERTs in big transactions and reused by later runs.
///
/// Each command runs through the same `WaybillOperations` calls the CLI makes (query and rendering), on an
/// already-open read-only file, and is timed several times; the report prints the median and the slowest run
/// next to the 50 ms target, plus SQLite's plan for the main queries.
enum OperationsBenchmark {
    /// The fixed "now" the data is generated around and the reads use.
    static let now = Timestamp(milliseconds: 1_736_942_400_000)

    /// Builds (or reuses) the file with `sagas` sagas in `directory` (with `partitions`, a pool of that many partition
    /// files instead) and times each read command `repeats` times.
    static func run(
        sagas: Int = 1_000_000, partitions: Int? = nil, directory: String? = nil, repeats: Int = 7
    ) -> String {
        do {
            return try measure(sagas: sagas, partitions: partitions, directory: directory, repeats: repeats)
        } catch {
            return "operations benchmark failed: \(error)"
        }
    }

    private static func measure(sagas: Int, partitions: Int?, directory: String?, repeats: Int) throws -> String {
        let folder = directory ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("waybill-ops-bench")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let name = partitions.map { "pool-\(sagas)-p\($0)" } ?? "sagas-\(sagas).sqlite"
        let path = (folder as NSString).appendingPathComponent(name)
        var report = ""
        if !FileManager.default.fileExists(atPath: path + ".done") {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            let started = ContinuousClock.now
            let stats =
                try partitions.map {
                    try BenchmarkData.buildPool(directory: path, partitions: $0, sagas: sagas, now: now)
                }
                ?? BenchmarkData.build(path: path, sagas: sagas, now: now)
            _ = FileManager.default.createFile(atPath: path + ".done", contents: Data())
            report += "operations: built \(path) in \(seconds(ContinuousClock.now - started)) s: \(stats)\n"
        } else {
            report += "operations: reusing \(path) (delete it and its .done marker to rebuild)\n"
            // Files built before stores checkpointed on close keep a long write-ahead log, which every read-only open
            // would read again: leave them as a stopped worker does now.
            let pool = partitions == nil ? nil : try PoolDirectory.open(path)
            let stale = pool.map { pool in pool.partitions.map(pool.databasePath(partition:)) } ?? [path]
            for file in stale
            where ((try? FileManager.default.attributesOfItem(atPath: file + "-wal")[.size] as? Int) ?? 0) > 0 {
                try SagaStore(configuration: SagaStore.Configuration(path: file)).close()
            }
        }
        let mapSize: Int64 = ProcessInfo.processInfo.environment["WAYBILL_BENCH_MMAP"] == nil ? 0 : 1 << 32
        let open: () throws -> SagaInspector = {
            partitions == nil
                ? try SagaInspector(path: path, memoryMapSize: mapSize)
                : try SagaInspector(dataDirectory: path, memoryMapSize: mapSize)
        }
        let files = partitions == nil ? [path] : (try open()).readers.map(\.path)
        let size = files.reduce(0) {
            $0 + ((try? FileManager.default.attributesOfItem(atPath: $1)[.size] as? Int) ?? 0)
        }
        report += "operations: \(files.count) file\(files.count == 1 ? "" : "s"), \(size / 1_048_576) MiB\n"

        let openStart = ContinuousClock.now
        let first = try open()
        report +=
            "operations: open read-only + schema check \(millis(ContinuousClock.now - openStart)) ms"
            + " (mmap \(mapSize > 0 ? "on" : "off"))\n"
        // Every timed run opens the file anew, as one `waybill` invocation does (the OS page cache stays warm).

        let probe =
            try first.list(filtered { $0.statuses = [.suspended] }, now: now).rows.first?.key
            ?? SagaKey(workflow: "order-fulfillment", id: "o-1")
        let busy = try first.list(filtered { $0.statuses = [.running] }, now: now).rows.first?.key ?? probe

        var cases: [(name: String, target: Bool, body: (SagaInspector) throws -> Int)] = []
        func add(_ name: String, target: Bool = true, _ body: @escaping (SagaInspector) throws -> Int) {
            cases.append((name, target, body))
        }
        func list(_ name: String, _ change: (inout SagaFilter) -> Void) {
            let filter = filtered(change)
            add("list \(name)") { database in
                let page = try database.list(filter, now: now)
                return ListView.text(page, filter: filter, now: now).count
            }
        }
        list("(no filter, limit 50)") { _ in }
        list("--status suspended") { $0.statuses = [.suspended] }
        list("--status active --stuck-for 15m") {
            $0.statuses = [.running, .compensating, .suspended]
            $0.stuckFor = .seconds(900)
        }
        list("--status running --workflow order-fulfillment --step release") {
            $0.statuses = [.running]
            $0.workflow = "order-fulfillment"
            $0.step = "release"
        }
        list("--step authorize (rare; no workflow named)") { $0.step = "authorize" }
        list("--status running --step authorize (rare)") {
            $0.statuses = [.running]
            $0.step = "authorize"
        }
        list("--workflow order-fulfillment --step release") {
            $0.workflow = "order-fulfillment"
            $0.step = "release"
        }
        list("--status compensated --owner w3") {
            $0.statuses = [.compensated]
            $0.owner = "w3"
        }
        list("--since 10m --newest-first") {
            $0.since = now.adding(milliseconds: -600_000)
            $0.newestFirst = true
        }
        add("show \(probe.id) (resolve bare id)") { database in
            let key = try database.resolve(SagaReference(parsing: probe.id))
            guard let record = try database.saga(key) else { return 0 }
            let definition = try database.definition(hash: record.row.definitionHash)
            let detail = SagaDetail(
                record: record, definition: definition, timers: try database.timers(of: key),
                journal: try database.journalTail(of: key, count: 5), now: now)
            return ShowView.text(detail).count + PrettyJSON.render(ShowView.json(detail)).count
        }
        add("history \(busy.id)") { database in
            let lines = try database.journal(of: busy)
            return HistoryView.text(lines, key: busy, now: now).count
        }
        add("stuck") { database in
            StuckView.text(try database.stuckReport(now: now, policy: StuckPolicy())).count
        }
        add("stuck, worker down for an hour (every timer overdue)") { database in
            StuckView.text(try database.stuckReport(now: now.adding(milliseconds: 3_600_000), policy: StuckPolicy()))
                .count
        }
        add("stuck --class suspended --limit 20") { database in
            StuckView.text(try database.stuckReport(now: now, policy: StuckPolicy(), only: .suspended)).count
        }
        add("stats (window 15m)") { database in
            StatsView.text(try database.stats(now: now)).count
        }
        add("workflows list") { database in
            WorkflowsView.listText(try database.workflowVersions(), now: now).count
        }
        let runningKeys = try first.list(
            filtered {
                $0.statuses = [.running]; $0.limit = 10_000
            }, now: now
        ).rows.map(\.key)
        add("(reference, no target) decode \(runningKeys.count) sagas' state", target: false) { database in
            try database.sagas(runningKeys).count
        }
        add("(bulk, no target) retry --where --status suspended --dry-run", target: false) { database in
            var filter = SagaFilter()
            filter.statuses = [.suspended]
            let records = try database.snapshot(filter, now: now)
            let plan = database.plan(
                RepairRequest(action: .retry, by: "bench", reason: "bench"), records: records, filter: nil, now: now)
            return RepairView.planText(plan).count
        }

        report +=
            "operations: read commands on \(sagas) sagas, each run on a freshly opened file (open + query + "
            + "render; median / slowest of \(repeats) runs; target <= 50 ms)\n"
        var worst = 0.0
        // WAYBILL_BENCH_ONLY=TEXT runs only the commands whose name contains TEXT, WAYBILL_BENCH_REPEATS times each
        // (for a profiler).
        let environment = ProcessInfo.processInfo.environment
        let only = environment["WAYBILL_BENCH_ONLY"]
        let runs = environment["WAYBILL_BENCH_REPEATS"].flatMap { Int($0) } ?? repeats
        for (name, target, body) in cases where only.map(name.contains) ?? true {
            var times: [Double] = []
            var size = 0
            for _ in 0..<runs {
                let start = ContinuousClock.now
                let database = try open()
                size = try body(database)
                times.append(millisDouble(ContinuousClock.now - start))
            }
            times.sort()
            let median = times[times.count / 2]
            if target { worst = max(worst, median) }
            let flag = !target || median <= 50 ? "" : "  OVER TARGET"
            report +=
                "  \(name.padded(to: 62)) \(format(median).padded(to: 8, .right)) ms / "
                + "\(format(times.last ?? 0).padded(to: 8, .right)) ms  (\(size) chars)\(flag)\n"
        }
        report += "operations: slowest median of the read commands \(format(worst)) ms\n"
        if partitions != nil, only == nil, let partition = files.first {
            report += try ArchiveBenchmark.measure(partitionFile: partition, now: now)
        }
        report += "operations: query plans\n"
        for (name, filter, status) in [
            ("list (no filter)", filtered { _ in }, nil as SagaStatus?),
            ("list --status suspended", filtered { $0.statuses = [.suspended] }, .suspended),
            (
                "list --workflow --step",
                filtered {
                    $0.workflow = "order-fulfillment"; $0.step = "release"
                }, nil
            ),
            (
                "list --status running --workflow --step",
                filtered {
                    $0.statuses = [.running]; $0.workflow = "order-fulfillment"; $0.step = "release"
                }, .running
            ),
            (
                "list --stuck-for 15m (one status)",
                filtered {
                    $0.statuses = [.running]; $0.stuckFor = .seconds(900)
                }, .running
            ),
        ] {
            let plan = try first.readers[0].read("explaining a listing") { snapshot in
                try snapshot.queryPlan(for: filter.query(now: now), status: status)
            }
            report += "  \(name): \(plan.joined(separator: "; "))\n"
        }
        return report
    }

    private static func filtered(_ change: (inout SagaFilter) -> Void) -> SagaFilter {
        var filter = SagaFilter()
        filter.limit = 50
        change(&filter)
        return filter
    }

    static func millis(_ duration: Duration) -> String { format(millisDouble(duration)) }

    static func millisDouble(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }

    static func seconds(_ duration: Duration) -> String { format(millisDouble(duration) / 1000) }

    static func format(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}
