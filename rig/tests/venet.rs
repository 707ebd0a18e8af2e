//! The venet topology: a tun `venet0` in the container, the forwarder as the host node.

mod common;

use std::net::IpAddr;
use std::thread;
use std::time::Duration;

use common::{packet_socket_sees, ping, tcp_transfer, MIB};
use lkl_rig::{Topology, VenetTopology};

const LIMIT: Duration = Duration::from_secs(25);

#[test]
fn venet0_is_a_link_void_l3_noarp_pointopoint_tun_without_a_qdisc_with_the_host_address() {
    let topo = VenetTopology::builder().build().unwrap();
    let c = topo.container_ns();
    let link = c.run("ip", &["-d", "link", "show", "venet0"]).unwrap();
    for want in [
        "POINTOPOINT",
        "NOARP",
        ",UP",
        "mtu 1500",
        "qdisc noqueue",
        "link/void",
        "tun type tun pi off vnet_hdr off",
    ] {
        assert!(link.contains(want), "{want:?} missing in:\n{link}");
    }
    let a = topo.addrs();
    let addrs = c.run("ip", &["addr", "show", "venet0"]).unwrap();
    assert!(addrs.contains(&format!("inet {}/32", a.host_v4)), "{addrs}");
    assert!(
        addrs.contains(&format!("inet6 {}/128", a.host_v6)),
        "{addrs}"
    );
    assert!(
        !addrs.contains("fe80"),
        "venet0 must have no link-local address:\n{addrs}"
    );
    assert!(
        !addrs.contains(&a.lkl_v4.to_string()),
        "the LKL address belongs to no host stack"
    );
    assert!(c
        .run("ip", &["-4", "route"])
        .unwrap()
        .contains("default dev venet0"));
    assert!(c
        .run("ip", &["-6", "route"])
        .unwrap()
        .contains("default dev venet0"));
    let peer_routes = topo.peer_ns().run("ip", &["-6", "route"]).unwrap();
    assert!(
        peer_routes.contains(&format!("{} dev tun0", a.lkl_v6)),
        "{peer_routes}"
    );
}

#[test]
fn peer_and_container_ping_each_other_over_venet_ipv4_and_ipv6() {
    let topo = VenetTopology::builder().build().unwrap();
    let a = topo.addrs();
    ping(topo.peer_ns(), a.host_v4.into(), 3).unwrap();
    ping(topo.peer_ns(), a.host_v6.into(), 3).unwrap();
    ping(topo.container_ns(), a.peer_v4.into(), 2).unwrap();
    ping(topo.container_ns(), a.peer_v6.into(), 2).unwrap();
    let stats = topo.forwarder_stats().unwrap();
    assert!(
        stats.b2a.forwarded >= 6 && stats.a2b.forwarded >= 6,
        "{stats:?}"
    );
}

#[test]
fn idle_venet_carries_no_packets() {
    // No ARP, router solicitation, MLD or DAD: LKL's traffic will be the only traffic.
    let topo = VenetTopology::builder().build().unwrap();
    thread::sleep(Duration::from_millis(1500));
    let stats = topo.forwarder_stats().unwrap();
    assert_eq!(
        (stats.a2b.received, stats.b2a.received),
        (0, 0),
        "{stats:?}"
    );
}

#[test]
fn packets_for_the_lkl_address_reach_a_packet_socket_on_venet0_and_nothing_answers() {
    let topo = VenetTopology::builder().build().unwrap();
    let a = topo.addrs();
    for addr in [IpAddr::from(a.lkl_v4), IpAddr::from(a.lkl_v6)] {
        let seen = packet_socket_sees(topo.container_ns(), "venet0", addr, || {
            let err = ping(topo.peer_ns(), addr, 2).unwrap_err().to_string();
            assert!(err.contains("100% packet loss"), "{err}");
        })
        .unwrap();
        assert_eq!(seen, 2, "echo requests to {addr} seen on venet0");
    }
    let stats = topo.forwarder_stats().unwrap();
    assert_eq!(stats.b2a.forwarded, 4, "{stats:?}");
    assert_eq!(
        stats.a2b.received, 0,
        "the container's host stack answered: {stats:?}"
    );
}

#[test]
fn tcp_64mib_both_directions_over_clean_venet_ipv4() {
    let topo = VenetTopology::builder().build().unwrap();
    let (c, p, a) = (topo.container_ns(), topo.peer_ns(), topo.addrs());
    let down = tcp_transfer(c, a.host_v4.into(), p, 64 * MIB, LIMIT).unwrap();
    let up = tcp_transfer(p, a.peer_v4.into(), c, 64 * MIB, LIMIT).unwrap();
    eprintln!(
        "venet ipv4: peer->container {:.0} Mbit/s, container->peer {:.0} Mbit/s",
        down.mbit_per_s(),
        up.mbit_per_s()
    );
    let stats = topo.forwarder_stats().unwrap();
    assert!(
        stats.a2b.bytes > 64 * MIB && stats.b2a.bytes > 64 * MIB,
        "{stats:?}"
    );
}

#[test]
fn tcp_64mib_over_clean_venet_ipv6() {
    let topo = VenetTopology::builder().build().unwrap();
    let a = topo.addrs();
    let t = tcp_transfer(
        topo.container_ns(),
        a.host_v6.into(),
        topo.peer_ns(),
        64 * MIB,
        LIMIT,
    )
    .unwrap();
    eprintln!("venet ipv6: peer->container {:.0} Mbit/s", t.mbit_per_s());
}

#[test]
fn tcp_64mib_survives_2pct_loss_and_20ms_delay() {
    let topo = VenetTopology::builder()
        .loss_pct(2.0)
        .delay_ms(20.0)
        .seed(3)
        .build()
        .unwrap();
    let a = topo.addrs();
    let t = tcp_transfer(
        topo.container_ns(),
        a.host_v4.into(),
        topo.peer_ns(),
        64 * MIB,
        LIMIT,
    )
    .unwrap();
    let stats = topo.forwarder_stats().unwrap();
    eprintln!(
        "venet 2% loss 20 ms: {:.0} Mbit/s, {stats:?}",
        t.mbit_per_s()
    );
    let loss = stats.b2a.lost as f64 / stats.b2a.received as f64;
    assert!(
        (0.01..0.03).contains(&loss),
        "data direction loss {loss}: {stats:?}"
    );
    assert!(stats.a2b.lost > 0, "acks are lost too: {stats:?}");
}
