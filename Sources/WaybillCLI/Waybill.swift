import ArgumentParser

/// The `waybill` command: one subcommand per job, each in its own file (`ValidateCommand.swift`, ...).
@main
struct Waybill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "waybill",
        abstract: "Saga orchestrator for order fulfillment.",
        discussion: """
            Workflows are YAML files (see Workflows/). Start with `waybill validate Workflows/*.yaml`.
            """,
        version: WaybillVersion.current,
        subcommands: [
            ValidateCommand.self, WorkerCommand.self, SagasCommand.self, WorkflowsCommand.self, PoolCommand.self,
            DLQCommand.self, EventsCommand.self, ReconcileCommand.self, HealthCommand.self, UICommand.self,
            DemoForwardCommand.self, BenchForwardCommand.self,
        ]
    )
}

/// What `waybill --version` prints.
enum WaybillVersion {
    /// Bumped with each release; `-dev` between them.
    static let current = "0.14.0-dev"
}
