//! Interface configuration inside the kernel, through the classic ioctls (SIOCSIF*, SIOCADDRT)
//! and /proc/sys: flags, MTU, IPv4/IPv6 addresses, a point-to-point peer, default routes and
//! the IPv6 sysctls that keep a device from soliciting routers.
//!
//! ioctls rather than rtnetlink: each step is one fixed-size struct and one call, and the
//! kernel answers with an errno we can name.

use std::ffi::{c_char, c_int, c_long, c_ulong, c_ushort, c_void};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ptr;

use crate::consts::{AF_INET, AF_INET6, SOCK_CLOEXEC, SOCK_DGRAM};
use crate::{sys, Errno, Fd, Kernel};

/// `struct in6_ifreq` (linux/ipv6.h), which bindgen is not given.
#[repr(C)]
struct In6Ifreq {
    addr: [u8; 16],
    prefixlen: u32,
    ifindex: c_int,
}

/// `struct in6_rtmsg` (linux/ipv6_route.h), 64-bit layout (lkl's `long` is the host's).
#[repr(C)]
struct In6Rtmsg {
    dst: [u8; 16],
    src: [u8; 16],
    gateway: [u8; 16],
    rtmsg_type: u32,
    dst_len: u16,
    src_len: u16,
    metric: u32,
    info: c_ulong,
    flags: u32,
    ifindex: c_int,
}

/// `struct rtentry` (linux/route.h), 64-bit layout.
#[repr(C)]
struct Rtentry {
    pad1: c_ulong,
    dst: sys::sockaddr,
    gateway: sys::sockaddr,
    genmask: sys::sockaddr,
    flags: c_ushort,
    pad2: i16,
    pad3: c_ulong,
    pad4: *mut c_void,
    metric: i16,
    dev: *mut c_char,
    mtu: c_ulong,
    window: c_ulong,
    irtt: c_ushort,
}

// linux/route.h and linux/ipv6_route.h
const RTF_UP: u16 = 0x0001;
const RTF_GATEWAY: u16 = 0x0002;
/// Route metric of the default routes we add (ip route's default for IPv6 is 1024; any works).
const DEFAULT_ROUTE_METRIC: u32 = 1;

/// An IPv4 address with prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
}

/// An IPv6 address with prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Net {
    pub addr: Ipv6Addr,
    pub prefix_len: u8,
}

/// Everything [`Kernel::configure_interface`] sets on a device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceConfig {
    pub mtu: Option<u32>,
    pub ipv4: Option<Ipv4Net>,
    /// Point-to-point peer (SIOCSIFDSTADDR).
    pub ipv4_peer: Option<Ipv4Addr>,
    /// Default route through this gateway; without one, through the device itself.
    pub ipv4_gateway: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Net>,
    pub ipv6_gateway: Option<Ipv6Addr>,
}

/// Copies an interface name into an `ifreq`.
fn ifreq_for(name: &str) -> Result<sys::ifreq, Errno> {
    let mut ifr = sys::ifreq::default();
    // SAFETY: ifrn_name is the only member of its union, and the default is all zeroes.
    let ifr_name = unsafe { &mut ifr.ifr_ifrn.ifrn_name };
    if name.is_empty() || name.len() >= ifr_name.len() || name.as_bytes().contains(&0) {
        return Err(Errno::EINVAL);
    }
    for (dst, &src) in ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = src as c_char;
    }
    Ok(ifr)
}

fn sockaddr_v4(addr: Ipv4Addr) -> sys::sockaddr {
    let sin = sys::sockaddr_in {
        sin_family: AF_INET as sys::__kernel_sa_family_t,
        sin_addr: sys::in_addr {
            s_addr: u32::from_ne_bytes(addr.octets()),
        },
        ..Default::default()
    };
    // SAFETY: sockaddr_in and sockaddr are both 16 bytes of plain data; this is the type pun
    // the ioctl ABI is defined with.
    unsafe { std::mem::transmute::<sys::sockaddr_in, sys::sockaddr>(sin) }
}

fn prefix_to_netmask(prefix_len: u8) -> Ipv4Addr {
    match prefix_len {
        0 => Ipv4Addr::UNSPECIFIED,
        n => Ipv4Addr::from(u32::MAX << (32 - u32::from(n.min(32)))),
    }
}

impl Kernel {
    /// Runs `f` with a throwaway datagram socket of `family` (the ioctls need some socket).
    fn with_socket<T>(
        &self,
        family: u32,
        f: impl FnOnce(Fd) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        let fd = self.socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0)?;
        let result = f(fd);
        let closed = self.close(fd);
        let value = result?;
        closed.map(|()| value)
    }

    /// An ioctl on `T`, which must be what `req` reads and writes.
    fn ioctl_on<T>(&self, fd: Fd, req: u32, arg: &mut T) -> Result<c_long, Errno> {
        // SAFETY: callers pair each request with the struct it takes; arg lives across the
        // call and is exclusively borrowed.
        unsafe { self.ioctl(fd, req, ptr::addr_of_mut!(*arg).cast::<c_void>()) }
    }

    /// An ifreq request on an AF_INET socket; returns the ifreq the kernel wrote back.
    fn ifreq_ioctl(
        &self,
        name: &str,
        req: u32,
        fill: impl FnOnce(&mut sys::ifreq),
    ) -> Result<sys::ifreq, Errno> {
        let mut ifr = ifreq_for(name)?;
        fill(&mut ifr);
        self.with_socket(AF_INET, |fd| self.ioctl_on(fd, req, &mut ifr))?;
        Ok(ifr)
    }

    /// The ifindex of interface `name` (SIOCGIFINDEX).
    pub fn interface_index(&self, name: &str) -> Result<i32, Errno> {
        let ifr = self.ifreq_ioctl(name, sys::SIOCGIFINDEX, |_| {})?;
        // SAFETY: SIOCGIFINDEX filled in ifru_ivalue.
        Ok(unsafe { ifr.ifr_ifru.ifru_ivalue })
    }

    /// The name of interface `ifindex` (SIOCGIFNAME).
    pub fn interface_name(&self, ifindex: i32) -> Result<String, Errno> {
        let mut ifr = sys::ifreq::default();
        ifr.ifr_ifru.ifru_ivalue = ifindex;
        self.with_socket(AF_INET, |fd| self.ioctl_on(fd, sys::SIOCGIFNAME, &mut ifr))?;
        // SAFETY: SIOCGIFNAME wrote a NUL-terminated name into ifrn_name (zeroed before).
        let raw = unsafe { ifr.ifr_ifrn.ifrn_name };
        let bytes: Vec<u8> = raw
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8(bytes).map_err(|_| Errno::EINVAL)
    }

    /// The interface flags (IFF_*, SIOCGIFFLAGS).
    pub fn interface_flags(&self, name: &str) -> Result<u32, Errno> {
        let ifr = self.ifreq_ioctl(name, sys::SIOCGIFFLAGS, |_| {})?;
        // SAFETY: SIOCGIFFLAGS filled in ifru_flags.
        Ok(u32::from(unsafe { ifr.ifr_ifru.ifru_flags } as u16))
    }

    /// Sets `set` and clears `clear` in the interface flags (SIOCSIFFLAGS).
    pub fn set_interface_flags(&self, name: &str, set: u32, clear: u32) -> Result<(), Errno> {
        let flags = (self.interface_flags(name)? | set) & !clear;
        self.ifreq_ioctl(name, sys::SIOCSIFFLAGS, |ifr| {
            ifr.ifr_ifru.ifru_flags = flags as u16 as i16
        })
        .map(drop)
    }

    pub fn interface_mtu(&self, name: &str) -> Result<u32, Errno> {
        let ifr = self.ifreq_ioctl(name, sys::SIOCGIFMTU, |_| {})?;
        // SAFETY: SIOCGIFMTU filled in ifru_mtu.
        Ok(unsafe { ifr.ifr_ifru.ifru_mtu } as u32)
    }

    pub fn set_interface_mtu(&self, name: &str, mtu: u32) -> Result<(), Errno> {
        let mtu = i32::try_from(mtu).map_err(|_| Errno::EINVAL)?;
        self.ifreq_ioctl(name, sys::SIOCSIFMTU, |ifr| ifr.ifr_ifru.ifru_mtu = mtu)
            .map(drop)
    }

    /// Sets the interface's IPv4 address and netmask (SIOCSIFADDR, SIOCSIFNETMASK).
    pub fn set_ipv4_address(&self, name: &str, net: Ipv4Net) -> Result<(), Errno> {
        if net.prefix_len > 32 {
            return Err(Errno::EINVAL);
        }
        self.ifreq_ioctl(name, sys::SIOCSIFADDR, |ifr| {
            ifr.ifr_ifru.ifru_addr = sockaddr_v4(net.addr)
        })?;
        let mask = prefix_to_netmask(net.prefix_len);
        self.ifreq_ioctl(name, sys::SIOCSIFNETMASK, |ifr| {
            ifr.ifr_ifru.ifru_netmask = sockaddr_v4(mask)
        })
        .map(drop)
    }

    /// Sets the point-to-point peer address (SIOCSIFDSTADDR).
    pub fn set_ipv4_peer(&self, name: &str, peer: Ipv4Addr) -> Result<(), Errno> {
        self.ifreq_ioctl(name, sys::SIOCSIFDSTADDR, |ifr| {
            ifr.ifr_ifru.ifru_dstaddr = sockaddr_v4(peer)
        })
        .map(drop)
    }

    /// Adds an IPv6 address (SIOCSIFADDR with an in6_ifreq on an AF_INET6 socket).
    pub fn add_ipv6_address(&self, name: &str, net: Ipv6Net) -> Result<(), Errno> {
        if net.prefix_len > 128 {
            return Err(Errno::EINVAL);
        }
        let mut req = In6Ifreq {
            addr: net.addr.octets(),
            prefixlen: u32::from(net.prefix_len),
            ifindex: self.interface_index(name)?,
        };
        self.with_socket(AF_INET6, |fd| self.ioctl_on(fd, sys::SIOCSIFADDR, &mut req))
            .map(drop)
    }

    /// Adds the IPv4 default route: via `gateway`, or straight through the device (the right
    /// thing on a point-to-point link, where there is no one to ARP for).
    pub fn add_ipv4_default_route(
        &self,
        name: &str,
        gateway: Option<Ipv4Addr>,
    ) -> Result<(), Errno> {
        // Validates the name (length, no NUL) the same way as for the other requests.
        ifreq_for(name)?;
        let dev = std::ffi::CString::new(name).map_err(|_| Errno::EINVAL)?;
        let mut rt = Rtentry {
            pad1: 0,
            dst: sockaddr_v4(Ipv4Addr::UNSPECIFIED),
            gateway: sockaddr_v4(gateway.unwrap_or(Ipv4Addr::UNSPECIFIED)),
            genmask: sockaddr_v4(Ipv4Addr::UNSPECIFIED),
            flags: RTF_UP | if gateway.is_some() { RTF_GATEWAY } else { 0 },
            pad2: 0,
            pad3: 0,
            pad4: ptr::null_mut(),
            // rt_metric is "metric + 1" in this old ABI.
            metric: DEFAULT_ROUTE_METRIC as i16 + 1,
            // The kernel only reads the name (strncpy_from_user).
            dev: dev.as_ptr().cast_mut(),
            mtu: 0,
            window: 0,
            irtt: 0,
        };
        self.with_socket(AF_INET, |fd| self.ioctl_on(fd, sys::SIOCADDRT, &mut rt))
            .map(drop)
    }

    /// Adds the IPv6 default route through the device, via `gateway` if given.
    pub fn add_ipv6_default_route(
        &self,
        name: &str,
        gateway: Option<Ipv6Addr>,
    ) -> Result<(), Errno> {
        let mut rt = In6Rtmsg {
            dst: [0; 16],
            src: [0; 16],
            gateway: gateway.unwrap_or(Ipv6Addr::UNSPECIFIED).octets(),
            rtmsg_type: 0,
            dst_len: 0,
            src_len: 0,
            metric: DEFAULT_ROUTE_METRIC,
            info: 0,
            flags: u32::from(RTF_UP | if gateway.is_some() { RTF_GATEWAY } else { 0 }),
            ifindex: self.interface_index(name)?,
        };
        self.with_socket(AF_INET6, |fd| self.ioctl_on(fd, sys::SIOCADDRT, &mut rt))
            .map(drop)
    }

    /// Keeps IPv6 on the device from soliciting routers or taking their advertisements
    /// (there are none on a point-to-point link; the solicitations would be noise on it).
    pub fn disable_ipv6_router_discovery(&self, name: &str) -> Result<(), Errno> {
        self.sysctl_write(&format!("net/ipv6/conf/{name}/accept_ra"), "0")?;
        self.sysctl_write(&format!("net/ipv6/conf/{name}/router_solicitations"), "0")
    }

    /// Configures a registered device and brings it up: MTU, IPv6 sysctls (before the device
    /// goes up, so that nothing is solicited), up, addresses, peer, default routes.
    pub fn configure_interface(&self, name: &str, cfg: &InterfaceConfig) -> Result<(), Errno> {
        if let Some(mtu) = cfg.mtu {
            self.set_interface_mtu(name, mtu)?;
        }
        self.disable_ipv6_router_discovery(name)?;
        self.set_interface_flags(name, sys::IFF_UP, 0)?;
        if let Some(net) = cfg.ipv4 {
            self.set_ipv4_address(name, net)?;
            if let Some(peer) = cfg.ipv4_peer {
                self.set_ipv4_peer(name, peer)?;
            }
            self.add_ipv4_default_route(name, cfg.ipv4_gateway)?;
        }
        if let Some(net) = cfg.ipv6 {
            self.add_ipv6_address(name, net)?;
            self.add_ipv6_default_route(name, cfg.ipv6_gateway)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_lengths_become_netmasks() {
        assert_eq!(prefix_to_netmask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(prefix_to_netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(prefix_to_netmask(32), Ipv4Addr::new(255, 255, 255, 255));
    }

    #[test]
    fn route_structs_have_the_kernel_sizes() {
        assert_eq!(std::mem::size_of::<In6Ifreq>(), 24);
        assert_eq!(std::mem::size_of::<In6Rtmsg>(), 80);
        assert_eq!(std::mem::size_of::<Rtentry>(), 120);
    }
}
