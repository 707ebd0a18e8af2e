//! The packet backend: LKL's device on top of an `AF_PACKET` socket bound to a host
//! interface (OpenVZ's `venet0` in real use; tun, veth and Ethernet work too).
//!
//! * LKL's device is L3: it sends and receives bare IP packets. On tun (no link-layer header)
//!   and on Ethernet the socket is SOCK_RAW, with PACKET_VNET_HDR where offloads are wanted
//!   and the host takes it: a 64 KiB TCP packet then goes to the host in one send, and the
//!   host segments it and finishes the checksum. On Ethernet the backend builds the 14-byte
//!   header on tx (the next hop's MAC, ours) and skips it on rx. On other link types, OpenVZ's
//!   venet0 among them, the socket is SOCK_DGRAM, without offloads, and the host adds and
//!   strips the link layer (`open.rs`).
//! * tx (`tx.rs`): `sendmmsg`, a batch at a time, with a `sockaddr_ll` naming the protocol
//!   (from the IP version nibble); on an Ethernet host interface also the next hop's MAC,
//!   learned from received frames or from the host's ARP table at open (`neighbour.rs`).
//! * rx (`rx.rs`): a TPACKET_V2 ring shared with the host kernel (`ring.rs`), read without a
//!   system call per packet; where the host refuses a ring, and for packets too big for its
//!   frames, `recvmsg(MSG_DONTWAIT|MSG_TRUNC)`. Each packet goes to LKL with a virtio_net_hdr
//!   (`vnet.rs`): the host's own, else one made from the host's checksum status (the ring's
//!   frame status or PACKET_AUXDATA).
//! * An rx thread (`rx_thread.rs`) waits for the socket to become readable while the device
//!   is armed, then raises the device's irq; while packets stream in, a little later, so that
//!   the kernel takes more of them per wake-up.
//! * A classic-BPF filter (`filter.rs`) lets only packets for LKL's addresses — on an address
//!   shared with the host, only for the ports LKL owns — reach the socket, and
//!   PACKET_IGNORE_OUTGOING (or, on a host kernel without it, the filter) keeps our own tx
//!   out of it.
//! * Processes of one program that serve the same listeners (a pre-fork server's workers,
//!   each with a kernel of its own) share them (`share.rs`): a PACKET_FANOUT group deals
//!   their segments out by flow, and a process whose kernel does not have a segment's
//!   connection passes it on to the others (`mailbox.rs`).
//! * The backend's host system calls are raw ones (`sys.rs`), never the preload library's
//!   hooks.

mod filter;
mod mailbox;
mod neighbour;
mod open;
mod ring;
mod rx;
mod rx_thread;
mod share;
mod sys;
mod tx;
mod vnet;

pub use filter::{Admit, Split, Take};
pub use mailbox::Members;
pub use open::{claim_inherited, open_socket, OpenError, OpenInput, Opening};

use std::ffi::c_int;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use std::sync::{Condvar, Mutex};

use crate::host_features::Fallback;
use crate::locks::lock;
use crate::netdev::{Delivery, NetBackend, TxBatch, VNET_HDR_LEN};
use crate::Errno;
use rx::Receiver;
use rx_thread::RxState;
use tx::TxScratch;

// linux/socket.h, linux/if_packet.h, linux/if_ether.h
const SOL_PACKET: c_int = 263;
const PACKET_AUXDATA: c_int = 8;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_HLEN: usize = 14;

/// What the backend needs to know to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketConfig {
    /// The host interface's name.
    pub ifname: String,
    /// LKL's addresses: the only destinations the socket filter lets through.
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    /// On an Ethernet interface: the next hop whose MAC the host's ARP table gives at open,
    /// used until a received frame names one.
    pub next_hop: Option<Ipv4Addr>,
    /// Which packets to those addresses are LKL's (see [`PacketBackend::admit`]).
    pub admit: Admit,
    /// Listeners this process serves with others, if any (see [`PacketBackend::join_group`]).
    pub split: Option<Split>,
    /// Hand TCP GSO packets and partial checksums to the host (PACKET_VNET_HDR) where the
    /// interface allows it (a SOCK_RAW socket: Ethernet or no link-layer header): one send
    /// per 64 KiB instead of per MTU.
    pub offload: bool,
    /// Receive through a ring shared with the host kernel where it gives one, else with one
    /// recvmsg per packet.
    pub rx_ring: bool,
    /// Interrupt moderation (a NIC's rx-usecs): while packets stream in, the rx thread waits
    /// this long before it raises the next irq, so that LKL takes more packets per wake-up.
    /// Zero: never.
    pub rx_coalesce: Duration,
    /// The ring's size (whole blocks of it, at least one): packets that arrive while LKL is
    /// busy wait there. All of it is resident in the process.
    pub rx_ring_bytes: usize,
}

/// The biggest receive ring, as the socket's receive buffer.
pub const MAX_RX_RING_BYTES: usize = 4 << 20;

/// The receive ring's size for a kernel with `mem_mib` MiB of RAM: 1/64 of it, at most
/// [`MAX_RX_RING_BYTES`]. What the ring holds becomes skbs in that RAM, so a bigger ring only
/// moves the drops (a 64M kernel moved as many Gbit/s through iperf3 with 1 MiB as with 2);
/// 64M kernels (a proxy's) get 1 MiB, 128M 2 MiB, 256M (the default) and more 4 MiB.
pub fn rx_ring_bytes_for(mem_mib: u32) -> usize {
    ((mem_mib as usize) << 20 >> 6).clamp(1 << 20, MAX_RX_RING_BYTES)
}

/// Counters, readable while the backend runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketStats {
    /// Packets handed to LKL.
    pub rx_packets: u64,
    /// Packets longer than LKL's buffer (LKL drops them).
    pub rx_truncated: u64,
    /// Packets too big for a frame of the ring, read from the socket's queue.
    pub rx_copied: u64,
    /// Times the rx thread woke for packets and raised the irq (packets that threads
    /// waiting in LKL took in themselves, busy polling, need none).
    pub rx_irqs: u64,
    /// Irqs the rx thread held back for `rx_coalesce` because packets were streaming in.
    pub rx_coalesced: u64,
    /// Packets sent to the host.
    pub tx_packets: u64,
    /// Packets dropped because no next-hop MAC is known yet (Ethernet interfaces).
    pub tx_no_next_hop: u64,
    /// Sends the host refused for a moment (a full queue: ENOBUFS or EAGAIN) and that were
    /// tried again.
    pub tx_retried: u64,
    /// Packets the host refused (also after retries) or LKL handed over malformed.
    pub tx_errors: u64,
}

#[derive(Default)]
struct Counters {
    rx_packets: AtomicU64,
    rx_truncated: AtomicU64,
    rx_copied: AtomicU64,
    rx_irqs: AtomicU64,
    rx_coalesced: AtomicU64,
    tx_packets: AtomicU64,
    tx_no_next_hop: AtomicU64,
    tx_retried: AtomicU64,
    tx_errors: AtomicU64,
}

/// An open packet socket serving as LKL's device.
pub struct PacketBackend {
    sock: sys::Fd,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
    ifindex: c_int,
    /// An Ethernet-type host interface: tx needs the next hop's MAC.
    ethernet: bool,
    /// On Ethernet with a SOCK_RAW socket: our MAC. Frames then carry the Ethernet header,
    /// built on tx and skipped on rx.
    own_mac: Option<[u8; 6]>,
    /// PACKET_VNET_HDR is on: the host segments and checksums (see PacketConfig::offload),
    /// and rx gets the host's own virtio_net_hdr.
    vnet: bool,
    /// The host kernel lacks PACKET_IGNORE_OUTGOING: the filter drops outgoing packets.
    drop_outgoing: bool,
    /// The host's packet-socket features the backend does without.
    fallbacks: Vec<Fallback>,
    /// How the interface's link type changed the socket (OpenVZ's venet0).
    link_note: Option<String>,
    /// The host refused an offloaded packet (said once).
    offload_refused: AtomicBool,
    mtu: u32,
    next_hop_mac: AtomicU64,
    counters: Counters,
    rx: Mutex<RxState>,
    rx_cond: Condvar,
    /// See [`PacketConfig::rx_coalesce`].
    rx_coalesce: Duration,
    /// The receive ring's mapping, for a forked child to unmap without the receiver's lock.
    ring_span: Option<(usize, usize)>,
    receiver: Mutex<Receiver>,
    /// What the socket filters follow.
    filters: Mutex<(Admit, Option<Split>)>,
    /// The group's socket (`share.rs`) and the mailbox (`mailbox.rs`) while there are
    /// ones, else -1, and the group socket's ring's mapping (start, length; 0, 0 without):
    /// for the rx thread to poll and a forked child to let go, without the receiver's lock.
    group_fd: AtomicI32,
    mailbox_fd: AtomicI32,
    group_ring: (AtomicUsize, AtomicUsize),
    /// The size of a receive ring (see [`PacketConfig::rx_ring_bytes`]).
    ring_bytes: usize,
    /// The kernel drops segments of connections it does not have (see `share.rs` and
    /// [`NetBackend::own_only`]).
    own_only: AtomicI32,
    tx_scratch: Mutex<Box<TxScratch>>,
    /// Written to end the rx thread's poll.
    stop_fd: sys::Fd,
    rx_thread: Mutex<Option<JoinHandle<()>>>,
}

impl PacketBackend {
    /// Changes which packets reach LKL (e.g. as the program starts listening on ports of an
    /// address it shares with the host, or its processes share listeners). The new filters
    /// replace the old ones atomically.
    pub fn admit(&self, admit: &Admit, split: Option<&Split>) -> io::Result<()> {
        let mut filters = lock(&self.filters);
        *filters = (admit.clone(), split.cloned());
        self.attach_filters(&filters)
    }

    /// In a forked child: lets go of the parent's socket, its receive ring (which would
    /// keep the socket alive and receiving) and its stop eventfd, without locks or threads
    /// (neither followed the fork). The backend must never be used or dropped afterwards.
    pub fn forget_in_child(&self) {
        let group_ring = (
            self.group_ring.0.load(Ordering::Relaxed),
            self.group_ring.1.load(Ordering::Relaxed),
        );
        for (base, len) in self.ring_span.into_iter().chain(Some(group_ring)) {
            if len > 0 {
                // SAFETY: a ring's own mapping; nothing in this process reads it again.
                unsafe { sys::munmap(base as *mut u8, len) };
            }
        }
        let group_fds = [&self.group_fd, &self.mailbox_fd].map(|fd| fd.load(Ordering::Relaxed));
        for fd in [self.sock.raw(), self.stop_fd.raw()]
            .into_iter()
            .chain(group_fds)
        {
            if fd < 0 {
                continue;
            }
            // SAFETY: descriptors this backend owns; it is never dropped (see above), so
            // they are not closed twice.
            unsafe { crate::raw_syscall!(libc::SYS_close, fd) };
        }
    }

    /// The packet-socket features the host kernel lacks or refused, and what the backend
    /// does instead.
    pub fn fallbacks(&self) -> &[Fallback] {
        &self.fallbacks
    }

    /// One line on how the host interface's link type shaped the socket, where it did
    /// (OpenVZ's venet0: SOCK_DGRAM, no offloads).
    pub fn link_note(&self) -> Option<&str> {
        self.link_note.as_deref()
    }

    /// The packet socket's type (SOCK_RAW or SOCK_DGRAM), as the host reports it.
    pub fn socket_type(&self) -> io::Result<c_int> {
        sys::getsockopt_int(&self.sock, libc::SOL_SOCKET, libc::SO_TYPE)
    }

    /// The host interface's MTU: the size of LKL's device.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    pub fn stats(&self) -> PacketStats {
        let c = &self.counters;
        PacketStats {
            rx_packets: c.rx_packets.load(Ordering::Relaxed),
            rx_truncated: c.rx_truncated.load(Ordering::Relaxed),
            rx_copied: c.rx_copied.load(Ordering::Relaxed),
            rx_irqs: c.rx_irqs.load(Ordering::Relaxed),
            rx_coalesced: c.rx_coalesced.load(Ordering::Relaxed),
            tx_packets: c.tx_packets.load(Ordering::Relaxed),
            tx_no_next_hop: c.tx_no_next_hop.load(Ordering::Relaxed),
            tx_retried: c.tx_retried.load(Ordering::Relaxed),
            tx_errors: c.tx_errors.load(Ordering::Relaxed),
        }
    }
}

impl Drop for PacketBackend {
    fn drop(&mut self) {
        self.stop_rx();
    }
}

impl NetBackend for PacketBackend {
    fn tx(&self, batch: &TxBatch<'_>) -> usize {
        self.send_batch(batch)
    }

    fn rx(
        &self,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8; VNET_HDR_LEN], &[u8]) -> Delivery,
    ) -> Result<usize, Errno> {
        self.receive(budget, deliver)
    }

    fn rx_arm(&self) {
        self.arm_rx();
    }

    fn tso(&self) -> bool {
        self.vnet
    }

    fn own_only(&self) -> Option<&AtomicI32> {
        Some(&self.own_only)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_is_a_64th_of_the_kernels_ram_between_1_and_4_mib() {
        assert_eq!(rx_ring_bytes_for(16), 1 << 20);
        assert_eq!(rx_ring_bytes_for(64), 1 << 20);
        assert_eq!(rx_ring_bytes_for(128), 2 << 20);
        assert_eq!(rx_ring_bytes_for(256), MAX_RX_RING_BYTES);
        assert_eq!(rx_ring_bytes_for(4096), MAX_RX_RING_BYTES);
    }
}
