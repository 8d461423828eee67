import ArgumentParser
import Foundation
import WaybillOperations

/// `waybill workflows list|show`: the workflow versions a pool's partition files (or one file) store.
struct WorkflowsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workflows",
        abstract: "The workflow versions stored in the pool (or one file), and the unfinished sagas on each.",
        discussion: """
            A saga keeps the exact definition text it started with (stored by content hash), so old versions stay \
            here while sagas still run on them.

            Examples:
              waybill workflows list
              waybill workflows show order-fulfillment@1 --source
            """,
        subcommands: [WorkflowsListCommand.self, WorkflowsShowCommand.self]
    )
}

/// `waybill workflows list`.
struct WorkflowsListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Every stored definition: version, content hash, first seen, unfinished sagas.",
        discussion: """
            Examples:
              waybill workflows list
              waybill workflows list --json | jq '.workflows[] | select(.running > 0)'
            """
    )

    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        try Operator.run("workflows list") {
            let versions = try store.open().workflowVersions()
            Operator.print(
                output.json
                    ? PrettyJSON.render(WorkflowsView.listJSON(versions))
                    : WorkflowsView.listText(versions, now: Operator.now()))
        }
    }
}

/// `waybill workflows show`.
struct WorkflowsShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "One version: its steps, retry and timeout settings, and where its unfinished sagas are.",
        discussion: """
            WORKFLOW is NAME (the newest version), NAME@VERSION, or a content hash prefix (6+ hex digits).

            Examples:
              waybill workflows show order-fulfillment
              waybill workflows show order-fulfillment@1 --source
              waybill workflows show 3f2a9c --json
            """
    )

    @Argument(help: ArgumentHelp("NAME, NAME@VERSION or a hash prefix.", valueName: "workflow"))
    var workflow: String

    @Flag(help: "Print the stored YAML too.")
    var source = false

    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        try Operator.run("workflows show") {
            let detail = try store.open().workflowDetail(workflow)
            Operator.print(
                output.json
                    ? PrettyJSON.render(WorkflowsView.showJSON(detail))
                    : WorkflowsView.showText(detail, includeSource: source))
        }
    }
}
