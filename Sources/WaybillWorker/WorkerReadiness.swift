/// Whether a worker takes work, and if not, why: what its `/readyz` endpoint answers (``SagaWorker/readiness``).
public struct WorkerReadiness: Sendable, Equatable {
    /// What keeps the worker from taking work, one sentence each; empty when it is ready.
    public var problems: [String]
    /// The partitions it owns, ascending (a ready worker may own none while others own them all).
    public var partitions: [Int]

    /// Ready when nothing is wrong.
    public var isReady: Bool { problems.isEmpty }

    public init(problems: [String], partitions: [Int]) {
        self.problems = problems
        self.partitions = partitions
    }
}
