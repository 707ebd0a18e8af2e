//! A pre-fork server on LKL (`tests/programs/prefork_http_server.py`): the parent opens the
//! listener on LKL's address and forks two workers that accept on it, while the parent itself
//! never accepts. From the peer, 200 connections each download 1 MiB: every byte is the file's,
//! both workers (and only they) served a share of the connections, and the container's host
//! stack holds no listener on the port.

mod apps;
mod common;

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use apps::{lkl_v6, write_random_file, Scratch, MIB};
use common::{command_in, host_listens_on, lkl_env, lkl_v4, venet, Server};
use lkl_rig::Topology;

const PORT: u16 = 8000;
const WORKERS: usize = 2;
const CONNECTIONS: usize = 200;
/// Connections in flight at once (each client thread makes its share one after another).
const CLIENT_THREADS: usize = 8;
const SIZE: u64 = MIB;
/// Downloads that fail before the test stops starting new ones.
const GIVE_UP_AFTER: usize = 3;
/// How long one download may wait for the server's next bytes.
const READ_TIMEOUT: Duration = Duration::from_secs(20);
/// Each worker must have served at least this share of the connections.
const MIN_SHARE: f64 = 0.10;

/// Kills the server's whole process group (parent and workers) when dropped, so that a failing
/// test leaves no worker behind even if the parent's death signal did not reach it.
struct ProcessGroup(i32);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: killpg(2) on the group our child leads (it was started with process_group(0)).
        unsafe { libc::killpg(self.0, libc::SIGKILL) };
    }
}

#[test]
fn python_prefork_server_on_lkl_workers_both_serve_200_downloads_intact() {
    let topo = venet();
    prefork_serves_downloads(&topo, lkl_v4(&topo, PORT));
}

#[test]
fn python_prefork_server_on_lkl_ipv6_address_workers_both_serve_200_downloads_intact() {
    let topo = venet();
    prefork_serves_downloads(&topo, lkl_v6(&topo, PORT));
}

fn prefork_serves_downloads(topo: &dyn Topology, addr: SocketAddr) {
    let dir = Scratch::new("python-prefork");
    let www = dir.join("www");
    std::fs::create_dir(&www).unwrap();
    let file = www.join("blob.bin");
    write_random_file(&file, SIZE, 0x5eed_f0f0 ^ u64::from(addr.is_ipv6()));
    let expected = std::fs::read(&file).unwrap();

    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/prefork_http_server.py");
    let mut cmd = command_in(
        topo.container_ns(),
        "/usr/bin/python3",
        &[
            "-u",
            script.to_str().unwrap(),
            &addr.ip().to_string(),
            &PORT.to_string(),
            www.to_str().unwrap(),
            &WORKERS.to_string(),
        ],
        &lkl_env(topo),
    );
    cmd.process_group(0);
    let mut server = Server::spawn(cmd, "python pre-fork server");
    let _group = ProcessGroup(server.child.id() as i32);

    // The parent prints `worker PID` per fork, and `worker PID exits STATUS` when one ends.
    let stdout = server.child.stdout.take().expect("stdout");
    let printed = std::sync::Arc::new(Mutex::new(Vec::<String>::new()));
    let (tx, rx) = mpsc::channel();
    {
        let printed = printed.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                printed.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
    }
    let mut workers = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while workers.len() < WORKERS {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(pid) = line.strip_prefix("worker ").and_then(|p| p.parse().ok()) {
                    workers.push(pid);
                }
            }
            Err(_) => panic!(
                "the server did not report {WORKERS} workers; stdout: {:?}",
                printed.lock().unwrap()
            ),
        }
    }
    let workers: Vec<u32> = workers;
    let printed_now = || printed.lock().unwrap().join("\n");

    server.wait_listening(topo.peer_ns(), addr, Duration::from_secs(20));
    // The listener is LKL's, not the container kernel's.
    assert!(
        !host_listens_on(topo.container_ns(), PORT),
        "the container's host stack listens on {PORT}: the server is not on LKL"
    );

    let started = Instant::now();
    let results = download_all(topo, addr, &expected);
    let elapsed = started.elapsed();

    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    let mut per_pid: BTreeMap<u32, usize> = BTreeMap::new();
    for pid in results.iter().filter_map(|r| r.as_ref().ok()) {
        *per_pid.entry(*pid).or_default() += 1;
    }
    let alive = server.child.try_wait().unwrap().is_none();
    assert!(
        failures.is_empty(),
        "{} of {} downloads made failed (of {CONNECTIONS} planned; served so far by pid: {per_pid:?}; workers \
         {workers:?}; server {}); the first ones:\n{}\nserver stdout:\n{}",
        failures.len(),
        results.len(),
        if alive { "still running" } else { "exited" },
        failures
            .iter()
            .take(10)
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        printed_now()
    );
    eprintln!(
        "{CONNECTIONS} x {SIZE} B in {:.1} s, by worker pid: {per_pid:?}",
        elapsed.as_secs_f64()
    );
    let strangers: Vec<&u32> = per_pid.keys().filter(|p| !workers.contains(p)).collect();
    assert!(
        strangers.is_empty(),
        "responses from pids {strangers:?}, which are not the workers {workers:?} (the parent \
         must never accept)"
    );
    let min = (CONNECTIONS as f64 * MIN_SHARE).ceil() as usize;
    for pid in &workers {
        let served = per_pid.get(pid).copied().unwrap_or(0);
        assert!(
            served >= min,
            "worker {pid} served {served} of {CONNECTIONS} connections, fewer than {min}: \
             {per_pid:?}"
        );
    }
    assert!(
        alive,
        "the server exited while serving\nstdout:\n{}",
        printed_now()
    );
    assert!(
        !host_listens_on(topo.container_ns(), PORT),
        "the container's host stack listens on {PORT} after the downloads"
    );
}

/// From the peer, `CONNECTIONS` downloads of `/blob.bin` over `CLIENT_THREADS` threads: for
/// each, the worker pid that served it, or what went wrong. No new download starts once
/// `GIVE_UP_AFTER` have failed (a server that serves nothing fails the test in one timeout).
fn download_all(
    topo: &dyn Topology,
    addr: SocketAddr,
    expected: &[u8],
) -> Vec<Result<u32, String>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(CONNECTIONS));
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
                        if i >= CONNECTIONS {
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
