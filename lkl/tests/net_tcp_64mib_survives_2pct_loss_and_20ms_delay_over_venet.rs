//! With 2 % random loss and 20 ms one-way delay added by the forwarder, an LKL server (BBR,
//! LKL's default) still delivers 64 MiB intact to a host-kernel client in the peer namespace.

mod common;
mod net;

use lkl_rig::{Topology, VenetTopology};

#[test]
fn tcp_64mib_survives_2pct_loss_and_20ms_delay_over_venet() {
    let k = common::kernel();
    let topo = VenetTopology::builder()
        .delay_ms(20.0)
        .loss_pct(2.0)
        .seed(7)
        .build()
        .unwrap();
    let lkl = net::attach(k, &topo, None);
    let bytes = 64 * net::MIB;
    let secs = net::lkl_server_sends(k, &topo, lkl.addrs.lkl_v4.into(), bytes);
    let stats = topo.forwarder_stats().unwrap();
    eprintln!(
        "LKL server v4 -> peer, 2 % loss, 20 ms delay: {bytes} bytes verified in {secs:.1} s, \
         {:.0} Mbit/s",
        bytes as f64 * 8.0 / secs / 1e6
    );
    eprintln!("forwarder: {stats:?}");
    // For comparison, the container's host kernel (BBR) sending the same over the same link.
    let host = net::rig::tcp_transfer(
        topo.peer_ns(),
        lkl.addrs.peer_v4.into(),
        topo.container_ns(),
        bytes,
        std::time::Duration::from_secs(120),
    )
    .unwrap();
    eprintln!(
        "host kernel v4 -> peer over the same link: {} bytes verified, {:.0} Mbit/s",
        host.bytes,
        host.mbit_per_s()
    );
    eprintln!("{:?}", lkl.backend.stats());
    // The impairment was really there: about 2 % of LKL's packets were dropped.
    let lost = stats.a2b.lost as f64 / stats.a2b.received as f64;
    assert!((0.01..0.03).contains(&lost), "a2b loss {lost}");
    lkl.backend.stop_rx();
}
