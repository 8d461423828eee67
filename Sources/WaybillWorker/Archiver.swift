import Dispatch
import Logging
import SagaEngine
import SagaStore
import Synchronization

/// Moves finished sagas older than `archive_after`, with their journals, out of the worker's partition files into the
/// pool's archive (``SagaArchive``), so the files stay small however long the pool runs.
///
/// The slow part runs here, beside the hot loop and on a thread of its own (it blocks on SQLite, compression and
/// fsync, which must not hold one of the few threads async tasks share): reading a batch of finished sagas, encoding
/// them as JSON lines, compressing and appending them to the day's file, syncing it and indexing them. Only then does
/// it hand the batch to the hot loop (``OwnedPartition/archived``), which deletes those rows between two batches of its
/// own, in one short transaction, and drops them from its cache; so the loop never waits for the archive, and a late
/// message for a saga can never bring back a half-removed row.
final class Archiver: Sendable {
    let retention: Duration
    let interval: Duration
    let batch: Int
    let dataDirectory: String
    let partitions: OwnedPartitions
    let logger: Logger
    /// Opened by the first pass; used only on `queue`.
    private let archive = Mutex<SagaArchive?>(nil)
    private let queue = DispatchQueue(label: "waybill.archiver")

    init(
        retention: Duration, interval: Duration, batch: Int, dataDirectory: String, partitions: OwnedPartitions,
        logger: Logger
    ) {
        self.retention = retention
        self.interval = interval
        self.batch = batch
        self.dataDirectory = dataDirectory
        self.partitions = partitions
        self.logger = logger
    }

    /// Archives until the task is cancelled: a pass over the owned partitions every `interval`, and the next pass
    /// soon after one that found a full batch.
    func run() async {
        while !Task.isCancelled {
            let backlog = await withCheckedContinuation { continuation in
                queue.async { continuation.resume(returning: self.pass()) }
            }
            do {
                try await Task.sleep(for: backlog ? .milliseconds(20) : interval)
            } catch {
                break
            }
        }
        queue.sync { try? archive.withLock { $0 }?.close() }
    }

    /// Archives one batch per owned partition whose previous batch the hot loop has removed; returns whether some
    /// partition may have more. A partition that fails is logged and left alone for a minute; the others go on.
    private func pass() -> Bool {
        let archive: SagaArchive
        do {
            if let existing = self.archive.withLock({ $0 }) {
                archive = existing
            } else {
                archive = try SagaArchive(dataDirectory: dataDirectory, readOnly: false)
                self.archive.withLock { $0 = archive }
            }
        } catch {
            logger.error("cannot open the saga archive; finished sagas stay in the partition files: \(error)")
            return false
        }
        let now = Timestamp.now()
        var backlog = false
        for partition in partitions.all where partition.archiveResumes.withLock({ $0 }) <= now.milliseconds {
            guard partition.archived.withLock({ $0.isEmpty }) else {
                backlog = true
                continue
            }
            do {
                let sagas = try partition.store.finishedSagas(
                    before: now.adding(milliseconds: -retention.milliseconds), limit: batch, now: now)
                guard !sagas.isEmpty else { continue }
                try archive.append(sagas, at: now)
                var written: [SagaKey: ArchiveMark] = [:]
                for saga in sagas { written[saga.key] = ArchiveMark(saga) }
                partition.archived.withLock { $0 = written }
                backlog = backlog || sagas.count == batch
            } catch {
                partition.archiveResumes.withLock { $0 = now.milliseconds + 60_000 }
                logger.error("cannot archive finished sagas of \(partition.queue); trying again in 1 min: \(error)")
            }
        }
        return backlog
    }
}
