// waybill-bench: prints performance figures; it is not a test. Run it in release mode:
//   swift run -c release waybill-bench [--quick] [--operations [--partitions N]]
import Foundation

let quick = CommandLine.arguments.contains("--quick")
// WAYBILL_BENCH_ONLY (see OperationsBenchmark) profiles one read command: the engine and store figures are left out.
if ProcessInfo.processInfo.environment["WAYBILL_BENCH_ONLY"] == nil {
    do {
        print(try EngineBenchmark.run(sagas: quick ? 5_000 : 50_000))
    } catch {
        print("engine benchmark failed: \(error)")
    }
    print("")
    do {
        print(try StoreBenchmark.run(transitions: quick ? 5_000 : 20_000, batchOneTransitions: quick ? 500 : 2_000))
    } catch {
        print("store benchmark failed: \(error)")
    }
}
if CommandLine.arguments.contains("--operations") {
    // Builds (once, in /tmp/waybill-ops-bench) a database of 1,000,000 sagas and times each read command.
    print("")
    // With --partitions N, the same sagas spread over a pool of N partition files, read as `--data-dir` reads them.
    let arguments = CommandLine.arguments
    let partitions = arguments.firstIndex(of: "--partitions").flatMap { index in
        index + 1 < arguments.count ? Int(arguments[index + 1]) : nil
    }
    print(OperationsBenchmark.run(partitions: partitions))
}
