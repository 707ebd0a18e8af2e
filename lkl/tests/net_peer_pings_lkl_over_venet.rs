//! The peer pings LKL's address over the venet topology; the container's host stack does not
//! hold that address, so every reply is LKL's.

mod common;
mod net;

use lkl_rig::{Topology, VenetTopology};

#[test]
fn peer_pings_lkl_over_venet() {
    let k = common::kernel();
    let topo = VenetTopology::builder().build().unwrap();
    let lkl = net::attach(k, &topo, None);
    let a = &lkl.addrs;
    let host_addrs = topo.container_ns().run("ip", &["addr"]).unwrap();
    assert!(!host_addrs.contains(&a.lkl_v4.to_string()), "{host_addrs}");

    let out = net::rig::ping(topo.peer_ns(), a.lkl_v4.into(), 3).unwrap();
    eprintln!("ping {}: avg {} ms", a.lkl_v4, net::rig::ping_avg_ms(&out));
    let out6 = net::rig::ping(topo.peer_ns(), a.lkl_v6.into(), 3).unwrap();
    eprintln!("ping {}: avg {} ms", a.lkl_v6, net::rig::ping_avg_ms(&out6));
    let stats = lkl.backend.stats();
    eprintln!("{stats:?}");
    assert!(stats.rx_packets >= 6 && stats.tx_packets >= 6, "{stats:?}");
    lkl.backend.stop_rx();
}
