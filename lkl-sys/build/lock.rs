//! The lock that serializes builds of one cache entry across cargo processes.

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// An exclusive `flock` on a file, released when dropped (or when the process dies, so a
/// killed build never leaves the cache locked).
pub struct FileLock {
    _held: File,
}

impl FileLock {
    fn open(path: &Path) -> File {
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("cannot open lock file {}: {e}", path.display()))
    }

    pub fn try_acquire(path: &Path) -> Option<FileLock> {
        let file = Self::open(path);
        // SAFETY: flock only reads the fd, which `file` keeps open for the duration of the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        (rc == 0).then_some(FileLock { _held: file })
    }

    pub fn acquire(path: &Path) -> FileLock {
        let file = Self::open(path);
        loop {
            // SAFETY: as above; a blocking flock on an fd we own.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return FileLock { _held: file };
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                panic!("cannot lock {}: {err}", path.display());
            }
        }
    }
}
