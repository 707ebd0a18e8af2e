//! The release tarball as users get it, built by scripts/release.sh (once per test binary;
//! quick when nothing changed).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// `scripts/release.sh`'s tarball; panics with the script's output when it fails.
pub fn tarball() -> &'static Path {
    static TARBALL: OnceLock<PathBuf> = OnceLock::new();
    TARBALL.get_or_init(|| {
        let out = checked(
            Command::new(repo().join("scripts/release.sh")).current_dir(repo()),
            "scripts/release.sh",
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// The directory the tarball unpacks to (`lkl-hijack-VERSION-x86_64-linux-gnu`).
pub fn top_dir_name() -> String {
    let name = tarball().file_name().unwrap().to_str().unwrap();
    name.strip_suffix(".tar.gz").unwrap().to_string()
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `cmd` to completion; panics with its output unless it succeeds.
pub fn checked(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    eprint!("{stderr}");
    out
}

/// A directory under the system's temporary directory, removed with everything in it when
/// dropped (also when the test fails).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("lkl-{what}-{}-{n}", std::process::id()));
        fs::create_dir(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
