//! Offloads off (the backend `LKL_HIJACK_OFFLOAD=0` gives) on an Ethernet host interface: LKL
//! segments TCP and finishes checksums itself, handing a GSO packet's segments to the host a
//! batch at a time, while the peer's TSO packets still arrive coalesced, too big for a ring
//! frame (through the socket's queue) and with their checksum left to offload. 64 MiB over
//! TCP both ways, IPv4 and IPv6; every byte checked.

mod common;
mod net;

use lkl_rig::VethTopology;

#[test]
fn tcp_64mib_both_ways_over_veth_without_offloads() {
    let k = common::kernel();
    let topo = VethTopology::new().unwrap();
    let opts = net::Options {
        offload: false,
        ..Default::default()
    };
    let lkl = net::attach_veth_with(k, &topo, opts);
    net::tcp_64mib_both_ways(k, &topo, &lkl);
    let stats = lkl.backend.stats();
    assert!(stats.rx_copied > 0, "no coalesced packet came: {stats:?}");
    lkl.backend.stop_rx();
}
