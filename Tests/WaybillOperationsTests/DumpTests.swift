import Foundation
import SagaEngine
import Testing
import WaybillDefinition
import WaybillOperations

@Test(.enabled(if: ProcessInfo.processInfo.environment["WAYBILL_DUMP"] != nil))
func dumpFixtureOutputs() throws {
    let directory = try TemporaryDirectory()
    let path = try Fixture.build(in: directory)
    let database = try OperationsDatabase(path: path)
    let now = Fixture.now
    var out = ""
    var filter = SagaFilter()
    filter.limit = 50
    let page = try database.list(filter, now: now)
    out += "=== list\n" + ListView.text(page, filter: filter, now: now)
    out += "=== list json\n" + PrettyJSON.render(ListView.json(page, filter: filter, now: now))
    for id in ["o-1001", "o-1002", "o-1003", "order-fulfillment/o-1004", "o-1005", "o-1006", "o-1007", "o-1008", "o-1009", "order-fulfillment/o-1010"] {
        let key = try database.resolve(try SagaReference(parsing: id))
        let record = try #require(try database.saga(key))
        let definition = try database.definition(hash: record.row.definitionHash)
        let detail = SagaDetail(
            record: record, definition: definition, timers: try database.timers(of: key),
            journal: try database.journalTail(of: key, count: 5), now: now)
        out += "=== show \(id)\n" + ShowView.text(detail)
        if id == "order-fulfillment/o-1004" { out += "=== show json\n" + PrettyJSON.render(ShowView.json(detail)) }
        out += "=== history \(id)\n" + HistoryView.text(try database.journal(of: key), key: key, now: now)
    }
    let report = try database.stuckReport(now: now, policy: StuckPolicy(), only: .suspended)
    out += "=== stuck\n" + StuckView.text(report)
    out += "=== stuck json\n" + PrettyJSON.render(StuckView.json(report))
    let stats = try database.stats(now: now, window: .seconds(3 * 3600))
    out += "=== stats\n" + StatsView.text(stats)
    out += "=== stats json\n" + PrettyJSON.render(StatsView.json(stats))
    out += "=== workflows\n" + WorkflowsView.listText(try database.workflowVersions(), now: now)
    out += "=== workflow show\n" + WorkflowsView.showText(try database.workflowDetail("order-fulfillment"), includeSource: false)
    try out.write(toFile: "/tmp/waybill-dump.txt", atomically: true, encoding: .utf8)
}
