// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "waybill",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "waybill", targets: ["WaybillCLI"]),
        .executable(name: "waybill-demo", targets: ["WaybillDemoCLI"]),
        .executable(name: "waybill-bench", targets: ["WaybillBench"]),
        // For Fuzz/, the libFuzzer package beside this one (scripts/fuzz).
        .library(name: "WaybillDefinition", targets: ["WaybillDefinition"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        .package(url: "https://github.com/swift-otel/swift-w3c-trace-context", from: "1.0.0"),
    ],
    targets: [
        // The one error shape: `CodedError<Domain>` with a stable dotted code, a message and the cause; each error
        // family is a typealias of it. Pure, no dependencies.
        .target(name: "CodedError"),
        // The workflow language: YAML model, validation, `${...}` expressions, JSON values. Pure.
        .target(
            name: "WaybillDefinition",
            dependencies: ["CodedError", .product(name: "Yams", package: "Yams")]
        ),
        // Deterministic warehouse split planner (docs/workflows.md). Pure.
        .target(name: "SplitPlanner", dependencies: ["CodedError"]),
        // The one seeded generator (SplitMix64) and stable hash: engine jitter, simulator, benchmarks, tests. Pure,
        // no dependencies.
        .target(name: "SeededRandom"),
        // Text without Foundation's locale: padding, UTC times (formatting and strict parsing), the progress bar,
        // shell quoting. Pure, no dependencies.
        .target(name: "PlainText"),
        // The saga state machine: (definition, instance, event, now) -> (instance, actions). Pure.
        .target(name: "SagaEngine", dependencies: ["WaybillDefinition", "SplitPlanner", "SeededRandom"]),
        // The system SQLite that GRDB links; imported only by SagaStore, to bind the hot writes' values directly.
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // The system zlib (Debian's zlib1g-dev): the gzip members of the saga archive; imported only by SagaStore.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // SQLite persistence through GRDB: sagas, journal, inbox, outbox, timers, definitions.
        .target(
            name: "SagaStore",
            dependencies: [
                "CodedError", "CSQLite", "CZlib", "PlainText", "WaybillDefinition", "SagaEngine", "SeededRandom",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        // rabbitmq-c 0.11 (Debian's librabbitmq-dev); imported only by AMQPTransport.
        .systemLibrary(name: "CRabbitMQ", pkgConfig: "librabbitmq", providers: [.apt(["librabbitmq-dev"])]),
        // AMQP 0-9-1 client over rabbitmq-c: one thread per connection, confirms, reconnect, async API.
        .target(
            name: "AMQPTransport",
            dependencies: ["CodedError", "CRabbitMQ", .product(name: "Logging", package: "swift-log")]
        ),
        // The wire contract both sides agree on: header names, content types, reading starts and replies, and the
        // operator control messages. Pure: no transport, no store.
        .target(name: "WaybillWire", dependencies: ["CodedError", "WaybillDefinition", "SagaEngine"]),
        // Starting and reaping child processes (posix_spawn, a reaper thread, async waits); the only way Waybill runs
        // another program.
        .target(name: "ChildProcess", dependencies: ["CodedError"]),
        // The worker: topology, the batching hot loop (engine -> one SQLite transaction -> confirms -> acks),
        // the outbox relay, durable timers, writing commands and milestones, and configuration.
        .target(
            name: "WaybillWorker",
            dependencies: [
                "CodedError", "WaybillDefinition", "SagaEngine", "SagaStore", "AMQPTransport", "WaybillWire",
                "WaybillOperations", "PlainText", "SeededRandom", .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
            ]
        ),
        // A worker's HTTP endpoints (/metrics in Prometheus' format, /healthz, /readyz) on Hummingbird, and the
        // one-request client `waybill health` uses.
        .target(
            name: "WaybillHTTP",
            dependencies: [
                "WaybillWorker",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Simulated participants (ERP, inventory, WMS, TMS, billing) for tests and the demo. Pure: no transport.
        .target(
            name: "WaybillSimulator", dependencies: ["CodedError", "WaybillDefinition", "SeededRandom", "PlainText"]),
        // The demo and the benchmark: simulated participants on AMQP, the demo runner, the load generator, figures.
        .target(
            name: "WaybillDemo",
            dependencies: [
                "CodedError", "WaybillDefinition", "SagaEngine", "SagaStore", "AMQPTransport", "WaybillWire",
                "WaybillWorker", "WaybillSimulator", "WaybillOperations", "ChildProcess", "PlainText", "SeededRandom",
                "SplitPlanner", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // Operator tooling behind `waybill sagas|workflows|dlq`: offline reads through the store's typed read API
        // (SagaInspector), the stuck classifier, table and JSON rendering, local repair checks, and the online side:
        // the control-message client and the repair runner. No SQL of its own.
        .target(
            name: "WaybillOperations",
            dependencies: [
                "CodedError", "WaybillDefinition", "SagaEngine", "SagaStore", "AMQPTransport", "WaybillWire",
                "PlainText", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The operator web view (`waybill ui`): server-rendered pages on Hummingbird over the same reads and repairs as
        // the operator commands. No JavaScript, no front-end build.
        .target(
            name: "WaybillUI",
            dependencies: [
                "WaybillOperations", "SagaEngine", "SagaStore", "WaybillDefinition", "WaybillWire", "PlainText",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The production `waybill` executable: worker, validate and the operator commands. It does not link the
        // simulator or the benchmark; `waybill demo` and `waybill bench` run the `waybill-demo` executable.
        .executableTarget(
            name: "WaybillCLI",
            dependencies: [
                "WaybillDefinition", "SagaEngine", "SagaStore", "WaybillWire", "WaybillWorker", "WaybillOperations",
                "WaybillHTTP", "WaybillUI", "PlainText",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // `waybill-demo`: the demo and the end-to-end benchmark, with the simulated participants.
        .executableTarget(
            name: "WaybillDemoCLI",
            dependencies: [
                "WaybillDemo", "PlainText",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "WaybillBench",
            dependencies: [
                "SagaEngine", "SagaStore", "WaybillDefinition", "WaybillOperations", "WaybillWire", "SeededRandom",
                "PlainText",
            ]
        ),
        // Helpers every test target shares: the private test broker (`WAYBILL_TEST_AMQP_URL`), waits with deadlines,
        // temporary directories, the repository's files, order JSON fixtures. A regular target under Tests/, linked
        // only by test targets.
        .target(
            name: "WaybillTestSupport",
            dependencies: [
                "AMQPTransport", "ChildProcess", "WaybillDefinition", .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/WaybillTestSupport"
        ),
        .testTarget(name: "CodedErrorTests", dependencies: ["CodedError"]),
        .testTarget(
            name: "WaybillDefinitionTests", dependencies: ["WaybillDefinition", "SeededRandom", "WaybillTestSupport"],
            resources: [.copy("Fixtures")]),
        .testTarget(name: "SeededRandomTests", dependencies: ["SeededRandom"]),
        .testTarget(name: "PlainTextTests", dependencies: ["PlainText"]),
        .testTarget(name: "SplitPlannerTests", dependencies: ["SplitPlanner", "SeededRandom"]),
        .testTarget(
            name: "SagaEngineTests",
            dependencies: ["SagaEngine", "WaybillDefinition", "SeededRandom", "WaybillTestSupport"]),
        .testTarget(
            name: "SagaStoreTests",
            dependencies: [
                "SagaStore", "SagaEngine", "WaybillDefinition", "WaybillTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            resources: [.copy("GoldenStates")]
        ),
        .testTarget(name: "AMQPTransportTests", dependencies: ["AMQPTransport", "WaybillTestSupport"]),
        .testTarget(name: "ChildProcessTests", dependencies: ["ChildProcess", "WaybillTestSupport"]),
        .testTarget(
            name: "WaybillWorkerTests",
            dependencies: [
                "WaybillWorker", "WaybillWire", "WaybillDefinition", "SagaEngine", "SagaStore", "AMQPTransport",
                "ChildProcess", "WaybillTestSupport", "WaybillHTTP", "WaybillUI", "WaybillOperations",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ]
        ),
        .testTarget(
            name: "WaybillSimulatorTests",
            dependencies: ["WaybillSimulator", "WaybillDefinition", "WaybillTestSupport"]),
        .testTarget(
            name: "WaybillDemoTests",
            dependencies: [
                "WaybillDemo", "WaybillSimulator", "WaybillWire", "WaybillWorker", "WaybillDefinition", "AMQPTransport",
                "WaybillOperations",
                "SagaEngine", "SagaStore", "SplitPlanner", "WaybillTestSupport", "ChildProcess",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "WaybillOperationsTests",
            dependencies: [
                "WaybillOperations", "SagaEngine", "SagaStore", "WaybillDefinition", "WaybillWire", "AMQPTransport",
                "WaybillTestSupport", "WaybillUI", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
