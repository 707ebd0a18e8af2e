//! UDP echo between LKL (Rust API) and the peer's host kernel on the veth topology (an
//! Ethernet host interface), LKL as server and as client, IPv4 and IPv6; every payload checked.

mod common;
mod net;

use lkl_rig::VethTopology;

#[test]
fn udp_echo_both_ways_over_veth() {
    let k = common::kernel();
    let topo = VethTopology::new().unwrap();
    let lkl = net::attach_veth(k, &topo);
    net::udp_echo_both_ways(k, &topo, &lkl);
    lkl.backend.stop_rx();
}
