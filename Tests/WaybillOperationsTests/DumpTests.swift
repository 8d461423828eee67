import Foundation
import SagaEngine
import Testing
import WaybillDefinition
import WaybillOperations

/// Writes every golden output of the fixture to $WAYBILL_DUMP (a directory) for review; skipped otherwise.
@Test(.enabled(if: ProcessInfo.processInfo.environment["WAYBILL_DUMP"] != nil))
func dumpFixtureOutputs() throws {
    let folder = ProcessInfo.processInfo.environment["WAYBILL_DUMP"] ?? "/tmp/golden"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    func write(_ name: String, _ text: String) throws {
        try text.write(toFile: folder + "/" + name, atomically: true, encoding: .utf8)
    }
    let fixture = try FixtureFile()
    let database = fixture.database
    let now = Fixture.now
    let all = FixtureFile.filter()
    try write("list.txt", ListView.text(try database.list(all, now: now), filter: all, now: now))
    let merged = FixtureFile.filter {
        $0.statuses = [.running, .compensating]
        $0.limit = 3
    }
    try write("list-merged.txt", ListView.text(try database.list(merged, now: now), filter: merged, now: now))
    let none = FixtureFile.filter { $0.owner = "nobody" }
    try write("list-none.txt", ListView.text(try database.list(none, now: now), filter: none, now: now))
    for id in ["o-1001", "o-1002", "o-1003", "o-1004", "o-1005", "o-1006", "o-1007", "o-1008", "o-1009"] {
        try write("show-\(id).txt", ShowView.text(try fixture.detail(id)))
    }
    try write("show-o-1008.json", PrettyJSON.render(ShowView.json(try fixture.detail("o-1008"))))
    let details = try ["o-1001", "o-1002", "o-1003", "o-1004", "o-1005", "o-1006", "o-1007", "o-1008", "o-1009"].map {
        ShowView.json(try fixture.detail($0))
    }
    try write("show-shape.txt", shape(.array(details)))
    try write("list-shape.txt", shape(ListView.json(try database.list(all, now: now), filter: all, now: now)))
    let key = SagaKey(workflow: "order-fulfillment", id: "o-1003")
    try write("history-o-1003.txt", HistoryView.text(try database.journal(of: key), key: key, now: now))
    try write("history-o-1003.json", PrettyJSON.render(HistoryView.json(try database.journal(of: key), key: key)))
    try write("stuck.txt", StuckView.text(try database.stuckReport(now: now, policy: StuckPolicy())))
    let suspended = try database.stuckReport(now: now, policy: StuckPolicy(), only: .suspended)
    try write("stuck-suspended.txt", StuckView.text(suspended))
    try write("stuck-shape.txt", shape(StuckView.json(suspended)))
    let stats = try database.stats(now: now, window: .seconds(3 * 3600))
    try write("stats.txt", StatsView.text(stats))
    try write("stats-shape.txt", shape(StatsView.json(stats)))
    try write("workflows.txt", WorkflowsView.listText(try database.workflowVersions(), now: now))
    try write("workflows-shape.txt", shape(WorkflowsView.listJSON(try database.workflowVersions())))
    try write(
        "workflow-show.txt",
        WorkflowsView.showText(try database.workflowDetail("order-fulfillment"), includeSource: false))
    try write(
        "workflow-returns.txt", WorkflowsView.showText(try database.workflowDetail("returns@1"), includeSource: true))
    try write("workflow-shape.txt", shape(WorkflowsView.showJSON(try database.workflowDetail("order-fulfillment"))))
}
