//! Sending: the kernel's packets to the host, one `sendmmsg` per batch (the segments of a
//! GSO packet, say, when the host does not take offloads), each packet given to the host as
//! iovecs over the kernel's own buffers, after the headers the socket wants (virtio_net_hdr
//! with offloads, Ethernet on a SOCK_RAW socket over Ethernet).

use std::io;
use std::mem::{size_of, zeroed};
use std::ptr;
use std::sync::atomic::Ordering;

use super::vnet::{shift_vnet_hdr, VNET_HDR_F_NEEDS_CSUM, VNET_HDR_GSO_NONE};
use super::{sys, PacketBackend, ETH_HLEN, ETH_P_IP, ETH_P_IPV6};
use crate::locks::lock;
use crate::netdev::{TxBatch, TxPacket, MAX_PIECES, VNET_HDR_LEN};
use crate::Errno;

/// Most packets sent in one call (the kernel's LKL_TX_BATCH).
const BATCH: usize = 16;
/// How often, and after how long a wait each time, a send the host refused for a full queue
/// is tried again.
const TX_RETRIES: u32 = 3;
const TX_RETRY_WAIT: std::time::Duration = std::time::Duration::from_micros(300);
/// A packet's iovecs: virtio_net_hdr, Ethernet header, its pieces.
const IOVS: usize = 2 + MAX_PIECES;

/// What the messages of one batch point to. Kept between calls (a few KiB, too much for the
/// stacks of some programs' threads, on which the kernel runs); the pointers in `iov` and
/// `msgs` are only valid during the call that set them.
pub(super) struct TxScratch {
    sll: [libc::sockaddr_ll; BATCH],
    eth: [[u8; ETH_HLEN]; BATCH],
    hdr: [[u8; VNET_HDR_LEN]; BATCH],
    /// A packet whose partial checksum had to be finished here, in a copy.
    copy: [Vec<u8>; BATCH],
    iov: [[libc::iovec; IOVS]; BATCH],
    msgs: [libc::mmsghdr; BATCH],
}

// SAFETY: the raw pointers in iov and msgs are scratch, set and used within one tx call
// (under the backend's lock) and never read between calls.
unsafe impl Send for TxScratch {}

impl TxScratch {
    pub(super) fn new() -> Box<TxScratch> {
        // SAFETY: sockaddr_ll, iovec and mmsghdr are plain data (null pointers, zeroes).
        unsafe {
            Box::new(TxScratch {
                sll: zeroed(),
                eth: [[0; ETH_HLEN]; BATCH],
                hdr: [[0; VNET_HDR_LEN]; BATCH],
                copy: Default::default(),
                iov: zeroed(),
                msgs: zeroed(),
            })
        }
    }
}

/// Completes a CHECKSUM_PARTIAL packet: the 16-bit one's complement sum from `start` to the
/// end, stored at `start + offset` (the field holds the pseudo-header sum already).
fn complete_checksum(packet: &mut [u8], start: usize, offset: usize) -> Option<()> {
    if start + offset + 2 > packet.len() {
        return None;
    }
    let mut sum: u64 = 0;
    let mut chunks = packet[start..].chunks_exact(2);
    for c in &mut chunks {
        sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let csum = !(sum as u16);
    packet[start + offset..start + offset + 2].copy_from_slice(&csum.to_be_bytes());
    Some(())
}

impl PacketBackend {
    /// Sends `batch`; returns how many packets the host took.
    pub(super) fn send_batch(&self, batch: &TxBatch<'_>) -> usize {
        let mut scratch = lock(&self.tx_scratch);
        let s = &mut *scratch;
        let mut ready = 0;
        for packet in batch.packets().take(BATCH) {
            match self.prepare(&packet, s, ready) {
                Ok(()) => ready += 1,
                Err(e) => self.count_tx_error(e),
            }
        }
        let sent = self.send_ready(&mut s.msgs[..ready]);
        self.counters
            .tx_packets
            .fetch_add(sent as u64, Ordering::Relaxed);
        sent
    }

    /// Fills slot `i` of `s` with `packet`'s address, headers, iovecs and message.
    fn prepare(&self, packet: &TxPacket<'_>, s: &mut TxScratch, i: usize) -> Result<(), Errno> {
        // A copy left in the slot (by a packet that failed here) would be sent instead.
        s.copy[i].clear();
        let vnet_hdr = packet.vnet_hdr;
        if vnet_hdr.len() < VNET_HDR_LEN || packet.piece_count() > MAX_PIECES {
            return Err(Errno::EINVAL);
        }
        let protocol = match packet.pieces().find(|p| !p.is_empty()).map(|p| p[0] >> 4) {
            Some(4) => ETH_P_IP,
            Some(6) => ETH_P_IPV6,
            _ => return Err(Errno::EINVAL),
        };
        let sll = &mut s.sll[i];
        // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
        *sll = unsafe { zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = protocol.to_be();
        sll.sll_ifindex = self.ifindex;
        let mut with_eth = false;
        if self.ethernet {
            let Some(mac) = self.next_hop_mac() else {
                return Err(Errno::EHOSTUNREACH);
            };
            sll.sll_halen = 6;
            sll.sll_addr[..6].copy_from_slice(&mac);
            if let Some(own) = self.own_mac {
                let eth = &mut s.eth[i];
                eth[..6].copy_from_slice(&mac);
                eth[6..12].copy_from_slice(&own);
                eth[12..].copy_from_slice(&protocol.to_be_bytes());
                with_eth = true;
            }
        }
        let hdr = &mut s.hdr[i];
        hdr.copy_from_slice(&vnet_hdr[..VNET_HDR_LEN]);
        if self.vnet {
            // The host counts the header's offsets from the frame's start.
            if with_eth {
                shift_vnet_hdr(hdr, ETH_HLEN as i32);
            }
        } else if hdr[1] != VNET_HDR_GSO_NONE {
            // Without offloads LKL's device segments in software: no GSO packet should come.
            return Err(Errno::EINVAL);
        } else if hdr[0] & VNET_HDR_F_NEEDS_CSUM != 0 {
            // The device completes checksums itself; should a partial one come anyway,
            // finish it here (without PACKET_VNET_HDR the host cannot).
            let start = usize::from(u16::from_le_bytes([hdr[6], hdr[7]]));
            let offset = usize::from(u16::from_le_bytes([hdr[8], hdr[9]]));
            let copy = &mut s.copy[i];
            packet.pieces().for_each(|p| copy.extend_from_slice(p));
            complete_checksum(copy, start, offset).ok_or(Errno::EINVAL)?;
        }

        let mut n = 0;
        let iov = &mut s.iov[i];
        let mut push = |piece: &[u8]| {
            iov[n] = libc::iovec {
                iov_base: piece.as_ptr().cast_mut().cast(),
                iov_len: piece.len(),
            };
            n += 1;
        };
        if self.vnet {
            push(&s.hdr[i]);
        }
        if with_eth {
            push(&s.eth[i]);
        }
        if s.copy[i].is_empty() {
            packet.pieces().for_each(&mut push);
        } else {
            push(&s.copy[i]);
        }
        let msg = &mut s.msgs[i];
        // SAFETY: mmsghdr is plain data; all zeroes is a valid value.
        *msg = unsafe { zeroed() };
        msg.msg_hdr.msg_name = ptr::from_mut(&mut s.sll[i]).cast();
        msg.msg_hdr.msg_namelen = size_of::<libc::sockaddr_ll>() as u32;
        msg.msg_hdr.msg_iov = s.iov[i].as_mut_ptr();
        msg.msg_hdr.msg_iovlen = n;
        Ok(())
    }

    /// Sends the prepared messages in order; returns how many the host took.
    fn send_ready(&self, msgs: &mut [libc::mmsghdr]) -> usize {
        let (mut next, mut sent, mut tries) = (0, 0, 0);
        while next < msgs.len() {
            // SAFETY: each message names its sll, headers and iovecs in the scratch and the
            // kernel's packet memory, all alive and unchanged during the call; the kernel
            // writes only msg_len.
            let err = match unsafe { sys::sendmmsg(&self.sock, &mut msgs[next..]) } {
                Ok(n) => {
                    next += n;
                    sent += n;
                    tries = 0;
                    continue;
                }
                Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
            };
            // A full host queue (the interface's qdisc: ENOBUFS; our send buffer: EAGAIN)
            // clears as the host sends: wait a little and try again, a few times, before the
            // packet is dropped (TCP then retransmits it). The wait holds the kernel's CPU,
            // so it stays short.
            if tries < TX_RETRIES && matches!(err, libc::ENOBUFS | libc::EAGAIN) {
                tries += 1;
                self.wait_to_retry(err);
                continue;
            }
            if self.vnet
                && err == libc::EINVAL
                && !self.offload_refused.swap(true, Ordering::Relaxed)
            {
                log::warn!(
                    "the host refused an offloaded packet (EINVAL); if connections stall, set \
                     LKL_HIJACK_OFFLOAD=0"
                );
            }
            self.count_tx_error(Errno(err));
            next += 1;
            tries = 0;
        }
        sent
    }

    fn wait_to_retry(&self, err: i32) {
        if self.counters.tx_retried.fetch_add(1, Ordering::Relaxed) == 0 {
            log::debug!(
                "the host refused a send ({}): its queue is full; retrying",
                io::Error::from_raw_os_error(err)
            );
        }
        let mut fds = [libc::pollfd {
            fd: self.sock.raw(),
            events: libc::POLLOUT,
            revents: 0,
        }];
        // ENOBUFS leaves the socket writable: then only the time passes.
        let wait = if err == libc::EAGAIN {
            &mut fds[..]
        } else {
            &mut fds[..0]
        };
        let _ = sys::ppoll(wait, Some(TX_RETRY_WAIT));
    }

    /// Counts a packet that was not sent.
    fn count_tx_error(&self, e: Errno) {
        let counter = if e == Errno::EHOSTUNREACH {
            &self.counters.tx_no_next_hop
        } else {
            &self.counters.tx_errors
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_checksum_is_completed() {
        // A UDP header + payload whose checksum field holds 0; the completed sum over the
        // range must verify to 0xffff.
        let mut p = vec![
            0x12, 0x34, 0x00, 0x35, 0x00, 0x0b, 0x00, 0x00, 0xaa, 0xbb, 0xcc,
        ];
        complete_checksum(&mut p, 0, 6).unwrap();
        let mut sum: u32 = 0;
        for c in p.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
        assert_eq!(
            complete_checksum(&mut p, 8, 2),
            None,
            "field beyond the packet"
        );
    }
}
