import SagaEngine
import SagaStore
import WaybillWire

/// `waybill pool init` and `waybill pool repartition`: creating a pool's data directory and changing its partition
/// count offline, with the store's errors turned into operator errors.
public enum PoolAdministration {
    /// Creates the pool in `dataDirectory` with `partitions` partitions; returns it and whether it was created (an
    /// existing pool with that count is left as it is).
    ///
    /// Throws ``OperationsError/Code/badArgument`` when the directory already holds a pool of another count (the
    /// message says how to change it) or the count is out of range.
    public static func initialize(
        dataDirectory: String, partitions: Int
    ) throws(OperationsError) -> (pool: PoolDirectory, created: Bool) {
        let existed = (try? PoolDirectory.open(dataDirectory)) != nil
        do {
            return (try PoolDirectory.openOrCreate(dataDirectory, partitions: partitions), !existed)
        } catch let error as SagaStoreError where error.code == .partitionCountMismatch {
            throw OperationsError(.badArgument, error.message, cause: error)
        } catch {
            throw SagaInspector.translate(error)
        }
    }

    /// Changes the partition count of the pool in `dataDirectory` (``PoolDirectory/repartition(_:partitions:at:)``).
    ///
    /// Throws ``OperationsError/Code/refused`` (nothing changed) while a worker of the pool runs or a partition lock
    /// is held, and ``OperationsError/Code/badArgument`` for a count out of range.
    public static func repartition(
        dataDirectory: String, partitions: Int, now: Timestamp
    ) throws(OperationsError) -> RepartitionReport {
        _ = try SagaInspector.openPool(dataDirectory)
        do {
            return try PoolDirectory.repartition(dataDirectory, partitions: partitions, at: now)
        } catch let error as SagaStoreError where error.code == .poolInUse {
            throw OperationsError(.refused, error.message, cause: error)
        } catch let error as SagaStoreError where error.code == .partitionCountMismatch {
            throw OperationsError(.badArgument, error.message, cause: error)
        } catch {
            throw SagaInspector.translate(error)
        }
    }
}

/// What `waybill pool repartition` prints.
public enum RepartitionView {
    /// A summary line, one line per new partition with where its sagas came from, and what to do about the queues
    /// of partitions that no longer exist (named after `poolName`).
    public static func text(_ report: RepartitionReport, poolName: String) -> String {
        var out = ""
        let detailed = report.shares.contains { !$0.sagasFrom.isEmpty } || report.sagas == 0
        if report.finishedInterrupted, !detailed {
            out +=
                "Finished the repartition an earlier run left half-done: \(report.path) has "
                + "\(Words.count(report.count, "partition")) now.\n"
        } else if report.shares.isEmpty {
            out += "The pool \(report.path) already has \(Words.count(report.count, "partition")); nothing to do.\n"
        } else {
            if report.finishedInterrupted { out += "Finished the repartition an earlier run left half-done.\n" }
            out +=
                "Repartitioned \(report.path) from \(report.previousCount) to \(report.count) partitions: "
                + "\(Words.count(report.sagas, "saga")) (\(Words.number(report.moved)) moved to another partition), "
                + "\(Words.count(report.journalLines, "journal line")), \(Words.count(report.timers, "timer")), "
                + "\(Words.count(report.outboxMessages, "outbox message")); "
                + "\(Words.count(report.definitions, "workflow definition")) and "
                + "\(Words.count(report.inboxMarks, "inbox mark")) copied to every partition.\n"
        }
        if !report.shares.isEmpty {
            var table = TextTable(
                ["PARTITION", "SAGAS", "MOVED IN", "JOURNAL", "TIMERS", "OUTBOX", "FROM"], right: [1, 2, 3, 4, 5])
            for share in report.shares {
                table.add([
                    PoolDirectory.name(ofPartition: share.partition), Words.number(share.sagas),
                    detailed ? Words.number(share.moved) : "?", Words.number(share.journalLines),
                    Words.number(share.timers), Words.number(share.outboxMessages),
                    share.sagasFrom.sorted { $0.key < $1.key }.map {
                        "\(PoolDirectory.name(ofPartition: $0.key)) \(Words.number($0.value))"
                    }.joined(separator: ", "),
                ])
            }
            out += table.render()
        }
        if !report.clearedMembers.isEmpty {
            out +=
                "Removed the member files of stopped workers \(report.clearedMembers.joined(separator: ", ")) (they "
                + "listed the old partitions).\n"
        }
        if report.count < report.previousCount {
            let first = PoolQueues.partition(report.count, pool: poolName)
            let last = PoolQueues.partition(report.previousCount - 1, pool: poolName)
            out +=
                "The queue\(report.previousCount - report.count == 1 ? " \(first) belongs" : "s \(first) to \(last) belong") "
                + "to no partition now: the workers keep forwarding what arrives there (replies to commands sent "
                + "before) to the right partitions; leave them.\n"
        }
        return out
    }
}
