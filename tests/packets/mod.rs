//! Building raw IPv4, IPv6 and TCP packets (checksums included, or lies on purpose), and
//! reading the essentials of TCP packets seen on the wire.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The EtherTypes (link protocols) of IPv4 and IPv6.
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;

/// The Internet checksum of `data` folded onto `init` (a partial sum).
pub fn csum(data: &[u8], init: u32) -> u16 {
    let mut sum = init;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn sum_words(data: &[u8]) -> u32 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    sum
}

/// IPv4 pseudo-header partial sum.
pub fn pseudo4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> u32 {
    sum_words(&src.octets()) + sum_words(&dst.octets()) + u32::from(proto) + len as u32
}

/// IPv6 pseudo-header partial sum.
pub fn pseudo6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, len: usize) -> u32 {
    sum_words(&src.octets()) + sum_words(&dst.octets()) + u32::from(proto) + len as u32
}

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;

/// A TCP segment (header + options + payload) with its checksum for `src` -> `dst`.
#[derive(Clone, Debug)]
pub struct Tcp {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    /// Flags: the low 8 bits (CWR ECE URG ACK PSH RST SYN FIN); bits 8..12 go to the reserved
    /// bits (and NS).
    pub flags: u16,
    pub window: u16,
    pub urgent: u16,
    pub options: Vec<u8>,
    pub payload: Vec<u8>,
    /// Data offset override (in 32-bit words), to lie about the header length.
    pub doff: Option<u8>,
}

impl Tcp {
    pub fn new(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8) -> Tcp {
        Tcp {
            sport,
            dport,
            seq,
            ack,
            flags: u16::from(flags),
            window: 65535,
            urgent: 0,
            options: Vec::new(),
            payload: Vec::new(),
            doff: None,
        }
    }

    pub fn bytes(&self, pseudo: u32) -> Vec<u8> {
        let mut opts = self.options.clone();
        while opts.len() % 4 != 0 {
            opts.push(0);
        }
        let doff = self.doff.unwrap_or(((20 + opts.len()) / 4) as u8);
        let mut b = Vec::with_capacity(20 + opts.len() + self.payload.len());
        b.extend(self.sport.to_be_bytes());
        b.extend(self.dport.to_be_bytes());
        b.extend(self.seq.to_be_bytes());
        b.extend(self.ack.to_be_bytes());
        b.push((doff << 4) | ((self.flags >> 8) as u8 & 0x0f));
        b.push(self.flags as u8);
        b.extend(self.window.to_be_bytes());
        b.extend([0, 0]);
        b.extend(self.urgent.to_be_bytes());
        b.extend(&opts);
        b.extend(&self.payload);
        let c = csum(&b, pseudo);
        b[16..18].copy_from_slice(&c.to_be_bytes());
        b
    }

    pub fn v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let len = 20 + self.options.len().next_multiple_of(4) + self.payload.len();
        let seg = self.bytes(pseudo4(src, dst, 6, len));
        ipv4(src, dst, 6, &seg)
    }

    pub fn v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let len = 20 + self.options.len().next_multiple_of(4) + self.payload.len();
        let seg = self.bytes(pseudo6(src, dst, 6, len));
        ipv6(src, dst, 6, &seg)
    }
}

/// An IPv4 header (20 bytes + `options`) with checksum, for a payload of `payload_len`.
pub fn ipv4_header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    payload_len: usize,
    id: u16,
    frag: u16,
    options: &[u8],
) -> Vec<u8> {
    let hl = 20 + options.len();
    assert!(hl % 4 == 0 && hl <= 60);
    let mut h = vec![0u8; 20];
    h[0] = 0x40 | (hl / 4) as u8;
    h[2..4].copy_from_slice(&((hl + payload_len) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    h.extend(options);
    let c = csum(&h, 0);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = ipv4_header(src, dst, proto, payload.len(), 0x1234, 0x4000, &[]);
    p.extend(payload);
    p
}

/// An IPv6 packet whose first next-header is `next`, `payload` right after the header.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    p[6] = next;
    p[7] = 64;
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    p.extend(payload);
    p
}

/// Recomputes the IPv4 header checksum of `p` in place.
pub fn fix_ipv4_csum(p: &mut [u8]) {
    let hl = usize::from(p[0] & 0x0f) * 4;
    if hl < 20 || hl > p.len() {
        return;
    }
    p[10] = 0;
    p[11] = 0;
    let c = csum(&p[..hl], 0);
    p[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Parsed essentials of a TCP/IPv4 or TCP/IPv6 packet seen on the wire.
#[derive(Debug, Clone)]
pub struct Seen {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub payload_len: usize,
}

pub fn parse_tcp(p: &[u8]) -> Option<Seen> {
    let (src, dst, l4) = match p.first()? >> 4 {
        4 => {
            let hl = usize::from(p[0] & 0x0f) * 4;
            if p.len() < hl + 20 || p[9] != 6 {
                return None;
            }
            let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
            let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
            let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
            (IpAddr::V4(src), IpAddr::V4(dst), &p[hl..total])
        }
        6 => {
            if p.len() < 60 || p[6] != 6 {
                return None;
            }
            let src: [u8; 16] = p[8..24].try_into().unwrap();
            let dst: [u8; 16] = p[24..40].try_into().unwrap();
            (IpAddr::V6(src.into()), IpAddr::V6(dst.into()), &p[40..])
        }
        _ => return None,
    };
    let doff = usize::from(l4[12] >> 4) * 4;
    Some(Seen {
        src,
        dst,
        sport: u16::from_be_bytes([l4[0], l4[1]]),
        dport: u16::from_be_bytes([l4[2], l4[3]]),
        seq: u32::from_be_bytes(l4[4..8].try_into().unwrap()),
        ack: u32::from_be_bytes(l4[8..12].try_into().unwrap()),
        flags: l4[13],
        window: u16::from_be_bytes([l4[14], l4[15]]),
        payload_len: l4.len().saturating_sub(doff),
    })
}
