import Foundation
import GRDB
import SagaEngine
import Testing
import WaybillDefinition
import WaybillOperations
import WaybillTestSupport

@Suite("Stuck classification")
struct ClassifierTests {
    let fixture: FixtureFile

    init() throws {
        fixture = try FixtureFile()
    }

    static let expected: [String: StuckClass] = [
        "o-1004": .suspended, "o-1005": .compensationFailing, "o-1006": .replyOverdue, "o-1007": .timerOverdue,
        "o-1008": .retrying, "o-1009": .noProgress, "order-fulfillment/o-1010": .onSchedule,
        "returns/o-1010": .onSchedule,
    ]

    @Test("every unfinished saga of the fixture lands in its class; finished ones in none")
    func fixtureClasses() throws {
        for (reference, stuckClass) in Self.expected {
            #expect(try fixture.detail(reference).diagnosis.stuckClass == stuckClass, "\(reference)")
        }
        for reference in ["o-1001", "o-1002", "o-1003"] {
            #expect(try fixture.detail(reference).diagnosis.stuckClass == nil, "\(reference)")
        }
    }

    @Test(
        "the index-only report agrees with the per-saga rules at any moment and threshold",
        arguments: [
            (Fixture.now, StuckPolicy()),
            (Fixture.at(40), StuckPolicy()),
            (Fixture.at(-200), StuckPolicy(grace: .seconds(1), noProgressAfter: .seconds(60))),
            (Fixture.at(4_000), StuckPolicy(grace: .seconds(3_600), noProgressAfter: .seconds(7_200))),
            (Fixture.at(9_000), StuckPolicy(grace: .seconds(1), noProgressAfter: .seconds(1))),
        ])
    func agreement(now: Timestamp, policy: StuckPolicy) throws {
        var byRules: [StuckClass: [String]] = [:]
        var all = SagaFilter()
        all.statuses = [.running, .compensating, .suspended]
        for record in try fixture.database.snapshot(all, now: now) {
            let stuckClass = try #require(StuckClassifier.classify(record.instance, now: now, policy: policy))
            byRules[stuckClass, default: []].append(record.row.key.description)
        }
        for stuckClass in StuckClass.allCases {
            let report = try fixture.database.stuckReport(now: now, policy: policy, only: stuckClass, limit: 100)
            let members = report.members.map(\.row.key.description)
            #expect(members.sorted() == (byRules[stuckClass] ?? []).sorted(), "\(stuckClass)")
            #expect(report.summaries.first { $0.stuckClass == stuckClass }?.count == members.count)
            #expect(report.members.allSatisfy { $0.diagnosis.stuckClass == stuckClass })
        }
    }

    @Test("members come oldest progress first, and the report says when more exist")
    func memberOrder() throws {
        let report = try fixture.database.stuckReport(
            now: Fixture.at(9_000), policy: StuckPolicy(grace: .seconds(3_600 * 5), noProgressAfter: .seconds(1)),
            only: .noProgress, limit: 3)
        #expect(
            report.members.map(\.row.key.description) == [
                "order-fulfillment/o-1009", "order-fulfillment/o-1006", "returns/o-1010",
            ])
        #expect(report.hasMore)
    }
}

@Suite("Opening a file")
struct OpeningTests {
    @Test("a missing file and a file that is not a Waybill store are refused with what to do")
    func refusals() throws {
        let directory = try TemporaryDirectory()
        let missing = directory.file("nope.sqlite")
        #expect(
            throws: OperationsError(
                .database,
                "\(missing) does not exist: check the file given with --db, or read the pool's partition files with "
                    + "--data-dir DIR")
        ) { try SagaInspector(path: missing) }
        let other = directory.file("other.sqlite")
        try DatabaseQueue(path: other).write { db in try db.execute(sql: "CREATE TABLE t (x)") }
        #expect(
            throws: OperationsError(
                .database,
                "\(other) is not a Waybill store (it has no Waybill schema; this binary reads schema version 1 "
                    + "('v1-sagas-journal-inbox-outbox-timers') up to schema version 8 "
                    + "('v8-outbox-without-message-index')). "
                    + "Check the path, or start a worker on it once to create the tables.")
        ) { try SagaInspector(path: other) }
        // The printed line names the store's code too, and stays one line.
        let error = #expect(throws: OperationsError.self) { try SagaInspector(path: other) }
        #expect(error?.description.hasPrefix("operations.database: \(other) is not a Waybill store") == true)
        #expect(error?.description.hasSuffix("(store.schema_mismatch)") == true, "\(String(describing: error))")
        let damaged = directory.file("damaged.sqlite")
        try Data("not a database at all, just text that is long enough to fill a header page".utf8).write(
            to: URL(fileURLWithPath: damaged))
        let unreadable = #expect(throws: OperationsError.self) { try SagaInspector(path: damaged) }
        #expect(unreadable?.description.contains("check --db") == true, "\(String(describing: unreadable))")
        #expect(unreadable?.description.contains("\n") == false, "\(String(describing: unreadable))")
    }

    @Test("reads never write: the file is unchanged after every read command")
    func readOnly() throws {
        let fixture = try FixtureFile()
        let before = try Data(contentsOf: URL(fileURLWithPath: fixture.path))
        let database = try SagaInspector(path: fixture.path)
        _ = try database.list(FixtureFile.filter(), now: Fixture.now)
        _ = try database.stuckReport(now: Fixture.now, policy: StuckPolicy(), only: .suspended)
        _ = try database.stats(now: Fixture.now)
        _ = try database.workflowVersions()
        _ = try fixture.detail("o-1004")
        #expect(try Data(contentsOf: URL(fileURLWithPath: fixture.path)) == before)
    }
}
