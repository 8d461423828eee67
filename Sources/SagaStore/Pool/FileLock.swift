import Foundation
import Synchronization

/// An exclusive advisory lock (`flock`) on a file, held for as long as this object lives or until ``release()``.
///
/// The kernel drops the lock when the holder's process dies, however it dies (SIGKILL included), which is what lets
/// a pool take a dead worker's partitions over at once. `flock` locks belong to the open file, so two `FileLock`s on
/// one path exclude each other even inside one process. They do not work across hosts on a network file system:
/// a pool's data directory is shared by the workers of one host only (docs/pool.md).
public final class FileLock: Sendable {
    /// The locked file.
    public let path: String
    /// The open file holding the lock; -1 once released, so a second release never closes a reused descriptor.
    private let descriptor: Mutex<Int32>

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = Mutex(descriptor)
    }

    deinit {
        release()
    }

    /// Takes the lock without waiting, creating the file when missing; `nil` when another open file holds it
    /// (exclusively, or at all when `shared` is false). Shared locks exclude exclusive ones but not each other.
    ///
    /// The lock is on the file the path names when it returns: if someone replaced or removed the file between the
    /// open and the lock, it tries again on the new file.
    public static func tryLock(_ path: String, shared: Bool = false) throws -> FileLock? {
        for _ in 0..<8 {
            let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else {
                throw SagaStoreError(
                    .cannotOpen,
                    "cannot open the lock file \(path): \(String(cString: strerror(errno))). Check that the pool's "
                        + "data directory exists and is writable by this user.")
            }
            if flock(descriptor, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0 {
                let code = errno
                close(descriptor)
                if code == EWOULDBLOCK || code == EINTR { return nil }
                throw SagaStoreError(
                    .ioError, "cannot lock \(path): \(String(cString: strerror(code))).")
            }
            var opened = stat()
            var named = stat()
            if fstat(descriptor, &opened) == 0, stat(path, &named) == 0, opened.st_ino == named.st_ino,
                opened.st_dev == named.st_dev
            {
                return FileLock(path: path, descriptor: descriptor)
            }
            close(descriptor)
        }
        return nil
    }

    /// Whether some open file holds the lock on `path` now (a live process); `false` for a missing file.
    public static func isHeld(_ path: String) -> Bool {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        if flock(descriptor, LOCK_SH | LOCK_NB) == 0 {
            flock(descriptor, LOCK_UN)
            return false
        }
        return true
    }

    /// Removes the file, then gives the lock up (so nobody can lock the old file in between).
    public func releaseRemovingFile() {
        descriptor.withLock { descriptor in
            guard descriptor >= 0 else { return }
            unlink(path)
            close(descriptor)
            descriptor = -1
        }
    }

    /// Gives the lock up, leaving the file. Closing the descriptor is what releases an `flock`; a second call does
    /// nothing.
    public func release() {
        descriptor.withLock { descriptor in
            guard descriptor >= 0 else { return }
            close(descriptor)
            descriptor = -1
        }
    }
}
