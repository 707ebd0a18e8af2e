//! Interrupt moderation on the venet topology, with the library's default (30 µs): while
//! request/response traffic flows (UDP echoes, one datagram in flight) no irq is held back;
//! while 64 MiB stream from the peer to LKL, irqs are held back and each brings more packets.

mod common;
mod net;

use lkl_rig::{Topology, VenetTopology};

#[test]
fn rx_interrupts_are_held_back_for_streams_not_for_requests() {
    let k = common::kernel();
    let topo = VenetTopology::builder().build().unwrap();
    let lkl = net::attach(k, &topo, None);
    let mtu = lkl.backend.mtu();

    let start = lkl.backend.stats();
    net::udp_echo_lkl_server(k, &topo, lkl.addrs.lkl_v4.into(), mtu);
    let echoed = lkl.backend.stats();
    eprintln!("after the echoes: {echoed:?}");
    assert!(
        echoed.rx_irqs - start.rx_irqs >= net::UDP_ECHOES as u64 / 2,
        "the echoes' datagrams should arrive an irq or so each"
    );
    assert_eq!(
        echoed.rx_coalesced, start.rx_coalesced,
        "an irq of request/response traffic was held back"
    );

    net::lkl_client_receives(k, &topo, topo.addrs().peer_v4.into(), 64 << 20);
    let streamed = lkl.backend.stats();
    eprintln!("after the stream: {streamed:?}");
    let irqs = streamed.rx_irqs - echoed.rx_irqs;
    let held = streamed.rx_coalesced - echoed.rx_coalesced;
    let packets = streamed.rx_packets - echoed.rx_packets;
    eprintln!(
        "stream: {packets} packets, {irqs} irqs ({:.1} packets each), {held} held back",
        packets as f64 / irqs as f64
    );
    assert!(held > 0, "no irq of the stream was held back");
    lkl.backend.stop_rx();
}
