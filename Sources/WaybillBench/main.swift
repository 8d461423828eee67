// waybill-bench: prints performance figures; it is not a test. Run it in release mode:
//   swift run -c release waybill-bench [--quick] [--operations]
let quick = CommandLine.arguments.contains("--quick")
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
if CommandLine.arguments.contains("--operations") {
    // Builds (once, in /tmp/waybill-ops-bench) a database of 1,000,000 sagas and times each read command.
    print("")
    print(OperationsBenchmark.run())
}
