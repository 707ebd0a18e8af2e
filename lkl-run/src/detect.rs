//! What the host says about its interfaces: which one to use, its addresses, whether it is up,
//! and the default gateway through it.

use std::ffi::CStr;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

/// One host interface as getifaddrs(3) reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub up: bool,
    pub loopback: bool,
    pub v4: Vec<Ipv4Addr>,
    pub v6: Vec<Ipv6Addr>,
}

impl Interface {
    /// The first IPv6 address that is routable beyond the link.
    pub fn global_v6(&self) -> Option<Ipv6Addr> {
        self.v6
            .iter()
            .copied()
            .find(|a| !a.is_loopback() && (a.segments()[0] & 0xffc0) != 0xfe80)
    }
}

/// Every interface of this network namespace, in the kernel's order.
pub fn interfaces() -> io::Result<Vec<Interface>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out: Vec<Interface> = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        // SAFETY: ifa_name is a NUL-terminated string of the node.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        let pos = match out.iter().position(|i| i.name == name) {
            Some(p) => p,
            None => {
                out.push(Interface {
                    name,
                    up: ifa.ifa_flags & libc::IFF_UP as u32 != 0,
                    loopback: ifa.ifa_flags & libc::IFF_LOOPBACK as u32 != 0,
                    ..Interface::default()
                });
                out.len() - 1
            }
        };
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: a non-null sockaddr whose family says which struct it is.
        match i32::from(unsafe { (*ifa.ifa_addr).sa_family }) {
            libc::AF_INET => {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in>() };
                out[pos]
                    .v4
                    .push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            }
            libc::AF_INET6 => {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let sin6 = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in6>() };
                out[pos].v6.push(Ipv6Addr::from(sin6.sin6_addr.s6_addr));
            }
            _ => {}
        }
    }
    // SAFETY: the list from getifaddrs, freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The interface to use when none is named: venet0 (OpenVZ) if present, else the first
/// non-loopback interface that is up and has an IPv4 address.
pub fn choose(ifs: &[Interface]) -> Option<&Interface> {
    ifs.iter()
        .find(|i| i.name == "venet0")
        .or_else(|| ifs.iter().find(|i| !i.loopback && i.up && !i.v4.is_empty()))
}

/// The IPv4 default gateway through `ifname` from /proc/net/route (None on a point-to-point
/// link such as venet0, whose default route names no gateway).
pub fn default_gateway(ifname: &str) -> Option<Ipv4Addr> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            [name, "00000000", gw, ..] if *name == ifname && *gw != "00000000" => {
                u32::from_str_radix(gw, 16)
                    .ok()
                    .map(|g| Ipv4Addr::from(u32::from_be(g)))
            }
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, up: bool, v4: &[&str]) -> Interface {
        Interface {
            name: name.into(),
            up,
            loopback: name == "lo",
            v4: v4.iter().map(|a| a.parse().unwrap()).collect(),
            v6: Vec::new(),
        }
    }

    #[test]
    fn venet0_is_preferred_then_the_first_usable_interface() {
        let lo = iface("lo", true, &["127.0.0.1"]);
        let down = iface("eth1", false, &["10.0.0.9"]);
        let eth0 = iface("eth0", true, &["10.0.0.2"]);
        let venet = iface("venet0", true, &["198.51.100.7"]);
        let all = [lo.clone(), down.clone(), eth0.clone(), venet.clone()];
        assert_eq!(choose(&all).unwrap().name, "venet0");
        assert_eq!(choose(&[lo.clone(), down, eth0]).unwrap().name, "eth0");
        assert_eq!(choose(&[lo]), None);
    }

    #[test]
    fn link_local_addresses_are_not_global() {
        let mut i = iface("eth0", true, &[]);
        i.v6 = vec!["fe80::1".parse().unwrap(), "2001:db8::5".parse().unwrap()];
        assert_eq!(i.global_v6(), Some("2001:db8::5".parse().unwrap()));
    }
}
