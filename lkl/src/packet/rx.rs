//! Receiving, in the kernel's poll: packets from the TPACKET_V2 ring shared with the host
//! (`ring.rs`), without a system call per packet; where the host refused a ring, and for
//! packets too big for its frames, from the socket's queue with
//! `recvmsg(MSG_DONTWAIT|MSG_TRUNC)`. Each goes to LKL with a virtio_net_hdr (`vnet.rs`) and,
//! on Ethernet, teaches the backend its next hop (`neighbour.rs`). A process that serves
//! listeners with others has a second socket, for its share of their connections
//! (`share.rs`), read first, the same way; then its mailbox, with the segments the other
//! processes passed on to it (`mailbox.rs`).

use std::io;
use std::mem::{size_of, zeroed};
use std::ptr;
use std::sync::atomic::Ordering;

use super::mailbox::{self, Mailbox, Route};
use super::ring::{RxRing, TP_STATUS_COPY};
use super::vnet::offload_hdr;
use super::{sys, PacketBackend, ETH_HLEN, PACKET_AUXDATA, SOL_PACKET};
use crate::locks::lock;
use crate::netdev::{Delivery, VNET_HDR_LEN};
use crate::Errno;

/// `struct tpacket_auxdata`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct TpacketAuxdata {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}

/// The largest packet the host may coalesce (an IP datagram).
const RX_MAX: usize = 65535;

/// The receiving side, used by the kernel's poll (one caller at a time).
pub(super) struct Receiver {
    /// The backend's own socket's.
    pub(super) main: Source,
    /// The socket in the group that deals out the shared listeners' segments (`share.rs`).
    pub(super) group: Option<(sys::Fd, Source)>,
    /// Where the group's other processes pass on segments of this one's connections.
    pub(super) mailbox: Option<(Mailbox, Source)>,
}

/// Which socket a packet came through: what becomes of one the kernel gives back
/// ([`Delivery::Foreign`]).
#[derive(Clone, Copy)]
enum Via<'a> {
    /// The backend's own socket, which every process of the program may see it on: dropped.
    Own,
    /// The group's: passed on to the other processes.
    Group(&'a Mailbox),
    /// This process's mailbox: another process passed it on to all, dropped.
    Mailbox(&'a Mailbox),
}

/// What a socket is read through.
pub(super) struct Source {
    /// The ring, unless the host refused one.
    ring: Option<RxRing>,
    /// A packet read with recvmsg: its bytes from `buf[0]`.
    buf: Vec<u8>,
    /// The packet in `buf` the kernel had no memory for: its length and header.
    pending: Option<(usize, [u8; VNET_HDR_LEN])>,
}

impl Source {
    pub(super) fn new(ring: Option<RxRing>) -> Source {
        Source {
            ring,
            buf: Vec::new(),
            pending: None,
        }
    }

    /// The ring's mapping, if there is one.
    pub(super) fn ring_span(&self) -> Option<(usize, usize)> {
        self.ring.as_ref().map(RxRing::span)
    }
}

impl PacketBackend {
    /// Whether packets arrive through the shared ring (else by recvmsg).
    pub fn rx_ring(&self) -> bool {
        lock(&self.receiver).main.ring.is_some()
    }

    /// Hands the kernel up to `budget` received packets; returns how many it took.
    pub(super) fn receive(
        &self,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8; VNET_HDR_LEN], &[u8]) -> Delivery,
    ) -> Result<usize, Errno> {
        let mut receiver = lock(&self.receiver);
        let Receiver {
            main,
            group,
            mailbox,
        } = &mut *receiver;
        let mut taken = 0;
        let mut room = true;
        if let (Some((sock, source)), Some((mailbox, _))) = (group.as_mut(), mailbox.as_ref()) {
            (taken, room) = self.drain(sock, source, Via::Group(mailbox), budget, deliver)?;
        }
        if let Some((mailbox, source)) = mailbox.as_mut() {
            if room && taken < budget {
                let via = Via::Mailbox(mailbox);
                let (n, more) = self.drain(mailbox.fd(), source, via, budget - taken, deliver)?;
                (taken, room) = (taken + n, more);
            }
        }
        if room && taken < budget {
            taken += self
                .drain(&self.sock, main, Via::Own, budget - taken, deliver)?
                .0;
        }
        self.counters
            .rx_packets
            .fetch_add(taken as u64, Ordering::Relaxed);
        Ok(taken)
    }

    /// Hands the kernel up to `budget` packets from `sock`; returns how many it took and
    /// whether it had memory for more.
    fn drain(
        &self,
        sock: &sys::Fd,
        source: &mut Source,
        via: Via<'_>,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8; VNET_HDR_LEN], &[u8]) -> Delivery,
    ) -> Result<(usize, bool), Errno> {
        let Source { ring, buf, pending } = source;
        let deliver =
            &mut |hdr: &[u8; VNET_HDR_LEN], packet: &[u8]| give(via, hdr, packet, deliver);
        let mut taken = 0;
        while taken < budget {
            let Some(ring) = ring.as_mut() else {
                match self.deliver_from_queue(sock, via, queue_buf(buf), pending, deliver)? {
                    Some(Delivery::Taken | Delivery::Foreign) => taken += 1,
                    Some(Delivery::NoMemory) => return Ok((taken, false)),
                    None => break,
                }
                continue;
            };
            let Some(frame) = ring.peek() else {
                break;
            };
            let delivered = if frame.status & TP_STATUS_COPY != 0 {
                // Too big for the frame: the whole packet waits in the receive queue.
                let delivered =
                    self.deliver_from_queue(sock, via, queue_buf(buf), pending, deliver)?;
                if delivered == Some(Delivery::Taken) {
                    self.counters.rx_copied.fetch_add(1, Ordering::Relaxed);
                }
                delivered
            } else if let Some(packet) = frame.packet() {
                self.learn_next_hop(&frame.sll());
                let host_hdr = if self.vnet { frame.vnet_hdr() } else { None };
                let hdr = offload_hdr(host_hdr, frame.net - frame.mac, frame.status, packet);
                Some(deliver(&hdr, packet))
            } else {
                None
            };
            match delivered {
                // The frame stays ours; the next call starts with it.
                Some(Delivery::NoMemory) => return Ok((taken, false)),
                Some(Delivery::Taken | Delivery::Foreign) => taken += 1,
                None => {
                    self.counters.rx_truncated.fetch_add(1, Ordering::Relaxed);
                }
            }
            ring.release();
        }
        Ok((taken, true))
    }

    /// Hands the kernel the packet kept in `buf` for lack of kernel memory, else the next one
    /// from the socket's receive queue, and keeps it again if the kernel still has none;
    /// None when no packet waits.
    fn deliver_from_queue(
        &self,
        sock: &sys::Fd,
        via: Via<'_>,
        buf: &mut [u8],
        pending: &mut Option<(usize, [u8; VNET_HDR_LEN])>,
        deliver: &mut dyn FnMut(&[u8; VNET_HDR_LEN], &[u8]) -> Delivery,
    ) -> Result<Option<Delivery>, Errno> {
        let Some((len, hdr)) = (match (pending.take(), via) {
            (Some(kept), _) => Some(kept),
            (None, Via::Mailbox(_)) => mailbox::recv(sock, buf)
                .map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::EIO)))?,
            (None, _) => self.recv(sock, buf)?,
        }) else {
            return Ok(None);
        };
        let delivery = deliver(&hdr, &buf[..len]);
        if delivery == Delivery::NoMemory {
            *pending = Some((len, hdr));
        }
        Ok(Some(delivery))
    }

    /// Receives the next packet from the socket's queue into `buf` with recvmsg; returns its
    /// length and virtio_net_hdr, None when none waits. Packets longer than `buf` are
    /// counted and skipped.
    fn recv(
        &self,
        sock: &sys::Fd,
        buf: &mut [u8],
    ) -> Result<Option<(usize, [u8; VNET_HDR_LEN])>, Errno> {
        let link = if self.own_mac.is_some() { ETH_HLEN } else { 0 };
        loop {
            // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
            let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
            // Room for one cmsghdr carrying a tpacket_auxdata, u64-aligned as cmsg requires.
            let mut control = [0u64; 8];
            let mut host_hdr = [0u8; VNET_HDR_LEN];
            let mut eth = [0u8; ETH_HLEN];
            let vec = |p: *mut u8, len| libc::iovec {
                iov_base: p.cast(),
                iov_len: len,
            };
            let all = [
                vec(host_hdr.as_mut_ptr(), VNET_HDR_LEN),
                vec(eth.as_mut_ptr(), ETH_HLEN),
                vec(buf.as_mut_ptr(), buf.len()),
            ];
            // The headers the socket gives (vnet, Ethernet), then the packet.
            let mut iov = [all[2]; 3];
            let mut used = 0;
            for (v, keep) in all.into_iter().zip([self.vnet, link > 0, true]) {
                if keep {
                    iov[used] = v;
                    used += 1;
                }
            }
            let mut msg = sys::msghdr(
                Some((&mut sll, size_of::<libc::sockaddr_ll>() as u32)),
                &mut iov[..used],
            );
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = size_of_val(&control);
            let headers = link + if self.vnet { VNET_HDR_LEN } else { 0 };
            // SAFETY: msg names sll, the control buffer, the header arrays and `buf`, all
            // alive and exclusively ours during the call.
            let len =
                match unsafe { sys::recvmsg(sock, &mut msg, libc::MSG_DONTWAIT | libc::MSG_TRUNC) }
                {
                    Ok(len) => len.saturating_sub(headers),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                    Err(e) => return Err(Errno(e.raw_os_error().unwrap_or(libc::EIO))),
                };
            if len > buf.len() {
                self.counters.rx_truncated.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let mut status = 0;
            // SAFETY: the CMSG_* helpers walk the control buffer the kernel filled, within
            // msg_controllen; the auxdata payload is read unaligned.
            unsafe {
                let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
                while !cmsg.is_null() {
                    if (*cmsg).cmsg_level == SOL_PACKET && (*cmsg).cmsg_type == PACKET_AUXDATA {
                        let aux: TpacketAuxdata =
                            ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<TpacketAuxdata>());
                        status = aux.tp_status;
                    }
                    cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
                }
            }
            self.learn_next_hop(&sll);
            let host_hdr = self.vnet.then_some(host_hdr);
            return Ok(Some((
                len,
                offload_hdr(host_hdr, link, status, &buf[..len]),
            )));
        }
    }
}

/// Hands the kernel a packet that came `via` a socket, and deals with one it gives back. New
/// connections from the group may go to another process (`mailbox.rs`); one handed over
/// just after this process stopped listening is dropped, and the peer sends it again, as to
/// a host listener whose queue is full: this kernel would refuse it.
fn give(
    via: Via<'_>,
    hdr: &[u8; VNET_HDR_LEN],
    packet: &[u8],
    deliver: &mut dyn FnMut(&[u8; VNET_HDR_LEN], &[u8]) -> Delivery,
) -> Delivery {
    match via {
        Via::Group(mailbox) if mailbox.route_new_connection(hdr, packet) == Route::Elsewhere => {
            return Delivery::Taken
        }
        Via::Mailbox(mailbox) if mailbox.not_for_us(packet) => return Delivery::Taken,
        _ => {}
    }
    match deliver(hdr, packet) {
        Delivery::Foreign => {
            if let Via::Group(mailbox) = via {
                mailbox.pass_on(hdr, packet);
            }
            Delivery::Taken
        }
        d => d,
    }
}

/// The recvmsg buffer, made on first use (with a ring it is seldom needed).
fn queue_buf(buf: &mut Vec<u8>) -> &mut [u8] {
    if buf.is_empty() {
        buf.resize(RX_MAX, 0);
    }
    buf
}
