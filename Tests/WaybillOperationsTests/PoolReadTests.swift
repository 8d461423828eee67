import Foundation
import SagaEngine
import SagaStore
import Testing
import WaybillOperations
import WaybillTestSupport

/// The read commands against a pool: the fixture's sagas committed to the partition files of a pool must read exactly
/// as the same sagas in one file (whose output the other suites pin), so listings, counts and lookups span every
/// partition.
@Suite("Reading a whole pool")
struct PoolReadTests {
    let directory: TemporaryDirectory
    let pool: PoolDirectory
    /// The pool, read as one store.
    let pooled: SagaInspector
    /// The same sagas in one file.
    let single: SagaInspector
    var now: Timestamp { Fixture.now }

    init() throws {
        directory = try TemporaryDirectory()
        pool = try Fixture.buildPool(in: directory)
        pooled = try SagaInspector(dataDirectory: pool.path)
        single = try SagaInspector(path: try Fixture.build(in: directory))
    }

    /// The partitions that have a file.
    var files: [Int] {
        pool.partitions.filter { FileManager.default.fileExists(atPath: pool.databasePath(partition: $0)) }
    }

    @Test("the fixture is spread over several partition files, each holding only its own partition's sagas")
    func spread() throws {
        #expect(files.count >= 3, "the fixture should span several partitions: \(files)")
        #expect(files.count < pool.partitionCount, "some partition should have no file yet: \(files)")
        var seen: [String] = []
        for partition in files {
            let rows = try SagaInspector(path: pool.databasePath(partition: partition))
                .list(FixtureFile.filter(), now: now).rows
            #expect(!rows.isEmpty)
            #expect(rows.allSatisfy { pool.partition(of: $0.key.id) == partition })
            seen += rows.map(\.key.description)
        }
        #expect(seen.sorted() == (try single.list(FixtureFile.filter(), now: now)).rows.map(\.key.description).sorted())
    }

    @Test(
        "list merges and pages the partitions in the stable order of one file",
        arguments: [
            "all", "limit 3", "running and compensating, limit 3", "newest first, limit 2", "step reserve",
            "step without workflow", "owner worker-b", "stuck 15m", "since 1m",
        ])
    func list(name: String) throws {
        let filter = FixtureFile.filter {
            switch name {
            case "limit 3": $0.limit = 3
            case "running and compensating, limit 3":
                $0.statuses = [.running, .compensating]
                $0.limit = 3
            case "newest first, limit 2":
                $0.newestFirst = true
                $0.limit = 2
            case "step reserve":
                $0.workflow = "order-fulfillment"
                $0.step = "reserve"
            case "step without workflow": $0.step = "authorize"
            case "owner worker-b": $0.owner = "worker-b"
            case "stuck 15m":
                $0.statuses = [.running, .compensating, .suspended]
                $0.stuckFor = .seconds(900)
            case "since 1m": $0.since = Fixture.at(-60)
            default: break
            }
        }
        let page = try pooled.list(filter, now: now)
        let expected = try single.list(filter, now: now)
        #expect(page == expected)
        #expect(ListView.text(page, filter: filter, now: now) == ListView.text(expected, filter: filter, now: now))
        #expect(
            try pooled.snapshot(filter, now: now).map(\.row.key)
                == (try single.snapshot(filter, now: now)).map(\.row.key))
    }

    @Test("stats add the partitions up")
    func stats() throws {
        let stats = try pooled.stats(now: now, window: .seconds(3 * 3600))
        #expect(stats.total == 11)
        #expect(StatsView.text(stats) == StatsView.text(try single.stats(now: now, window: .seconds(3 * 3600))))
    }

    @Test("stuck counts every partition, and lists a class across them", arguments: [nil] + StuckClass.allCases)
    func stuck(only: StuckClass?) throws {
        let policy = StuckPolicy()
        let report = try pooled.stuckReport(now: now, policy: policy, only: only, limit: 1)
        let expected = try single.stuckReport(now: now, policy: policy, only: only, limit: 1)
        #expect(report == expected)
        #expect(StuckView.text(report) == StuckView.text(expected))
        #expect(report.active == 8)
    }

    @Test("show and history find every saga in its partition's file")
    func showAndHistory() throws {
        for row in try single.list(FixtureFile.filter(), now: now).rows {
            let key = row.key
            #expect(try pooled.resolve(SagaReference(key)) == key)
            let record = try #require(try pooled.saga(key))
            #expect(record == (try single.saga(key)))
            let detail = SagaDetail(
                record: record, definition: try pooled.definition(hash: record.row.definitionHash),
                timers: try pooled.timers(of: key), journal: try pooled.journalTail(of: key, count: 5), now: now)
            let expected = SagaDetail(
                record: try #require(try single.saga(key)),
                definition: try single.definition(hash: record.row.definitionHash), timers: try single.timers(of: key),
                journal: try single.journalTail(of: key, count: 5), now: now)
            #expect(ShowView.text(detail) == ShowView.text(expected))
            #expect(
                HistoryView.text(try pooled.journal(of: key), key: key, now: now)
                    == HistoryView.text(try single.journal(of: key), key: key, now: now))
        }
        #expect(try pooled.rows([]) == [:])
        let keys = try single.list(FixtureFile.filter(), now: now).rows.map(\.key)
        #expect(try pooled.rows(keys) == (try single.rows(keys)))
    }

    @Test("a bare id in two workflows is ambiguous in a pool too; an unknown one names the pool")
    func lookups() throws {
        let ambiguous = #expect(throws: OperationsError.self) { try pooled.resolve(SagaReference(parsing: "o-1010")) }
        #expect(
            ambiguous?.message
                == "saga id 'o-1010' exists in 2 workflows; name one: order-fulfillment/o-1010, returns/o-1010")
        let error = #expect(throws: OperationsError.self) { try pooled.resolve(SagaReference(parsing: "o-9999")) }
        #expect(error?.code == .notFound)
        #expect(
            error?.message
                == "no saga 'o-9999' in the pool \(pool.path); check the id (and the workflow), and --data-dir "
                + "(`waybill sagas list` shows what it holds)")
    }

    @Test("workflows lists each stored definition once, with the unfinished sagas of every partition")
    func workflows() throws {
        let versions = try pooled.workflowVersions()
        #expect(versions.map(\.definition.name) == ["order-fulfillment", "returns"])
        #expect(
            WorkflowsView.listText(versions, now: now)
                == WorkflowsView.listText(try single.workflowVersions(), now: now))
        #expect(
            WorkflowsView.showText(try pooled.workflowDetail("order-fulfillment"), includeSource: false)
                == WorkflowsView.showText(try single.workflowDetail("order-fulfillment"), includeSource: false))
    }

    @Test("a pool whose partitions have no file yet reads as empty")
    func emptyPool() throws {
        let empty = try PoolDirectory.create(directory.file("empty"), partitions: 4)
        let database = try SagaInspector(pool: empty)
        #expect(database.readers.isEmpty)
        #expect(try database.list(FixtureFile.filter(), now: now) == SagaPage(rows: [], hasMore: false))
        #expect(try database.stats(now: now).total == 0)
        #expect(try database.stuckReport(now: now, policy: StuckPolicy()).active == 0)
        #expect(try database.workflowVersions().isEmpty)
        let missing = #expect(throws: OperationsError.self) { try database.resolve(SagaReference(parsing: "o-1")) }
        #expect(missing?.code == .notFound)
    }

    @Test("a directory that is not a pool is refused with what to do")
    func notAPool() throws {
        let error = #expect(throws: OperationsError.self) {
            try SagaInspector(dataDirectory: directory.file("nowhere"))
        }
        #expect(error?.code == .database)
        #expect(
            error?.message
                == "\(directory.file("nowhere")) is not a Waybill pool (it has no pool.json); give the workers' data "
                + "directory with --data-dir (or data_directory in --config, or WAYBILL_DATA_DIRECTORY), create one "
                + "with `waybill pool init`, or read one file with --db FILE")
    }
}
