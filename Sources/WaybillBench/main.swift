// Store half of the benchmark; the lead merges the engine half into this file.
let arguments = CommandLine.arguments.dropFirst()
let sagas = arguments.first.flatMap { Int($0) } ?? 1_000
print(try StoreBenchmark.run(sagas: sagas))
