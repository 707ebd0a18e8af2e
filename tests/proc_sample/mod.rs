//! Sampling a process's descriptors, threads and memory from /proc.
#![allow(dead_code)]

use std::time::Duration;

/// fd count, thread count and RSS (KiB) of `pid`.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    pub at: Duration,
    pub fds: usize,
    pub threads: usize,
    pub rss_kib: u64,
}

pub fn sample_proc(pid: u32, at: Duration) -> Option<ProcSample> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(ProcSample {
        at,
        fds,
        threads,
        rss_kib,
    })
}
