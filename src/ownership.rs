//! The ports LKL owns on its addresses, with the packet filter and the firewall kept in step,
//! and what the socket hooks need to place a socket: which addresses are LKL's alone, and
//! which ports LKL listens on.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use lkl::packet::{Admit, PacketBackend};
use std::sync::Mutex;

use lkl::locks::lock;

use crate::firewall::{Firewall, Proto};
use crate::policy::{Clients, Policy, PortSet};

pub struct Ownership {
    pub policy: Policy,
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
    /// LKL's address is also one of the host stack's: only owned ports reach LKL.
    shared: bool,
    backend: Arc<PacketBackend>,
    firewall: Firewall,
    state: Mutex<State>,
}

struct State {
    tcp: PortSet,
    udp: PortSet,
    /// LKL's listening TCP ports, with how many sockets listen on each.
    listening: HashMap<u16, usize>,
    /// Other processes of the program serve the listeners and this one does not: their
    /// connections must not reach it (see fork.rs).
    served_elsewhere: bool,
}

/// Whether `ip` is configured on any host interface (of this network namespace).
fn host_has_address(ip: IpAddr) -> bool {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, which is walked read-only and freed once.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return false;
        }
        let mut found = false;
        let mut cur = list;
        while let Some(ifa) = cur.as_ref() {
            if let Some(sa) = ifa.ifa_addr.as_ref() {
                let addr = match i32::from(sa.sa_family) {
                    libc::AF_INET => {
                        let sin = &*(sa as *const libc::sockaddr).cast::<libc::sockaddr_in>();
                        Some(IpAddr::from(
                            u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                        ))
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(sa as *const libc::sockaddr).cast::<libc::sockaddr_in6>();
                        Some(IpAddr::from(sin6.sin6_addr.s6_addr))
                    }
                    _ => None,
                };
                found |= addr == Some(ip);
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(list);
        found
    }
}

/// What LKL owns before any socket exists: the configured listening ports, and in client mode
/// its client port range, TCP and UDP.
pub fn initial_ports(policy: &Policy) -> (PortSet, PortSet) {
    let mut tcp = policy.listen_ports.clone().unwrap_or_default();
    let mut udp = PortSet::default();
    if policy.clients == Clients::Lkl {
        let range = [policy.client_ports];
        tcp = PortSet::from_ranges([tcp.ranges(), &range].concat());
        udp = PortSet::from_ranges(range.to_vec());
    }
    (tcp, udp)
}

/// `ranges` with the (sorted) `ports` taken out.
fn without(ranges: &[(u16, u16)], ports: &[u16]) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    for &(lo, hi) in ranges {
        let mut from = lo;
        for &p in ports.iter().filter(|&&p| (lo..=hi).contains(&p)) {
            if p > from {
                out.push((from, p - 1));
            }
            from = match p.checked_add(1) {
                Some(next) => next,
                None => break,
            };
        }
        if from <= hi && !(hi == u16::MAX && ports.contains(&u16::MAX)) {
            out.push((from, hi));
        }
    }
    out
}

/// Whether LKL's addresses are shared with the host stack.
pub fn is_shared(v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>) -> bool {
    v4.is_some_and(|a| host_has_address(a.into())) || v6.is_some_and(|a| host_has_address(a.into()))
}

/// The packet filter's setting for these owned ports.
pub fn admit(shared: bool, tcp: &PortSet, udp: &PortSet) -> Admit {
    if shared {
        Admit::Ports {
            tcp: tcp.ranges().to_vec(),
            udp: udp.ranges().to_vec(),
        }
    } else {
        Admit::All
    }
}

impl Ownership {
    /// Installs the firewall for the initial ports (the backend already admits them).
    pub fn new(
        policy: Policy,
        v4: Option<Ipv4Addr>,
        v6: Option<Ipv6Addr>,
        shared: bool,
        backend: Arc<PacketBackend>,
        mut firewall: Firewall,
    ) -> Ownership {
        let (tcp, udp) = initial_ports(&policy);
        firewall.install(&tcp, &udp);
        Ownership {
            policy,
            v4,
            v6,
            shared,
            backend,
            firewall,
            state: Mutex::new(State {
                tcp,
                udp,
                listening: HashMap::new(),
                served_elsewhere: false,
            }),
        }
    }

    /// Whether LKL has an address the host stack does not.
    pub fn has_own_address(&self) -> bool {
        !self.shared && (self.v4.is_some() || self.v6.is_some())
    }

    /// Whether `ip` is LKL's and the host stack's not: sockets bound to it can only be LKL's.
    pub fn lkl_only(&self, ip: IpAddr) -> bool {
        !self.shared
            && match ip {
                IpAddr::V4(a) => self.v4 == Some(a),
                IpAddr::V6(a) => self.v6 == Some(a),
            }
    }

    /// Whether a connection to `ip` reaches this host: loopback or LKL's own address.
    pub fn is_local(&self, ip: IpAddr) -> bool {
        ip.is_loopback()
            || match ip {
                IpAddr::V4(a) => self.v4 == Some(a),
                IpAddr::V6(a) => {
                    self.v6 == Some(a)
                        || a.to_ipv4_mapped()
                            .is_some_and(|m| m.is_loopback() || self.v4 == Some(m))
                }
            }
    }

    /// An LKL socket listens on `port`: LKL owns it from now on.
    pub fn listening(&self, port: u16) {
        let mut st = lock(&self.state);
        *st.listening.entry(port).or_default() += 1;
        if !st.tcp.contains(port) {
            st.tcp = PortSet::from_ranges([st.tcp.ranges(), &[(port, port)]].concat());
            self.update(&st, Proto::Tcp, port);
        }
    }

    /// A listener on `port` closed.
    pub fn not_listening(&self, port: u16) {
        let mut st = lock(&self.state);
        if let Some(n) = st.listening.get_mut(&port) {
            *n -= 1;
            if *n == 0 {
                st.listening.remove(&port);
            }
        }
    }

    /// A UDP socket in LKL is bound to `port` of a shared address: its datagrams are LKL's.
    pub fn udp_bound(&self, port: u16) {
        let mut st = lock(&self.state);
        if !st.udp.contains(port) {
            st.udp = PortSet::from_ranges([st.udp.ranges(), &[(port, port)]].concat());
            self.update(&st, Proto::Udp, port);
        }
    }

    pub fn lkl_listens_on(&self, port: u16) -> bool {
        lock(&self.state).listening.contains_key(&port)
    }

    /// Whether the listeners' connections go to other processes of the program (forked
    /// children that serve them) rather than to this one; the packet filter follows.
    pub fn set_served_elsewhere(&self, elsewhere: bool) {
        let mut st = lock(&self.state);
        st.served_elsewhere = elsewhere;
        if let Err(e) = self.backend.admit(&self.admit(&st)) {
            log::warn!("cannot update the packet filter for the listeners' ports: {e}");
        }
    }

    /// What the packet filter admits.
    fn admit(&self, st: &State) -> Admit {
        if !st.served_elsewhere {
            return admit(self.shared, &st.tcp, &st.udp);
        }
        let mut listening: Vec<u16> = st.listening.keys().copied().collect();
        listening.sort_unstable();
        if !self.shared {
            return Admit::AllBut {
                tcp: listening.iter().map(|&p| (p, p)).collect(),
            };
        }
        Admit::Ports {
            tcp: without(st.tcp.ranges(), &listening),
            udp: st.udp.ranges().to_vec(),
        }
    }

    fn update(&self, st: &State, proto: Proto, port: u16) {
        if self.shared || st.served_elsewhere {
            if let Err(e) = self.backend.admit(&self.admit(st)) {
                log::warn!("cannot update the packet filter for port {port}: {e}");
            }
        }
        let added = PortSet::from_ranges(vec![(port, port)]);
        self.firewall.add(proto, &added, &st.tcp, &st.udp);
    }

    /// Processes forked from this one serve the listeners: this one's exit leaves the rules
    /// to the watchdog, which removes them once all have ended.
    pub fn leave_firewall_to_children(&self) {
        self.firewall.leave_removal_to_watchdog();
    }

    /// Removes the firewall rules (at exit).
    pub fn remove_firewall(&self) {
        self.firewall.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::without;

    #[test]
    fn without_takes_single_ports_out_of_ranges() {
        assert_eq!(
            without(&[(80, 80), (8000, 8100)], &[80, 8050]),
            vec![(8000, 8049), (8051, 8100)]
        );
        assert_eq!(without(&[(1, 5)], &[1, 5]), vec![(2, 4)]);
        assert_eq!(without(&[(65530, 65535)], &[65535]), vec![(65530, 65534)]);
        assert_eq!(without(&[(10, 20)], &[]), vec![(10, 20)]);
    }
}
