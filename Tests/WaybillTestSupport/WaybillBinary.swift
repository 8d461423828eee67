import ChildProcess
import Foundation
import Testing

/// The `waybill` executable this checkout built, run as an operator runs it.
///
/// The binary is `<scratch path>/debug/waybill`; the scratch path is `WAYBILL_TEST_SCRATCH_PATH` (relative to the
/// repository unless absolute), `.build` by default, so build with the same `--scratch-path` as the tests.
public enum WaybillBinary {
    /// The binary's path; fails the test, saying how to build it, when it is missing.
    public static func path() throws -> String {
        let scratch =
            ProcessInfo.processInfo.environment["WAYBILL_TEST_SCRATCH_PATH"].flatMap { $0.isEmpty ? nil : $0 }
            ?? ".build"
        let base =
            scratch.hasPrefix("/") ? URL(fileURLWithPath: scratch) : Repository.root.appendingPathComponent(scratch)
        let binary = base.appendingPathComponent("debug/waybill").path
        try #require(
            FileManager.default.isExecutableFile(atPath: binary),
            "no waybill binary at \(binary): build it (swift build --scratch-path \(scratch)) or set WAYBILL_TEST_SCRATCH_PATH"
        )
        return binary
    }

    /// Runs `waybill arguments` (killed after 60 s) with the test process's environment minus its `WAYBILL_`
    /// variables, plus `environment`; returns the exit status and everything it printed (standard output and
    /// standard error interleaved).
    public static func run(
        _ arguments: [String], environment: [String: String] = [:]
    ) async throws -> (status: Int32, output: String) {
        var merged = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("WAYBILL_") }
        merged.merge(environment) { _, new in new }
        let (termination, output) = try await ChildProcess.run(
            try path(), arguments: arguments, environment: merged, timeout: .seconds(60))
        return (termination.shellStatus, output)
    }
}
