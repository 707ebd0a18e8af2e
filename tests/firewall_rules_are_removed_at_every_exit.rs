//! The firewall rules an instance installs (`LKL_HIJACK_FIREWALL=auto`, the default)
//! exist while it runs and are gone once it has exited, however it ends: by itself, SIGTERM,
//! SIGINT or SIGKILL (a watchdog cleans up then). A new start removes the tables of dead
//! instances and keeps those of live ones. The exit status the parent sees is the program's.

mod apps;
mod common;
mod host_firewall;
mod logged_server;
mod shared_ip;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use apps::Scratch;
use common::{command_in, http_server_command, lkl_env, lkl_v4, venet, wait_until};
use host_firewall::{dead_pid, iptables_lklh_lines, lklhijack_tables, nft, TableGuard};
use lkl_ports::firewall::table_name;
use lkl_rig::{KernelProfile, Topology, VenetTopology};
use logged_server::LoggedServer;
use shared_ip::shared_ip_env;

const PORT: u16 = 8000;

/// Accepts one connection, says "bye" and exits 0.
const ONE_SHOT: &str = "import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
c, _ = s.accept()
c.sendall(b'bye')
c.close()
s.close()
";

/// python's http.server on LKL's own address (the table is installed all the same), as on a
/// host with kernel `profile` if given.
fn http_server(topo: &VenetTopology, www: &Scratch, profile: Option<&str>) -> LoggedServer {
    let bind = topo.addrs().lkl_v4.to_string();
    let (port, dir) = (PORT.to_string(), www.path.display().to_string());
    let mut cmd = http_server_command(topo.container_ns(), &port, &bind, &dir, &lkl_env(topo));
    if let Some(name) = profile {
        KernelProfile::named(name).unwrap().confine(&mut cmd);
    }
    // SIGINT at its default in the child, whatever this test inherited (a background job of a
    // non-interactive shell has it ignored, and python then installs no handler for it).
    // SAFETY: signal(2) is async-signal-safe; nothing else runs in the forked child.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut server = LoggedServer::spawn(cmd, "python3 -m http.server");
    server
        .server
        .wait_listening(topo.peer_ns(), lkl_v4(topo, PORT), Duration::from_secs(20));
    server
}

/// The instance's table is there while it runs.
fn assert_table_exists(topo: &VenetTopology, pid: u32) {
    let table = format!("inet {}", table_name(topo.container_if(), pid));
    let ok = wait_until(Duration::from_secs(5), || {
        lklhijack_tables(topo.container_ns()).contains(&table)
    });
    assert!(
        ok.is_some(),
        "no {table} while the server runs; tables: {:?}",
        host_firewall::nft_tables(topo.container_ns())
    );
}

/// After the exit of `pid`: within `limit` no table of it is left, the whole ruleset names no
/// lkl-hijack table and no iptables chain of ours exists, and no process of the instance (the
/// watchdog included) remains in the namespace beyond those in `before`.
fn assert_cleaned_up(topo: &VenetTopology, pid: u32, before: &[u32], limit: Duration, how: &str) {
    let ns = topo.container_ns();
    let table = table_name(topo.container_if(), pid);
    let gone = wait_until(limit, || {
        !lklhijack_tables(ns).iter().any(|t| t.ends_with(&table))
    });
    assert!(
        gone.is_some(),
        "{how}: table {table} still there {limit:?} after the exit:\n{}",
        nft(ns, &["list", "ruleset"]).unwrap_or_default()
    );
    let ruleset = nft(ns, &["list", "ruleset"]).unwrap();
    assert!(
        !ruleset.contains("lklhijack_"),
        "{how}: left in the ruleset:\n{ruleset}"
    );
    let chains = iptables_lklh_lines(ns);
    assert!(chains.is_empty(), "{how}: iptables chains left: {chains:?}");
    let mut left = Vec::new();
    let quiet = wait_until(Duration::from_secs(3), || {
        left = ns
            .pids()
            .unwrap()
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        left.is_empty()
    });
    assert!(
        quiet.is_some(),
        "{how}: processes left in the container: {left:?}"
    );
    eprintln!("{how}: table gone {:?} after the exit", gone.unwrap());
}

fn signal(server: &mut LoggedServer, sig: i32) {
    // SAFETY: kill(2) on our own child, not reaped yet.
    assert_eq!(unsafe { libc::kill(server.pid() as i32, sig) }, 0);
}

/// Sends `sig` until the server exits (a second apart, 10 times at most): CPython drops a
/// KeyboardInterrupt that lands in a weakref callback ("Exception ignored in ..."), and only a
/// second ^C then ends it, for a user as for this test.
fn signal_until_exit(server: &mut LoggedServer, sig: i32) -> ExitStatus {
    for _ in 0..10 {
        signal(server, sig);
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if let Some(status) = server.server.child.try_wait().expect("try_wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    wait_exit(server).0
}

fn wait_exit(server: &mut LoggedServer) -> (ExitStatus, Instant) {
    let status = server.server.wait_for_exit(Duration::from_secs(15));
    (status, Instant::now())
}

#[test]
fn rules_are_removed_when_the_server_exits_by_itself() {
    let topo = venet();
    let before = topo.container_ns().pids().unwrap();
    let bind = topo.addrs().lkl_v4.to_string();
    let port = PORT.to_string();
    let mut server = LoggedServer::spawn(
        command_in(
            topo.container_ns(),
            "/usr/bin/python3",
            &["-c", ONE_SHOT, &bind, &port],
            &lkl_env(&topo),
        ),
        "one-shot python server",
    );
    assert_table_exists(&topo, server.pid());
    // Its one request, from the peer: retried until the listener is up (a refused attempt
    // is not accepted, so it does not use up the one accept).
    let addr: SocketAddr = lkl_v4(&topo, PORT);
    let got = wait_until(Duration::from_secs(20), || {
        topo.peer_ns()
            .in_thread(|| {
                let Ok(mut c) = TcpStream::connect_timeout(&addr, Duration::from_millis(500))
                else {
                    return false;
                };
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut got = Vec::new();
                c.read_to_end(&mut got).is_ok() && got == b"bye"
            })
            .unwrap()
    });
    assert!(
        got.is_some(),
        "the one-shot server never said bye\n{}",
        server.stderr()
    );
    let (status, _) = wait_exit(&mut server);
    assert!(
        status.success(),
        "one-shot server: {status}\n{}",
        server.stderr()
    );
    assert_cleaned_up(
        &topo,
        server.pid(),
        &before,
        Duration::from_secs(2),
        "normal exit",
    );
}

/// Starts the server, sends it `sig`, and checks how it ended (`ended`, given its status
/// and stdout) and that its rules are gone within `limit`.
fn signalled(tag: &str, sig: i32, limit: Duration, ended: impl Fn(ExitStatus, &str) -> bool) {
    signalled_on(None, tag, sig, limit, ended)
}

/// [`signalled`], as on a host with kernel `profile` if given.
fn signalled_on(
    profile: Option<&str>,
    tag: &str,
    sig: i32,
    limit: Duration,
    ended: impl Fn(ExitStatus, &str) -> bool,
) {
    let topo = venet();
    let www = Scratch::new(tag);
    let before = topo.container_ns().pids().unwrap();
    let mut server = http_server(&topo, &www, profile);
    assert_table_exists(&topo, server.pid());
    let status = signal_until_exit(&mut server, sig);
    assert!(
        ended(status, &server.stdout()),
        "{tag}: {status}\nstdout: {}\nstderr: {}",
        server.stdout(),
        server.stderr()
    );
    assert_cleaned_up(&topo, server.pid(), &before, limit, tag);
}

#[test]
fn rules_are_removed_when_the_server_gets_sigterm() {
    // python has no SIGTERM handler: it dies of the signal, and a clean-up must not hide that.
    signalled(
        "fw-exit-term",
        libc::SIGTERM,
        Duration::from_secs(2),
        |st, _| st.signal() == Some(libc::SIGTERM),
    );
}

#[test]
fn rules_are_removed_when_the_server_gets_sigint() {
    // python turns SIGINT into KeyboardInterrupt, which http.server catches and exits 0: the
    // program's own handler still runs.
    signalled(
        "fw-exit-int",
        libc::SIGINT,
        Duration::from_secs(2),
        |st, out| st.code() == Some(0) && out.contains("Keyboard interrupt received"),
    );
}

#[test]
fn rules_are_removed_by_the_watchdog_when_the_server_gets_sigkill() {
    signalled(
        "fw-exit-kill",
        libc::SIGKILL,
        Duration::from_millis(2500),
        |st, _| st.signal() == Some(libc::SIGKILL),
    );
}

#[test]
fn rules_are_removed_by_the_watchdog_after_sigkill_on_a_4_18_host_without_pidfd_open() {
    // The watchdog reads the program's /proc entry instead (every 200 ms).
    signalled_on(
        Some("4.18"),
        "fw-exit-kill-4.18",
        libc::SIGKILL,
        Duration::from_millis(2500),
        |st, _| st.signal() == Some(libc::SIGKILL),
    );
}

#[test]
fn a_start_removes_tables_of_dead_instances_and_keeps_live_ones() {
    let topo = venet();
    let ns = topo.container_ns();
    let www = Scratch::new("fw-stale");

    // A live instance, on the shared address so it does not meet the second one's traffic.
    let bind = topo.addrs().host_v4.to_string();
    let dir = www.path.display().to_string();
    let live = LoggedServer::spawn(
        http_server_command(ns, "8001", &bind, &dir, &shared_ip_env(&topo)),
        "live instance",
    );
    assert_table_exists(&topo, live.pid());
    let live_table = format!("inet {}", table_name(topo.container_if(), live.pid()));

    // What a SIGKILLed instance whose watchdog died too would leave: a table with a rule.
    let stale = table_name(topo.container_if(), dead_pid());
    let _stale_guard = TableGuard {
        ns,
        name: stale.clone(),
    };
    let (ifname, host_v4) = (topo.container_if(), topo.addrs().host_v4);
    let (ip, port) = (host_v4.to_string(), "9999");
    for args in [
        &["add", "table", "inet", &stale][..],
        &[
            "add",
            "chain",
            "inet",
            &stale,
            "prerouting",
            "{ type filter hook prerouting priority raw; policy accept; }",
        ],
        &[
            "add",
            "rule",
            "inet",
            &stale,
            "prerouting",
            "iifname",
            ifname,
            "ip",
            "daddr",
            &ip,
            "tcp",
            "dport",
            port,
            "drop",
        ],
    ] {
        nft(ns, args).unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(lklhijack_tables(ns).contains(&format!("inet {stale}")));

    let server = http_server(&topo, &www, None);
    let own = format!("inet {}", table_name(topo.container_if(), server.pid()));
    assert_table_exists(&topo, server.pid());
    let gone = wait_until(Duration::from_secs(2), || {
        !lklhijack_tables(ns).contains(&format!("inet {stale}"))
    });
    let tables = lklhijack_tables(ns);
    assert!(
        gone.is_some(),
        "the dead instance's table is still there: {tables:?}"
    );
    assert!(
        tables.contains(&own),
        "the new instance's table is missing: {tables:?}"
    );
    assert!(
        tables.contains(&live_table),
        "the live instance's table was removed: {tables:?}"
    );
}
