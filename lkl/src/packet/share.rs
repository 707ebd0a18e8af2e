//! Listeners served by several processes of one program: a pre-fork server's workers, each
//! with a kernel of its own, all listening on the same ports of the same address.
//!
//! Every segment of a connection must reach the kernel that has it, also while processes
//! come and go (`nginx -s reload` starts new workers while the old ones finish their
//! connections). A PACKET_FANOUT group alone cannot do that: its flow hash is taken modulo
//! the number of members, so a member joining or leaving moves most flows elsewhere. So:
//!
//! * new connections (a SYN without ACK to a shared listener's port) go to a second socket
//!   of each serving process, in one fanout group (flow hash, fragments reassembled first):
//!   the host deals each to one process, whose kernel answers it and so owns the connection;
//! * every other segment to those ports reaches every serving process's own socket, and
//!   each kernel takes those of its own connections: the others' kernels drop them before
//!   their stack sees them ([`NetBackend::own_only`](crate::netdev::NetBackend::own_only)),
//!   rather than answer them with resets. A segment of a connection no process has any
//!   longer then gets no reset either; its peer times out instead.
//!
//! A process leaves the group by closing its second socket, once it no longer listens.

use std::ffi::c_int;
use std::io;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::sync::atomic::Ordering;

use super::filter::{self, Split, Take};
use super::open::{bind_to, set_receive_options};
use super::ring::RxRing;
use super::rx::Source;
use super::{sys, Admit, PacketBackend, SOL_PACKET};
use crate::locks::lock;

/// The new-connections socket's ring: SYNs are small and a burst of them waits here only
/// until the next poll.
const SYN_RING_BYTES: usize = 256 << 10;

impl PacketBackend {
    /// Makes `sock` (from [`open_socket`](super::open_socket), opened while the process
    /// still had the privilege) this process's socket in fanout group `group`, where it takes
    /// a share of the new connections of `split`'s listeners; then the backend's own socket
    /// takes every other segment of theirs (`split` says [`Take::Established`]) and the rest
    /// `admit` lets in.
    pub fn join_group(
        &self,
        group: u16,
        sock: OwnedFd,
        admit: &Admit,
        split: &Split,
    ) -> io::Result<()> {
        const PACKET_FANOUT: c_int = 18;
        const PACKET_FANOUT_HASH: c_int = 0;
        const PACKET_FANOUT_FLAG_DEFRAG: c_int = 0x8000;
        let sock = sys::Fd::adopt(sock.into_raw_fd())?;
        sys::set_cloexec(&sock, true)?;
        let mut filters = lock(&self.filters);
        filter::attach(&sock, &self.syn_program(admit, split))?;
        set_receive_options(&sock, self.drop_outgoing, self.vnet)?;
        // Before bind, so that SYNs come to the ring from the first; the host that gave the
        // main socket a ring gives this one too, else recvmsg.
        let ring = RxRing::set_up(&sock, self.mtu, SYN_RING_BYTES).ok();
        bind_to(&sock, self.ifindex)?;
        let arg: c_int =
            c_int::from(group) | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16);
        // SAFETY: PACKET_FANOUT takes an int.
        unsafe { sys::setsockopt(&sock, SOL_PACKET, PACKET_FANOUT, &arg) }?;
        let source = Source::new(ring);
        let (base, len) = source.ring_span().unwrap_or((0, 0));
        self.syn_ring.0.store(base, Ordering::Relaxed);
        self.syn_ring.1.store(len, Ordering::Relaxed);
        self.syn_fd.store(sock.raw(), Ordering::Relaxed);
        lock(&self.receiver).syns = Some((sock, source));
        self.rethink_rx();
        // Only now that new connections come through the group does this socket stop
        // taking them.
        *filters = (admit.clone(), Some(split.clone()));
        self.attach_filters(&filters)
    }

    /// Leaves the fanout group: no new connections come to this process any more. Those
    /// it has keep coming to its own socket.
    pub fn leave_group(&self) {
        let filters = lock(&self.filters);
        self.syn_fd.store(-1, Ordering::Relaxed);
        self.syn_ring.0.store(0, Ordering::Relaxed);
        self.syn_ring.1.store(0, Ordering::Relaxed);
        // The socket closes (and leaves the group) as it drops, its ring with it.
        let left = lock(&self.receiver).syns.take();
        drop(filters);
        if left.is_some() {
            self.rethink_rx();
        }
    }

    /// The program for the new-connections socket.
    fn syn_program(&self, admit: &Admit, split: &Split) -> Vec<libc::sock_filter> {
        let split = Split {
            listeners: split.serving.clone(),
            take: Take::NewConnections,
            serving: split.serving.clone(),
        };
        filter::program(
            self.ipv4,
            self.ipv6,
            admit,
            Some(&split),
            self.drop_outgoing,
        )
    }

    /// Puts `filters` on the sockets: the main one's and, while in a group, the
    /// new-connections socket's.
    pub(super) fn attach_filters(&self, filters: &(Admit, Option<Split>)) -> io::Result<()> {
        let (admit, split) = filters;
        // Processes that share listeners see each other's segments: before the filter lets
        // them in, the kernel drops those it has no connection for.
        if split.is_some() {
            self.own_only.store(1, Ordering::Relaxed);
        }
        let main = filter::program(
            self.ipv4,
            self.ipv6,
            admit,
            split.as_ref(),
            self.drop_outgoing,
        );
        filter::attach(&self.sock, &main)?;
        if let (Some(split), Some((sock, _))) = (split, &lock(&self.receiver).syns) {
            filter::attach(sock, &self.syn_program(admit, split))?;
        }
        Ok(())
    }
}
