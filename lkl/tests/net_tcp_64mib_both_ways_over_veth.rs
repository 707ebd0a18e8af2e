//! 64 MiB over TCP between LKL (Rust API) and the peer's host kernel on the veth topology (an
//! Ethernet host interface), IPv4 and IPv6, both ways; every byte checked. The next hop's MAC
//! comes from the container's ARP table before LKL has received anything.

mod common;
mod net;

use lkl_rig::{Topology, VethTopology};

#[test]
fn tcp_64mib_both_ways_over_veth() {
    let k = common::kernel();
    let topo = VethTopology::new().unwrap();
    let a = topo.addrs().clone();
    let lkl = net::attach_veth(k, &topo);
    let bytes = 64 * net::MIB;
    for (what, secs) in [
        (
            "peer server v4 -> LKL client",
            net::lkl_client_receives(k, &topo, a.peer_v4.into(), bytes),
        ),
        (
            "peer server v6 -> LKL client",
            net::lkl_client_receives(k, &topo, a.peer_v6.into(), bytes),
        ),
        (
            "LKL server v4 -> peer",
            net::lkl_server_sends(k, &topo, a.lkl_v4.into(), bytes),
        ),
        (
            "LKL server v6 -> peer",
            net::lkl_server_sends(k, &topo, a.lkl_v6.into(), bytes),
        ),
    ] {
        eprintln!(
            "{what}: {bytes} bytes verified, {:.0} Mbit/s",
            bytes as f64 * 8.0 / secs / 1e6
        );
    }
    eprintln!("{:?}", lkl.backend.stats());
    lkl.backend.stop_rx();
}
