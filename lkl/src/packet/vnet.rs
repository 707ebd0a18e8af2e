//! The virtio_net_hdr each packet carries between LKL and the host: the offload metadata
//! (GSO, partial checksum) LKL's device and a PACKET_VNET_HDR socket both speak, with offsets
//! moved between LKL's count (from the IP header) and the host's (from the link-layer header),
//! and made up from the host's checksum status where the socket gives no header.

use crate::netdev::{VNET_HDR_F_DATA_VALID, VNET_HDR_LEN};

// virtio_net_hdr flags and gso types (linux/virtio_net.h)
pub(super) const VNET_HDR_F_NEEDS_CSUM: u8 = 1;
pub(super) const VNET_HDR_GSO_NONE: u8 = 0;
// The checksum bits of a received packet's status (linux/if_packet.h): in a ring frame's
// header or in PACKET_AUXDATA.
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
const TP_STATUS_CSUM_VALID: u32 = 1 << 7;

/// Where the TCP/UDP checksum of an IP packet starts (its L4 header) and where its field is
/// within it; None for other protocols and IPv6 extension headers.
fn partial_csum_location(packet: &[u8]) -> Option<(u16, u16)> {
    let (l4_start, proto) = match packet.first()? >> 4 {
        4 => (u16::from(packet[0] & 0x0f) * 4, *packet.get(9)?),
        6 => (40, *packet.get(6)?),
        _ => return None,
    };
    let offset = match proto {
        6 => 16, // TCP
        17 => 6, // UDP
        _ => return None,
    };
    Some((l4_start, offset))
}

/// The virtio_net_hdr LKL gets with a received `packet`: the host's own when it gave one
/// (its offsets counted from the `link`-byte link-layer header before the packet), else one
/// made from the host's TP_STATUS checksum bits.
pub(super) fn offload_hdr(
    host_hdr: Option<[u8; VNET_HDR_LEN]>,
    link: usize,
    status: u32,
    packet: &[u8],
) -> [u8; VNET_HDR_LEN] {
    let mut hdr = [0u8; VNET_HDR_LEN];
    if let Some(host) = host_hdr {
        hdr = host;
        shift_vnet_hdr(&mut hdr, -(link as i32));
    } else if status & TP_STATUS_CSUMNOTREADY != 0 {
        // Produced by a local stack that left the checksum to offload (veth): the field
        // holds only the pseudo-header sum. Say so (NEEDS_CSUM with the checksum's place),
        // which LKL treats as CHECKSUM_PARTIAL, i.e. intact data.
        if let Some((start, offset)) = partial_csum_location(packet) {
            hdr[0] = VNET_HDR_F_NEEDS_CSUM;
            hdr[6..8].copy_from_slice(&start.to_le_bytes());
            hdr[8..10].copy_from_slice(&offset.to_le_bytes());
        }
    } else if status & TP_STATUS_CSUM_VALID != 0 {
        hdr[0] = VNET_HDR_F_DATA_VALID;
    }
    hdr
}

/// Moves a virtio_net_hdr's offsets (hdr_len for GSO, csum_start for a partial checksum) by
/// `by` bytes: the host counts them from the start of what the socket sends or receives, LKL
/// from the IP header.
pub(super) fn shift_vnet_hdr(hdr: &mut [u8; VNET_HDR_LEN], by: i32) {
    let gso = hdr[1] != VNET_HDR_GSO_NONE;
    let partial = hdr[0] & VNET_HDR_F_NEEDS_CSUM != 0;
    for (at, applies) in [(2, gso), (6, partial)] {
        if applies {
            let v = i32::from(u16::from_le_bytes([hdr[at], hdr[at + 1]]));
            let moved = u16::try_from((v + by).max(0)).unwrap_or(u16::MAX);
            hdr[at..at + 2].copy_from_slice(&moved.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_checksums_are_located_in_tcp_and_udp() {
        let mut v4 = vec![0u8; 40];
        v4[0] = 0x46; // 24-byte header
        v4[9] = 6;
        assert_eq!(partial_csum_location(&v4), Some((24, 16)));
        v4[9] = 17;
        assert_eq!(partial_csum_location(&v4), Some((24, 6)));
        v4[9] = 1;
        assert_eq!(partial_csum_location(&v4), None, "ICMP");
        let mut v6 = vec![0u8; 60];
        v6[0] = 0x60;
        v6[6] = 6;
        assert_eq!(partial_csum_location(&v6), Some((40, 16)));
        v6[6] = 0; // hop-by-hop options
        assert_eq!(partial_csum_location(&v6), None);
    }
}
