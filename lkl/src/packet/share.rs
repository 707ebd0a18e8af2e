//! Listeners served by several processes of one program: a pre-fork server's workers, each
//! with a kernel of its own, all listening on the same ports of the same address.
//!
//! Each serving process has a second packet socket, in one PACKET_FANOUT group with the
//! others' (flow hash, fragments reassembled first). Every TCP segment to a shared listener's
//! port reaches exactly one of them; no other socket of the program takes those. The host
//! deals a new connection's SYN to one process, whose kernel answers it and so owns the
//! connection; while the members stay the same, the flow's later segments hash to the same
//! process. When members come and go (`nginx -s reload`), the hash, taken modulo their
//! number, sends flows elsewhere: a kernel given a segment it has no connection for gives it
//! back unseen ([`NetBackend::own_only`](crate::netdev::NetBackend::own_only)) instead of
//! answering it with a reset, and its process passes it on to the others (`mailbox.rs`).
//!
//! A process stays in the group until it exits, also when it no longer listens (an old
//! worker finishing its connections): leaving would move flows again, and the group would
//! be empty once every process has stopped listening (`nginx -s quit`) while downloads still
//! run. SYNs dealt to a process that does not listen go to one that does.

use std::ffi::c_int;
use std::io;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::sync::atomic::Ordering;

use super::filter::{self, Split, Take};
use super::mailbox::{Mailbox, Members};
use super::open::{bind_to, set_receive_options};
use super::ring::RxRing;
use super::rx::Source;
use super::{sys, Admit, PacketBackend, SOL_PACKET};
use crate::locks::lock;

impl PacketBackend {
    /// Makes `sock` (from [`open_socket`](super::open_socket), opened while the process
    /// still had the privilege) this process's socket in fanout group `group`, where it takes
    /// a share of the segments of `split`'s listeners, and opens its mailbox in `members`
    /// (shared by the group's processes); then the backend's own socket takes none of
    /// them (`split` says [`Take::Nothing`]), and the rest `admit` lets in.
    pub fn join_group(
        &self,
        group: u32,
        members: &'static Members,
        sock: OwnedFd,
        admit: &Admit,
        split: &Split,
    ) -> io::Result<()> {
        const PACKET_FANOUT: c_int = 18;
        const PACKET_FANOUT_HASH: c_int = 0;
        const PACKET_FANOUT_FLAG_DEFRAG: c_int = 0x8000;
        let sock = sys::Fd::adopt(sock.into_raw_fd())?;
        sys::set_cloexec(&sock, true)?;
        let mut mailbox = Mailbox::open(group, members)?;
        mailbox.set_serving(&split.serving);
        let mut filters = lock(&self.filters);
        filter::attach(&sock, &self.group_program(admit, split))?;
        set_receive_options(&sock, self.drop_outgoing, self.vnet)?;
        // Before bind, so that segments come to the ring from the first; the host that gave
        // the main socket a ring gives this one too, else recvmsg.
        let ring = RxRing::set_up(&sock, self.mtu, self.ring_bytes).ok();
        bind_to(&sock, self.ifindex)?;
        let arg: c_int =
            c_int::from(group as u16) | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16);
        // SAFETY: PACKET_FANOUT takes an int.
        unsafe { sys::setsockopt(&sock, SOL_PACKET, PACKET_FANOUT, &arg) }?;
        let source = Source::new(ring);
        let (base, len) = source.ring_span().unwrap_or((0, 0));
        self.group_ring.0.store(base, Ordering::Relaxed);
        self.group_ring.1.store(len, Ordering::Relaxed);
        self.group_fd.store(sock.raw(), Ordering::Relaxed);
        self.mailbox_fd.store(mailbox.fd().raw(), Ordering::Relaxed);
        {
            let mut receiver = lock(&self.receiver);
            receiver.group = Some((sock, source));
            receiver.mailbox = Some((mailbox, Source::new(None)));
        }
        self.rethink_rx();
        // Only now that the group deals the segments out does this socket stop taking them.
        *filters = (admit.clone(), Some(split.clone()));
        self.attach_filters(&filters)
    }

    /// The program for the group's socket.
    fn group_program(&self, admit: &Admit, split: &Split) -> Vec<libc::sock_filter> {
        let split = Split {
            take: Take::All,
            ..split.clone()
        };
        filter::program(
            self.ipv4,
            self.ipv6,
            admit,
            Some(&split),
            self.drop_outgoing,
        )
    }

    /// Puts `filters` on the sockets: the main one's and, while in a group, the group's;
    /// the mailbox learns which shared ports this process listens on.
    pub(super) fn attach_filters(&self, filters: &(Admit, Option<Split>)) -> io::Result<()> {
        let (admit, split) = filters;
        // Processes that share listeners may see each other's segments (on the group's
        // socket after a change of members, on their own for client connections): the
        // kernel gives back those it has no connection for.
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
        if let Some(split) = split {
            let mut receiver = lock(&self.receiver);
            if let Some((sock, _)) = &receiver.group {
                filter::attach(sock, &self.group_program(admit, split))?;
            }
            if let Some((mailbox, _)) = &mut receiver.mailbox {
                mailbox.set_serving(&split.serving);
            }
        }
        Ok(())
    }
}
