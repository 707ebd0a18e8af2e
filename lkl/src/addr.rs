//! Socket addresses: std's `SocketAddr` to and from the kernel's `sockaddr_in`/`sockaddr_in6`.

use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::consts::{AF_INET, AF_INET6};
use crate::sys;

/// Room for any address the kernel returns, laid out as the kernel wants it.
#[repr(C)]
pub(crate) union RawAddr {
    v4: sys::sockaddr_in,
    v6: sys::sockaddr_in6,
    storage: sys::__kernel_sockaddr_storage,
}

impl RawAddr {
    pub(crate) fn zeroed() -> RawAddr {
        RawAddr {
            storage: sys::__kernel_sockaddr_storage::default(),
        }
    }

    /// The address and its length, ready for bind/connect/sendto.
    pub(crate) fn from_std(addr: &SocketAddr) -> (RawAddr, u32) {
        let mut raw = RawAddr::zeroed();
        match addr {
            SocketAddr::V4(a) => {
                raw.v4 = sys::sockaddr_in {
                    sin_family: AF_INET as sys::__kernel_sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: sys::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    ..Default::default()
                };
                (raw, size_of::<sys::sockaddr_in>() as u32)
            }
            SocketAddr::V6(a) => {
                let mut v6 = sys::sockaddr_in6 {
                    sin6_family: AF_INET6 as sys::__kernel_sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo().to_be(),
                    sin6_scope_id: a.scope_id(),
                    ..Default::default()
                };
                v6.sin6_addr.in6_u.u6_addr8 = a.ip().octets();
                raw.v6 = v6;
                (raw, size_of::<sys::sockaddr_in6>() as u32)
            }
        }
    }

    /// The address the kernel wrote (`len` bytes of it); None for families other than IPv4/6
    /// or a length too short for them (an unconnected datagram peer, for example).
    pub(crate) fn to_std(&self, len: u32) -> Option<SocketAddr> {
        // SAFETY: every variant is plain data and the union was zero-initialized, so reading
        // any field is defined; the length check says which one the kernel filled in.
        unsafe {
            if len as usize >= size_of::<sys::sockaddr_in>()
                && u32::from(self.v4.sin_family) == AF_INET
            {
                let ip = Ipv4Addr::from(self.v4.sin_addr.s_addr.to_ne_bytes());
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(self.v4.sin_port),
                )))
            } else if len as usize >= size_of::<sys::sockaddr_in6>()
                && u32::from(self.v6.sin6_family) == AF_INET6
            {
                let ip = Ipv6Addr::from(self.v6.sin6_addr.in6_u.u6_addr8);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(self.v6.sin6_port),
                    u32::from_be(self.v6.sin6_flowinfo),
                    self.v6.sin6_scope_id,
                )))
            } else {
                None
            }
        }
    }

    pub(crate) fn as_ptr(&self) -> *const RawAddr {
        self
    }

    pub(crate) const CAPACITY: u32 = size_of::<RawAddr>() as u32;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_v4_and_v6_in_network_byte_order() {
        for text in ["127.0.0.1:8080", "[::1]:443", "[fe80::1%3]:9"] {
            let addr: SocketAddr = text.parse().unwrap();
            let (raw, len) = RawAddr::from_std(&addr);
            assert_eq!(raw.to_std(len), Some(addr), "{text}");
        }
        let (raw, len) = RawAddr::from_std(&"10.1.2.3:258".parse().unwrap());
        assert_eq!(len, 16);
        // SAFETY: the v4 variant was just written.
        let v4 = unsafe { raw.v4 };
        assert_eq!(v4.sin_port.to_ne_bytes(), [1, 2], "port 258 big-endian");
        assert_eq!(v4.sin_addr.s_addr.to_ne_bytes(), [10, 1, 2, 3]);
        assert_eq!(
            RawAddr::zeroed().to_std(RawAddr::CAPACITY),
            None,
            "AF_UNSPEC is no address"
        );
    }
}
