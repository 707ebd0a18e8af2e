//! The peer pings LKL's address over the veth topology (an Ethernet host interface: the peer
//! sends LKL's address to the container's MAC); the container's host stack does not hold that
//! address, so every reply is LKL's.

mod common;
mod net;

use lkl_rig::VethTopology;

#[test]
fn peer_pings_lkl_over_veth() {
    let k = common::kernel();
    let topo = VethTopology::new().unwrap();
    let lkl = net::attach_veth(k, &topo);
    net::peer_pings_lkl(&topo, &lkl);
    lkl.backend.stop_rx();
}
