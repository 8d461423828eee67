import ArgumentParser

/// `waybill-demo`: the demo and the end-to-end benchmark, kept out of the production `waybill` binary so that the
/// worker and the operator commands never link the simulated participants. `waybill demo` and `waybill bench` run
/// this executable (it is built beside `waybill`).
@main
struct WaybillDemoTool: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "waybill-demo",
        abstract: "The Waybill demo and end-to-end benchmark (also reachable as `waybill demo` and `waybill bench`).",
        subcommands: [
            DemoCommand.self, BenchCommand.self, ChaosCommand.self, FeedCommand.self, ParticipantsCommand.self,
            OrdersCommand.self,
        ]
    )
}
