import Foundation
import Logging
import PlainText
import SagaEngine
import SagaStore
import Synchronization

/// A swift-log handler that appends lines to a file, so the demo's progress display stays clean and the worker's
/// log can be read afterwards. Payloads are never logged by the worker at the levels the demo uses.
public struct FileLogHandler: LogHandler {
    /// The open file, shared by every logger made from the same handler.
    private final class Sink: Sendable {
        private let handle: Mutex<FileHandle>

        init(handle: FileHandle) {
            self.handle = Mutex(handle)
        }

        func write(_ line: String) {
            handle.withLock { $0.write(Data(line.utf8)) }
        }
    }

    private let sink: Sink
    private let label: String
    /// The least severe level written.
    public var logLevel: Logger.Level
    /// Metadata added to every line.
    public var metadata: Logger.Metadata = [:]

    /// A handler appending to `path` (created, with its folder, when missing).
    public init(path: String, label: String, level: Logger.Level) throws {
        let manager = FileManager.default
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty { try manager.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        if !manager.fileExists(atPath: path) { _ = manager.createFile(atPath: path, contents: nil) }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw DemoError(.fileProblem, "cannot open the log file \(path) for writing")
        }
        handle.seekToEndOfFile()
        sink = Sink(handle: handle)
        self.label = label
        logLevel = level
    }

    private init(sink: Sink, label: String, level: Logger.Level) {
        self.sink = sink
        self.label = label
        logLevel = level
    }

    /// A handler for another label writing to the same file.
    public func withLabel(_ label: String) -> FileLogHandler {
        FileLogHandler(sink: sink, label: label, level: logLevel)
    }

    /// Metadata by key.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes one line: time, level, label, message, metadata.
    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let fields =
            merged.isEmpty
            ? "" : " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let time = UTCTime(millisecondsSinceEpoch: Timestamp.now().milliseconds).text(.seconds)
        sink.write("\(time) \(event.level) \(label): \(event.message)\(fields)\n")
    }
}
