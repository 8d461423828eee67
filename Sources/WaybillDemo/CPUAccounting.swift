import Foundation

/// Reading CPU time from Linux's `/proc`: a process's user + system time, the machine's idle and total time, and the
/// process that listens on a TCP port (the broker). Every reader returns `nil` where `/proc` is missing or does not
/// parse, so the benchmark prints "-" instead of a wrong figure.
enum ProcFS {
    /// Clock ticks per second of the `/proc` time fields (`USER_HZ`, 100 on Linux).
    static let ticksPerSecond = Double(max(1, sysconf(Int32(_SC_CLK_TCK))))

    /// `utime + stime` in clock ticks from the text of `/proc/<pid>/stat`: the whole process, every thread.
    ///
    /// The command name (field 2) may hold spaces and parentheses, so the fields are counted after its last `)`.
    static func processTicks(statText: String) -> Int? {
        guard let close = statText.lastIndex(of: ")") else { return nil }
        let fields = statText[statText.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // After the name: state (field 3) ... utime (14) and stime (15).
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return user + system
    }

    /// `utime + stime` of process `pid` in clock ticks; `nil` when it is gone.
    static func processTicks(_ pid: Int32) -> Int? {
        read("/proc/\(pid)/stat").flatMap(processTicks(statText:))
    }

    /// The machine's idle time (idle + iowait: a CPU waiting for the disk does no work either) and total time in
    /// clock ticks, summed over every CPU, from the text of `/proc/stat`.
    static func machineTicks(statText: String) -> (idle: Int, total: Int)? {
        guard let line = statText.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return nil }
        let values = line.split(separator: " ").dropFirst().compactMap { Int($0) }
        // user nice system idle iowait irq softirq steal [guest guest_nice: already inside user and nice]
        guard values.count >= 5 else { return nil }
        return (values[3] + values[4], values.prefix(8).reduce(0, +))
    }

    /// The machine's idle and total clock ticks now.
    static func machineTicks() -> (idle: Int, total: Int)? {
        read("/proc/stat").flatMap(machineTicks(statText:))
    }

    /// The socket inodes listening (state `0A`) on local `port` in the text of `/proc/net/tcp` or `/proc/net/tcp6`.
    static func listeningInodes(tcpTable: String, port: Int) -> [String] {
        tcpTable.split(separator: "\n").dropFirst().compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 9, fields[3] == "0A", let colon = fields[1].lastIndex(of: ":"),
                Int(fields[1][fields[1].index(after: colon)...], radix: 16) == port
            else { return nil }
            return String(fields[9])
        }
    }

    /// The process listening on TCP `port` on this machine (the broker, for a local one), found through the socket's
    /// inode in the processes' file descriptors; `nil` when none is visible (another machine, another user's process
    /// without the rights to read it, no `/proc`).
    static func process(listeningOn port: Int) -> Int32? {
        let inodes = Set(
            ["/proc/net/tcp", "/proc/net/tcp6"].flatMap {
                read($0).map { listeningInodes(tcpTable: $0, port: port) } ?? []
            }
        )
        guard !inodes.isEmpty else { return nil }
        let targets = Set(inodes.map { "socket:[\($0)]" })
        let manager = FileManager.default
        for entry in (try? manager.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), pid != getpid() else { continue }
            for fd in (try? manager.contentsOfDirectory(atPath: "/proc/\(entry)/fd")) ?? [] {
                if let link = try? manager.destinationOfSymbolicLink(atPath: "/proc/\(entry)/fd/\(fd)"),
                    targets.contains(link)
                {
                    return pid
                }
            }
        }
        return nil
    }

    /// The command name of process `pid` (`beam.smp`).
    static func commandName(_ pid: Int32) -> String? {
        read("/proc/\(pid)/comm")?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private static func read(_ path: String) -> String? {
        try? String(contentsOfFile: path, encoding: .utf8)
    }
}

/// CPU time spent by the parties of a benchmark round: this process, the worker processes, the broker, and the whole
/// machine. Differences of two ``CPUProbe/sample(workers:)`` readings; add them up over rounds with `+`.
struct CPUUsage: Sendable, Hashable {
    /// Wall-clock time between the samples.
    var wall: Duration = .zero
    /// Clock ticks of this process (the bench: participants, feeder, monitor, and the worker or replay that runs in
    /// it).
    var bench: Int?
    /// Clock ticks of the `waybill worker` child processes; `nil` when none ran.
    var workers: Int?
    /// Clock ticks of the broker's process; `nil` when it was not found.
    var broker: Int?
    /// Idle (idle + iowait) clock ticks of the machine, over every CPU.
    var machineIdle: Int?
    /// All clock ticks of the machine, over every CPU.
    var machineTotal: Int?

    static func + (left: CPUUsage, right: CPUUsage) -> CPUUsage {
        func sum(_ a: Int?, _ b: Int?) -> Int? {
            switch (a, b) {
            case (let a?, let b?): a + b
            default: a ?? b
            }
        }
        return CPUUsage(
            wall: left.wall + right.wall, bench: sum(left.bench, right.bench),
            workers: sum(left.workers, right.workers),
            broker: sum(left.broker, right.broker), machineIdle: sum(left.machineIdle, right.machineIdle),
            machineTotal: sum(left.machineTotal, right.machineTotal))
    }

    /// Milliseconds of CPU per saga for `ticks` over `sagas`.
    static func millisecondsPerSaga(_ ticks: Int?, sagas: Int) -> Double? {
        guard let ticks, sagas > 0 else { return nil }
        return Double(ticks) / ProcFS.ticksPerSecond * 1000 / Double(sagas)
    }

    /// The share of the machine (every core) that `ticks` used over ``wall``, 0...1.
    func machineShare(_ ticks: Int?, cores: Int) -> Double? {
        guard let ticks, wall > .zero, cores > 0 else { return nil }
        return Double(ticks) / ProcFS.ticksPerSecond / wall.inSeconds / Double(cores)
    }

    /// The share of the machine used by everything but idle time, the broker, the bench and the worker processes:
    /// other programs on the machine (and the kernel's own work), which the figures above should not have to share
    /// with; `nil` without the machine's or the bench's ticks.
    func otherShare(cores: Int) -> Double? {
        guard let idle = idleShare, let bench = machineShare(bench, cores: cores) else { return nil }
        let busy = [machineShare(broker, cores: cores), machineShare(workers, cores: cores)].compactMap { $0 }
        return max(0, 1 - idle - bench - busy.reduce(0, +))
    }

    /// `broker 45 % · bench 54 % · idle 6 % · else 1 % of 2 CPUs` (worker processes too when they ran).
    func sharesText(cores: Int) -> String {
        func percent(_ value: Double?) -> String { value.map { Format.fixed($0 * 100, 0) + " %" } ?? "-" }
        var line = "broker \(percent(machineShare(broker, cores: cores)))"
        if workers != nil { line += " · worker processes \(percent(machineShare(workers, cores: cores)))" }
        line += " · bench \(percent(machineShare(bench, cores: cores)))"
        line += " · idle \(percent(idleShare)) · else \(percent(otherShare(cores: cores))) of \(cores) CPUs"
        return line
    }

    /// The share of the machine's CPU time that was idle, 0...1.
    var idleShare: Double? {
        guard let machineIdle, let machineTotal, machineTotal > 0 else { return nil }
        return Double(machineIdle) / Double(machineTotal)
    }
}

/// Takes CPU readings of this process, the worker processes, the broker and the machine.
struct CPUProbe: Sendable {
    /// One reading.
    struct Sample: Sendable {
        var at: ContinuousClock.Instant
        var bench: Int?
        var workers: Int?
        var broker: Int?
        var machine: (idle: Int, total: Int)?

        /// The usage from `earlier` to this reading.
        func since(_ earlier: Sample) -> CPUUsage {
            func difference(_ now: Int?, _ then: Int?) -> Int? {
                guard let now, let then else { return nil }
                return max(0, now - then)
            }
            return CPUUsage(
                wall: at - earlier.at, bench: difference(bench, earlier.bench),
                workers: difference(workers, earlier.workers), broker: difference(broker, earlier.broker),
                machineIdle: difference(machine?.idle, earlier.machine?.idle),
                machineTotal: difference(machine?.total, earlier.machine?.total))
        }
    }

    /// The broker's process, `nil` when it is not on this machine or cannot be seen.
    var broker: Int32?
    /// CPUs online: the machine shares are of all of them.
    var cores: Int = ProcessInfo.processInfo.activeProcessorCount

    /// A probe for the broker listening on `port` of this machine (`nil` port: no broker figure).
    init(brokerPort port: Int?) {
        broker = port.flatMap(ProcFS.process(listeningOn:))
    }

    /// `beam.smp (pid 1234)`, or why there is no broker figure.
    var brokerLabel: String {
        guard let broker else { return "broker (not found on this machine)" }
        return "\(ProcFS.commandName(broker) ?? "broker") (pid \(broker))"
    }

    /// A reading now; `workers` are the worker processes to add up (a worker that is gone counts as unreadable).
    func sample(workers: [Int32] = []) -> Sample {
        var workerTicks: Int? = workers.isEmpty ? nil : 0
        for pid in workers {
            guard let ticks = ProcFS.processTicks(pid), let sum = workerTicks else {
                workerTicks = nil
                break
            }
            workerTicks = sum + ticks
        }
        return Sample(
            at: .now, bench: ProcFS.processTicks(getpid()), workers: workerTicks,
            broker: broker.flatMap(ProcFS.processTicks),
            machine: ProcFS.machineTicks())
    }
}
