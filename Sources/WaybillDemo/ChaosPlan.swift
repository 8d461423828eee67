import SeededRandom

/// The faults of a chaos run, in order, each at a point of the load: a fraction of the orders published. Made from
/// the seed, so the same seed gives the same plan (which worker a kill hits is drawn when it happens, among the
/// workers that may be killed then).
struct ChaosPlan: Sendable, Hashable {
    /// One fault.
    enum Fault: Sendable, Hashable, CustomStringConvertible {
        /// SIGKILL a random restartable worker; start it again after the delay.
        case kill(restartAfter: Duration)
        /// `scripts/rabbitmq stop`, then `start`.
        case brokerRestart
        /// SIGKILL the cluster node that leads the most partition queues; start it again after the delay.
        case nodeKill(restartAfter: Duration)
        /// Start a worker that was not there before.
        case addWorker(String)
        /// SIGKILL this worker and never start it again.
        case killForGood(String)
        /// SIGTERM this worker (it must hand its partitions off and exit 0) and never start it again.
        case drain(String)

        var description: String {
            switch self {
            case .kill(let delay): "SIGKILL, restart after \(delay.readable)"
            case .brokerRestart: "broker restart"
            case .nodeKill(let delay): "SIGKILL of the leading cluster node, back after \(delay.readable)"
            case .addWorker(let worker): "add \(worker)"
            case .killForGood(let worker): "SIGKILL \(worker) for good"
            case .drain(let worker): "drain \(worker) (SIGTERM)"
            }
        }
    }

    /// A fault and when it happens.
    struct Step: Sendable, Hashable {
        /// The share of the orders published before it happens, 0...1.
        var at: Double
        var fault: Fault
    }

    /// The workers that start the run.
    static let initialWorkers = ["chaos-w1", "chaos-w2", "chaos-w3"]
    /// The worker added mid-run.
    static let addedWorker = "chaos-w4"
    /// The worker killed for good.
    static let killedForGood = "chaos-w3"
    /// The worker drained mid-run.
    static let drained = "chaos-w1"

    /// The steps, ordered by ``Step/at``.
    var steps: [Step]

    /// `kills` SIGKILLs at random points between 3% and 92% of the load, `brokerRestarts` restarts and `nodeKills`
    /// kills of a cluster node each spread evenly (with some jitter), the added worker at 30%, the kill for good at
    /// 50% and the drain at 70%.
    static func make(kills: Int, brokerRestarts: Int, nodeKills: Int = 0, seed: UInt64) -> ChaosPlan {
        var random = SplitMix64.keyed(seed: seed, ["chaos-plan"])
        var steps: [Step] = []
        for _ in 0..<kills {
            let at = 0.03 + 0.89 * random.unit()
            steps.append(Step(at: at, fault: .kill(restartAfter: .milliseconds(random.int(in: 300...4000)))))
        }
        for index in 0..<brokerRestarts {
            let at = 0.9 * Double(index + 1) / Double(brokerRestarts + 1) + 0.04 * (random.unit() - 0.5)
            steps.append(Step(at: at, fault: .brokerRestart))
        }
        for index in 0..<nodeKills {
            let at = 0.9 * Double(index + 1) / Double(nodeKills + 1) + 0.04 * (random.unit() - 0.5)
            steps.append(Step(at: at, fault: .nodeKill(restartAfter: .milliseconds(random.int(in: 5_000...15_000)))))
        }
        steps.append(Step(at: 0.30, fault: .addWorker(addedWorker)))
        steps.append(Step(at: 0.50, fault: .killForGood(killedForGood)))
        steps.append(Step(at: 0.70, fault: .drain(drained)))
        return ChaosPlan(steps: steps.sorted { $0.at < $1.at })
    }
}
