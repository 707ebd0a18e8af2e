//! Which stack serves which socket, and which ports LKL owns.
//!
//! By default every TCP listener of the program lives in LKL (or those on `LKL_HIJACK_PORTS`),
//! while client sockets and UDP stay on the host; `LKL_HIJACK_CLIENTS=lkl` sends those through
//! LKL too, from LKL's own port range (`LKL_HIJACK_CLIENT_PORTS`), which the host does not use.
//! The ports LKL owns decide what the packet filter lets into the process and what the
//! firewall keeps from the host stack (see `ownership`).

use std::fmt;

/// A set of ports as sorted, merged, inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSet(Vec<(u16, u16)>);

impl PortSet {
    /// "443,8000-8100": ports 1..=65535, ranges low-high; spaces around items allowed.
    pub fn parse(text: &str) -> Option<PortSet> {
        let mut ranges = Vec::new();
        for item in text.split(',').map(str::trim) {
            let (lo, hi) = match item.split_once('-') {
                Some((lo, hi)) => (lo.trim(), hi.trim()),
                None => (item, item),
            };
            let port = |s: &str| -> Option<u16> {
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                s.parse::<u16>().ok().filter(|&p| p != 0)
            };
            let (lo, hi) = (port(lo)?, port(hi)?);
            if lo > hi {
                return None;
            }
            ranges.push((lo, hi));
        }
        Some(PortSet::from_ranges(ranges))
    }

    pub fn from_ranges(mut ranges: Vec<(u16, u16)>) -> PortSet {
        ranges.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        PortSet(merged)
    }

    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&port))
    }

    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the two sets share a port.
    pub fn overlaps(&self, other: &PortSet) -> bool {
        self.0
            .iter()
            .any(|&(lo, hi)| other.0.iter().any(|&(l, h)| lo <= h && l <= hi))
    }
}

/// nft's notation: "443, 8000-8100".
impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// Where client sockets (connect, UDP) go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clients {
    Host,
    Lkl,
}

/// What to do about the host stack answering for LKL's ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirewallMode {
    /// Install rules (or, without the right, print them as a warning).
    Auto,
    /// Print the commands only.
    Print,
    Off,
}

/// The policy from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `LKL_HIJACK_PORTS`: None = every TCP listener goes to LKL.
    pub listen_ports: Option<PortSet>,
    pub clients: Clients,
    /// LKL's local port range (its ip_local_port_range).
    pub client_ports: (u16, u16),
    pub firewall: FirewallMode,
}

/// Above the host's default ip_local_port_range (32768-60999).
pub const DEFAULT_CLIENT_PORTS: (u16, u16) = (61000, 65535);

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            listen_ports: None,
            clients: Clients::Host,
            client_ports: DEFAULT_CLIENT_PORTS,
            firewall: FirewallMode::Auto,
        }
    }
}

impl Policy {
    /// Whether a listener on `port` belongs in LKL.
    pub fn listens_in_lkl(&self, port: u16) -> bool {
        self.listen_ports
            .as_ref()
            .map_or(true, |p| p.contains(port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_ranges_parse_sorted_and_merged() {
        let p = PortSet::parse("8000-8100, 443,8050-8200,444").unwrap();
        assert_eq!(p.ranges(), &[(443, 444), (8000, 8200)]);
        assert!(p.contains(443) && p.contains(8200) && !p.contains(445));
        assert_eq!(p.to_string(), "443-444, 8000-8200");
    }

    #[test]
    fn bad_ports_are_refused() {
        for bad in [
            "", "0", "65536", "80-70", "8o", "-5", "5-", "1,,2", "+80", "80 81",
        ] {
            assert_eq!(PortSet::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn overlap_is_found() {
        let a = PortSet::parse("32768-60999").unwrap();
        assert!(a.overlaps(&PortSet::parse("60999-61000").unwrap()));
        assert!(!a.overlaps(&PortSet::parse("61000-65535").unwrap()));
    }
}
