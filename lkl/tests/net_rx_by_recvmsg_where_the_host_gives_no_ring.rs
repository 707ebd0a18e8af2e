//! Where the host gives no receive ring, the backend takes each packet with recvmsg: 64 MiB
//! over TCP both ways on the venet topology, IPv4 and IPv6, every byte checked. (The other
//! net tests receive through the ring, which `net::attach` checks.)

mod common;
mod net;

use lkl_rig::VenetTopology;

#[test]
fn tcp_64mib_both_ways_over_venet_without_a_ring() {
    let k = common::kernel();
    let topo = VenetTopology::builder().build().unwrap();
    let opts = net::Options {
        rx_ring: false,
        ..Default::default()
    };
    let lkl = net::attach_with(k, &topo, None, opts);
    net::tcp_64mib_both_ways(k, &topo, &lkl);
    lkl.backend.stop_rx();
}
