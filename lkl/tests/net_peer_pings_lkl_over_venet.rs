//! The peer pings LKL's address over the venet topology; the container's host stack does not
//! hold that address, so every reply is LKL's.

mod common;
mod net;

use lkl_rig::VenetTopology;

#[test]
fn peer_pings_lkl_over_venet() {
    let k = common::kernel();
    let topo = VenetTopology::builder().build().unwrap();
    let lkl = net::attach(k, &topo, None);
    net::peer_pings_lkl(&topo, &lkl);
    lkl.backend.stop_rx();
}
