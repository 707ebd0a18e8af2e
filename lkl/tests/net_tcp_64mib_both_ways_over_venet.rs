//! 64 MiB over TCP between LKL (Rust API) and the peer's host kernel on the venet topology,
//! IPv4 and IPv6, LKL as server (sending) and as client (receiving); every byte checked.

mod common;
mod net;

use lkl_rig::VenetTopology;

#[test]
fn tcp_64mib_both_ways_over_venet() {
    let k = common::kernel();
    let topo = VenetTopology::builder().build().unwrap();
    let lkl = net::attach(k, &topo, None);
    net::tcp_64mib_both_ways(k, &topo, &lkl);
    lkl.backend.stop_rx();
}
