//! Where `nft` is missing, or is there but fails (as where nf_tables is missing), the firewall
//! uses the first iptables that works — iptables-legacy, then iptables — instead: a raw-table
//! chain `LKLH-<ifname>-<pid>` jumped to from PREROUTING on the interface, dropping TCP to
//! LKL's listening port. With LKL on the container's shared address the peer then reaches the
//! LKL server without a reset, and the chain is gone after the exit (by the exit path or, after
//! SIGKILL, by the watchdog, which uses the same tool). Where no tool works, one warning says
//! so and the program serves on.

mod apps;
mod common;
mod host_firewall;
mod http_client;
mod logged_server;
mod shared_ip;

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use apps::{curl_get, http_url, write_random_file, Scratch};
use common::{command_in, http_server_argv, lkl_env, lkl_v4, venet, wait_until};
use host_firewall::{iptables_lklh_lines, lklhijack_tables};
use http_client::fetch_from_peer;
use lkl_rig::{Topology, VenetTopology};
use logged_server::LoggedServer;
use shared_ip::{host_tcp_out_rsts, shared_ip_env};

const PORT: u16 = 8000;

/// Programs as the tests leave them: nft missing, or present but failing.
enum Sbin {
    /// /usr/sbin/nft (also /sbin/nft: /sbin is a link) and the legacy iptables are /dev/null,
    /// which is no program: only `iptables` is left.
    OnlyIptables,
    /// nft fails.
    NftFails,
    /// nft and iptables-nft (the `iptables` here) fail.
    NftAndIptablesNftFail,
    /// nft, iptables-nft and iptables-legacy all fail.
    NothingWorks,
}

/// A program that fails as nft and iptables-nft do where the kernel has no nf_tables.
const FAILING: &str =
    "#!/bin/sh\necho \"$0: Could not process rule: Operation not supported\" >&2\nexit 1\n";

/// A shell prelude for `sbin`, run in a private mount namespace so that the bind mounts are
/// the server's alone; `failing` is a copy of [`FAILING`]. Binding over a link binds over its
/// target: over iptables-nft, that is xtables-nft-multi, so ip6tables-nft and `iptables`
/// (which links to it here) fail too.
fn prelude(sbin: Sbin, failing: &str) -> String {
    let (dev_null, fail): (&[&str], &[&str]) = match sbin {
        Sbin::OnlyIptables => (&["nft", "iptables-legacy", "ip6tables-legacy"], &[]),
        Sbin::NftFails => (&[], &["nft"]),
        Sbin::NftAndIptablesNftFail => (&[], &["nft", "iptables-nft"]),
        Sbin::NothingWorks => (&[], &["nft", "iptables-nft", "iptables-legacy"]),
    };
    let bind = |from: &str, to: &str| format!("mount --bind {from} /usr/sbin/{to} && ");
    dev_null
        .iter()
        .map(|t| bind("/dev/null", t))
        .chain(fail.iter().map(|t| bind(failing, t)))
        .collect::<String>()
        + "exec \"$@\""
}

/// python's http.server serving `www` on `bind` with `sbin`, started with `env` in a private
/// mount namespace (`exec` keeps the pid); waits until the peer gets in.
fn serve(
    topo: &VenetTopology,
    www: &Scratch,
    sbin: Sbin,
    bind: SocketAddr,
    env: &[(String, String)],
) -> LoggedServer {
    let failing = www.join("failing");
    std::fs::write(&failing, FAILING).unwrap();
    std::fs::set_permissions(
        &failing,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let prelude = prelude(sbin, &failing.display().to_string());
    let (ip, port) = (bind.ip().to_string(), bind.port().to_string());
    let python = http_server_argv(&port, &ip, &www.path.display().to_string());
    let mut server = LoggedServer::spawn(
        command_in(
            topo.container_ns(),
            "unshare",
            &["--mount", "sh", "-c", &prelude, "sh"]
                .into_iter()
                .chain(python.iter().map(String::as_str))
                .collect::<Vec<_>>(),
            env,
        ),
        "python3 -m http.server with nft missing or failing",
    );
    server
        .server
        .wait_listening(topo.peer_ns(), bind, Duration::from_secs(20));
    server
}

/// [`serve`] on the shared address.
fn serve_shared(topo: &VenetTopology, www: &Scratch, sbin: Sbin) -> LoggedServer {
    let addr = SocketAddr::new(topo.addrs().host_v4.into(), PORT);
    serve(topo, www, sbin, addr, &shared_ip_env(topo))
}

/// The instance's chain, listed by `tool`, exists and drops TCP to PORT, nothing went to
/// nftables tables of ours, and the peer fetches `blob` 20 times without a host RST.
fn check_running(topo: &VenetTopology, server: &LoggedServer, tool: &str, blob: &[u8]) {
    let ns = topo.container_ns();
    let chain = format!("LKLH-{}-{}", topo.container_if(), server.pid());
    let all = iptables_lklh_lines(ns);
    let lines: Vec<&str> = all
        .iter()
        .filter_map(|l| l.strip_prefix(tool)?.strip_prefix(": "))
        .collect();
    assert!(
        lines.iter().any(|l| l.contains(&format!("-N {chain}"))),
        "{tool} lists no chain {chain}: {all:#?}\n{}",
        server.stderr()
    );
    assert!(
        lines.iter().any(|l| l.contains(&format!(
            "-A PREROUTING -i {} -j {chain}",
            topo.container_if()
        ))),
        "PREROUTING does not jump to {chain} on the interface: {all:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains(&format!("-A {chain} "))
            && l.contains(&format!("--dport {PORT}"))
            && l.contains("-j DROP")),
        "{chain} drops nothing to port {PORT}: {all:#?}"
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

/// How the server ends: SIGTERM (the exit handler removes the rules) or SIGKILL (the watchdog
/// does).
#[derive(Clone, Copy)]
enum Ending {
    Sigterm,
    Sigkill,
}

/// Serves on the shared address with `sbin`'s tools, checks that `tool` holds the rules and
/// the peer gets in, ends the server as `ending` says, and checks the chain is gone.
fn serve_with_then_end(sbin: Sbin, tool: &str, ending: Ending) {
    let topo = venet();
    let (dir, blob) = www();
    let mut server = serve_shared(&topo, &dir, sbin);
    check_running(&topo, &server, tool, &blob);
    match ending {
        Ending::Sigterm => {
            let status = server.server.terminate(Duration::from_secs(10));
            assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}");
            assert_chain_gone(&topo, "SIGTERM");
        }
        Ending::Sigkill => {
            server.server.child.kill().unwrap();
            server.server.wait_for_exit(Duration::from_secs(10));
            assert_chain_gone(&topo, "SIGKILL");
        }
    }
}

#[test]
fn without_nft_iptables_rules_let_the_peer_in_and_go_at_sigterm() {
    serve_with_then_end(Sbin::OnlyIptables, "iptables", Ending::Sigterm);
}

#[test]
fn without_nft_the_watchdog_removes_the_iptables_rules_after_sigkill() {
    serve_with_then_end(Sbin::OnlyIptables, "iptables", Ending::Sigkill);
}

#[test]
fn a_failing_nft_gives_way_to_iptables_legacy_whose_rules_go_at_sigterm() {
    serve_with_then_end(Sbin::NftFails, "iptables-legacy", Ending::Sigterm);
}

#[test]
fn with_nft_and_iptables_nft_failing_the_watchdog_removes_the_legacy_rules_after_sigkill() {
    serve_with_then_end(
        Sbin::NftAndIptablesNftFail,
        "iptables-legacy",
        Ending::Sigkill,
    );
}

#[test]
fn with_no_tool_working_one_warning_says_what_to_do_and_the_program_serves() {
    let topo = venet();
    let (dir, blob) = www();
    // LKL on an address of its own: it is reachable without the rules.
    let addr = lkl_v4(&topo, PORT);
    let mut server = serve(&topo, &dir, Sbin::NothingWorks, addr, &lkl_env(&topo));
    let body = curl_get(topo.peer_ns(), &http_url(addr, "/blob.bin"), 10);
    assert!(
        body == blob,
        "the peer got {} bytes, not the blob",
        body.len()
    );
    assert!(server.is_running(), "the server exited");
    let ns = topo.container_ns();
    assert!(
        lklhijack_tables(ns).is_empty() && iptables_lklh_lines(ns).is_empty(),
        "rules without a working tool? {:?} {:?}",
        lklhijack_tables(ns),
        iptables_lklh_lines(ns)
    );
    server.server.terminate(Duration::from_secs(10));
    let stderr = server.stderr();
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("lkl-hijack:"))
        .collect();
    assert_eq!(ours.len(), 1, "not one line from lkl-hijack:\n{stderr}");
    for says in [
        "no firewall tool works",
        "the host will reset LKL's connections",
        "install nftables or iptables",
        "enable netfilter for the container",
        "LKL_HIJACK_FIREWALL=off",
    ] {
        assert!(
            ours[0].contains(says),
            "the warning lacks {says:?}: {}",
            ours[0]
        );
    }
}
