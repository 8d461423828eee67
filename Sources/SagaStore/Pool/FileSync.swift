import Foundation

/// Making a new or renamed file's name durable: a file's own fsync does not sync the folder entry that names it.
enum FileSync {
    /// Syncs `folder` (best effort: a folder that cannot be opened is left as it is).
    static func folder(_ folder: String) {
        guard let handle = FileHandle(forReadingAtPath: folder) else { return }
        try? handle.synchronize()
        try? handle.close()
    }

    /// Syncs the folder that holds `path`.
    static func directory(of path: String) {
        folder((path as NSString).deletingLastPathComponent)
    }
}
