//! Pre-fork servers under test: the server's process group, killed whatever happens, and
//! downloads from the peer that report which worker served each (an `X-Worker-Pid` header).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use lkl_rig::Topology;

/// Connections in flight at once (each client thread makes its share one after another).
const CLIENT_THREADS: usize = 8;
/// Downloads that fail before no new one starts.
const GIVE_UP_AFTER: usize = 3;
/// How long one download may wait for the server's next bytes.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// Kills the server's whole process group (parent and workers) when dropped, so that a failing
/// test leaves no worker behind even if the parent's death signal did not reach it.
pub struct ProcessGroup(pub i32);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: killpg(2) on the group our child leads (it was started with process_group(0)).
        unsafe { libc::killpg(self.0, libc::SIGKILL) };
    }
}

/// From the peer, `connections` downloads of `/blob.bin` over `CLIENT_THREADS` threads: for
/// each, the worker pid that served it, or what went wrong. No new download starts once
/// `GIVE_UP_AFTER` have failed (a server that serves nothing fails the test in one timeout).
pub fn download_all(
    topo: &dyn Topology,
    addr: SocketAddr,
    expected: &[u8],
    connections: usize,
) -> Vec<Result<u32, String>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(connections));
    topo.peer_ns()
        .in_thread(|| {
            // Threads started here inherit the peer's namespace.
            thread::scope(|s| {
                for _ in 0..CLIENT_THREADS {
                    s.spawn(|| loop {
                        if failed.load(Ordering::Relaxed) >= GIVE_UP_AFTER {
                            break;
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= connections {
                            break;
                        }
                        let r = download(addr, expected).map_err(|e| format!("#{i}: {e}"));
                        if r.is_err() {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        results.lock().unwrap().push(r);
                    });
                }
            });
        })
        .expect("enter the peer namespace");
    results.into_inner().unwrap()
}

/// One HTTP/1.0 `GET /blob.bin`: the body must be `expected`, byte for byte, and the headers
/// must name the worker (`X-Worker-Pid`), whose pid is returned.
fn download(addr: SocketAddr, expected: &[u8]) -> Result<u32, String> {
    let timeout = READ_TIMEOUT;
    let io = |what: &str, e: io::Error| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("{what}: nothing for {timeout:?} (timed out)")
        }
        kind => format!("{what}: {e} ({kind:?})"),
    };
    let mut conn =
        TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| io("connect", e))?;
    conn.set_read_timeout(Some(timeout))
        .map_err(|e| io("timeout", e))?;
    conn.set_write_timeout(Some(timeout))
        .map_err(|e| io("timeout", e))?;
    conn.write_all(format!("GET /blob.bin HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .map_err(|e| io("send the request", e))?;
    let mut reply = Vec::with_capacity(expected.len() + 512);
    conn.read_to_end(&mut reply)
        .map_err(|e| io(&format!("read the reply (after {} bytes)", reply.len()), e))?;
    let _ = conn.shutdown(Shutdown::Both);
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {} bytes", reply.len()))?;
    let head = String::from_utf8_lossy(&reply[..split]);
    let body = &reply[split + 4..];
    let status = head.lines().next().unwrap_or("");
    if !status.contains(" 200 ") {
        return Err(format!("status {status:?}"));
    }
    if body.len() != expected.len() {
        return Err(format!(
            "body of {} bytes, not {}",
            body.len(),
            expected.len()
        ));
    }
    if body != expected {
        let at = body
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        return Err(format!("body differs from the file from byte {at}"));
    }
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-worker-pid")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .ok_or_else(|| format!("no X-Worker-Pid header in {head:?}"))
}

/// Every download succeeded, and only `workers` served them, each at least `min_share` of
/// the `connections`; `context` goes with a failure. Returns the count per worker.
pub fn assert_workers_shared(
    results: &[Result<u32, String>],
    workers: &[u32],
    connections: usize,
    min_share: f64,
    context: &str,
) -> BTreeMap<u32, usize> {
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    let mut per_pid: BTreeMap<u32, usize> = BTreeMap::new();
    for pid in results.iter().filter_map(|r| r.as_ref().ok()) {
        *per_pid.entry(*pid).or_default() += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {} downloads made failed (of {connections} planned; served so far by pid: \
         {per_pid:?}; workers {workers:?}); the first ones:\n{}\n{context}",
        failures.len(),
        results.len(),
        failures
            .iter()
            .take(10)
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let strangers: Vec<&u32> = per_pid.keys().filter(|p| !workers.contains(p)).collect();
    assert!(
        strangers.is_empty(),
        "responses from pids {strangers:?}, which are not the workers {workers:?} (the parent \
         must never accept)"
    );
    let min = (connections as f64 * min_share).ceil() as usize;
    for pid in workers {
        let served = per_pid.get(pid).copied().unwrap_or(0);
        assert!(
            served >= min,
            "worker {pid} served {served} of {connections} connections, fewer than {min}: \
             {per_pid:?}"
        );
    }
    per_pid
}
