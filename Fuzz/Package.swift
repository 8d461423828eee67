// swift-tools-version:6.0
import PackageDescription

// libFuzzer targets for the text Waybill takes from people and from the wire (scripts/fuzz builds and runs them):
// workflow YAML through the reader and validator, and `${...}` expressions with JSON through the evaluator. A package
// of its own, so the main package's builds never see an executable without a `main`.
let package = Package(
    name: "waybill-fuzz",
    dependencies: [.package(name: "waybill", path: "..")],
    targets: [
        // The declaration of libFuzzer's driver, which each target's `main` hands its input callback to.
        .target(name: "CFuzzDriver"),
        .executableTarget(
            name: "FuzzWorkflowReader",
            dependencies: ["CFuzzDriver", .product(name: "WaybillDefinition", package: "waybill")]),
        .executableTarget(
            name: "FuzzExpressions",
            dependencies: ["CFuzzDriver", .product(name: "WaybillDefinition", package: "waybill")]),
    ],
    swiftLanguageModes: [.v6]
)
