import Foundation
import WaybillDefinition

/// The workflow the engine benchmark drives: the shipped `Workflows/order-fulfillment.yaml`, so the figure is for
/// the saga users run, not a copy of it.
enum BenchmarkWorkflow {
    /// The repository's `Workflows/` folder, found from this source file (the benchmark runs from a checkout).
    static let workflowsDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Workflows")

    /// Loads and validates the shipped order-fulfillment workflow.
    static func orderFulfillment() throws -> WorkflowDefinition {
        let source = try WorkflowSource.read(
            file: workflowsDirectory.appendingPathComponent("order-fulfillment.yaml").path)
        return try WorkflowLoader.load(source)
    }
}
