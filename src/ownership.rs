//! The ports LKL owns on its addresses, with the packet filter and the firewall kept in step,
//! and what the socket hooks need to place a socket: which addresses are LKL's alone, and
//! which ports LKL listens on.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use lkl::packet::{Admit, Members, PacketBackend, Split, Take};
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
    /// How this process serves the listeners other processes of the program share.
    sharing: Sharing,
    /// The ports of those listeners (see fork.rs). A port stays in, also once this process no
    /// longer listens on it: new connections to it are still the others'.
    shared_ports: BTreeSet<u16>,
}

/// How a process takes part in serving listeners with other processes of the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sharing {
    /// No other process serves this one's listeners.
    Alone,
    /// Others do and this one does not: their connections must not reach it.
    ServedElsewhere,
    /// This one serves them with the others, in their fanout group (`lkl::packet`'s
    /// share.rs).
    Serving,
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
        split: Option<&Split>,
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
                sharing: if split.is_some() {
                    Sharing::Serving
                } else {
                    Sharing::Alone
                },
                shared_ports: split
                    .map(|s| s.listeners.iter().copied().collect())
                    .unwrap_or_default(),
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
        let newly_shared = st.sharing != Sharing::Alone && st.shared_ports.insert(port);
        if !st.tcp.contains(port) {
            st.tcp = PortSet::from_ranges([st.tcp.ranges(), &[(port, port)]].concat());
            self.update(&st, Proto::Tcp, port);
        } else if newly_shared {
            self.refilter(&st);
        }
    }

    /// A listener on `port` closed. In a process that serves with others, new connections
    /// to the port go to the processes that still listen on it (`lkl::packet`'s mailbox.rs).
    pub fn not_listening(&self, port: u16) {
        let mut st = lock(&self.state);
        let Some(n) = st.listening.get_mut(&port) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        st.listening.remove(&port);
        if st.sharing == Sharing::Serving {
            self.refilter(&st);
            if st.listening.is_empty() {
                log::debug!("no listener left: this process takes no new connections");
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

    /// Processes forked from this one serve its listeners, and this one does not (yet, see
    /// [`join_group`](Self::join_group)): their connections must not reach it.
    pub fn leave_listeners_to_children(&self) {
        let mut st = lock(&self.state);
        st.sharing = Sharing::ServedElsewhere;
        st.shared_ports = st.listening.keys().copied().collect();
        self.refilter(&st);
    }

    /// Joins the fanout group `group` of the processes that serve the shared listeners, whose
    /// table is `members`, with `sock` (opened while the process had the privilege) for its
    /// share of their connections.
    pub fn join_group(
        &self,
        group: u32,
        members: &'static Members,
        sock: OwnedFd,
    ) -> std::io::Result<()> {
        let mut st = lock(&self.state);
        if st.sharing == Sharing::Alone {
            st.shared_ports = st.listening.keys().copied().collect();
        }
        st.sharing = Sharing::Serving;
        let (admit, split) = self.admit(&st);
        let split = split.expect("a serving process splits");
        self.backend
            .join_group(group, members, sock, &admit, &split)?;
        log::debug!(
            "serving {:?} with the program's other processes",
            split.listeners
        );
        Ok(())
    }

    /// What the packet filters admit.
    fn admit(&self, st: &State) -> (Admit, Option<Split>) {
        let base = admit(self.shared, &st.tcp, &st.udp);
        if st.sharing == Sharing::Alone {
            return (base, None);
        }
        let listeners = st.shared_ports.iter().copied().collect();
        let mut serving: Vec<u16> = st.listening.keys().copied().collect();
        serving.sort_unstable();
        (
            base,
            Some(Split {
                listeners,
                // The group's sockets take them (see `join_group`).
                take: Take::Nothing,
                serving,
            }),
        )
    }

    fn refilter(&self, st: &State) {
        let (admit, split) = self.admit(st);
        if let Err(e) = self.backend.admit(&admit, split.as_ref()) {
            log::warn!("cannot update the packet filter for the shared listeners: {e}");
        }
    }

    fn update(&self, st: &State, proto: Proto, port: u16) {
        if self.shared || st.sharing != Sharing::Alone {
            let (admit, split) = self.admit(st);
            if let Err(e) = self.backend.admit(&admit, split.as_ref()) {
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
