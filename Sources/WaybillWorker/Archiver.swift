import Foundation
import Logging
import SagaEngine
import SagaStore

/// Moves finished sagas older than `archive_after`, with their journals, out of the worker's partition files into the
/// pool's archive (``SagaArchive``), so the files stay small however long the pool runs.
///
/// The slow part runs here, beside the hot loop: reading a batch of finished sagas, encoding them as JSON lines,
/// compressing and appending them to the day's file, syncing it and indexing them. Only then does it hand the batch
/// to the hot loop (``OwnedPartition/archived``), which deletes those rows between two batches of its own, in one
/// short transaction, and drops them from its cache; so the loop never waits for the archive, and a late message for
/// a saga can never bring back a half-removed row.
struct Archiver: Sendable {
    let retention: Duration
    let interval: Duration
    let batch: Int
    let dataDirectory: String
    let partitions: OwnedPartitions
    let logger: Logger

    /// Archives until the task is cancelled: a pass over the owned partitions every `interval`, and the next pass
    /// soon after one that found a full batch.
    func run() async {
        var archive: SagaArchive?
        while !Task.isCancelled {
            var backlog = false
            do {
                let opened = try archive ?? SagaArchive(dataDirectory: dataDirectory, readOnly: false)
                archive = opened
                backlog = try pass(opened, now: Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000)))
            } catch {
                logger.error("cannot archive finished sagas: \(error)")
            }
            do {
                try await Task.sleep(for: backlog ? .milliseconds(20) : interval)
            } catch {
                break
            }
        }
        try? archive?.close()
    }

    /// Archives one batch per owned partition whose previous batch the hot loop has removed; returns whether some
    /// partition may have more.
    func pass(_ archive: SagaArchive, now: Timestamp) throws -> Bool {
        var backlog = false
        for partition in partitions.all {
            guard partition.archived.withLock({ $0.isEmpty }) else {
                backlog = true
                continue
            }
            let sagas = try partition.store.finishedSagas(
                before: now.adding(milliseconds: -retention.milliseconds), limit: batch, now: now)
            guard !sagas.isEmpty else { continue }
            try archive.append(sagas, at: now)
            var written: [SagaKey: Timestamp] = [:]
            for saga in sagas { written[saga.key] = Timestamp(milliseconds: saga.updatedAt) }
            partition.archived.withLock { $0 = written }
            backlog = backlog || sagas.count == batch
        }
        return backlog
    }
}
