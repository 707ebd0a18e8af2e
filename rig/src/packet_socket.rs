//! Seeing and sending an interface's packets: an `AF_PACKET, SOCK_DGRAM` socket for every
//! protocol (what LKL's backend uses), bound to one interface. It sees the interface's
//! packets in both directions, from the network header on, and sends packets out of it as
//! they are (no IP layer checks on the way).

use std::ffi::CString;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::Netns;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

/// A packet socket bound to one interface.
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
}

/// A packet a [`PacketSocket`] saw.
#[derive(Clone, Debug)]
pub struct Captured {
    /// EtherType (host order).
    pub protocol: u16,
    /// Sent on the interface (as opposed to received).
    pub outgoing: bool,
    /// From the network header on.
    pub data: Vec<u8>,
}

fn sockaddr_ll(ifindex: i32, protocol: u16) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data, all zeroes is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex;
    sll
}

impl PacketSocket {
    /// Opens the socket on `ifname` of `ns` (the socket keeps that namespace).
    pub fn open_in(ns: &Netns, ifname: &str) -> io::Result<PacketSocket> {
        ns.in_thread(|| PacketSocket::open(ifname))?
    }

    /// Opens the socket on `ifname` of the calling thread's network namespace.
    pub fn open(ifname: &str) -> io::Result<PacketSocket> {
        let name = CString::new(ifname)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
        let every_protocol = libc::ETH_P_ALL as u16;
        // SAFETY: socket takes integers only; a valid descriptor it returns is ours to own.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                i32::from(every_protocol.to_be()),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by socket and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: `name` is a NUL-terminated string alive during the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let sll = sockaddr_ll(ifindex, every_protocol);
        // SAFETY: sll is a valid sockaddr_ll of the given size, read during the call.
        let ret = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if ret != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSocket { fd, ifindex })
    }

    /// Sets the send and receive buffer sizes (SO_SNDBUF, SO_RCVBUF), within the host's
    /// limits.
    pub fn set_buffer_sizes(&self, bytes: i32) -> io::Result<()> {
        for option in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
            // SAFETY: the option value points at `bytes`, a c_int alive during the call.
            let ret = unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    (&bytes as *const i32).cast(),
                    size_of::<i32>() as libc::socklen_t,
                )
            };
            if ret != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// Sends `packet` (starting at its network header) out of the interface as EtherType
    /// `protocol`, once: a full transmit queue shows as ENOBUFS or EAGAIN.
    pub fn send(&self, packet: &[u8], protocol: u16) -> io::Result<()> {
        let sll = sockaddr_ll(self.ifindex, protocol);
        // SAFETY: the buffer and the sockaddr_ll are alive and of the given sizes during the
        // call, which only reads them.
        let ret = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The next packet queued on the socket, without waiting (WouldBlock when there is none).
    pub fn try_recv(&self) -> io::Result<Captured> {
        let mut buf = vec![0u8; 65536];
        let mut sll = sockaddr_ll(0, 0);
        let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: the kernel writes at most buf.len() bytes into buf and at most `len` bytes
        // into sll, both alive and exclusively ours during the call.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                (&mut sll as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        Ok(Captured {
            protocol: u16::from_be(sll.sll_protocol),
            outgoing: sll.sll_pkttype == libc::PACKET_OUTGOING,
            data: buf,
        })
    }

    /// The next packet within `timeout`, or None when none came.
    pub fn recv_timeout(&self, timeout: Duration) -> io::Result<Option<Captured>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd, alive during the call.
            let ready = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
            if ready < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if ready == 0 {
                return Ok(None);
            }
            match self.try_recv() {
                Ok(packet) => return Ok(Some(packet)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Everything queued on the socket so far.
    pub fn drain(&self) -> io::Result<Vec<Captured>> {
        let mut out = Vec::new();
        loop {
            match self.try_recv() {
                Ok(packet) => out.push(packet),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(out),
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Captured {
    /// The IP version of an IPv4 or IPv6 packet (the EtherType and the header's version
    /// agree, and the fixed header is all there).
    fn ip_version(&self) -> Option<u8> {
        let d = &self.data;
        match (self.protocol, d.first().map(|b| b >> 4)) {
            (ETH_P_IP, Some(4)) if d.len() >= 20 => Some(4),
            (ETH_P_IPV6, Some(6)) if d.len() >= 40 => Some(6),
            _ => None,
        }
    }

    /// The source address, for IPv4 and IPv6 packets.
    pub fn source(&self) -> Option<IpAddr> {
        let d = &self.data;
        match self.ip_version()? {
            4 => Some(IpAddr::from(<[u8; 4]>::try_from(&d[12..16]).unwrap())),
            _ => Some(IpAddr::from(<[u8; 16]>::try_from(&d[8..24]).unwrap())),
        }
    }

    /// The destination address, for IPv4 and IPv6 packets.
    pub fn destination(&self) -> Option<IpAddr> {
        let d = &self.data;
        match self.ip_version()? {
            4 => Some(IpAddr::from(<[u8; 4]>::try_from(&d[16..20]).unwrap())),
            _ => Some(IpAddr::from(<[u8; 16]>::try_from(&d[24..40]).unwrap())),
        }
    }

    /// The ICMP type of an unfragmented IPv4 ICMP packet.
    pub fn icmpv4_type(&self) -> Option<u8> {
        let d = &self.data;
        if self.protocol != ETH_P_IP || d.len() < 20 || d[9] != 1 {
            return None;
        }
        d.get(usize::from(d[0] & 0xf) * 4).copied()
    }

    /// The ICMPv6 type of an IPv6 packet, after any hop-by-hop, routing or destination
    /// options headers (MLD reports carry a hop-by-hop router alert).
    pub fn icmpv6_type(&self) -> Option<u8> {
        let d = &self.data;
        if self.protocol != ETH_P_IPV6 || d.len() < 40 {
            return None;
        }
        let (mut next, mut at) = (d[6], 40);
        while matches!(next, 0 | 43 | 60) {
            let ext = d.get(at..at + 2)?;
            next = ext[0];
            at += (usize::from(ext[1]) + 1) * 8;
        }
        if next == 58 {
            d.get(at).copied()
        } else {
            None
        }
    }
}
