//! The receive ring the packet socket shares with the host kernel (TPACKET_V2, see the
//! kernel's Documentation/networking/packet_mmap.rst): the host copies each packet into the
//! next free frame as it arrives and flips the frame's status to "user"; we hand the packet
//! to LKL and flip it back. No system call per packet, and the host's copy is made where the
//! packet arrives rather than in a receive call of ours.
//!
//! TPACKET_V2 rather than V3: V3 hands over whole blocks, each only when it is full or its
//! timer (at least 1 ms) fires, a delay on every request/response exchange. A packet too big
//! for a frame (a coalesced GSO packet) is cloned to the socket's ordinary receive queue
//! (PACKET_COPY_THRESH) and its frame marked TP_STATUS_COPY; the backend reads it from there.

use std::ffi::c_int;
use std::io;
use std::mem::size_of;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{sys, SOL_PACKET};

const PACKET_RX_RING: c_int = 5;
const PACKET_COPY_THRESH: c_int = 7;
const PACKET_VERSION: c_int = 10;
const TPACKET_V2: c_int = 1;
const TPACKET_ALIGNMENT: usize = 16;
/// `sizeof(struct tpacket2_hdr)`.
const TPACKET2_HDRLEN: usize = 32;

pub const TP_STATUS_KERNEL: u32 = 0;
pub const TP_STATUS_USER: u32 = 1;
pub const TP_STATUS_COPY: u32 = 1 << 1;

/// Frames live in blocks of physically contiguous pages; 64 KiB is an order-4 allocation.
const MIN_BLOCK: usize = 64 << 10;
/// Frames hold at most this much; bigger packets take the TP_STATUS_COPY path.
const MAX_FRAME: usize = 64 << 10;

fn tpacket_align(n: usize) -> usize {
    n.div_ceil(TPACKET_ALIGNMENT) * TPACKET_ALIGNMENT
}

/// `struct tpacket_req`.
#[repr(C)]
struct TpacketReq {
    tp_block_size: u32,
    tp_block_nr: u32,
    tp_frame_size: u32,
    tp_frame_nr: u32,
}

/// The first fields of `struct tpacket2_hdr`, at the start of every frame.
#[repr(C)]
#[derive(Clone, Copy)]
struct Tpacket2Hdr {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
}

/// A filled frame, as the host left it.
pub struct Frame<'a> {
    /// TP_STATUS_* bits: COPY, and the checksum state (CSUMNOTREADY, CSUM_VALID).
    pub status: u32,
    /// The frame from its start; `mac`, `net` and `end` index into it.
    bytes: &'a [u8],
    /// Where the link-layer header (or, without one, the packet) starts.
    pub mac: usize,
    /// Where the IP packet starts.
    pub net: usize,
    /// The end of what the frame holds.
    end: usize,
    /// The packet's whole length from `net`, which may exceed what the frame holds.
    pub len: usize,
}

impl<'a> Frame<'a> {
    /// The IP packet, if the frame holds all of it.
    pub fn packet(&self) -> Option<&'a [u8]> {
        (self.net + self.len == self.end).then(|| &self.bytes[self.net..self.end])
    }

    /// The sender's link-layer address etc. (`struct sockaddr_ll` after the header).
    pub fn sll(&self) -> libc::sockaddr_ll {
        let at = tpacket_align(TPACKET2_HDRLEN);
        // SAFETY: the host writes a sockaddr_ll at this offset of every frame, within it
        // (the frame is larger than its fixed headers); read unaligned, as plain data.
        unsafe {
            self.bytes[at..at + size_of::<libc::sockaddr_ll>()]
                .as_ptr()
                .cast::<libc::sockaddr_ll>()
                .read_unaligned()
        }
    }

    /// The host's virtio_net_hdr, which it writes just before the link-layer header when a
    /// SOCK_RAW socket has PACKET_VNET_HDR and its kernel supports that for rings (older
    /// ones leave no room for it: then None).
    pub fn vnet_hdr(&self) -> Option<[u8; super::VNET_HDR_LEN]> {
        let maclen = self.net - self.mac;
        let without =
            tpacket_align(TPACKET2_HDRLEN + size_of::<libc::sockaddr_ll>() + maclen.max(16));
        if self.net != without + super::VNET_HDR_LEN {
            return None;
        }
        let mut hdr = [0u8; super::VNET_HDR_LEN];
        hdr.copy_from_slice(&self.bytes[self.mac - super::VNET_HDR_LEN..self.mac]);
        Some(hdr)
    }
}

/// The mapped ring and our read position in it.
pub struct RxRing {
    base: *mut u8,
    frame_size: usize,
    frames: usize,
    next: usize,
}

// SAFETY: the mapping is owned by the ring (unmapped on drop) and only touched through &mut
// self or, for reads of frames the host handed over, &self; moving it to another thread is
// fine.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Puts a ring of about `bytes` (whole blocks, at least one) sized for packets of `mtu`
    /// bytes on `sock` (before it is bound, and after PACKET_VNET_HDR, which a socket with a
    /// ring refuses).
    pub fn set_up(sock: &sys::Fd, mtu: u32, bytes: usize) -> io::Result<RxRing> {
        // The frame's headers, a link-layer header and the vnet header fit in 128 bytes.
        let frame_size = (mtu as usize + 128)
            .next_power_of_two()
            .clamp(2048, MAX_FRAME);
        let block_size = frame_size.max(MIN_BLOCK);
        let blocks = (bytes / block_size).max(1);
        let frames = blocks * (block_size / frame_size);
        let req = TpacketReq {
            tp_block_size: block_size as u32,
            tp_block_nr: blocks as u32,
            tp_frame_size: frame_size as u32,
            tp_frame_nr: frames as u32,
        };
        let one: c_int = 1;
        // SAFETY: PACKET_VERSION and PACKET_COPY_THRESH take an int, PACKET_RX_RING a
        // tpacket_req; the kernel copies each.
        unsafe {
            sys::setsockopt(sock, SOL_PACKET, PACKET_VERSION, &TPACKET_V2)?;
            sys::setsockopt(sock, SOL_PACKET, PACKET_COPY_THRESH, &one)?;
            sys::setsockopt(sock, SOL_PACKET, PACKET_RX_RING, &req)?;
        }
        let base = sys::mmap_shared(sock, frames * frame_size)?;
        Ok(RxRing {
            base,
            frame_size,
            frames,
            next: 0,
        })
    }

    pub fn frames(&self) -> usize {
        self.frames
    }

    /// The status word of frame `i`.
    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: frame i starts inside the mapping, 16-byte aligned, with its status word
        // first; the host and we access it atomically only.
        unsafe { AtomicU32::from_ptr(self.base.add(i * self.frame_size).cast()) }
    }

    /// The frame at the read position, once the host has handed it over.
    pub fn peek(&self) -> Option<Frame<'_>> {
        // Acquire: the frame's contents, written before the host set the status, are seen.
        let status = self.status(self.next).load(Ordering::Acquire);
        if status & TP_STATUS_USER == 0 {
            return None;
        }
        // SAFETY: the frame is ours until release() hands it back; the host does not write
        // it meanwhile.
        let bytes = unsafe {
            std::slice::from_raw_parts(self.base.add(self.next * self.frame_size), self.frame_size)
        };
        // SAFETY: every frame starts with a tpacket2_hdr; read unaligned, as plain data.
        let h = unsafe { bytes.as_ptr().cast::<Tpacket2Hdr>().read_unaligned() };
        let (mac, net) = (usize::from(h.tp_mac), usize::from(h.tp_net));
        // The host's own offsets; checked anyway, so that a bad frame cannot index outside.
        let end = mac + h.tp_snaplen as usize;
        if net < mac || end > bytes.len() || net > end || (h.tp_len as usize) < net - mac {
            // One that packet() refuses.
            return Some(Frame {
                status,
                bytes,
                mac: 0,
                net: 0,
                end: 1,
                len: 0,
            });
        }
        Some(Frame {
            status,
            bytes,
            mac,
            net,
            end,
            len: h.tp_len as usize - (net - mac),
        })
    }

    /// Hands the frame at the read position back to the host and moves on.
    pub fn release(&mut self) {
        // Release: our reads of the frame are done before the host may overwrite it.
        self.status(self.next)
            .store(TP_STATUS_KERNEL, Ordering::Release);
        self.next = (self.next + 1) % self.frames;
    }
}

impl RxRing {
    /// The mapping: start address and length.
    pub(super) fn span(&self) -> (usize, usize) {
        (self.base as usize, self.frames * self.frame_size)
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and no frame borrow outlives &self.
        unsafe { sys::munmap(self.base, self.frames * self.frame_size) };
    }
}
