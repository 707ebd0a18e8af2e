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
    let a = lkl.addrs.clone();
    let bytes = 64 * net::MIB;
    for (what, secs) in [
        (
            "LKL server v4 -> peer",
            net::lkl_server_sends(k, &topo, a.lkl_v4.into(), bytes),
        ),
        (
            "LKL server v6 -> peer",
            net::lkl_server_sends(k, &topo, a.lkl_v6.into(), bytes),
        ),
        (
            "peer server v4 -> LKL client",
            net::lkl_client_receives(k, &topo, a.peer_v4.into(), bytes),
        ),
        (
            "peer server v6 -> LKL client",
            net::lkl_client_receives(k, &topo, a.peer_v6.into(), bytes),
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
