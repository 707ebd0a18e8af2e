//! nginx as packaged configurations run it: a master and two workers (`master_process on;
//! worker_processes 2;`, the workers as `nobody`), under the preload. The master opens the
//! listener on LKL and never accepts; each worker makes it again in a kernel of its own. From
//! the peer, 200 connections each download 1 MiB byte for byte, both workers (and only they)
//! serve a share, the container's host stack holds no listener, and SIGTERM ends master and
//! workers.

mod apps;
mod common;
mod prefork;

use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use apps::{write_random_file, Scratch, MIB};
use common::{command_in, host_listens_on, lkl_env, lkl_v4, venet, wait_until, Server};
use lkl_rig::Topology;
use prefork::{assert_workers_shared, download_all, ProcessGroup};

const PORT: u16 = 8081;
const WORKERS: usize = 2;
const CONNECTIONS: usize = 200;
/// Each worker must have served at least this share of the connections.
const MIN_SHARE: f64 = 0.10;

/// The pids whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The fields after the command, which is in parentheses and may hold spaces.
        let after = &stat[stat.rfind(')').unwrap_or(0) + 1..];
        let ppid = after.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if ppid == Some(parent) {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn nginx_master_and_two_workers_on_lkl_share_200_downloads_intact() {
    let topo = venet();
    let addr = lkl_v4(&topo, PORT);
    let dir = Scratch::new("nginx-prefork");
    for sub in ["www", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let file = dir.join("www/blob.bin");
    write_random_file(&file, MIB, 0x6e67_7066);
    let expected = std::fs::read(&file).unwrap();
    let tmp = dir.str("tmp");
    let conf = format!(
        "daemon off;
master_process on;
worker_processes {WORKERS};
user nobody nogroup;
error_log stderr;
pid {tmp}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen {addr};
        root {www};
        add_header X-Worker-Pid $pid;
    }}
}}
",
        www = dir.str("www"),
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut cmd = command_in(
        topo.container_ns(),
        "nginx",
        &[
            "-p",
            &dir.str(""),
            "-c",
            &dir.str("nginx.conf"),
            "-e",
            "stderr",
        ],
        &lkl_env(&topo),
    );
    cmd.process_group(0);
    let mut server = Server::spawn(cmd, "nginx (master and workers)");
    let master = server.child.id();
    let _group = ProcessGroup(master as i32);
    server.wait_listening(topo.peer_ns(), addr, Duration::from_secs(20));
    assert!(
        !host_listens_on(topo.container_ns(), PORT),
        "the container's host stack listens on {PORT}: nginx is not on LKL"
    );
    let mut workers = Vec::new();
    wait_until(Duration::from_secs(10), || {
        workers = children_of(master);
        workers.len() == WORKERS
    })
    .unwrap_or_else(|| panic!("nginx has workers {workers:?}, not {WORKERS}"));

    let started = Instant::now();
    let results = download_all(&topo, addr, &expected, CONNECTIONS);
    let elapsed = started.elapsed();
    let alive = server.child.try_wait().unwrap().is_none();
    let per_pid = assert_workers_shared(
        &results,
        &workers,
        CONNECTIONS,
        MIN_SHARE,
        &format!(
            "master {master} {}",
            if alive { "running" } else { "exited" }
        ),
    );
    eprintln!(
        "{CONNECTIONS} x 1 MiB in {:.1} s, by worker pid: {per_pid:?} (master {master})",
        elapsed.as_secs_f64()
    );
    assert!(
        alive,
        "nginx's master exited while serving\n{}",
        server.output()
    );

    let status = server.terminate(Duration::from_secs(10));
    assert!(status.success(), "nginx: {status}\n{}", server.output());
    for pid in workers {
        assert!(
            wait_until(Duration::from_secs(5), || !std::path::Path::new(&format!(
                "/proc/{pid}"
            ))
            .exists())
            .is_some(),
            "worker {pid} outlived its master"
        );
    }
}
