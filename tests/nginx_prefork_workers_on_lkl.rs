//! nginx as packaged configurations run it: a master and two workers (`master_process on;
//! worker_processes 2;`, the workers as `nobody`), under `lkl-run --ports` or the preload. The
//! master opens the listener on LKL and never accepts; each worker makes it again in a kernel
//! of its own. From the peer, 200 connections each download 1 MiB byte for byte, both workers
//! (and only they) serve a share, by their `X-Worker-Pid` header and by nginx's access log
//! (`$pid`), the container's host stack holds no listener, and SIGTERM ends master and
//! workers. `nginx -s reload`, again and again under a load of kept-alive connections, fails
//! no request (new workers take new connections while the old ones finish theirs), and
//! `nginx -s quit` lets downloads in flight complete. On an address shared with the host,
//! the firewall rules outlive a `kill -9` of the master while the workers serve, and go (with
//! every packet socket) once they have ended.

mod apps;
mod common;
mod host_firewall;
mod http_client;
mod prefork;
mod shared_ip;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use apps::{write_random_file, Scratch, MIB};
use common::{
    command_in, host_listens_on, lkl_env, lkl_run_bin, lkl_v4, venet, wait_until, Server,
};
use host_firewall::lklhijack_tables;
use http_client::KeepAlive;
use lkl_ports::firewall::table_name;
use lkl_rig::{Topology, VenetTopology};
use prefork::{assert_workers_shared, download_all, ProcessGroup};
use shared_ip::shared_ip_env;

const PORT: u16 = 8081;
const WORKERS: usize = 2;
const CONNECTIONS: usize = 200;
/// Each worker must have served at least this share of the connections.
const MIN_SHARE: f64 = 0.10;
/// The small file kept-alive clients fetch again and again.
const SMALL: u64 = 64 << 10;
/// `/slow/` is served at this many bytes per second and connection: a 1 MiB download from
/// there lasts 2 s.
const SLOW_RATE: &str = "512k";

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
    // First: dropped first, so that no worker holds the output pipes the server's drop reads.
    _group: ProcessGroup,
    server: Server,
    master: u32,
    workers: Vec<u32>,
    expected: Vec<u8>,
    small: Vec<u8>,
    dir: Scratch,
}

/// How nginx is started on LKL.
enum Start<'a> {
    /// With the library preloaded through this environment.
    Preloaded(&'a [(String, String)]),
    /// By `lkl-run --ports PORT`, as a user would, with LKL on the rig's LKL address.
    LklRun,
}

fn start_nginx(topo: &VenetTopology, addr: SocketAddr, start: Start<'_>) -> Nginx {
    let dir = Scratch::new("nginx-prefork");
    for sub in ["www/slow", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let file = dir.join("www/blob.bin");
    write_random_file(&file, MIB, 0x6e67_7066);
    std::fs::copy(&file, dir.join("www/slow/blob.bin")).unwrap();
    let expected = std::fs::read(&file).unwrap();
    write_random_file(&dir.join("www/small.bin"), SMALL, 0x736d_616c);
    let small = std::fs::read(dir.join("www/small.bin")).unwrap();
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
    log_format pids '$pid';
    access_log {tmp}/access.log pids;
    sendfile on;
    keepalive_requests 1000000;
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
        location /slow/ {{ limit_rate {SLOW_RATE}; }}
    }}
}}
",
        www = dir.str("www"),
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let nginx = [
        "nginx",
        "-p",
        &dir.str(""),
        "-c",
        &dir.str("nginx.conf"),
        "-e",
        "stderr",
    ];
    let mut cmd = match start {
        Start::Preloaded(env) => command_in(topo.container_ns(), "nginx", &nginx[1..], env),
        Start::LklRun => {
            let (ip, port) = (topo.addrs().lkl_v4.to_string(), PORT.to_string());
            let mut args = vec![
                "--iface",
                topo.container_if(),
                "--ip",
                &ip,
                "--ports",
                &port,
                "--",
            ];
            args.extend(nginx);
            command_in(
                topo.container_ns(),
                lkl_run_bin().to_str().unwrap(),
                &args,
                &[],
            )
        }
    };
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
        small,
        dir,
    }
}

impl Nginx {
    /// nginx ended with `status` after `what`: it must be success, and every worker it
    /// started with must be gone too.
    fn assert_ended(&mut self, status: std::process::ExitStatus, what: &str) {
        assert!(
            status.success(),
            "nginx after {what}: {status}\n{}",
            self.server.output()
        );
        for &pid in &self.workers {
            assert!(
                wait_until(Duration::from_secs(5), || gone(pid)).is_some(),
                "worker {pid} outlived nginx after {what}"
            );
        }
    }

    /// `nginx -s signal` (reload, quit, ...), as an operator types it: the command signals
    /// the master named in the pid file.
    fn signal(&self, topo: &VenetTopology, signal: &str) {
        let conf = self.dir.str("nginx.conf");
        let prefix = self.dir.str("");
        topo.container_ns()
            .run("nginx", &["-p", &prefix, "-c", &conf, "-s", signal])
            .unwrap_or_else(|e| panic!("nginx -s {signal}: {e}"));
    }
}

#[test]
fn nginx_master_and_two_workers_on_lkl_share_200_downloads_intact() {
    let topo = venet();
    let addr = lkl_v4(&topo, PORT);
    let mut nginx = start_nginx(&topo, addr, Start::LklRun);
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
    // nginx's own account agrees: its access log, one `$pid` line per request.
    let mut logged: BTreeMap<u32, usize> = BTreeMap::new();
    let log = std::fs::read_to_string(nginx.dir.join("tmp/access.log")).unwrap_or_default();
    for pid in log.lines().filter_map(|l| l.trim().parse().ok()) {
        *logged.entry(pid).or_default() += 1;
    }
    assert_eq!(logged, per_pid, "nginx's access log");
    assert!(
        alive,
        "nginx's master exited while serving\n{}",
        nginx.server.output()
    );

    let status = nginx.server.terminate(Duration::from_secs(10));
    nginx.assert_ended(status, "SIGTERM");
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
    let mut nginx = start_nginx(&topo, addr, Start::Preloaded(&shared_ip_env(&topo)));
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

/// How long the kept-alive load lasts, and how often nginx reloads meanwhile.
const LOAD: Duration = Duration::from_secs(120);
const RELOAD_EVERY: Duration = Duration::from_secs(10);
/// Clients that fetch the small file over connections they keep alive, and clients that
/// download 1 MiB from `/slow/` (2 s each, so that reloads catch them in flight).
const KEPT_ALIVE_CLIENTS: usize = 8;
const SLOW_CLIENTS: usize = 2;

/// Requests made and failures seen by the load's clients, and the worker pids that answered.
#[derive(Default)]
struct Tally {
    requests: usize,
    reopened: usize,
    failures: Vec<String>,
    per_pid: BTreeMap<u32, usize>,
}

/// `GET path` with `client`, checked against `expected`; counted in `tally`.
fn fetch_checked(client: &mut KeepAlive, path: &str, expected: &[u8], tally: &mut Tally) {
    tally.requests += 1;
    let result = client.get(path).and_then(|a| {
        if !a.status.contains(" 200 ") {
            return Err(format!("status {:?}", a.status));
        }
        if a.body != expected {
            return Err(format!(
                "body of {} bytes differs from the file",
                a.body.len()
            ));
        }
        a.header("x-worker-pid")
            .and_then(|p| p.parse::<u32>().ok())
            .ok_or_else(|| format!("no X-Worker-Pid in {:?}", a.headers))
    });
    match result {
        Ok(pid) => *tally.per_pid.entry(pid).or_default() += 1,
        Err(e) => tally
            .failures
            .push(format!("{path} #{}: {e}", tally.requests)),
    }
}

/// `nginx -s reload` every ten seconds during two minutes of load from the peer: clients
/// that keep their connections alive fetch a 64 KiB file again and again, others download
/// 1 MiB at 512 KiB/s. Each reload starts new workers (new kernels, joining the group that
/// deals out new connections) while the old ones finish their connections and end. No
/// request may fail: every answer complete and intact; a kept connection the server closed
/// while idle may be reopened (as HTTP clients do), nothing else.
#[test]
fn nginx_reload_every_10_s_under_2_minutes_of_kept_alive_load_fails_no_request() {
    let topo = venet();
    let addr = lkl_v4(&topo, PORT);
    let mut nginx = start_nginx(&topo, addr, Start::Preloaded(&lkl_env(&topo)));
    let stop = AtomicBool::new(false);
    let timeout = Duration::from_secs(20);
    let (tallies, reloads) = thread::scope(|s| {
        let mut clients = Vec::new();
        for i in 0..KEPT_ALIVE_CLIENTS + SLOW_CLIENTS {
            let (stop, small, big) = (&stop, &nginx.small, &nginx.expected);
            let peer = topo.peer_ns();
            clients.push(s.spawn(move || {
                let mut tally = Tally::default();
                peer.in_thread(|| {
                    let mut client = KeepAlive::new(addr, timeout);
                    while !stop.load(Ordering::Relaxed) && tally.failures.len() < 3 {
                        if i < KEPT_ALIVE_CLIENTS {
                            fetch_checked(&mut client, "/small.bin", small, &mut tally);
                        } else {
                            fetch_checked(&mut client, "/slow/blob.bin", big, &mut tally);
                        }
                    }
                    tally.reopened = client.reopened;
                })
                .expect("enter the peer namespace");
                tally
            }));
        }
        let started = Instant::now();
        let mut reloads = 0;
        while started.elapsed() + RELOAD_EVERY <= LOAD {
            thread::sleep(RELOAD_EVERY);
            nginx.signal(&topo, "reload");
            reloads += 1;
        }
        thread::sleep(LOAD.saturating_sub(started.elapsed()));
        stop.store(true, Ordering::Relaxed);
        let tallies: Vec<Tally> = clients.into_iter().map(|c| c.join().unwrap()).collect();
        (tallies, reloads)
    });
    let mut all = Tally::default();
    for t in tallies {
        all.requests += t.requests;
        all.reopened += t.reopened;
        all.failures.extend(t.failures);
        for (pid, n) in t.per_pid {
            *all.per_pid.entry(pid).or_default() += n;
        }
    }
    let alive = nginx.server.child.try_wait().unwrap().is_none();
    eprintln!(
        "{} requests over {LOAD:?} with {reloads} reloads: {} failed, {} kept connections \
         reopened after an idle close; answers by worker pid: {:?}",
        all.requests,
        all.failures.len(),
        all.reopened,
        all.per_pid
    );
    assert!(
        all.failures.is_empty(),
        "{} of {} requests failed; the first ones:\n{}",
        all.failures.len(),
        all.requests,
        all.failures[..all.failures.len().min(10)].join("\n")
    );
    assert!(alive, "nginx's master exited\n{}", nginx.server.output());
    // Two workers at the start and two more from each reload.
    assert!(
        all.per_pid.len() >= 2 + 2 * (reloads - 1),
        "answers came from only {} worker pids over {reloads} reloads: {:?}",
        all.per_pid.len(),
        all.per_pid
    );
    assert!(
        all.per_pid.keys().all(|p| *p != nginx.master),
        "the master answered"
    );
    let status = nginx.server.terminate(Duration::from_secs(10));
    assert!(
        status.success(),
        "nginx: {status}\n{}",
        nginx.server.output()
    );
}

/// `nginx -s quit` while downloads are in flight: the workers stop taking connections, each
/// download completes intact, then master and workers end, with status 0.
#[test]
fn nginx_quit_lets_downloads_in_flight_complete() {
    let topo = venet();
    let addr = lkl_v4(&topo, PORT);
    let mut nginx = start_nginx(&topo, addr, Start::Preloaded(&lkl_env(&topo)));
    const DOWNLOADS: usize = 8;
    let results = thread::scope(|s| {
        let downloads: Vec<_> = (0..DOWNLOADS)
            .map(|_| {
                let (peer, big) = (topo.peer_ns(), &nginx.expected);
                s.spawn(move || {
                    let mut tally = Tally::default();
                    peer.in_thread(|| {
                        let mut client = KeepAlive::new(addr, Duration::from_secs(20));
                        fetch_checked(&mut client, "/slow/blob.bin", big, &mut tally);
                    })
                    .expect("enter the peer namespace");
                    tally
                })
            })
            .collect();
        // Well into the 2 s downloads.
        thread::sleep(Duration::from_millis(700));
        nginx.signal(&topo, "quit");
        downloads
            .into_iter()
            .map(|d| d.join().unwrap())
            .collect::<Vec<_>>()
    });
    let failures: Vec<&String> = results.iter().flat_map(|t| &t.failures).collect();
    assert!(
        failures.is_empty(),
        "downloads in flight at nginx -s quit failed: {failures:?}"
    );
    let served: usize = results
        .iter()
        .map(|t| t.per_pid.values().sum::<usize>())
        .sum();
    assert_eq!(served, DOWNLOADS);
    let status = nginx.server.wait_for_exit(Duration::from_secs(10));
    nginx.assert_ended(status, "nginx -s quit");
}
