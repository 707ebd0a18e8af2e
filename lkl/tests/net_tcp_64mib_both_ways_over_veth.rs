//! 64 MiB over TCP between LKL (Rust API) and the peer's host kernel on the veth topology (an
//! Ethernet host interface), IPv4 and IPv6, both ways; every byte checked. The next hop's MAC
//! comes from the container's ARP table before LKL has received anything. The peer's TSO
//! packets reach the backend whole, through the socket's queue beside the ring.

mod common;
mod net;

use lkl_rig::VethTopology;

#[test]
fn tcp_64mib_both_ways_over_veth() {
    let k = common::kernel();
    let topo = VethTopology::new().unwrap();
    let lkl = net::attach_veth(k, &topo);
    net::tcp_64mib_both_ways(k, &topo, &lkl);
    // The peer's TSO packets arrive whole, too big for a ring frame.
    let stats = lkl.backend.stats();
    assert!(stats.rx_copied > 0, "no coalesced packet came: {stats:?}");
    lkl.backend.stop_rx();
}
