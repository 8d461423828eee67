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
            per problem on standard error. Exits 0 when every file is valid, 1 otherwise.

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
            let text = result.lines.map { $0 + "\n" }.joined()
            if result.isValid {
                FileHandle.standardOutput.write(Data(text.utf8))
            } else {
                FileHandle.standardError.write(Data(text.utf8))
            }
        }
        guard report.exitCode == 0 else { throw ExitCode(report.exitCode) }
    }
}
