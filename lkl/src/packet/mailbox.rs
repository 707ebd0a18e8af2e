//! Segments passed between the processes that serve listeners together (`share.rs`).
//!
//! The fanout group deals the segments of the shared listeners' ports out by flow hash, taken
//! modulo the number of members: while the members stay the same, every segment of a flow
//! reaches the process whose kernel has it. When one joins or leaves (a reload starts new
//! workers, the old ones finish and end), many flows hash elsewhere. A kernel given a segment
//! of a connection it does not have gives it back ([`Delivery::Foreign`]), and its process
//! passes it on to the others' mailboxes: a unix datagram socket of each, named after its pid
//! in the abstract namespace and listed in [`Members`], a table in memory all processes of
//! the program share. The kernel that has the connection takes it; the others drop it.
//!
//! New connections ([`Mailbox::route_new_connection`]): a SYN dealt to a process that does
//! not listen on its port (an old worker finishing its connections) is handed to one member
//! that does, and dropped while none does (the peer sends it again, as to a host listener
//! with a full queue). For a moment after a newer process is forked with the listeners, the
//! older ones hand theirs to the newer ones that joined (after the first 100 ms, so that the
//! first to join does not get them all), and drop them until then: a
//! reload's old workers are about to close their listeners (nginx tells them to 100 ms after
//! it starts the new ones), and a handshake their kernel began would then end in a reset.
//! On the host all workers share one listener's queue, so none is lost.
//!
//! A mailbox holds few datagrams (the host's `net.unix.max_dgram_qlen`, 10 by default): a
//! segment that finds it full is lost, and the peer's TCP sends it again as after any loss.
//!
//! [`Delivery::Foreign`]: crate::netdev::Delivery::Foreign

use std::io;
use std::mem::{size_of, zeroed};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::sys;
use crate::netdev::VNET_HDR_LEN;

/// How many processes the table holds. Processes beyond it still serve; only segments hashed
/// away from them after a change of members are lost.
pub const MAX_MEMBERS: usize = 64;

/// The processes of a program that serve its shared listeners: one slot each, in memory the
/// processes share (see [`Members::map_shared`]).
#[repr(C)]
pub struct Members {
    /// How many processes have been forked with the listeners (see [`Members::count_fork`]).
    forked: AtomicU32,
    /// When the last one was: CLOCK_MONOTONIC, in ms.
    forked_ms: AtomicU64,
    slots: [Slot; MAX_MEMBERS],
}

#[repr(C)]
struct Slot {
    /// The member's pid; 0 when the slot is free.
    pid: AtomicU32,
    /// Non-zero while the member listens on the shared ports.
    accepting: AtomicU32,
    /// When it joined: CLOCK_MONOTONIC, in ms (0 while it is entering).
    joined_ms: AtomicU64,
}

/// Processes forked or joined this much later than a process count as newer (a server's
/// first workers are forked and join within a few ms of each other)...
const NEWER_MS: u64 = 100;
/// ...and take the new connections of the older ones this long after.
const NEWCOMER_MS: u64 = 1000;

/// What becomes of a segment from the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// To this process's kernel.
    Here,
    /// Handed to another process, or dropped.
    Elsewhere,
}

impl Members {
    /// A new empty table in an anonymous shared mapping, which every process forked from now
    /// on shares; it is never unmapped. Map it before the first fork.
    pub fn map_shared() -> io::Result<&'static Members> {
        // SAFETY: a new anonymous shared mapping; nothing else refers to it.
        let page = unsafe {
            crate::raw_syscall!(
                libc::SYS_mmap,
                0usize,
                size_of::<Members>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0usize
            )
        };
        if page < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the mapping is zeroed, suitably aligned (a page) and large enough; all
        // zeroes is an empty table (atomics only); it stays mapped for the process's life and
        // is only ever used through atomics, also by the other processes.
        Ok(unsafe { &*(page as *const Members) })
    }

    /// Counts a process forked with the listeners; returns its number in fork order, the
    /// first forked process's 1 (the process that forked first is 0).
    pub fn count_fork(&self) -> u32 {
        self.forked_ms.store(monotonic_ms(), Ordering::Release);
        self.forked.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Takes a free slot for `pid`; None when the table is full.
    fn enter(&self, pid: u32) -> Option<usize> {
        let slot = self.slots.iter().position(|s| {
            s.pid
                .compare_exchange(0, pid, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })?;
        self.slots[slot]
            .joined_ms
            .store(monotonic_ms(), Ordering::Release);
        Some(slot)
    }

    /// Frees `slot` if `pid` still holds it.
    fn free(&self, slot: usize, pid: u32) {
        let _ = self.slots[slot]
            .pid
            .compare_exchange(pid, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}

/// This process's mailbox and its slot in the table.
pub(super) struct Mailbox {
    sock: sys::Fd,
    members: &'static Members,
    slot: usize,
    pid: u32,
    group: u32,
    /// The shared ports this process listens on: SYNs to others are handed over.
    serving: Vec<u16>,
}

impl Mailbox {
    /// Opens this process's mailbox for group `group` and enters it in `members`.
    pub(super) fn open(group: u32, members: &'static Members) -> io::Result<Mailbox> {
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() } as u32;
        let sock = sys::socket(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )?;
        let (addr, len) = address(group, pid);
        sys::bind_unix(&sock, &addr, len)?;
        let slot = members.enter(pid).ok_or_else(|| {
            io::Error::other(format!(
                "the table of the program's {MAX_MEMBERS} serving processes is full"
            ))
        })?;
        Ok(Mailbox {
            sock,
            members,
            slot,
            pid,
            group,
            serving: Vec::new(),
        })
    }

    pub(super) fn fd(&self) -> &sys::Fd {
        &self.sock
    }

    /// The shared ports this process now listens on (none: it takes no new connections).
    pub(super) fn set_serving(&mut self, ports: &[u16]) {
        self.serving = ports.to_vec();
        self.members.slots[self.slot]
            .accepting
            .store((!ports.is_empty()).into(), Ordering::Release);
    }

    /// Where a segment from the group goes: a new connection goes to a newer process, or is
    /// dropped while one is starting, or to one that listens when this one does not (see
    /// the top); everything else stays here.
    pub(super) fn route_new_connection(&self, hdr: &[u8; VNET_HDR_LEN], packet: &[u8]) -> Route {
        let Some(port) = new_connection_port(packet) else {
            return Route::Here;
        };
        let now = monotonic_ms();
        let mine = self.members.slots[self.slot]
            .joined_ms
            .load(Ordering::Acquire);
        let since = (mine + NEWER_MS).max(now.saturating_sub(NEWCOMER_MS));
        let forked = self.members.forked_ms.load(Ordering::Acquire);
        // The newer processes of a batch join a few ms apart: the first to join would get
        // them all (kept-alive clients stay), so none is handed over before all can be in.
        if forked >= since && now < forked + NEWER_MS {
            return Route::Elsewhere;
        }
        if self.hand_over(hdr, packet, since) {
            return Route::Elsewhere;
        }
        // A newer process is still starting: dropped, the peer sends it again. (Handed to
        // another old one, it could start a handshake just before that one stops listening.)
        if forked >= since {
            return Route::Elsewhere;
        }
        if !self.serving.contains(&port) {
            self.hand_over(hdr, packet, 0);
            return Route::Elsewhere;
        }
        Route::Here
    }

    /// Whether `packet` (passed on by another process) opens a connection to a port this
    /// process does not listen on (any more): it is dropped rather than refused.
    pub(super) fn not_for_us(&self, packet: &[u8]) -> bool {
        new_connection_port(packet).is_some_and(|port| !self.serving.contains(&port))
    }

    /// Passes a segment this kernel gave back to every other member.
    pub(super) fn pass_on(&self, hdr: &[u8; VNET_HDR_LEN], packet: &[u8]) {
        for slot in 0..MAX_MEMBERS {
            let pid = self.members.slots[slot].pid.load(Ordering::Acquire);
            if pid != 0 && pid != self.pid {
                self.send(slot, pid, hdr, packet);
            }
        }
    }

    /// Hands a new connection's SYN to one other member that accepts and joined at
    /// `joined_since` (ms) or later, chosen by the SYN's source port among those; false when
    /// none does. Chosen among the candidates, not by table slot: a reload's new workers take
    /// neighbouring slots, and counting from a slot would give the first nearly all.
    fn hand_over(&self, hdr: &[u8; VNET_HDR_LEN], packet: &[u8], joined_since: u64) -> bool {
        let mut candidates = [(0usize, 0u32); MAX_MEMBERS];
        let mut n = 0;
        for (slot, s) in self.members.slots.iter().enumerate() {
            let pid = s.pid.load(Ordering::Acquire);
            if pid != 0
                && pid != self.pid
                && s.accepting.load(Ordering::Acquire) != 0
                && s.joined_ms.load(Ordering::Acquire) >= joined_since
            {
                candidates[n] = (slot, pid);
                n += 1;
            }
        }
        let start = source_port(packet).map_or(0, usize::from);
        (0..n).any(|i| {
            let (slot, pid) = candidates[(start + i) % n];
            self.send(slot, pid, hdr, packet)
        })
    }

    /// Sends the segment to `pid`'s mailbox; false when it is gone (its slot is freed then)
    /// or full.
    fn send(&self, slot: usize, pid: u32, hdr: &[u8; VNET_HDR_LEN], packet: &[u8]) -> bool {
        let (mut addr, len) = address(self.group, pid);
        let mut iov = [
            libc::iovec {
                iov_base: hdr.as_ptr().cast_mut().cast(),
                iov_len: hdr.len(),
            },
            libc::iovec {
                iov_base: packet.as_ptr().cast_mut().cast(),
                iov_len: packet.len(),
            },
        ];
        let msg = sys::msghdr(Some((&mut addr, len)), &mut iov);
        // SAFETY: msg names the address and the two buffers, alive during the call, which
        // only reads them.
        match unsafe { sys::sendmsg(&self.sock, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) } {
            Ok(_) => true,
            Err(e) => {
                // No socket of that name: the process ended without freeing its slot
                // (kill -9).
                if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                    self.members.free(slot, pid);
                }
                false
            }
        }
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        self.members.free(self.slot, self.pid);
    }
}

/// Receives the next segment another process passed on into `buf`: its length and
/// virtio_net_hdr; None when none waits.
pub(super) fn recv(
    sock: &sys::Fd,
    buf: &mut [u8],
) -> io::Result<Option<(usize, [u8; VNET_HDR_LEN])>> {
    loop {
        let mut hdr = [0u8; VNET_HDR_LEN];
        let mut iov = [
            libc::iovec {
                iov_base: hdr.as_mut_ptr().cast(),
                iov_len: hdr.len(),
            },
            libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            },
        ];
        let mut msg = sys::msghdr::<()>(None, &mut iov);
        // SAFETY: msg names the two buffers, exclusively ours during the call.
        let len = match unsafe { sys::recvmsg(sock, &mut msg, libc::MSG_DONTWAIT) } {
            Ok(len) => len,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        };
        // Only this program's processes know the name; anything shorter than a header and
        // an IP header is not theirs.
        if len >= VNET_HDR_LEN + 20 && msg.msg_flags & libc::MSG_TRUNC == 0 {
            return Ok(Some((len - VNET_HDR_LEN, hdr)));
        }
    }
}

/// CLOCK_MONOTONIC in ms: one clock for all processes.
fn monotonic_ms() -> u64 {
    crate::host_ops::monotonic_ns() / 1_000_000
}

/// The abstract name of `pid`'s mailbox in group `group`, and its length.
fn address(group: u32, pid: u32) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let name = format!("lkl-hijack/group/{group}/{pid}");
    // sun_path[0] stays 0: the abstract namespace.
    for (d, s) in addr.sun_path[1..].iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    let len = size_of::<libc::sa_family_t>() + 1 + name.len();
    (addr, len as libc::socklen_t)
}

/// The TCP header of a bare IPv4 or IPv6 packet (no IPv6 extension headers), unfragmented.
fn tcp_header(packet: &[u8]) -> Option<&[u8]> {
    let (proto, offset) = match packet.first()? >> 4 {
        4 => {
            let fragment = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]) & 0x1fff;
            if fragment != 0 {
                return None;
            }
            (*packet.get(9)?, usize::from(packet[0] & 0xf) * 4)
        }
        6 => (*packet.get(6)?, 40),
        _ => return None,
    };
    if proto != libc::IPPROTO_TCP as u8 {
        return None;
    }
    packet.get(offset..offset + 20)
}

fn source_port(packet: &[u8]) -> Option<u16> {
    tcp_header(packet).map(|t| u16::from_be_bytes([t[0], t[1]]))
}

/// The destination port of a new connection's first segment (SYN without ACK).
fn new_connection_port(packet: &[u8]) -> Option<u16> {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    let t = tcp_header(packet)?;
    (t[13] & (SYN | ACK) == SYN).then(|| u16::from_be_bytes([t[2], t[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 TCP segment to `dport` with `flags`.
    fn v4(dport: u16, flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[9] = 6;
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p[33] = flags;
        p
    }

    #[test]
    fn only_a_syn_without_ack_opens_a_connection() {
        assert_eq!(new_connection_port(&v4(80, 0x02)), Some(80));
        assert_eq!(new_connection_port(&v4(80, 0x12)), None);
        assert_eq!(new_connection_port(&v4(80, 0x10)), None);
        let mut udp = v4(80, 0x02);
        udp[9] = 17;
        assert_eq!(new_connection_port(&udp), None);
        let mut later_fragment = v4(80, 0x02);
        later_fragment[7] = 1;
        assert_eq!(new_connection_port(&later_fragment), None);
        let mut v6 = vec![0u8; 60];
        v6[0] = 0x60;
        v6[6] = 6;
        v6[42..44].copy_from_slice(&443u16.to_be_bytes());
        v6[53] = 0x02;
        assert_eq!(new_connection_port(&v6), Some(443));
        assert_eq!(new_connection_port(&v6[..50]), None);
    }

    #[test]
    fn segments_reach_the_other_members_and_new_connections_one_that_accepts() {
        let members = Members::map_shared().unwrap();
        let group = 0xfff0_0000 | std::process::id();
        let mut a = Mailbox::open(group, members).unwrap();
        // Another process's mailbox, as it enters itself (it cannot be a Mailbox here: one
        // process has one pid).
        let b_pid = a.pid + 1_000_000;
        let b_slot = members.enter(b_pid).unwrap();
        let (addr, len) = address(group, b_pid);
        let b_sock = sys::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0).unwrap();
        sys::bind_unix(&b_sock, &addr, len).unwrap();
        let hdr = [7u8; VNET_HDR_LEN];
        let mut buf = vec![0u8; 2048];

        a.pass_on(&hdr, &v4(80, 0x10));
        let (n, got) = recv(&b_sock, &mut buf).unwrap().expect("passed on");
        assert_eq!((&buf[..n], got), (&v4(80, 0x10)[..], hdr));
        assert!(recv(a.fd(), &mut buf).unwrap().is_none(), "not to itself");

        a.set_serving(&[80]);
        assert!(a.not_for_us(&v4(81, 0x02)));
        assert!(!a.not_for_us(&v4(80, 0x02)));
        assert!(!a.not_for_us(&v4(81, 0x10)));
        // b joined with a: a keeps its own new connections.
        assert_eq!(a.route_new_connection(&hdr, &v4(80, 0x02)), Route::Here);
        assert_eq!(a.route_new_connection(&hdr, &v4(80, 0x10)), Route::Here);
        assert_eq!(
            a.route_new_connection(&hdr, &v4(81, 0x02)),
            Route::Elsewhere
        );
        assert!(
            recv(&b_sock, &mut buf).unwrap().is_none(),
            "b does not accept: dropped"
        );
        members.slots[b_slot].accepting.store(1, Ordering::Release);
        assert_eq!(
            a.route_new_connection(&hdr, &v4(81, 0x02)),
            Route::Elsewhere
        );
        assert!(recv(&b_sock, &mut buf).unwrap().is_some(), "handed to b");
        // b joined later than a (a reload's new worker): for a while it takes a's too.
        let b_joined = &members.slots[b_slot].joined_ms;
        b_joined.store(monotonic_ms(), Ordering::Release);
        let a_joined = &members.slots[a.slot].joined_ms;
        a_joined.store(monotonic_ms() - 50 * NEWCOMER_MS, Ordering::Release);
        assert_eq!(
            a.route_new_connection(&hdr, &v4(80, 0x02)),
            Route::Elsewhere
        );
        assert!(
            recv(&b_sock, &mut buf).unwrap().is_some(),
            "handed to the newcomer"
        );
        b_joined.store(monotonic_ms() - 2 * NEWCOMER_MS, Ordering::Release);
        a_joined.store(monotonic_ms() - 5 * NEWCOMER_MS, Ordering::Release);
        assert_eq!(
            a.route_new_connection(&hdr, &v4(80, 0x02)),
            Route::Here,
            "not for long"
        );
        // A newer process was just forked and has not joined yet.
        members.count_fork();
        assert_eq!(
            a.route_new_connection(&hdr, &v4(80, 0x02)),
            Route::Elsewhere
        );
        assert!(
            recv(&b_sock, &mut buf).unwrap().is_none(),
            "dropped until it joins"
        );
        members
            .forked_ms
            .store(monotonic_ms() - 2 * NEWCOMER_MS, Ordering::Release);
        assert_eq!(a.route_new_connection(&hdr, &v4(80, 0x02)), Route::Here);

        // b's socket goes away without freeing its slot, as after kill -9.
        drop(b_sock);
        a.pass_on(&hdr, &v4(80, 0x10));
        assert_eq!(members.slots[b_slot].pid.load(Ordering::Acquire), 0);
    }

    #[test]
    fn new_connections_handed_over_are_shared_by_newcomers_in_neighbouring_slots() {
        let members = Members::map_shared().unwrap();
        let group = 0xffe0_0000 | std::process::id();
        let a = Mailbox::open(group, members).unwrap();
        // A reload's two new workers: the next two free slots, joined now, listening.
        let newcomers: Vec<_> = (1..=2)
            .map(|k| {
                let pid = a.pid + k * 1_000_000;
                let slot = members.enter(pid).unwrap();
                members.slots[slot].accepting.store(1, Ordering::Release);
                let (addr, len) = address(group, pid);
                let sock =
                    sys::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0).unwrap();
                sys::bind_unix(&sock, &addr, len).unwrap();
                (slot, sock)
            })
            .collect();
        assert_eq!(newcomers[1].0, newcomers[0].0 + 1, "neighbouring slots");
        let hdr = [0u8; VNET_HDR_LEN];
        let mut buf = vec![0u8; 2048];
        let mut got = [0usize; 2];
        // Eight clients reconnecting at once, as kept-alive clients do after a reload; a
        // mailbox queues at most 10, so each is read as it arrives.
        for sport in 40000..40008u16 {
            let mut syn = v4(80, 0x02);
            syn[20..22].copy_from_slice(&sport.to_be_bytes());
            assert!(a.hand_over(&hdr, &syn, 0), "handed over");
            for (n, (_, sock)) in got.iter_mut().zip(&newcomers) {
                while recv(sock, &mut buf).unwrap().is_some() {
                    *n += 1;
                }
            }
        }
        assert_eq!(got, [4, 4], "both newcomers take their share");
    }
}
