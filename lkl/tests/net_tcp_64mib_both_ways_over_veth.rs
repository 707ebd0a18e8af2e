//! 64 MiB over TCP between LKL (Rust API) and the peer's host kernel on the veth topology (an
//! Ethernet host interface), IPv4 and IPv6, both ways; every byte checked. The next hop's MAC
//! comes from the container's ARP table before LKL has received anything.

mod common;
mod net;

use lkl_rig::VethTopology;

#[test]
fn tcp_64mib_both_ways_over_veth() {
    let k = common::kernel();
    let topo = VethTopology::new().unwrap();
    let lkl = net::attach_veth(k, &topo);
    net::tcp_64mib_both_ways(k, &topo, &lkl);
    lkl.backend.stop_rx();
}
