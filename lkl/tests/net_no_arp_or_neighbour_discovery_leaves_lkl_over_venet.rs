//! On the venet topology LKL's interface is NOARP and point-to-point: from before the device
//! is registered until two seconds after it is configured (IPv4 and IPv6), nothing but IP
//! leaves the container's venet0, and no router/neighbour solicitation or advertisement,
//! redirect or MLD message among it. A ping each way proves the capture sees LKL's packets.

mod common;
mod net;

use std::time::{Duration, Instant};

use lkl_rig::{Captured, PacketSocket, Topology, VenetTopology};

/// ICMPv6 types of MLD (130-132, 143) and neighbour discovery (133-137).
const MLD_AND_ND: [u8; 9] = [130, 131, 132, 133, 134, 135, 136, 137, 143];

#[test]
fn no_arp_or_neighbour_discovery_leaves_lkl_over_venet() {
    let k = common::kernel();
    let topo = VenetTopology::builder().build().unwrap();
    let capture = PacketSocket::open_in(topo.container_ns(), topo.container_if()).unwrap();
    let lkl = net::attach(k, &topo, None);
    let configured = Instant::now();
    let a = &lkl.addrs;
    net::rig::ping(topo.peer_ns(), a.lkl_v4.into(), 1).unwrap();
    net::rig::ping(topo.peer_ns(), a.lkl_v6.into(), 1).unwrap();
    std::thread::sleep(Duration::from_secs(2).saturating_sub(configured.elapsed()));
    let sent: Vec<_> = capture
        .drain()
        .unwrap_or_else(|e| panic!("capture: {e}"))
        .into_iter()
        .filter(|p| p.outgoing)
        .collect();

    let from_lkl =
        |p: &&Captured| p.source() == Some(a.lkl_v4.into()) || p.source() == Some(a.lkl_v6.into());
    let v4_replies = sent
        .iter()
        .filter(from_lkl)
        .filter(|p| p.icmpv4_type() == Some(0))
        .count();
    let v6_replies = sent
        .iter()
        .filter(from_lkl)
        .filter(|p| p.icmpv6_type() == Some(129))
        .count();
    eprintln!(
        "{} packets left venet0 in {:.1} s, {} from LKL; echo replies v4 {v4_replies}, v6 \
         {v6_replies}",
        sent.len(),
        configured.elapsed().as_secs_f64(),
        sent.iter().filter(from_lkl).count()
    );
    assert_eq!(
        (v4_replies, v6_replies),
        (1, 1),
        "the capture missed LKL's replies"
    );
    for p in &sent {
        assert!(
            p.source().is_some(),
            "non-IP packet left venet0: EtherType {:#06x}, {} bytes",
            p.protocol,
            p.data.len()
        );
        if let Some(t) = p.icmpv6_type() {
            assert!(
                !MLD_AND_ND.contains(&t),
                "ICMPv6 type {t} from {:?} left venet0",
                p.source()
            );
        }
    }
    lkl.backend.stop_rx();
}
