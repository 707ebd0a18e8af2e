//! nginx as packaged configurations run it: a master and two workers (`master_process on;
//! worker_processes 2;`, the workers as `nobody`), under the preload. The master opens the
//! listener on LKL and never accepts; each worker makes it again in a kernel of its own. From
//! the peer, 200 connections each download 1 MiB byte for byte, both workers (and only they)
//! serve a share, the container's host stack holds no listener, and SIGTERM ends master and
//! workers. On an address shared with the host, the firewall rules outlive a `kill -9` of the
//! master while the workers serve, and go (with every packet socket) once they have ended.

mod apps;
mod common;
mod host_firewall;
mod prefork;
mod shared_ip;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use apps::{write_random_file, Scratch, MIB};
use common::{command_in, host_listens_on, lkl_env, lkl_v4, venet, wait_until, Server};
use host_firewall::lklhijack_tables;
use lkl_ports::firewall::table_name;
use lkl_rig::{Topology, VenetTopology};
use prefork::{assert_workers_shared, download_all, ProcessGroup};
use shared_ip::shared_ip_env;

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

/// nginx with a master and `WORKERS` workers under the preload (`env`), listening on `addr`
/// and serving a 1 MiB file: the server (in its own process group), the guard that kills the
/// group, the workers' pids and the file's bytes.
struct Nginx {
    server: Server,
    _group: ProcessGroup,
    master: u32,
    workers: Vec<u32>,
    expected: Vec<u8>,
    _dir: Scratch,
}

fn start_nginx(topo: &VenetTopology, addr: SocketAddr, env: &[(String, String)]) -> Nginx {
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
        env,
    );
    cmd.process_group(0);
    let mut server = Server::spawn(cmd, "nginx (master and workers)");
    let master = server.child.id();
    let group = ProcessGroup(master as i32);
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
    Nginx {
        server,
        _group: group,
        master,
        workers,
        expected,
        _dir: dir,
    }
}

#[test]
fn nginx_master_and_two_workers_on_lkl_share_200_downloads_intact() {
    let topo = venet();
    let addr = lkl_v4(&topo, PORT);
    let mut nginx = start_nginx(&topo, addr, &lkl_env(&topo));
    let (master, workers) = (nginx.master, nginx.workers.clone());

    let started = Instant::now();
    let results = download_all(&topo, addr, &nginx.expected, CONNECTIONS);
    let elapsed = started.elapsed();
    let alive = nginx.server.child.try_wait().unwrap().is_none();
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
        nginx.server.output()
    );

    let status = nginx.server.terminate(Duration::from_secs(10));
    assert!(
        status.success(),
        "nginx: {status}\n{}",
        nginx.server.output()
    );
    for pid in workers {
        assert!(
            wait_until(Duration::from_secs(5), || gone(pid)).is_some(),
            "worker {pid} outlived its master"
        );
    }
}

/// Whether process `pid` has ended (and been reaped).
fn gone(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Packet sockets in the container's network namespace (/proc/net/packet, one line each
/// after the header).
fn packet_sockets(topo: &VenetTopology) -> usize {
    let text = topo
        .container_ns()
        .run("cat", &["/proc/net/packet"])
        .expect("read /proc/net/packet in the container");
    text.lines().count().saturating_sub(1)
}

/// On an address shared with the host (the firewall keeps the host stack off the port),
/// `kill -9` of the master: the workers serve on and the rules stay while they do; once the
/// workers have ended, no rule and no packet socket of the program is left.
#[test]
fn nginx_workers_serve_on_after_kill_9_of_the_master_and_then_leave_nothing() {
    let topo = venet();
    let addr = SocketAddr::new(topo.addrs().host_v4.into(), PORT);
    let sockets_before = packet_sockets(&topo);
    let mut nginx = start_nginx(&topo, addr, &shared_ip_env(&topo));
    let (master, workers) = (nginx.master, nginx.workers.clone());
    let table = format!("inet {}", table_name(topo.container_if(), master));
    assert!(
        lklhijack_tables(topo.container_ns()).contains(&table),
        "no {table} while nginx runs"
    );
    let results = download_all(&topo, addr, &nginx.expected, 20);
    assert_workers_shared(&results, &workers, 20, 0.0, "before the kill");

    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe { libc::kill(master as i32, libc::SIGKILL) };
    let _ = nginx.server.child.wait();
    // Longer than the watchdog takes to remove the rules of a process that ended alone.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        lklhijack_tables(topo.container_ns()).contains(&table),
        "{table} went with the master while its workers serve"
    );
    let results = download_all(&topo, addr, &nginx.expected, 40);
    assert_workers_shared(&results, &workers, 40, 0.0, "after the master's kill -9");

    for pid in &workers {
        // SAFETY: kill(2) on a worker; it may be gone already.
        unsafe { libc::kill(*pid as i32, libc::SIGTERM) };
    }
    assert!(
        wait_until(Duration::from_secs(10), || workers.iter().all(|&p| gone(p))).is_some(),
        "the workers {workers:?} did not end"
    );
    assert!(
        wait_until(Duration::from_secs(5), || !lklhijack_tables(
            topo.container_ns()
        )
        .contains(&table))
        .is_some(),
        "{table} left after every process of nginx ended"
    );
    assert_eq!(
        packet_sockets(&topo),
        sockets_before,
        "packet sockets left after every process of nginx ended"
    );
}
