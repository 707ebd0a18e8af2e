//! Programs that misuse their sockets, `tests/programs/misbehaving.c` under
//! the preload with every socket in LKL (loopback listeners and connections to them):
//! closing or shutting down an fd while another thread is blocked on it in accept, recv,
//! epoll_wait, poll or send (the call returns, nothing hangs); a signal storm at a thread
//! blocked in recv (data intact, EINTR only without SA_RESTART); exit(), exit() from another
//! thread, and return from main while threads sit in accept/recv/epoll_wait/send and others
//! churn through connect/close (prompt exit, status 0, no `lklhijack_*` nftables table left);
//! leaking sockets up to RLIMIT_NOFILE (EMFILE, then closing some makes socket() work); bad
//! pointers to recv/send/getsockopt/... (EFAULT as on the host kernel, no crash); a forked
//! child touching the parent's LKL connections (EBADF; its listener is made again in the
//! child's own kernel) while the parent is blocked in accept.

mod common;
mod host_firewall;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{build_c, command_in, lkl_env, venet, CSource, Server};
use lkl_rig::{Topology, VenetTopology};

fn program() -> &'static str {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_c("misbehaving", CSource::File))
        .to_str()
        .unwrap()
}

struct Run {
    stdout: String,
    stderr: String,
    status: std::process::ExitStatus,
    took: Duration,
}

/// `misbehaving MODE` in the container, under the preload (`lkl`) or on the host kernel.
fn run(topo: &VenetTopology, mode: &str, lkl: bool) -> Run {
    let mut env = if lkl { lkl_env(topo) } else { Vec::new() };
    if lkl {
        env.push(("LKL_HIJACK_DEBUG".into(), "1".into()));
    }
    let start = Instant::now();
    let mut server = Server::spawn(
        command_in(topo.container_ns(), program(), &[mode], &env),
        &format!("misbehaving {mode}"),
    );
    let status = server.wait_for_exit(Duration::from_secs(40));
    let took = start.elapsed();
    let mut stdout = String::new();
    let mut stderr = String::new();
    use std::io::Read;
    if let Some(mut p) = server.child.stdout.take() {
        let _ = p.read_to_string(&mut stdout);
    }
    if let Some(mut p) = server.child.stderr.take() {
        let _ = p.read_to_string(&mut stderr);
    }
    if lkl {
        assert!(
            stderr.contains("booted Linux"),
            "{mode}: the sockets were not LKL's:\n{stderr}"
        );
    }
    Run {
        stdout,
        stderr,
        status,
        took,
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn assert_clean(r: &Run, mode: &str) {
    assert!(
        r.status.success(),
        "{mode} under LKL: {} after {:.1?}\nstdout:\n{}\nstderr (tail):\n{}",
        r.status,
        r.took,
        r.stdout,
        tail(&r.stderr)
    );
    assert!(!r.stdout.contains("HANG"), "{mode}: {}", r.stdout);
    assert!(!r.stdout.contains("FAILED"), "{mode}: {}", r.stdout);
}

#[test]
fn closing_or_shutting_down_an_fd_wakes_the_thread_blocked_on_it() {
    let topo = venet();
    let r = run(&topo, "close", true);
    eprintln!("{}", r.stdout);
    assert_clean(&r, "close");
    for call in [
        "accept, close",
        "recv, close",
        "epoll_wait, close",
        "poll, close",
        "send, shutdown",
        "send, close",
    ] {
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with(call))
            .unwrap_or_else(|| panic!("no line for {call}:\n{}", r.stdout));
        assert!(line.contains("blocked call returned"), "{line}");
    }
    // Blocking calls woken by close/shutdown return an error, not success.
    for call in [
        "accept, close",
        "recv, close",
        "send, shutdown",
        "send, close",
    ] {
        let line = r.stdout.lines().find(|l| l.starts_with(call)).unwrap();
        assert!(
            !line.contains("returned 0 ") || call == "recv, close",
            "{line}"
        );
    }
    assert!(
        r.stdout.contains("fresh pair afterwards: ok"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_signal_storm_at_a_thread_blocked_in_recv_loses_no_data() {
    let topo = venet();
    for (mode, eintr) in [("storm", true), ("storm-restart", false)] {
        let r = run(&topo, mode, true);
        eprintln!("{}", r.stdout.trim());
        assert_clean(&r, mode);
        assert!(r.stdout.contains("data intact"), "{mode}: {}", r.stdout);
        let want = if eintr { "EINTR seen" } else { "no EINTR" };
        assert!(
            r.stdout.contains(want),
            "{mode}: expected {want}: {}",
            r.stdout
        );
    }
}

/// Runs an exit mode; checks the table while it runs, the exit time, status and cleanup.
fn exit_mode(mode: &str) {
    let topo = venet();
    let ns = topo.container_ns();
    let mut cmd = command_in(ns, program(), &[mode], &lkl_env(&topo));
    cmd.stderr(Stdio::null());
    let mut server = Server::spawn(cmd, &format!("misbehaving {mode}"));
    let pid = server.child.id();
    let mut out = BufReader::new(server.child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "{mode}: program said {line:?}");
    let table = lkl_ports::firewall::table_name(topo.container_if(), pid);
    let present = host_firewall::lklhijack_tables(ns)
        .iter()
        .any(|t| t.ends_with(&table));
    // "calling exit" / "returning from main" / "exiting from a thread"
    line.clear();
    out.read_line(&mut line).unwrap();
    let announced = Instant::now();
    let status = server.wait_for_exit(Duration::from_secs(10));
    let took = announced.elapsed();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut out, &mut rest);
    eprintln!(
        "{mode}: {} -> exited {status} {took:.2?} later",
        line.trim()
    );
    assert!(present, "{mode}: no firewall table {table} while it ran");
    assert!(status.success(), "{mode}: {status}; {line}{rest}");
    assert!(
        took < Duration::from_secs(3),
        "{mode}: exit took {took:?} with threads inside LKL calls"
    );
    let gone = common::wait_until(Duration::from_secs(5), || {
        !host_firewall::nft(ns, &["list", "tables"])
            .unwrap_or_default()
            .contains("lklhijack_")
    });
    assert!(
        gone.is_some(),
        "{mode}: tables left after the exit:\n{}",
        host_firewall::nft(ns, &["list", "tables"]).unwrap_or_default()
    );
}

#[test]
fn exit_while_threads_are_inside_lkl_calls_is_prompt_and_removes_the_firewall_table() {
    exit_mode("exit");
}

#[test]
fn return_from_main_while_threads_are_inside_lkl_calls_is_prompt_and_removes_the_firewall_table() {
    exit_mode("return");
}

#[test]
fn exit_from_another_thread_while_main_is_in_accept_is_prompt_and_removes_the_firewall_table() {
    exit_mode("thread");
}

#[test]
fn leaking_sockets_to_rlimit_nofile_gives_emfile_and_recovers() {
    let topo = venet();
    let host = run(&topo, "leak", false);
    let r = run(&topo, "leak", true);
    eprintln!("{}", r.stdout.trim());
    assert_clean(&r, "leak");
    assert!(host.status.success(), "{}", host.stdout);
    assert_eq!(host.stdout, r.stdout, "host (left) and LKL (right) differ");
}

#[test]
fn bad_pointers_give_efault_as_on_the_host_kernel() {
    let topo = venet();
    let host = run(&topo, "badptr", false);
    assert!(host.status.success(), "{}", host.stdout);
    let r = run(&topo, "badptr", true);
    eprintln!("{}", r.stdout.trim());
    if !r.status.success() {
        let last = r.stdout.lines().last().unwrap_or("(nothing)");
        panic!(
            "badptr under LKL: {} — the last call that returned: {last:?}\nstdout:\n{}\nstderr (tail):\n{}",
            r.status,
            r.stdout,
            tail(&r.stderr)
        );
    }
    assert_eq!(host.stdout, r.stdout, "host (left) and LKL (right) differ");
}

#[test]
fn a_forked_child_gets_ebadf_on_lkl_connections_and_the_parent_carries_on() {
    let topo = venet();
    let r = run(&topo, "fork", true);
    eprintln!("{}", r.stdout.trim());
    assert_clean(&r, "fork");
    for call in ["recv", "send", "getsockopt", "shutdown"] {
        let want = format!("child: {call} -> -1 EBADF");
        assert!(r.stdout.contains(&want), "missing {want:?}:\n{}", r.stdout);
    }
    for want in [
        "child: listener poll -> 0",
        "child: new socket -> ok",
        "child exit: status 0",
        "child: host pipe -> 1",
        "parent: existing pair still works",
        "parent: accepted and received 4 bytes",
        "parent: blocked accept completed",
    ] {
        assert!(r.stdout.contains(want), "missing {want:?}:\n{}", r.stdout);
    }
}
