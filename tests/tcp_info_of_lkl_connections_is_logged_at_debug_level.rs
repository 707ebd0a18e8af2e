//! The host's `ss` cannot see LKL's connections, so the library reports them itself: with
//! `RUST_LOG=lkl_hijack::tcpinfo=debug`, a line when a connection is accepted and one when the
//! program closes it, from TCP_INFO, naming the congestion control and the process.

mod common;
mod echo;

use std::time::Duration;

use common::lkl_v4;
use echo::{echo_from_peer, start_echo};
use lkl_rig::{Topology, VenetTopology};

#[test]
fn accepted_and_closed_connections_are_logged_with_bbr_and_their_byte_counts() {
    let topo = VenetTopology::builder().build().unwrap();
    let addr = lkl_v4(&topo, 7);
    let mut server = start_echo(&topo, addr, &[("RUST_LOG", "lkl_hijack::tcpinfo=debug")]);
    let sent = 1u64 << 20;
    echo_from_peer(&topo, addr, sent, 11).expect("echo");
    // The server closes its side once it has read the client's EOF.
    std::thread::sleep(Duration::from_millis(300));
    let pid = server.child.id();
    server.terminate(Duration::from_secs(10));
    let out = server.output();
    let peer = topo.addrs().peer_v4.to_string();
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(&peer)).collect();
    eprintln!("{}", lines.join("\n"));
    // The wait_listening probe is a connection too; the echo is the one that moved data.
    let accepted = lines
        .iter()
        .filter(|l| l.contains(&format!(" -> {addr}: bbr, rtt ")) && l.contains("accepted "))
        .count();
    assert!(accepted >= 1, "no accepted line:\n{out}");
    // The kernel's count includes the FIN's sequence number.
    let received = sent + 1;
    let closing = lines
        .iter()
        .find(|l| l.contains("closing ") && l.contains(&format!("received {received} B")))
        .unwrap_or_else(|| panic!("no closing line with {received} bytes received:\n{out}"));
    assert!(closing.contains(": bbr, "), "{closing}");
    // Each line names the process (a pre-fork server's workers share the stderr).
    let me = format!(" lkl-hijack {pid}] ");
    assert!(
        lines.iter().all(|l| l.contains(&me)),
        "lines that do not name process {pid}:\n{}",
        lines.join("\n")
    );
    let field = |name: &str| -> u64 {
        closing
            .split(&format!("{name} "))
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {closing}"))
    };
    // At the program's close part of the echo may still wait in the socket's buffer.
    assert!((1..=sent).contains(&field("sent")), "{closing}");
}
