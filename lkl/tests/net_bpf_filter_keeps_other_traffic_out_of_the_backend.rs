//! The backend's socket filter: 100 000 UDP datagrams from the peer to the container's own
//! host-stack address cross venet0 while the peer pings LKL; the backend receives exactly the
//! pings, and LKL keeps answering them.

mod common;
mod net;

use lkl_rig::{Topology, VenetTopology};

const FLOOD: u32 = 100_000;
const PINGS: u32 = 10;

#[test]
fn bpf_filter_keeps_other_traffic_out_of_the_backend() {
    let k = common::kernel();
    let topo = VenetTopology::builder().build().unwrap();
    let lkl = net::attach(k, &topo, None);
    let a = topo.addrs().clone();
    let before = lkl.backend.stats();
    let forwarded_before = topo.forwarder_stats().unwrap().b2a.forwarded;
    let (delivered, ping) = std::thread::scope(|s| {
        let pinger = s.spawn(|| net::rig::ping(topo.peer_ns(), a.lkl_v4.into(), PINGS));
        let delivered =
            net::rig::udp_numbered(topo.peer_ns(), topo.container_ns(), a.host_v4.into(), FLOOD)
                .unwrap();
        (delivered.len(), pinger.join().unwrap())
    });
    let after = lkl.backend.stats();
    let forwarded = topo.forwarder_stats().unwrap().b2a.forwarded - forwarded_before;
    let ping = ping.unwrap_or_else(|e| panic!("LKL stopped answering during the flood: {e}"));
    eprintln!(
        "flood: {FLOOD} datagrams sent to {}, {forwarded} packets into venet0, {delivered} \
         received by the host stack; ping {} during it: avg {} ms; backend rx {} -> {}",
        a.host_v4,
        a.lkl_v4,
        net::rig::ping_avg_ms(&ping),
        before.rx_packets,
        after.rx_packets
    );
    assert!(
        delivered as f64 >= 0.99 * f64::from(FLOOD),
        "the flood did not cross venet0: {delivered} of {FLOOD} delivered"
    );
    assert_eq!(
        after.rx_packets - before.rx_packets,
        u64::from(PINGS),
        "the backend received more than the pings"
    );
    lkl.backend.stop_rx();
}
