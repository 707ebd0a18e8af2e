//! UDP echo between LKL (Rust API) and the peer's host kernel on the venet topology, LKL as
//! server and as client, IPv4 and IPv6; every payload checked.

mod common;
mod net;

use lkl_rig::VenetTopology;

#[test]
fn udp_echo_both_ways_over_venet() {
    let k = common::kernel();
    let topo = VenetTopology::builder().build().unwrap();
    let lkl = net::attach(k, &topo, None);
    net::udp_echo_both_ways(k, &topo, &lkl);
    lkl.backend.stop_rx();
}
