import ArgumentParser
import Foundation
import WaybillDefinition

/// `waybill validate FILE...`: checks workflow files and prints a summary or every problem of each.
struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check workflow files.",
        discussion: """
            Prints one summary line per valid file on standard output and one FILE:LINE:COLUMN: message line \
            per problem on standard error, where warnings (FILE:LINE:COLUMN: warning: message) about valid files \
            go too. Exits 0 when every file is valid, warnings or not, 1 otherwise.

            Examples:
              waybill validate Workflows/order-fulfillment.yaml
              waybill validate Workflows/*.yaml && echo "all workflows are valid"
            """
    )

    /// At least one file; the argument parser rejects an empty list before `run()`.
    @Argument(help: ArgumentHelp("The workflow files to check.", valueName: "file"))
    var files: [String]

    func run() throws {
        let report = WorkflowValidator.validate(files: files)
        for result in report.files {
            let summary = result.summaryLines.map { $0 + "\n" }.joined()
            let problems = result.warningLines.map { $0 + "\n" }.joined()
            if !summary.isEmpty { FileHandle.standardOutput.write(Data(summary.utf8)) }
            if !problems.isEmpty { FileHandle.standardError.write(Data(problems.utf8)) }
        }
        guard report.exitCode == 0 else { throw ExitCode(report.exitCode) }
    }
}
