//! The packet socket as OpenVZ hosts need it: on venet0 (link/void) a SOCK_DGRAM socket
//! without offloads, the only type venet sends; and on a host kernel without
//! PACKET_IGNORE_OUTGOING (before 4.20, run here under the rig's 3.10 kernel profile) a socket
//! filter that keeps the interface's outgoing packets from LKL, which the backend lists among
//! its fallbacks. No kernel is needed: the backend's own receive path is read directly.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lkl::host_features::Fallback;
use lkl::netdev::{Delivery, NetBackend};
use lkl::packet::{PacketBackend, PacketConfig};
use lkl_rig::{KernelProfile, Topology, VenetTopology};

fn config(topo: &dyn Topology) -> PacketConfig {
    let a = topo.addrs();
    PacketConfig {
        ifname: topo.container_if().to_string(),
        ipv4: Some(a.lkl_v4),
        ipv6: Some(a.lkl_v6),
        next_hop: None,
        admit: Default::default(),
        split: None,
        offload: true,
        rx_ring: true,
        rx_coalesce: std::time::Duration::ZERO,
        rx_ring_bytes: lkl::packet::MAX_RX_RING_BYTES,
    }
}

/// Opens the backend in the container, on a thread confined to kernel `profile` if one is
/// named (the thread that makes the socket's setup calls).
fn open(topo: &dyn Topology, profile: Option<&str>) -> Arc<PacketBackend> {
    let cfg = config(topo);
    let profile = profile.map(|p| KernelProfile::named(p).unwrap());
    topo.container_ns()
        .in_thread(move || {
            if let Some(p) = profile {
                p.confine_self().expect("seccomp");
            }
            PacketBackend::open(&cfg)
        })
        .expect("enter the container namespace")
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn venet0_link_void_gets_a_sock_dgram_socket_without_offloads() {
    let topo = VenetTopology::builder().build().unwrap();
    let backend = open(&topo, None);
    assert_eq!(backend.socket_type().unwrap(), libc::SOCK_DGRAM);
    assert!(!backend.tso(), "offloads on a SOCK_DGRAM socket");
    assert_eq!(
        backend.link_note(),
        Some("venet0 is link/void (OpenVZ venet): SOCK_DGRAM, no offloads")
    );
    // Not a fallback of the host kernel's: a new one opens the same socket.
    assert_eq!(backend.fallbacks(), &[]);
}

const OUTGOING: &[u8] = b"sent by the container";
const INCOMING: &[u8] = b"sent by the peer";

/// Sends `count` UDP datagrams to LKL's address from the container's host stack (out through
/// venet0: outgoing packets on the backend's interface) and from the peer (in through
/// venet0), then reads what reaches the backend; returns how many of each it got.
fn outgoing_and_incoming(
    topo: &dyn Topology,
    backend: &PacketBackend,
    count: usize,
) -> (usize, usize) {
    let to = SocketAddr::new(topo.addrs().lkl_v4.into(), 9);
    for (ns, payload) in [(topo.container_ns(), OUTGOING), (topo.peer_ns(), INCOMING)] {
        ns.in_thread(|| {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            for _ in 0..count {
                s.send_to(payload, to).unwrap();
            }
        })
        .unwrap();
    }
    let (mut outgoing, mut incoming) = (0, 0);
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        backend
            .rx(64, &mut |_hdr, packet| {
                // IPv4 without options, then the 8-byte UDP header.
                match packet.get(28..) {
                    Some(OUTGOING) => outgoing += 1,
                    Some(INCOMING) => incoming += 1,
                    _ => {}
                }
                Delivery::Taken
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    (outgoing, incoming)
}

#[test]
fn without_packet_ignore_outgoing_the_filter_keeps_outgoing_packets_from_lkl() {
    let topo = VenetTopology::builder().build().unwrap();
    let backend = open(&topo, Some("3.10"));
    assert_eq!(
        backend.fallbacks(),
        &[Fallback {
            feature: "PACKET_IGNORE_OUTGOING",
            since: "4.20",
            instead: "the socket filter drops the interface's outgoing packets",
        }]
    );
    assert_eq!(outgoing_and_incoming(&topo, &backend, 20), (0, 20));
}

#[test]
fn with_packet_ignore_outgoing_outgoing_packets_stay_out_as_well() {
    let topo = VenetTopology::builder().build().unwrap();
    let backend = open(&topo, None);
    assert_eq!(outgoing_and_incoming(&topo, &backend, 20), (0, 20));
}
