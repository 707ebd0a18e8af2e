//! A pre-fork server on LKL (`tests/programs/prefork_http_server.py`): the parent opens the
//! listener on LKL's address and forks two workers that accept on it, while the parent itself
//! never accepts. From the peer, 200 connections each download 1 MiB: every byte is the file's,
//! both workers (and only they) served a share of the connections, and the container's host
//! stack holds no listener on the port.

mod apps;
mod common;
mod prefork;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use apps::{lkl_v6, write_random_file, Scratch, MIB};
use common::{command_in, host_listens_on, lkl_env, lkl_v4, venet, Server};
use lkl_rig::Topology;
use prefork::{assert_workers_shared, download_all, ProcessGroup};

const PORT: u16 = 8000;
const WORKERS: usize = 2;
const CONNECTIONS: usize = 200;
const SIZE: u64 = MIB;
/// Each worker must have served at least this share of the connections.
const MIN_SHARE: f64 = 0.10;

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
    let results = download_all(topo, addr, &expected, CONNECTIONS);
    let elapsed = started.elapsed();

    let alive = server.child.try_wait().unwrap().is_none();
    let per_pid = assert_workers_shared(
        &results,
        &workers,
        CONNECTIONS,
        MIN_SHARE,
        &format!(
            "server {}; stdout:\n{}",
            if alive { "still running" } else { "exited" },
            printed_now()
        ),
    );
    eprintln!(
        "{CONNECTIONS} x {SIZE} B in {:.1} s, by worker pid: {per_pid:?}",
        elapsed.as_secs_f64()
    );
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
