import ArgumentParser
import Foundation
import WaybillOperations

/// `waybill demo` and `waybill bench` run the `waybill-demo` executable built beside this one, so the production
/// binary (the worker and the operator commands) does not link the simulated participants or the benchmark.
protocol CompanionCommand: ParsableCommand {
    /// The subcommand of `waybill-demo` to run.
    static var companionSubcommand: String { get }
    /// Everything after the subcommand, passed on untouched (including `--help`).
    var arguments: [String] { get }
}

extension CompanionCommand {
    /// Replaces this process with `waybill-demo <subcommand> <arguments>`. When it cannot, prints
    /// `waybill <subcommand>: operations.cannot_run: message (cause)` and exits with status 1.
    func run() throws {
        guard let own = Bundle.main.executablePath else {
            throw failure(
                OperationsError(
                    .cannotRun, "cannot tell where this waybill executable lives; run waybill-demo directly"))
        }
        let companion = ((own as NSString).deletingLastPathComponent as NSString).appendingPathComponent(
            "waybill-demo")
        guard FileManager.default.isExecutableFile(atPath: companion) else {
            throw failure(
                OperationsError(
                    .cannotRun,
                    "\(companion) is missing; build it with `swift build -c release` (scripts/demo does), or run "
                        + "scripts/demo"))
        }
        let argv = [companion, Self.companionSubcommand] + arguments
        let cArguments = argv.map { strdup($0) } + [nil]
        execv(companion, cArguments)
        // Only reached when execv failed.
        let cause = POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        throw failure(
            OperationsError(
                .cannotRun,
                "cannot run \(companion); check that it is an executable built for this machine, or rebuild it with "
                    + "`swift build -c release`",
                cause: cause))
    }

    /// Prints `error` as the command's one error line and gives the exit status to throw.
    private func failure(_ error: OperationsError) -> ExitCode {
        Operator.note("waybill \(Self.companionSubcommand): \(error)\n")
        return ExitCode(error.exitCode)
    }
}

/// `waybill demo`: see `waybill-demo demo --help`.
struct DemoForwardCommand: CompanionCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a worker, simulated participants and a stream of orders on a local RabbitMQ; print a summary.",
        discussion: "Runs `waybill-demo demo`; `waybill demo --help` lists its options.",
        helpNames: []
    )
    static let companionSubcommand = "demo"

    @Argument(parsing: .captureForPassthrough, help: "Options of `waybill-demo demo`.")
    var arguments: [String] = []
}

/// `waybill bench`: see `waybill-demo bench --help`.
struct BenchForwardCommand: CompanionCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure throughput, the pattern ceiling, step overhead and memory on a local RabbitMQ.",
        discussion: "Runs `waybill-demo bench`; `waybill bench --help` lists its options.",
        helpNames: []
    )
    static let companionSubcommand = "bench"

    @Argument(parsing: .captureForPassthrough, help: "Options of `waybill-demo bench`.")
    var arguments: [String] = []
}
