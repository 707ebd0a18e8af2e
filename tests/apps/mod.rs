//! Helpers for the tests that run real programs under the preload (`tests/*_on_lkl.rs`), on
//! top of `common`: scratch directories, payload files, checksums, curl in the peer.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use lkl_rig::Netns;

use crate::common::{check_output, command_in};

pub const MIB: u64 = 1 << 20;

/// A directory under cargo's per-target scratch directory, removed when dropped.
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    /// `tag` names the test; pid and a counter keep parallel tests and runs apart.
    pub fn new(tag: &str) -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Scratch { path }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The path as a `&str` (for command lines and config files).
    pub fn str(&self, name: &str) -> String {
        self.join(name).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Writes `len` bytes of xorshift output to `path`: incompressible, and different for each
/// `seed`, so a download that is cut, shifted or served from elsewhere cannot match.
pub fn write_random_file(path: &Path, len: u64, seed: u64) {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).expect("create payload"));
    let mut x = seed | 1;
    let mut left = len;
    while left > 0 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        let n = left.min(8) as usize;
        out.write_all(&bytes[..n]).expect("write payload");
        left -= n as u64;
    }
    out.flush().expect("flush payload");
}

/// The sha256 of a file, from `sha256sum`.
pub fn sha256_of(path: &Path) -> String {
    let out = check_output(Command::new("sha256sum").arg(path));
    let sum = out
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(sum.len(), 64, "sha256sum printed {out:?}");
    sum
}

/// `curl` in `ns` fetching `url`, failing on any HTTP or transfer error or after `max_secs`;
/// the body goes to `dest`, or to stdout without one.
fn curl(ns: &Netns, url: &str, max_secs: u32, dest: Option<&Path>) -> Command {
    let max = max_secs.to_string();
    let dest = dest.map(|d| d.display().to_string());
    let mut args = vec!["--silent", "--show-error", "--fail", "--max-time", &max];
    if let Some(dest) = &dest {
        args.extend(["--output", dest.as_str()]);
    }
    args.push(url);
    command_in(ns, "curl", &args, &[])
}

/// Downloads `url` with curl in `ns` (the peer: the host kernel's stack) into `dest`; fails
/// the test on any HTTP or transfer error or after `max_secs`.
pub fn curl_download(ns: &Netns, url: &str, dest: &Path, max_secs: u32) {
    check_output(&mut curl(ns, url, max_secs, Some(dest)));
}

/// [`curl_download`], then the download must be `file`, which holds `size` bytes: the same
/// size, then the same sha256.
pub fn assert_downloads_intact(
    ns: &Netns,
    url: &str,
    dest: &Path,
    max_secs: u32,
    file: &Path,
    size: u64,
) {
    curl_download(ns, url, dest, max_secs);
    assert_eq!(fs::metadata(dest).unwrap().len(), size, "download size");
    assert_eq!(
        sha256_of(dest),
        sha256_of(file),
        "downloaded bytes differ from the file"
    );
}

/// The body of `url`, fetched with curl in `ns`.
pub fn curl_get(ns: &Netns, url: &str, max_secs: u32) -> Vec<u8> {
    let out = curl(ns, url, max_secs, None).output().expect("run curl");
    assert!(
        out.status.success(),
        "curl {url}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `http://ADDR:PORT` with IPv6 addresses bracketed.
pub fn http_url(addr: std::net::SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

/// A socket address of LKL's IPv6 address.
pub fn lkl_v6(topo: &dyn lkl_rig::Topology, port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::new(std::net::IpAddr::V6(topo.addrs().lkl_v6), port)
}
