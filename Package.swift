// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "waybill",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "waybill", targets: ["WaybillCLI"]),
        .executable(name: "waybill-bench", targets: ["WaybillBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // The workflow language: YAML model, validation, `${...}` expressions, JSON values. Pure.
        .target(
            name: "WaybillDefinition",
            dependencies: [.product(name: "Yams", package: "Yams")]
        ),
        // Deterministic warehouse split planner (SPEC §4). Pure, no dependencies.
        .target(name: "SplitPlanner"),
        // The saga state machine: (definition, instance, event, now) -> (instance, actions). Pure.
        .target(name: "SagaEngine", dependencies: ["WaybillDefinition", "SplitPlanner"]),
        // SQLite persistence through GRDB: sagas, journal, inbox, outbox, timers, definitions.
        .target(
            name: "SagaStore",
            dependencies: ["SagaEngine", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // Simulated participants (ERP, inventory, WMS, TMS, billing) for tests and the demo. Pure: no transport.
        .target(name: "WaybillSimulator", dependencies: ["WaybillDefinition"]),
        .executableTarget(
            name: "WaybillCLI",
            dependencies: [
                "WaybillDefinition",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "WaybillBench",
            dependencies: ["SagaEngine", "SagaStore"]
        ),
        .testTarget(name: "WaybillDefinitionTests", dependencies: ["WaybillDefinition"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SplitPlannerTests", dependencies: ["SplitPlanner"]),
        .testTarget(name: "SagaEngineTests", dependencies: ["SagaEngine"]),
        .testTarget(name: "SagaStoreTests", dependencies: ["SagaStore"]),
        .testTarget(name: "WaybillSimulatorTests", dependencies: ["WaybillSimulator"]),
    ],
    swiftLanguageModes: [.v6]
)
