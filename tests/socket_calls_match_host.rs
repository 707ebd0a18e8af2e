//! Differential test of the hooks: `tests/programs/socket_calls.c` exercises every socket call
//! a server imports (on 127.0.0.1 and ::1, server and client in one process) and prints one
//! deterministic line per check. Run on the host stack and under the preload (where loopback
//! is LKL's own), the two outputs must be identical.

mod common;
mod host_diff;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::Duration;

use common::*;
use host_diff::{diff, run_limited, tail};
use lkl_rig::Topology;

/// The program's own watchdog (alarm) fires at 40 s; this one only catches a process that
/// cannot even be killed by that.
const RUN_LIMIT: Duration = Duration::from_secs(45);

/// `tests/programs/socket_calls.c`, compiled once per test binary into cargo's scratch
/// directory.
fn socket_calls() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| build_c("socket_calls", CSource::File))
        .clone()
}

fn checked_stdout(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "socket_calls {what}: {}\nlast lines of stdout:\n{}\nstderr:\n{}",
        out.status,
        tail(&stdout, 15),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Lines of checks whose result the host stack must give; they keep the comparison from
/// passing on an output that says little.
const KEY_LINES: &[&str] = &[
    "tcp4: recv: 4 'ping'",
    "tcp6: client getsockname: inet6 ::1 port=nonzero len=28",
    "tcp6-mapped: accept address: inet6 ::ffff:127.0.0.1 port=nonzero len=28",
    "accept4:   flags: nonblock=1 cloexec=1",
    "connect-nonblocking: connect: -1 EINPROGRESS",
    "shutdown: read other direction: 4",
    "close: peer read after close_range (EOF): 0",
    "udp4: received: 1 'a' 2 'bb' 3 'ccc'",
    "udp6: recv (port unreachable): -1 ECONNREFUSED",
    "dup: dup2 socket back returns target: true",
    "msg-flags: recv MSG_WAITALL 10 (sent 5 + 5 later): 10",
    "timeouts:   waited>=timeout: true",
    "fstat:   S_ISSOCK: true",
    "sendfile: receiver got 300000 bytes, content matches: true",
    "poll: mixed, socket data arrives at 100ms: 1 [IN - - - -]",
    "poll:   woke at the data: true",
    "select: read set mixed, socket data at 100ms: 1 [-- r- -- -- --]",
    "epoll-et: again without reading, 100ms: 0 waited>=timeout: true",
    "epoll-oneshot: re-armed: 1 [1:IN]",
    "end: done",
];

/// `lkl_env`, with every socket in LKL: client sockets and UDP too (by default only listeners
/// are), so that both ends of each loopback connection are LKL's.
fn all_sockets_in_lkl(topo: &dyn Topology) -> Vec<(String, String)> {
    let mut env = lkl_env(topo);
    env.push(("LKL_HIJACK_CLIENTS".into(), "lkl".into()));
    env
}

#[test]
fn socket_calls_print_the_same_on_lkl_as_on_the_host() {
    let prog = socket_calls();
    let prog = prog.to_str().expect("utf-8 path");
    let topo = venet();
    let ns = topo.container_ns();

    let host = run_limited(command_in(ns, prog, &[], &[]), RUN_LIMIT, "socket_calls");
    let host = checked_stdout(&host, "on the host stack");
    let lines = host.lines().count();
    assert!(lines >= 400, "only {lines} lines on the host:\n{host}");
    for key in KEY_LINES {
        assert!(
            host.lines().any(|l| l == *key),
            "the host run lacks {key:?}:\n{host}"
        );
    }

    let lkl = run_limited(
        command_in(ns, prog, &[], &all_sockets_in_lkl(&topo)),
        RUN_LIMIT,
        "socket_calls",
    );
    let lkl_out = String::from_utf8_lossy(&lkl.stdout).into_owned();
    if let Some(d) = diff(&host, &lkl_out) {
        panic!(
            "socket_calls under the preload ({}) differs from the host run: {d}\nstderr under the preload:\n{}",
            lkl.status,
            tail(&String::from_utf8_lossy(&lkl.stderr), 30)
        );
    }
    checked_stdout(&lkl, "under the preload");
}

/// The sockets `socket_calls --listen-and-wait` made: TCP on 127.0.0.1 and ::1, UDP on
/// 127.0.0.1 (each used once by the program itself), by port.
struct Ports {
    tcp4: u16,
    tcp6: u16,
    udp4: u16,
}

/// Starts `socket_calls --listen-and-wait`, which keeps its sockets until a byte arrives on
/// its stdin.
fn listen_and_wait(ns: &lkl_rig::Netns, env: &[(String, String)]) -> (Server, Ports) {
    let prog = socket_calls();
    let mut cmd = command_in(
        ns,
        prog.to_str().expect("utf-8 path"),
        &["--listen-and-wait"],
        env,
    );
    cmd.stdin(Stdio::piped());
    let mut server = Server::spawn(cmd, "socket_calls --listen-and-wait");
    let stdout = server.child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
    let ports: Vec<u16> = line
        .strip_prefix("ports ")
        .map(|p| {
            p.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let [tcp4, tcp6, udp4] = ports[..] else {
        let status = server.wait_for_exit(Duration::from_secs(5));
        let mut err = String::new();
        if let Some(mut e) = server.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        panic!("no ports from socket_calls --listen-and-wait ({status}): {line:?}\n{err}")
    };
    (server, Ports { tcp4, tcp6, udp4 })
}

/// Whether the namespace's host stack has a UDP socket bound to `port`.
fn host_udp_bound(ns: &lkl_rig::Netns, port: u16) -> bool {
    let out = ns.run("ss", &["-Huan"]).expect("ss");
    out.lines().any(|l| {
        l.split_whitespace()
            .nth(3)
            .is_some_and(|local| local.rsplit(':').next() == Some(&port.to_string()))
    })
}

fn finish(mut server: Server) {
    server
        .child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"x")
        .expect("write to socket_calls");
    let status = server.wait_for_exit(Duration::from_secs(10));
    assert!(
        status.success(),
        "socket_calls --listen-and-wait: {status}\n{}",
        server.output()
    );
}

/// Equal outputs prove nothing if the preload left the program on the host stack: loopback
/// sockets made under the preload must not exist in the namespace's host stack, where `ss`
/// sees the ones made without the preload.
#[test]
fn socket_calls_under_the_preload_use_lkl_not_the_host_stack() {
    let topo = venet();
    let ns = topo.container_ns();

    let (server, p) = listen_and_wait(ns, &[]);
    assert!(
        host_listens_on(ns, p.tcp4) && host_listens_on(ns, p.tcp6) && host_udp_bound(ns, p.udp4),
        "without the preload, ss misses a socket (tcp4 {}, tcp6 {}, udp4 {}):\n{}{}",
        p.tcp4,
        p.tcp6,
        p.udp4,
        ns.run("ss", &["-ltn"]).unwrap_or_default(),
        ns.run("ss", &["-uan"]).unwrap_or_default()
    );
    finish(server);

    let (server, p) = listen_and_wait(ns, &all_sockets_in_lkl(&topo));
    let on_host = [
        ("tcp 127.0.0.1", host_listens_on(ns, p.tcp4)),
        ("tcp ::1", host_listens_on(ns, p.tcp6)),
        ("udp 127.0.0.1", host_udp_bound(ns, p.udp4)),
    ];
    assert!(
        on_host.iter().all(|(_, on)| !on),
        "under the preload these sockets are on the host stack: {:?}\n{}{}",
        on_host
            .iter()
            .filter(|(_, on)| *on)
            .map(|(s, _)| s)
            .collect::<Vec<_>>(),
        ns.run("ss", &["-ltnp"]).unwrap_or_default(),
        ns.run("ss", &["-uanp"]).unwrap_or_default()
    );
    finish(server);
}
