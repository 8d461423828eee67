import Foundation

/// This checkout's own files, found from this file's path (`Tests/WaybillTestSupport/Repository.swift`), so tests
/// read the files of the source they were built from, whatever the working directory.
public enum Repository {
    /// The repository root.
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// `Workflows/`: the shipped workflow files.
    public static let workflows = root.appendingPathComponent("Workflows")

    /// The shipped workflow file `Workflows/<name>`; the name includes `.yaml`.
    public static func workflow(_ name: String) -> URL { workflows.appendingPathComponent(name) }
}
