//! Where `nft` is missing the firewall uses iptables instead: a raw-table chain
//! `LKLH-<ifname>-<pid>` jumped to from PREROUTING on the interface, dropping TCP to LKL's
//! listening port. With LKL on the container's shared address the peer then reaches the LKL
//! server without a reset, and the chain is gone after the exit (by the exit path or, after
//! SIGKILL, by the watchdog).

mod apps;
mod common;
mod host_firewall;
mod http_client;
mod logged_server;
mod shared_ip;

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use apps::{write_random_file, Scratch};
use common::{command_in, http_server_argv, venet, wait_until};
use host_firewall::{iptables_lklh_lines, lklhijack_tables};
use http_client::fetch_from_peer;
use lkl_rig::{Topology, VenetTopology};
use logged_server::LoggedServer;
use shared_ip::{host_tcp_out_rsts, shared_ip_env};

const PORT: u16 = 8000;

/// Runs "$@" in a private mount namespace where /usr/sbin/nft (also /sbin/nft: /sbin is a link)
/// is /dev/null, which is no program: to the library, nft is missing. `exec` keeps the pid.
const WITHOUT_NFT: &str = "mount --bind /dev/null /usr/sbin/nft && exec \"$@\"";

/// python's http.server on the shared address without nft; waits until the peer gets in.
fn serve(topo: &VenetTopology, www: &Scratch) -> LoggedServer {
    let (bind, port) = (topo.addrs().host_v4.to_string(), PORT.to_string());
    let dir = www.path.display().to_string();
    let python = http_server_argv(&port, &bind, &dir);
    let mut server = LoggedServer::spawn(
        command_in(
            topo.container_ns(),
            "unshare",
            &["--mount", "sh", "-c", WITHOUT_NFT, "sh"]
                .into_iter()
                .chain(python.iter().map(String::as_str))
                .collect::<Vec<_>>(),
            &shared_ip_env(topo),
        ),
        "python3 -m http.server without nft",
    );
    let addr = SocketAddr::new(topo.addrs().host_v4.into(), PORT);
    server
        .server
        .wait_listening(topo.peer_ns(), addr, Duration::from_secs(20));
    server
}

/// The instance's iptables chain exists and drops TCP to PORT, nothing went to nftables
/// tables of ours, and the peer fetches `blob` 20 times without a host RST.
fn check_running(topo: &VenetTopology, server: &LoggedServer, blob: &[u8]) {
    let ns = topo.container_ns();
    let chain = format!("LKLH-{}-{}", topo.container_if(), server.pid());
    let lines = iptables_lklh_lines(ns);
    assert!(
        lines.iter().any(|l| l.contains(&format!("-N {chain}"))),
        "no iptables chain {chain}: {lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains(&format!(
            "-A PREROUTING -i {} -j {chain}",
            topo.container_if()
        ))),
        "PREROUTING does not jump to {chain} on the interface: {lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains(&format!("-A {chain} "))
            && l.contains(&format!("--dport {PORT}"))
            && l.contains("-j DROP")),
        "{chain} drops nothing to port {PORT}: {lines:#?}"
    );
    assert!(
        lklhijack_tables(ns).is_empty(),
        "nft tables of ours: {:?}",
        lklhijack_tables(ns)
    );

    let addr = SocketAddr::new(topo.addrs().host_v4.into(), PORT);
    let rsts_before = host_tcp_out_rsts(ns);
    let failures = fetch_from_peer(topo, addr, "/blob.bin", blob, 20);
    assert!(
        failures.is_empty(),
        "through the iptables rules:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        host_tcp_out_rsts(ns) - rsts_before,
        0,
        "the container kernel sent RSTs"
    );
}

fn www() -> (Scratch, Vec<u8>) {
    let dir = Scratch::new("fw-iptables");
    write_random_file(&dir.join("blob.bin"), 32 << 10, 0x1b7a);
    let blob = std::fs::read(dir.join("blob.bin")).unwrap();
    (dir, blob)
}

fn assert_chain_gone(topo: &VenetTopology, how: &str) {
    let ns = topo.container_ns();
    let gone = wait_until(Duration::from_millis(2500), || {
        iptables_lklh_lines(ns).is_empty()
    });
    assert!(
        gone.is_some(),
        "{how}: left behind: {:#?}",
        iptables_lklh_lines(ns)
    );
}

#[test]
fn without_nft_iptables_rules_let_the_peer_in_and_go_at_sigterm() {
    let topo = venet();
    let (dir, blob) = www();
    let mut server = serve(&topo, &dir);
    check_running(&topo, &server, &blob);
    let status = server.server.terminate(Duration::from_secs(10));
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}");
    assert_chain_gone(&topo, "SIGTERM");
}

#[test]
fn without_nft_the_watchdog_removes_the_iptables_rules_after_sigkill() {
    let topo = venet();
    let (dir, blob) = www();
    let mut server = serve(&topo, &dir);
    check_running(&topo, &server, &blob);
    server.server.child.kill().unwrap();
    server.server.wait_for_exit(Duration::from_secs(10));
    assert_chain_gone(&topo, "SIGKILL");
}
