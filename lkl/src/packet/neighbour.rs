//! The next hop's MAC on an Ethernet host interface, which every sent frame needs: from the
//! host's ARP table at open, then from the sender of each received frame.

use std::ffi::CString;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;

use super::{sys, PacketBackend};

// linux/if_packet.h
const PACKET_OUTGOING: u8 = 4;

/// The next hop's MAC in the low 48 bits, bit 48 set when known: one atomic, read per tx.
const MAC_KNOWN: u64 = 1 << 48;

pub(super) fn mac_to_u64(mac: [u8; 6]) -> u64 {
    let mut b = [0u8; 8];
    b[..6].copy_from_slice(&mac);
    u64::from_le_bytes(b) | MAC_KNOWN
}

fn u64_to_mac(v: u64) -> Option<[u8; 6]> {
    (v & MAC_KNOWN != 0).then(|| {
        let b = v.to_le_bytes();
        [b[0], b[1], b[2], b[3], b[4], b[5]]
    })
}

impl PacketBackend {
    /// The next hop's MAC on an Ethernet interface, once known.
    pub fn next_hop_mac(&self) -> Option<[u8; 6]> {
        u64_to_mac(self.next_hop_mac.load(Ordering::Relaxed))
    }

    /// On Ethernet, the sender of a received frame is our next hop.
    pub(super) fn learn_next_hop(&self, sll: &libc::sockaddr_ll) {
        if self.ethernet && sll.sll_halen == 6 && sll.sll_pkttype != PACKET_OUTGOING {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&sll.sll_addr[..6]);
            self.next_hop_mac.store(mac_to_u64(mac), Ordering::Relaxed);
        }
    }
}

/// The MAC of `ip` on `ifname` in the calling thread's network namespace's ARP table.
pub(super) fn arp_lookup(ip: Ipv4Addr, ifname: &str) -> Option<[u8; 6]> {
    // /proc/self/task/TID rather than /proc/thread-self, which Linux has only since 3.17.
    // SAFETY: gettid takes no arguments.
    let tid = unsafe { crate::raw_syscall!(libc::SYS_gettid) };
    let path = CString::new(format!("/proc/self/task/{tid}/net/arp")).ok()?;
    let table = sys::read_file(&path).ok()?;
    parse_arp_table(&String::from_utf8_lossy(&table), ip, ifname)
}

/// Finds a complete entry (flag ATF_COM, 0x2) in /proc/net/arp's format.
fn parse_arp_table(table: &str, ip: Ipv4Addr, ifname: &str) -> Option<[u8; 6]> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let [addr, _hwtype, flags, mac, _mask, dev] = cols[..] else {
            return None;
        };
        let complete = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()? & 0x2 != 0;
        if addr.parse::<Ipv4Addr>().ok()? != ip || dev != ifname || !complete {
            return None;
        }
        let mut out = [0u8; 6];
        let mut parts = mac.split(':');
        for b in &mut out {
            *b = u8::from_str_radix(parts.next()?, 16).ok()?;
        }
        Some(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_table_gives_complete_entries_on_the_interface() {
        let table = "IP address       HW type     Flags       HW address            Mask     Device\n\
                     10.0.0.1         0x1         0x2         02:13:05:00:00:01     *        veth0\n\
                     10.0.0.9         0x1         0x0         00:00:00:00:00:00     *        veth0\n";
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            parse_arp_table(table, ip("10.0.0.1"), "veth0"),
            Some([2, 0x13, 5, 0, 0, 1])
        );
        assert_eq!(parse_arp_table(table, ip("10.0.0.1"), "eth1"), None);
        assert_eq!(
            parse_arp_table(table, ip("10.0.0.9"), "veth0"),
            None,
            "incomplete"
        );
    }

    #[test]
    fn mac_round_trips_through_the_atomic_word() {
        assert_eq!(u64_to_mac(0), None);
        let mac = [2, 0x13, 5, 0, 0, 1];
        assert_eq!(u64_to_mac(mac_to_u64(mac)), Some(mac));
        assert_eq!(u64_to_mac(mac_to_u64([0; 6])), Some([0; 6]));
    }
}
