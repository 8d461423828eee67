import AMQPTransport
import CodedError
import Foundation
import WaybillDefinition
import WaybillWire
import WaybillWorker

/// The names a demo run uses on the broker: the shipped ones, or every one of them prefixed by a namespace so that
/// several runs (tests, benchmark phases) share a vhost without seeing each other's messages.
///
/// With a namespace the workflow is renamed `<namespace>-<name>` and its trigger exchange `<namespace>.<exchange>`,
/// because the start queue and the partition exchange are named after the workflow.
public struct DemoNames: Sendable, Hashable {
    /// The prefix, or `nil` for the shipped names.
    public var namespace: String?

    /// Names for `namespace` (letters, digits and `-` only; `nil` keeps the shipped names).
    public init(namespace: String? = nil) throws(DemoError) {
        if let namespace {
            guard !namespace.isEmpty,
                namespace.allSatisfy({ ($0.isLetter && $0.isLowercase) || $0.isNumber || $0 == "-" })
            else {
                throw DemoError(
                    .invalidOption, "namespace '\(namespace)': use lowercase letters, digits and '-' only")
            }
        }
        self.namespace = namespace
    }

    private func prefixed(_ name: String, _ separator: String = ".") -> String {
        namespace.map { "\($0)\(separator)\(name)" } ?? name
    }

    /// The id of the run's worker `number`, counted from 1: `demo-1`, or `<namespace>-demo-1`. Its member files in
    /// the pool, the `owner` of the sagas it writes and its broker connection are named after it; give every worker
    /// of one pool a different number.
    public func workerId(_ number: Int) -> String { prefixed("demo-\(number)", "-") }
    /// The commands exchange.
    public var commandsExchange: String { prefixed("waybill.commands") }
    /// The events exchange.
    public var eventsExchange: String { prefixed("waybill.events") }
    /// The dead-letter exchange.
    public var deadLetterExchange: String { prefixed("waybill.dead-letter") }
    /// The dead-letter queue.
    public var deadLetterQueue: String { prefixed("waybill.dead-letter") }
    /// The simulated participants' queue.
    public var participantsQueue: String { prefixed("waybill.demo.participants") }
    /// The exclusive queue the demo watches end milestones on (one per process).
    public var monitorQueue: String { prefixed("waybill.demo.monitor.\(ProcessInfo.processInfo.processIdentifier)") }

    /// The workflow's name under this namespace.
    public func workflowName(_ name: String) -> String { prefixed(name, "-") }

    /// The prefix of the pool's partition queues.
    public var poolName: String { prefixed("waybill") }

    /// The queues of a pool with `count` partitions under these names.
    public func partitionQueues(count: Int) -> [String] {
        (0..<count).map { PoolQueues.partition($0, pool: poolName) }
    }

    /// The configuration of worker `number` (see ``workerId(_:)``) with these names; the caller sets the broker, the
    /// pool's data directory and the workflows folder.
    public func workerConfiguration(number: Int) -> WorkerConfiguration {
        var configuration = WorkerConfiguration()
        configuration.workerId = workerId(number)
        configuration.commandsExchange = commandsExchange
        configuration.eventsExchange = eventsExchange
        configuration.deadLetterExchange = deadLetterExchange
        configuration.deadLetterQueue = deadLetterQueue
        configuration.poolName = poolName
        return configuration
    }

    /// Rewrites a workflow file's text for this namespace: the top-level `name:`, the trigger's `exchange:` and the
    /// `exchange:` of every wait step's message written in block style with `exchange:` first.
    /// Without a namespace the text is returned unchanged.
    public func rewrite(workflowText text: String, file: String) throws(DemoError) -> String {
        guard let namespace else { return text }
        var lines = text.components(separatedBy: "\n")
        var renamed = false
        var exchanged = false
        var inTrigger = false
        var previous = ""
        for (index, line) in lines.enumerated() {
            defer { if !line.trimmingCharacters(in: .whitespaces).isEmpty { previous = line } }
            let indented = line.first == " " || line.first == "\t"
            if !indented, !line.isEmpty, !line.hasPrefix("#") { inTrigger = line.hasPrefix("trigger:") }
            if !renamed, !indented, line.hasPrefix("name:") {
                let (value, comment) = Self.scalar(after: "name:", in: line)
                lines[index] = "name: \(namespace)-\(value)\(comment)"
                renamed = true
            } else if indented, line.trimmingCharacters(in: .whitespaces).hasPrefix("exchange:"),
                inTrigger || previous.trimmingCharacters(in: .whitespaces).hasPrefix("message:")
            {
                // The trigger's, and a wait step's message written in block style (its first key).
                let indent = line.prefix { $0 == " " || $0 == "\t" }
                let (value, comment) = Self.scalar(after: "exchange:", in: String(line.dropFirst(indent.count)))
                lines[index] = "\(indent)exchange: \(namespace).\(value)\(comment)"
                if inTrigger { exchanged = true }
            }
        }
        guard renamed, exchanged else {
            throw DemoError(
                .invalidOption,
                "\(file): cannot apply namespace '\(namespace)': expected a top-level 'name:' and a block-style "
                    + "'trigger:' with 'exchange:'")
        }
        return lines.joined(separator: "\n")
    }

    /// The plain scalar after `key` and any trailing comment (kept with its spacing).
    private static func scalar(after key: String, in line: String) -> (String, String) {
        let rest = line.dropFirst(key.count)
        let value = rest.drop { $0 == " " || $0 == "\t" }
        let end = value.firstIndex { $0 == " " || $0 == "\t" || $0 == "#" } ?? value.endIndex
        return (String(value[..<end]), String(value[end...]))
    }
}

/// Why a demo or benchmark could not run: a stable code, a message that says what to do about it, and the error
/// underneath (a file or process error, the broker's refusal) when there is one. Match on the code, not the message.
public typealias DemoError = CodedError<DemoErrorDomain>

/// The demo's and the benchmark's error family (``DemoError``): its codes are `demo.<snake_case>`.
public enum DemoErrorDomain: ErrorDomain {}

/// A stable code per kind of demo failure (`demo.<snake_case>`).
extension ErrorCode where Domain == DemoErrorDomain {
    /// An option or argument out of range.
    public static let invalidOption = Self(rawValue: "demo.invalid_option")
    /// No broker answered and none could be started.
    public static let brokerUnreachable = Self(rawValue: "demo.broker_unreachable")
    /// The private broker's script failed.
    public static let brokerScriptFailed = Self(rawValue: "demo.broker_script_failed")
    /// A file (workflow, database folder) could not be read or written.
    public static let fileProblem = Self(rawValue: "demo.file_problem")
    /// The worker or the participants stopped before the run was over.
    public static let stoppedEarly = Self(rawValue: "demo.stopped_early")
    /// A child process (the benchmark's worker) could not run.
    public static let childProcess = Self(rawValue: "demo.child_process")
    /// Another benchmark consumes the queues this one would use (same broker and vhost): both runs' figures would
    /// be wrong.
    public static let benchmarkRunning = Self(rawValue: "demo.benchmark_running")
}
