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
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
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
        // rabbitmq-c 0.11 (Debian's librabbitmq-dev); imported only by AMQPTransport.
        .systemLibrary(name: "CRabbitMQ", pkgConfig: "librabbitmq", providers: [.apt(["librabbitmq-dev"])]),
        // AMQP 0-9-1 client over rabbitmq-c: one thread per connection, confirms, reconnect, async API.
        .target(
            name: "AMQPTransport",
            dependencies: ["CRabbitMQ", .product(name: "Logging", package: "swift-log")]
        ),
        // The worker: topology, the batching hot loop (engine -> one SQLite transaction -> confirms -> acks),
        // the outbox relay, durable timers, the wire format of SPEC §2 and configuration.
        .target(
            name: "WaybillWorker",
            dependencies: [
                "WaybillDefinition", "SagaEngine", "SagaStore", "AMQPTransport",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Simulated participants (ERP, inventory, WMS, TMS, billing) for tests and the demo. Pure: no transport.
        .target(name: "WaybillSimulator", dependencies: ["WaybillDefinition"]),
        // The demo and the benchmark: simulated participants on AMQP, the demo runner, the load generator, figures.
        .target(
            name: "WaybillDemo",
            dependencies: [
                "WaybillDefinition", "SagaEngine", "SagaStore", "AMQPTransport", "WaybillWorker", "WaybillSimulator",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Operator tooling behind `waybill sagas|workflows|dlq`: read-only queries, the stuck classifier, table and
        // JSON rendering, local repair checks and the control-message client. Everything testable lives here.
        .target(
            name: "WaybillOperations",
            dependencies: [
                "WaybillDefinition", "SagaEngine", "SagaStore", "AMQPTransport", "WaybillWorker",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "WaybillCLI",
            dependencies: [
                "WaybillDefinition", "WaybillWorker", "WaybillDemo", "WaybillOperations",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "WaybillBench",
            dependencies: [
                "SagaEngine", "SagaStore", "WaybillOperations", .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "WaybillDefinitionTests", dependencies: ["WaybillDefinition"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SplitPlannerTests", dependencies: ["SplitPlanner"]),
        .testTarget(name: "SagaEngineTests", dependencies: ["SagaEngine"]),
        .testTarget(name: "SagaStoreTests", dependencies: ["SagaStore"], resources: [.copy("GoldenStates")]),
        .testTarget(name: "AMQPTransportTests", dependencies: ["AMQPTransport"]),
        .testTarget(
            name: "WaybillWorkerTests",
            dependencies: [
                "WaybillWorker", "WaybillDefinition", "SagaEngine", "SagaStore", "AMQPTransport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(name: "WaybillSimulatorTests", dependencies: ["WaybillSimulator"]),
        .testTarget(
            name: "WaybillDemoTests",
            dependencies: ["WaybillDemo", "WaybillSimulator", "WaybillWorker", "WaybillDefinition", "AMQPTransport"]
        ),
        .testTarget(
            name: "WaybillOperationsTests",
            dependencies: [
                "WaybillOperations", "SagaEngine", "SagaStore", "WaybillDefinition", "AMQPTransport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
