//! The veth topology: container and peer joined by a veth pair.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{packet_socket_sees, ping, tcp_transfer, MIB};
use lkl_rig::{Topology, VethTopology};

const LIMIT: Duration = Duration::from_secs(25);

#[test]
fn peer_and_container_ping_each_other_over_veth_ipv4_and_ipv6() {
    let topo = VethTopology::new().unwrap();
    let a = topo.addrs();
    ping(topo.peer_ns(), a.host_v4.into(), 3).unwrap();
    ping(topo.peer_ns(), a.host_v6.into(), 3).unwrap();
    ping(topo.container_ns(), a.peer_v4.into(), 2).unwrap();
    ping(topo.container_ns(), a.peer_v6.into(), 2).unwrap();
}

#[test]
fn peer_sends_lkl_addresses_to_the_container_veth_mac() {
    let topo = VethTopology::new().unwrap();
    let a = topo.addrs();
    let mac = topo.container_mac().map(|b| format!("{b:02x}")).join(":");
    let link = topo
        .container_ns()
        .run("ip", &["link", "show", topo.container_if()])
        .unwrap();
    assert!(link.contains(&format!("link/ether {mac}")), "{link}");
    let neigh = topo
        .peer_ns()
        .run("ip", &["neigh", "show", "dev", topo.peer_if()])
        .unwrap();
    for addr in [a.lkl_v4.to_string(), a.lkl_v6.to_string()] {
        assert!(
            neigh.contains(&format!("{addr} lladdr {mac} PERMANENT")),
            "{addr} in:\n{neigh}"
        );
    }
    let peer_mac = topo.peer_mac().map(|b| format!("{b:02x}")).join(":");
    let link = topo
        .peer_ns()
        .run("ip", &["link", "show", topo.peer_if()])
        .unwrap();
    assert!(link.contains(&format!("link/ether {peer_mac}")), "{link}");
}

#[test]
fn packets_for_the_lkl_address_reach_a_packet_socket_on_veth0_and_nothing_answers() {
    let topo = VethTopology::new().unwrap();
    let a = topo.addrs();
    for addr in [IpAddr::from(a.lkl_v4), IpAddr::from(a.lkl_v6)] {
        let seen = packet_socket_sees(topo.container_ns(), topo.container_if(), addr, || {
            let err = ping(topo.peer_ns(), addr, 2).unwrap_err().to_string();
            assert!(err.contains("100% packet loss"), "{err}");
        })
        .unwrap();
        assert_eq!(seen, 2, "echo requests to {addr} seen on veth0");
    }
}

#[test]
fn tcp_64mib_both_directions_over_veth_ipv4() {
    let topo = VethTopology::new().unwrap();
    let (c, p, a) = (topo.container_ns(), topo.peer_ns(), topo.addrs());
    let down = tcp_transfer(c, a.host_v4.into(), p, 64 * MIB, LIMIT).unwrap();
    let up = tcp_transfer(p, a.peer_v4.into(), c, 64 * MIB, LIMIT).unwrap();
    eprintln!(
        "veth ipv4: peer->container {:.0} Mbit/s, container->peer {:.0} Mbit/s",
        down.mbit_per_s(),
        up.mbit_per_s()
    );
}

#[test]
fn tcp_64mib_over_veth_ipv6() {
    let topo = VethTopology::new().unwrap();
    let a = topo.addrs();
    let t = tcp_transfer(
        topo.container_ns(),
        a.host_v6.into(),
        topo.peer_ns(),
        64 * MIB,
        LIMIT,
    )
    .unwrap();
    eprintln!("veth ipv6: peer->container {:.0} Mbit/s", t.mbit_per_s());
}
