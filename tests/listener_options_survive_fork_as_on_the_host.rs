//! Listeners follow the fork with their options: `tests/programs/fork_listener_options.c`
//! creates IPv4 and IPv6 listeners (specific and wildcard addresses) with SO_REUSEADDR,
//! TCP_DEFER_ACCEPT, SO_RCVBUF/SO_SNDBUF, TCP_NODELAY, SO_KEEPALIVE and its timers,
//! IPV6_V6ONLY on and off and their own backlogs, forks, and prints what the child sees of each
//! inherited listener: address, options, backlog, that poll and accept find it open and
//! empty, and which binds V6ONLY leaves free. Run on the container's host stack (on its
//! addresses) and under the preload (on LKL's), the outputs must be identical; a second test
//! has the child also connect to each listener and accept the connection, which must inherit
//! the listener's options.

mod common;
mod host_diff;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use host_diff::{diff, run_limited, tail};
use lkl_rig::Topology;

/// The program's own watchdog (alarm) fires at 50 s (40 s in the child); this one only catches a process that
/// cannot even be killed by that.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// `tests/programs/fork_listener_options.c`, compiled once per test binary.
fn fork_listener_options() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| build_c("fork_listener_options", CSource::File))
        .clone()
}

/// Lines the host run must print in either mode: the options as Linux reports them, in the
/// child, so that an output that says little cannot pass.
const KEY_LINES: &[&str] = &[
    "child: tcp4-addr: getsockname: inet ADDR4 port=18411 len=16",
    "child: tcp4-addr: SO_REUSEADDR: 1",
    "child: tcp4-addr: SO_RCVBUF: 131072",
    "child: tcp4-addr: TCP_NODELAY: 1",
    "child: tcp4-addr: SO_KEEPALIVE: 1",
    "child: tcp4-addr: TCP_KEEPIDLE: 77",
    "child: tcp4-addr: TCP_DEFER_ACCEPT: 7",
    "child: tcp4-addr: TCP_INFO: state LISTEN backlog 7 queued 0",
    "child: tcp4-addr: poll 50ms: 0 revents none",
    "child: tcp4-addr: accept (nothing pending): -1 EAGAIN",
    "child: tcp4-any: O_NONBLOCK: 1 FD_CLOEXEC: 1",
    "child: tcp4-any: TCP_INFO: state LISTEN backlog 300 queued 0",
    "child: tcp6-addr: getsockname: inet6 ADDR6 port=18413 len=28",
    "child: tcp6-addr: IPV6_V6ONLY: 1",
    "child: tcp6-any-dual: getsockname: inet6 :: port=18414 len=28",
    "child: tcp6-any-dual: IPV6_V6ONLY: 0",
    "child: tcp6-any-only: IPV6_V6ONLY: 1",
    "child: tcp6-any-only: TCP_INFO: state LISTEN backlog 9 queued 0",
    "child: bind 0.0.0.0:18414 beside tcp6-any-dual: -1 EADDRINUSE",
    "child: bind 0.0.0.0:18415 beside tcp6-any-only: ok",
    "child: done",
    "parent-after: child exit 0",
    "parent-after: tcp4-addr: accept (nothing pending): -1 EAGAIN",
    "parent-after: done",
];

/// Lines the host run must print with `--connect`.
const CONNECT_KEY_LINES: &[&str] = &[
    "child-accept: tcp4-addr via ADDR4: poll listener (5s): 1 IN",
    "child-accept: tcp4-addr via ADDR4: accept: peer ADDR4 len=16",
    "child-accept: tcp4-addr via ADDR4: accepted recv: 2 'hi'",
    "child-accept: tcp4-addr via ADDR4: accepted TCP_NODELAY: 1",
    "child-accept: tcp4-addr via ADDR4: accepted TCP_KEEPIDLE: 77",
    "child-accept: tcp6-addr via ADDR6: accept: peer ADDR6 len=28",
    "child-accept: tcp6-any-dual via ADDR4: accept: peer ::ffff:ADDR4 len=28",
    "child-accept: tcp6-any-only via ADDR6: accepted SO_KEEPALIVE: 1",
];

/// Runs the program on the container's host stack and under the preload, `extra` arguments
/// after the addresses, and compares the outputs line by line.
fn compare_with_host(extra: &[&str], key_lines: &[&[&str]]) {
    let prog = fork_listener_options();
    let prog = prog.to_str().expect("utf-8 path");
    let topo = venet();
    let ns = topo.container_ns();
    let a = topo.addrs();

    let (host_v4, host_v6) = (a.host_v4.to_string(), a.host_v6.to_string());
    let mut args = vec![host_v4.as_str(), host_v6.as_str()];
    args.extend(extra);
    let host = run_limited(
        command_in(ns, prog, &args, &[]),
        RUN_LIMIT,
        "fork_listener_options",
    );
    let host_out = String::from_utf8_lossy(&host.stdout).into_owned();
    assert!(
        host.status.success(),
        "fork_listener_options on the host stack: {}\n{}\nstderr:\n{}",
        host.status,
        tail(&host_out, 20),
        String::from_utf8_lossy(&host.stderr)
    );
    for key in key_lines.iter().flat_map(|k| k.iter()) {
        assert!(
            host_out.lines().any(|l| l == *key),
            "the host run lacks {key:?}:\n{host_out}"
        );
    }

    let (lkl_v4, lkl_v6) = (a.lkl_v4.to_string(), a.lkl_v6.to_string());
    let mut args = vec![lkl_v4.as_str(), lkl_v6.as_str()];
    args.extend(extra);
    let lkl = run_limited(
        command_in(ns, prog, &args, &lkl_env(&topo)),
        RUN_LIMIT,
        "fork_listener_options",
    );
    let lkl_out = String::from_utf8_lossy(&lkl.stdout).into_owned();
    if let Some(d) = diff(&host_out, &lkl_out) {
        panic!(
            "fork_listener_options under the preload ({}) differs from the host run: {d}\n\
             stderr under the preload:\n{}",
            lkl.status,
            tail(&String::from_utf8_lossy(&lkl.stderr), 30)
        );
    }
    assert!(
        lkl.status.success(),
        "fork_listener_options under the preload: {}\nstderr:\n{}",
        lkl.status,
        String::from_utf8_lossy(&lkl.stderr)
    );
}

#[test]
fn inherited_listeners_keep_address_options_backlog_and_v6only_in_the_child_as_on_the_host() {
    compare_with_host(&[], &[KEY_LINES]);
}

#[test]
fn child_accepts_connections_on_inherited_listeners_with_their_options_as_on_the_host() {
    compare_with_host(&["--connect"], &[KEY_LINES, CONNECT_KEY_LINES]);
}
