import Foundation
import SagaEngine
import SagaStore

/// Times retention on a copy of one partition file of the operations benchmark's pool: what the archiver does beside
/// the hot loop per batch (read the finished sagas with their journals, encode, compress, append and sync, index), what
/// the hot loop itself does (the delete transaction, the only part that holds the partition's writer), and reading
/// one archived saga back, as `waybill sagas show` does.
enum ArchiveBenchmark {
    static func measure(partitionFile: String, now: Timestamp, batches: Int = 40, batch: Int = 100) throws -> String {
        let folder = (NSTemporaryDirectory() as NSString).appendingPathComponent("waybill-archive-bench-\(getpid())")
        try? FileManager.default.removeItem(atPath: folder)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let copy = (folder as NSString).appendingPathComponent("p00.sqlite")
        for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: partitionFile + suffix) {
            try FileManager.default.copyItem(atPath: partitionFile + suffix, toPath: copy + suffix)
        }
        let store = try SagaStore(configuration: SagaStore.Configuration(path: copy))
        let archive = try SagaArchive(
            directory: (folder as NSString).appendingPathComponent("archive"), readOnly: false)
        let before = try store.activeSagaCount()

        var beside: [Double] = []
        var inLoop: [Double] = []
        var moved = 0
        var journalLines = 0
        var compressed: Int64 = 0
        var probe: SagaKey?
        for _ in 0..<batches {
            let start = ContinuousClock.now
            let sagas = try store.finishedSagas(before: now, limit: batch, now: now)
            guard !sagas.isEmpty else { break }
            try archive.append(sagas, at: now)
            let written = ContinuousClock.now
            var keys: [SagaKey: ArchiveMark] = [:]
            for saga in sagas { keys[saga.key] = ArchiveMark(saga) }
            moved += try store.removeArchived(keys).count
            let removed = ContinuousClock.now
            journalLines += sagas.reduce(0) { $0 + $1.journal.count }
            probe = sagas[sagas.count / 2].key
            beside.append(OperationsBenchmark.millisDouble(written - start))
            inLoop.append(OperationsBenchmark.millisDouble(removed - written))
        }
        for file in (try? FileManager.default.contentsOfDirectory(atPath: archive.directory)) ?? []
        where file.hasSuffix(".jsonl.gz") {
            let path = (archive.directory as NSString).appendingPathComponent(file)
            compressed += (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64) ?? 0
        }

        var reads: [Double] = []
        if let probe {
            for _ in 0..<7 {
                let start = ContinuousClock.now
                let reader = try SagaArchive(directory: archive.directory, readOnly: true)
                let location = try reader.locate(sagaId: probe.id, workflow: probe.workflow)
                _ = try location.first.map(reader.load)
                try reader.close()
                reads.append(OperationsBenchmark.millisDouble(ContinuousClock.now - start))
            }
        }
        try archive.close()
        try store.close()
        func median(_ values: [Double]) -> String {
            OperationsBenchmark.format(values.sorted()[safe: values.count / 2] ?? 0)
        }
        func slowest(_ values: [Double]) -> String { OperationsBenchmark.format(values.max() ?? 0) }
        return
            "archive: on a copy of \(partitionFile) (\(before) unfinished sagas stay), \(beside.count) batches of up "
            + "to \(batch) finished sagas: \(moved) moved with \(journalLines) journal lines into \(compressed / 1024) "
            + "KiB of gzip\n"
            + "  beside the hot loop (read + encode + gzip + append + sync + index), per batch: median "
            + "\(median(beside)) ms, slowest \(slowest(beside)) ms\n"
            + "  in the hot loop (delete transaction), per batch: median \(median(inLoop)) ms, slowest "
            + "\(slowest(inLoop)) ms\n"
            + "  reading one archived saga back (open index + locate + unpack its member + decode): median "
            + "\(median(reads)) ms, slowest \(slowest(reads)) ms\n"
    }
}

extension Array {
    fileprivate subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
