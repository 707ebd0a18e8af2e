//! Hostile traffic at LKL's address. The echo server example runs under the
//! preload on LKL's addresses; from the peer namespace, a packet socket on the peer's tun
//! device injects hand-made packets (no IP layer on the sending side checks or fixes them):
//! truncated and oversized IPv4 headers, bad IP and TCP checksums, bogus IP options, length
//! fields that lie, tiny, overlapping, oversized and never-completed fragments, TCP with all
//! 4096 combinations of the 12 flag bits, bad TCP options, a SYN flood of 100 000 SYNs from
//! spoofed sources, IPv6 extension-header chains, ICMP junk, and a connection established by
//! hand from a spoofed address that then gets zero-window probes, out-of-window segments and
//! overlapping data. All the while an echo transfer runs from the peer and checks every byte;
//! afterwards the server process must be alive and new IPv4 and IPv6 connections must echo.
//!
//! `LKL_SOAK=1` repeats the whole barrage 10 times (several minutes).

mod common;
mod echo;
mod injector;
mod packets;
mod rng;
mod run_length;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{echo_server_bin, venet};
use echo::{assert_alive, echo_from_peer, Alongside};
use injector::{tx_dropped, wait_tcp, Injector};
use lkl_rig::Topology;
use packets::{
    csum, fix_ipv4_csum, ipv4, ipv4_header, ipv6, pseudo4, pseudo6, Seen, Tcp, ACK, ETH_P_IPV6,
    FIN, PSH, RST, SYN,
};
use rng::Rng;
use run_length::soak;

const PORT: u16 = 7;
const CLOSED_PORT: u16 = 9;
const SYN_FLOOD: u32 = 100_000;

struct Target {
    lkl4: Ipv4Addr,
    lkl6: Ipv6Addr,
    /// Spoofed sources: routed by the peer towards nobody, so LKL's answers reach the tun
    /// device (where the injector sees them) and are then dropped by the peer's kernel.
    net: [u8; 3],
    group6: u16,
}

impl Target {
    fn spoof4(&self, rng: &mut Rng) -> Ipv4Addr {
        Ipv4Addr::new(
            self.net[0],
            self.net[1],
            self.net[2],
            rng.range(100, 249) as u8,
        )
    }
    fn spoof6(&self, rng: &mut Rng) -> Ipv6Addr {
        Ipv6Addr::new(
            0xfd00,
            0x213,
            self.group6,
            0,
            0,
            0,
            0,
            rng.range(0x100, 0xfff) as u16,
        )
    }
}

#[derive(Default, Debug)]
struct Counts {
    phases: Vec<(&'static str, u64)>,
}

impl Counts {
    fn phase(&mut self, name: &'static str, inj: &Injector, before: u64) {
        self.phases.push((name, inj.sent - before));
    }
}

fn syn(rng: &mut Rng, dport: u16) -> Tcp {
    let mut t = Tcp::new(
        rng.range(1024, 65535) as u16,
        dport,
        rng.next_u64() as u32,
        0,
        SYN,
    );
    // MSS, SACK permitted, timestamps, window scale: a normal client's options.
    t.options = vec![2, 4, 0x05, 0xb4, 4, 2, 8, 10];
    t.options.extend((rng.next_u64() as u32).to_be_bytes());
    t.options.extend([0, 0, 0, 0, 1, 3, 3, 7]);
    t
}

/// IPv4 header abuse: truncation, header lengths and total lengths that lie, bad checksums,
/// bogus options.
fn ipv4_junk(inj: &mut Injector, t: &Target, rng: &mut Rng) {
    for _ in 0..500 {
        let src = t.spoof4(rng);
        let seg = syn(rng, PORT).v4(src, t.lkl4);
        // Truncated anywhere (the filter needs the destination, so most stop there).
        let cut = rng.range(1, seg.len() as u64 - 1) as usize;
        inj.send(&seg[..cut]);
        // IHL below 5, above the packet, or 15 with junk options.
        let mut p = seg.clone();
        p[0] = 0x40 | rng.below(16) as u8;
        fix_ipv4_csum(&mut p);
        inj.send(&p);
        let mut p = seg.clone();
        p[0] = 0x4f;
        p.truncate(20 + rng.below(40) as usize);
        inj.send(&p);
        // Total length: larger than the packet, smaller than the header, zero, random.
        for total in [
            seg.len() as u16 + 1 + rng.below(1000) as u16,
            0,
            19,
            20,
            rng.next_u64() as u16,
        ] {
            let mut p = seg.clone();
            p[2..4].copy_from_slice(&total.to_be_bytes());
            fix_ipv4_csum(&mut p);
            inj.send(&p);
        }
        // Bad IP checksum; bad TCP checksum.
        let mut p = seg.clone();
        p[10] ^= 0x5a;
        inj.send(&p);
        let mut p = seg.clone();
        p[20 + 16] ^= 0xa5;
        inj.send(&p);
        // Version 4 header in an IPv6 frame and the reverse.
        inj.send_proto(&seg, ETH_P_IPV6);
        // Padding after the datagram (the length field says less than arrives).
        let mut p = seg.clone();
        p.extend(rng.bytes(rng.range(1, 1400) as usize));
        inj.send(&p);
    }
    // Bogus options, with a correct header checksum so that they get parsed.
    let opt_sets: Vec<Vec<u8>> = vec![
        vec![0x07, 0x00, 0x00, 0x00],           // record route, length 0
        vec![0x07, 0xff, 0x04, 0x00],           // record route, length past the header
        vec![0x07, 0x03, 0x00, 0x01],           // pointer 0
        vec![0x83, 0x07, 0x04, 10, 9, 9, 9, 1], // LSRR to an address
        vec![0x89, 0x0b, 0x0c, 1, 2, 3, 4, 5, 6, 7, 8, 0], // SSRR, pointer past the end
        vec![0x44, 0x24, 0x05, 0x03, 0, 0, 0, 0], // timestamp, overflow flags
        vec![0x44, 0x04, 0xff, 0x01],           // timestamp, pointer past the end
        vec![0x94, 0x04, 0x00, 0x00],           // router alert
        vec![0x86, 0x0a, 0, 0, 0, 1, 1, 0xff, 0, 0, 0, 0], // CIPSO, bad tag
        vec![0x01, 0x01, 0x01, 0x44],           // NOPs then a truncated timestamp
        vec![0x00, 0x07, 0x08, 0x09],           // end of list then garbage
        vec![0x82, 0x0b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], // security option
        vec![0x88, 0x04, 0x12, 0x34],           // stream id
    ];
    for i in 0..3000 {
        let src = t.spoof4(rng);
        let mut opts = if i < opt_sets.len() * 50 {
            opt_sets[i % opt_sets.len()].clone()
        } else {
            rng.bytes(rng.range(1, 40) as usize)
        };
        while opts.len() % 4 != 0 {
            opts.push(rng.next_u64() as u8);
        }
        let mut t4 = syn(rng, *rng.pick(&[PORT, CLOSED_PORT]));
        if rng.chance(30) {
            t4.flags = rng.below(256) as u16;
        }
        let seg = t4.bytes(pseudo4(src, t.lkl4, 6, 20 + t4.options.len()));
        let mut p = ipv4_header(src, t.lkl4, 6, seg.len(), rng.next_u64() as u16, 0, &opts);
        p.extend(&seg);
        inj.send(&p);
        // The same options on UDP and ICMP.
        let mut udp = vec![0u8; 8 + 16];
        udp[0..2].copy_from_slice(&(rng.next_u64() as u16).to_be_bytes());
        udp[2..4].copy_from_slice(&PORT.to_be_bytes());
        udp[4..6].copy_from_slice(&(rng.next_u64() as u16).to_be_bytes()); // lies
        let mut p = ipv4_header(src, t.lkl4, 17, udp.len(), rng.next_u64() as u16, 0, &opts);
        p.extend(&udp);
        inj.send(&p);
    }
}

/// Fragments: tiny, overlapping (teardrop), duplicated, beyond 64 KiB, never completed.
fn fragments(inj: &mut Injector, t: &Target, rng: &mut Rng) {
    for round in 0..2000u32 {
        let src = t.spoof4(rng);
        let id = rng.next_u64() as u16;
        let proto = if round % 2 == 0 { 6 } else { 17 };
        let body = if proto == 6 {
            let mut s = syn(rng, PORT);
            s.payload = rng.bytes(rng.below(300) as usize);
            s.bytes(pseudo4(
                src,
                t.lkl4,
                6,
                20 + s.options.len() + s.payload.len(),
            ))
        } else {
            let mut u = vec![0u8; 8];
            u[0..2].copy_from_slice(&5555u16.to_be_bytes());
            u[2..4].copy_from_slice(&PORT.to_be_bytes());
            u.extend(rng.bytes(rng.range(8, 3000) as usize));
            let len = u.len() as u16;
            u[4..6].copy_from_slice(&len.to_be_bytes());
            u
        };
        match round % 5 {
            0 => {
                // Tiny: 8 bytes per fragment, in random order, some twice.
                let mut frags: Vec<usize> = (0..body.len().div_ceil(8)).collect();
                for i in (1..frags.len()).rev() {
                    frags.swap(i, rng.below(i as u64 + 1) as usize);
                }
                for &k in &frags {
                    let off = k * 8;
                    let end = (off + 8).min(body.len());
                    let mf = if end < body.len() { 0x2000 } else { 0 };
                    let mut p = ipv4_header(
                        src,
                        t.lkl4,
                        proto,
                        end - off,
                        id,
                        mf | (off / 8) as u16,
                        &[],
                    );
                    p.extend(&body[off..end]);
                    inj.send(&p);
                    if rng.chance(10) {
                        inj.send(&p);
                    }
                }
            }
            1 => {
                // Teardrop: the second fragment starts inside the first and ends before it.
                let first = body.len().min(64) & !7;
                let mut p = ipv4_header(src, t.lkl4, proto, first, id, 0x2000, &[]);
                p.extend(&body[..first]);
                inj.send(&p);
                let off = 8usize;
                let len = rng.range(1, 16) as usize;
                let mut p = ipv4_header(src, t.lkl4, proto, len, id, (off / 8) as u16, &[]);
                p.extend(rng.bytes(len));
                inj.send(&p);
            }
            2 => {
                // Overlapping with different content, then the rest.
                let half = (body.len() / 2) & !7;
                for (off, mf) in [
                    (0usize, 0x2000u16),
                    (half.saturating_sub(8), 0x2000),
                    (half, 0),
                ] {
                    let mut data = body[off..].to_vec();
                    if mf != 0 {
                        data.truncate((half + 8 - off).min(data.len()));
                    }
                    if off != 0 {
                        let n = 4.min(data.len());
                        rng.fill(&mut data[..n]);
                    }
                    let mut p = ipv4_header(
                        src,
                        t.lkl4,
                        proto,
                        data.len(),
                        id,
                        mf | (off / 8) as u16,
                        &[],
                    );
                    p.extend(&data);
                    inj.send(&p);
                }
            }
            3 => {
                // Reassembles to more than 65535 bytes (ping of death).
                let off = 8180usize;
                let mut p = ipv4_header(src, t.lkl4, proto, 8, id, 0x2000, &[]);
                p.extend(&body[..8]);
                inj.send(&p);
                let mut p = ipv4_header(src, t.lkl4, proto, 1400, id, off as u16, &[]);
                p.extend(rng.bytes(1400));
                inj.send(&p);
                // Offset field at its maximum with MF.
                let mut p = ipv4_header(src, t.lkl4, proto, 16, id, 0x3fff, &[]);
                p.extend(rng.bytes(16));
                inj.send(&p);
            }
            _ => {
                // Never completed: only middle fragments (memory held until the timeout).
                for k in 1..4u16 {
                    let mut p = ipv4_header(src, t.lkl4, proto, 512, id, 0x2000 | (k * 64), &[]);
                    p.extend(rng.bytes(512));
                    inj.send(&p);
                }
            }
        }
    }
    // IPv6 fragments: tiny, overlapping (RFC 5722: the whole datagram is dropped), atomic.
    for round in 0..1000u32 {
        let src = t.spoof6(rng);
        let s = syn(rng, PORT);
        let seg = s.bytes(pseudo6(src, t.lkl6, 6, 20 + s.options.len()));
        let id = rng.next_u64() as u32;
        let frag = |off: usize, more: bool, data: &[u8]| {
            let mut fh = vec![6u8, 0];
            fh.extend((((off / 8) as u16) << 3 | u16::from(more)).to_be_bytes());
            fh.extend(id.to_be_bytes());
            fh.extend(data);
            ipv6(src, t.lkl6, 44, &fh)
        };
        match round % 3 {
            0 => {
                for off in (0..seg.len()).step_by(8) {
                    let end = (off + 8).min(seg.len());
                    inj.send(&frag(off, end < seg.len(), &seg[off..end]));
                }
            }
            1 => {
                inj.send(&frag(0, true, &seg[..16]));
                inj.send(&frag(8, true, &rng.bytes(16)));
                inj.send(&frag(16, false, &seg[16..]));
            }
            _ => inj.send(&frag(0, false, &seg)),
        }
    }
}

/// All 4096 values of the 12 flag bits (NS and the reserved bits included), at the listener
/// and at a closed port, with random sequence numbers, sometimes with data and URG pointers.
fn all_flags(inj: &mut Injector, t: &Target, rng: &mut Rng) {
    for flags in 0..4096u16 {
        for dport in [PORT, CLOSED_PORT] {
            let src = t.spoof4(rng);
            let mut s = Tcp::new(
                rng.range(1024, 65535) as u16,
                dport,
                rng.next_u64() as u32,
                rng.next_u64() as u32,
                0,
            );
            s.flags = flags;
            s.urgent = rng.next_u64() as u16;
            if rng.chance(50) {
                s.payload = rng.bytes(rng.range(1, 200) as usize);
            }
            inj.send(&s.v4(src, t.lkl4));
            if flags % 4 == 0 {
                let src6 = t.spoof6(rng);
                inj.send(&s.v6(src6, t.lkl6));
            }
        }
    }
}

/// Bad TCP headers: data offsets that lie, options that run past the header, lengths 0 and 1,
/// huge window scale, SACK blocks and timestamps of junk, MD5 and TFO options.
fn tcp_options_junk(inj: &mut Injector, t: &Target, rng: &mut Rng) {
    let sets: Vec<Vec<u8>> = vec![
        vec![2, 0, 0, 0],                                // MSS, length 0
        vec![2, 1, 0, 0],                                // MSS, length 1
        vec![2, 4, 0, 0],                                // MSS 0
        vec![2, 4, 0, 1],                                // MSS 1
        vec![3, 3, 255, 0],                              // window scale 255
        vec![4, 2, 4, 2, 4, 2, 4, 2],                    // SACK permitted four times
        vec![5, 34, 0, 0],                               // SACK past the header
        vec![5, 10, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff], // SACK block
        vec![8, 10, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], // timestamps
        vec![8, 40],                                     // timestamp longer than the header
        vec![
            19, 18, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        ], // MD5
        vec![34, 2],                                     // TFO cookie request
        vec![
            34, 18, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        ], // TFO cookie
        vec![30, 20, 0, 0],                              // MPTCP, truncated
        vec![254, 6, 0xf9, 0x89, 0, 0],                  // experimental
        vec![1, 1, 1, 255],                              // NOPs, then a kind without length
    ];
    for i in 0..6000usize {
        let src = t.spoof4(rng);
        let mut s = syn(rng, *rng.pick(&[PORT, CLOSED_PORT]));
        s.options = if i < sets.len() * 100 {
            sets[i % sets.len()].clone()
        } else {
            rng.bytes(rng.range(1, 40) as usize)
        };
        if rng.chance(25) {
            s.flags = u16::from(*rng.pick(&[ACK, SYN | ACK, FIN | ACK, RST, PSH | ACK]));
        }
        if rng.chance(30) {
            s.payload = rng.bytes(rng.range(1, 100) as usize);
        }
        if rng.chance(30) {
            // Data offset that lies: below 5, or past the segment.
            s.doff = Some(rng.below(16) as u8);
        }
        if i % 3 == 0 {
            let src6 = t.spoof6(rng);
            inj.send(&s.v6(src6, t.lkl6));
        } else {
            inj.send(&s.v4(src, t.lkl4));
        }
    }
}

/// 100 000 SYNs from random spoofed sources and ports, with random ISNs.
fn syn_flood(inj: &mut Injector, t: &Target, rng: &mut Rng) -> Duration {
    let start = Instant::now();
    for i in 0..SYN_FLOOD {
        let src = t.spoof4(rng);
        inj.send(&syn(rng, PORT).v4(src, t.lkl4));
        let _ = i;
    }
    start.elapsed()
}

/// IPv6 extension-header chains in front of a SYN (and in front of nothing).
fn ipv6_chains(inj: &mut Injector, t: &Target, rng: &mut Rng) {
    // An extension header of type `kind` (8-byte units), followed by `next`.
    let ext = |rng: &mut Rng, kind: u8, next: u8| -> Vec<u8> {
        match kind {
            44 => {
                let mut h = vec![next, 0, 0, 0];
                h.extend((rng.next_u64() as u32).to_be_bytes());
                h
            }
            51 => {
                // AH: length in 4-byte units minus 2.
                let mut h = vec![next, 4];
                h.extend(rng.bytes(22));
                h
            }
            43 => {
                // Routing: type 0 (deprecated), 2, 3 or 4 (SRH), segments left random.
                let units = rng.range(0, 4) as u8 * 2;
                let mut h = vec![
                    next,
                    units,
                    *rng.pick(&[0u8, 2, 3, 4, 253]),
                    rng.below(5) as u8,
                ];
                h.extend(rng.bytes(4 + usize::from(units) * 8));
                h
            }
            _ => {
                // Hop-by-hop / destination options: PadN, router alert, jumbo, unknown
                // options with each action bit pattern, or raw junk.
                let units = rng.range(0, 3) as u8;
                let mut h = vec![next, units];
                let body = 6 + usize::from(units) * 8;
                let mut opts = match rng.below(5) {
                    0 => vec![1, (body - 2) as u8],
                    1 => vec![5, 2, 0, 0],
                    2 => vec![0xc2, 4, 0, 1, 0, 0],
                    3 => vec![*rng.pick(&[0x1eu8, 0x5e, 0x9e, 0xde]), 2, 0, 0],
                    _ => rng.bytes(body),
                };
                opts.resize(body, 0);
                h.extend(opts);
                h
            }
        }
    };
    for i in 0..4000u32 {
        let src = t.spoof6(rng);
        let s = syn(rng, PORT);
        let tcp = s.bytes(pseudo6(src, t.lkl6, 6, 20 + s.options.len()));
        let depth = if i % 10 == 0 {
            rng.range(20, 60)
        } else {
            rng.range(1, 6)
        };
        let kinds: Vec<u8> = (0..depth)
            .map(|_| *rng.pick(&[0u8, 60, 43, 44, 51]))
            .collect();
        let last = *rng.pick(&[6u8, 6, 6, 59, 17, 58, 50, 135, 253, 99]);
        let mut chain = tcp.clone();
        if last != 6 {
            chain = rng.bytes(rng.below(64) as usize);
        }
        for (k, &kind) in kinds.iter().enumerate().rev() {
            let next = if k + 1 < kinds.len() {
                kinds[k + 1]
            } else {
                last
            };
            let mut h = ext(rng, kind, next);
            h.extend(chain);
            chain = h;
        }
        let mut p = ipv6(src, t.lkl6, kinds[0], &chain);
        match rng.below(6) {
            0 => {
                // Payload length larger than the packet.
                let l = (chain.len() + rng.range(1, 500) as usize) as u16;
                p[4..6].copy_from_slice(&l.to_be_bytes());
            }
            1 => {
                // Smaller than the extension headers.
                let l = rng.below(chain.len() as u64) as u16;
                p[4..6].copy_from_slice(&l.to_be_bytes());
            }
            2 => {
                // Zero: only valid with a jumbo option.
                p[4] = 0;
                p[5] = 0;
            }
            3 => {
                // Truncated inside the chain.
                let cut = 40 + rng.below(chain.len() as u64) as usize;
                p.truncate(cut);
            }
            _ => {}
        }
        inj.send(&p);
    }
}

/// ICMP and ICMPv6 messages of every type with junk bodies and quotes of made-up packets.
fn icmp_junk(inj: &mut Injector, t: &Target, rng: &mut Rng) {
    for i in 0..3000u32 {
        let src = t.spoof4(rng);
        let mut m = vec![rng.below(45) as u8, rng.below(20) as u8, 0, 0];
        m.extend(rng.bytes(4));
        if i % 2 == 0 {
            // A quote of a TCP segment LKL supposedly sent, with a random sequence number.
            let quoted = Tcp::new(
                PORT,
                rng.range(1024, 65535) as u16,
                rng.next_u64() as u32,
                0,
                ACK,
            )
            .v4(t.lkl4, src);
            m.extend(&quoted[..rng.range(1, quoted.len() as u64) as usize]);
        } else {
            m.extend(rng.bytes(rng.below(200) as usize));
        }
        let c = csum(&m, 0);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        inj.send(&ipv4(src, t.lkl4, 1, &m));

        let src6 = t.spoof6(rng);
        // Not 133-137 (router/neighbour discovery), whose junk is tested by the fuzzer.
        let ty = *rng.pick(&[1u8, 2, 3, 4, 128, 129, 130, 131, 143, 200, 255]);
        let mut m = vec![ty, rng.below(10) as u8, 0, 0];
        m.extend(rng.bytes(rng.range(0, 300) as usize));
        let c = csum(&m, pseudo6(src6, t.lkl6, 58, m.len()));
        m[2..4].copy_from_slice(&c.to_be_bytes());
        inj.send(&ipv6(src6, t.lkl6, 58, &m));
    }
}

/// A connection established by hand from a spoofed address, then abused: zero-window probes
/// both ways, out-of-window segments and ACKs, overlapping data with different content, every
/// flag combination in window. Returns a line describing what happened.
fn spoofed_connection(inj: &mut Injector, t: &Target, rng: &mut Rng) -> String {
    let src = Ipv4Addr::new(t.net[0], t.net[1], t.net[2], 250);
    let sport = rng.range(20000, 30000) as u16;
    let isn = rng.next_u64() as u32;
    inj.drain();
    let to_us = move |s: &Seen| s.dst == IpAddr::V4(src) && s.dport == sport;
    let mut synack = None;
    for _ in 0..5 {
        let mut s = Tcp::new(sport, PORT, isn, 0, SYN);
        s.options = vec![2, 4, 0x05, 0xb4];
        inj.send(&s.v4(src, t.lkl4));
        synack = wait_tcp(inj, Duration::from_secs(2), |s| {
            to_us(s) && s.flags & (SYN | ACK) == SYN | ACK
        });
        if synack.is_some() {
            break;
        }
    }
    let synack = synack.expect("no SYN-ACK from LKL to the hand-made connection");
    let mut our_seq = isn.wrapping_add(1);
    let their_seq = synack.seq.wrapping_add(1);
    let seg = |seq: u32, ack: u32, flags: u8, window: u16, payload: Vec<u8>| {
        let mut s = Tcp::new(sport, PORT, seq, ack, flags);
        s.window = window;
        s.payload = payload;
        s.v4(src, t.lkl4)
    };
    inj.send(&seg(our_seq, their_seq, ACK, 65535, vec![]));
    // Data, acknowledged with a zero window: LKL's echo must stall and probe.
    let data = b"hello through a zero window".to_vec();
    inj.send(&seg(our_seq, their_seq, ACK | PSH, 0, data.clone()));
    our_seq = our_seq.wrapping_add(data.len() as u32);
    let ack_of_data = wait_tcp(inj, Duration::from_secs(3), |s| {
        to_us(s) && s.ack == our_seq
    });
    let mut probes_seen = 0;
    // Our own zero-window probes (one byte below rcv_nxt, and empty), many times.
    for _ in 0..200 {
        inj.send(&seg(our_seq.wrapping_sub(1), their_seq, ACK, 0, vec![]));
        inj.send(&seg(our_seq.wrapping_sub(1), their_seq, ACK, 0, vec![0x55]));
    }
    if wait_tcp(inj, Duration::from_millis(700), |s| {
        to_us(s) && s.payload_len <= 1
    })
    .is_some()
    {
        probes_seen += 1;
    }
    // Out of window: far ahead, far behind, ACKs of data never sent, ACKs far behind.
    for k in 0..2000u32 {
        let off = rng.range(1 << 20, 1 << 31) as u32;
        let (seq, ack) = match k % 4 {
            0 => (our_seq.wrapping_add(off), their_seq),
            1 => (our_seq.wrapping_sub(off), their_seq),
            2 => (our_seq, their_seq.wrapping_add(off)),
            _ => (our_seq, their_seq.wrapping_sub(off)),
        };
        // An RST (or SYN) exactly at rcv_nxt would end the connection legitimately: those go
        // only with an out-of-window sequence number.
        let flags = if k % 4 < 2 {
            *rng.pick(&[ACK, ACK | PSH, RST, RST | ACK, SYN, FIN | ACK, SYN | ACK])
        } else {
            *rng.pick(&[ACK, ACK | PSH])
        };
        inj.send(&seg(
            seq,
            ack,
            flags,
            rng.next_u64() as u16,
            rng.bytes(rng.below(100) as usize),
        ));
    }
    // Overlapping segments with different content (first copy wins or last: either way no
    // crash), then reopen the window.
    let a = vec![b'A'; 100];
    let b = vec![b'B'; 100];
    inj.send(&seg(our_seq.wrapping_add(50), their_seq, ACK, 0, b.clone()));
    inj.send(&seg(our_seq, their_seq, ACK, 0, a.clone()));
    inj.send(&seg(our_seq.wrapping_add(20), their_seq, ACK, 0, b.clone()));
    our_seq = our_seq.wrapping_add(150);
    let acked_overlap = wait_tcp(inj, Duration::from_secs(3), |s| {
        to_us(s) && s.ack == our_seq
    })
    .is_some();
    inj.send(&seg(our_seq, their_seq, ACK, 65535, vec![]));
    // Every flag combination in window (an exact RST ends it on the way; later ones meet a
    // closed connection).
    for flags in 0..4096u16 {
        let mut s = Tcp::new(sport, PORT, our_seq, their_seq, 0);
        s.flags = flags;
        if flags & u16::from(SYN | RST) == 0 && rng.chance(50) {
            s.payload = rng.bytes(10);
        }
        inj.send(&s.v4(src, t.lkl4));
    }
    format!(
        "hand-made connection: acked data with zero window: {}, probes/answers seen: {probes_seen}, \
         overlap acked: {acked_overlap}",
        ack_of_data.is_some()
    )
}

fn barrage(inj: &mut Injector, t: &Target, seed: u64) -> (Counts, Vec<String>) {
    let mut rng = Rng::new(seed);
    let mut c = Counts::default();
    let mut notes = Vec::new();
    let b = inj.sent;
    ipv4_junk(inj, t, &mut rng);
    c.phase("ipv4 header junk and bogus options", inj, b);
    let b = inj.sent;
    fragments(inj, t, &mut rng);
    c.phase("fragments", inj, b);
    let b = inj.sent;
    all_flags(inj, t, &mut rng);
    c.phase("all tcp flag combinations", inj, b);
    let b = inj.sent;
    tcp_options_junk(inj, t, &mut rng);
    c.phase("tcp header and option junk", inj, b);
    let b = inj.sent;
    ipv6_chains(inj, t, &mut rng);
    c.phase("ipv6 extension-header chains", inj, b);
    let b = inj.sent;
    icmp_junk(inj, t, &mut rng);
    c.phase("icmp junk", inj, b);
    let b = inj.sent;
    notes.push(spoofed_connection(inj, t, &mut rng));
    c.phase("hand-made connection abuse", inj, b);
    let b = inj.sent;
    let took = syn_flood(inj, t, &mut rng);
    c.phase("syn flood", inj, b);
    notes.push(format!("{SYN_FLOOD} SYNs sent in {took:.1?}"));
    (c, notes)
}

#[test]
fn hostile_packets_neither_crash_nor_wedge_lkl_and_a_transfer_alongside_stays_intact() {
    let topo = venet();
    let a = topo.addrs().clone();
    // Dual-stack listener on LKL: [::]:7 takes IPv4 and IPv6.
    let listen = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), PORT);
    let addr4 = SocketAddr::new(IpAddr::V4(a.lkl_v4), PORT);
    let addr6 = SocketAddr::new(IpAddr::V6(a.lkl_v6), PORT);
    let mut server = start_echo_any(&topo, listen, addr4);

    let alongside = Alongside::start(&topo, addr4, 0x51, Duration::from_secs(90));

    let o = a.lkl_v4.octets();
    let target = Target {
        lkl4: a.lkl_v4,
        lkl6: a.lkl_v6,
        net: [o[0], o[1], o[2]],
        group6: a.lkl_v6.segments()[2],
    };
    let rounds = if soak() { 10 } else { 1 };
    let started = Instant::now();
    let (total, reports) = topo
        .peer_ns()
        .in_thread(|| {
            let mut inj = Injector::open(topo.peer_if()).expect("packet socket on tun0");
            let mut reports = Vec::new();
            for r in 0..rounds {
                let (counts, notes) = barrage(&mut inj, &target, 0xbad_5eed + r);
                reports.push((counts, notes));
            }
            ((inj.sent, inj.send_errors), reports)
        })
        .unwrap();
    let barrage_time = started.elapsed();
    for (counts, notes) in &reports {
        for (name, n) in &counts.phases {
            eprintln!("  {name}: {n} packets");
        }
        for n in notes {
            eprintln!("  {n}");
        }
    }
    eprintln!(
        "{} hostile packets sent ({} send errors) in {barrage_time:.1?}; forwarder: {}",
        total.0,
        total.1,
        topo.forwarder_stats()
            .map(|s| s.render())
            .unwrap_or_default()
    );
    let dropped = tx_dropped(topo.peer_ns(), topo.peer_if());
    eprintln!("tun0 dropped {dropped} packets on transmit (ring full)");
    assert!(
        dropped * 100 <= total.0,
        "more than 1 % of the hostile packets never reached LKL ({dropped} of {})",
        total.0
    );
    assert_alive(&mut server, "under the hostile packets");

    let t = alongside.finish();
    let t = t.unwrap_or_else(|e| panic!("the transfer alongside failed: {e}"));
    eprintln!(
        "transfer alongside: {} bytes echoed and verified in {:.1?}",
        t.verified, t.elapsed
    );
    assert!(t.verified > 0, "the transfer alongside moved nothing");
    assert_alive(&mut server, "after the hostile packets");

    // New connections, both families, still work (within the SYN queue's recovery).
    for addr in [addr4, addr6] {
        let t = echo_from_peer(&topo, addr, 4 << 20, 0x77)
            .unwrap_or_else(|e| panic!("new connection to {addr} after the barrage: {e}"));
        eprintln!(
            "new connection to {addr}: {} bytes verified in {:.1?}",
            t.verified, t.elapsed
        );
    }
    assert_alive(&mut server, "at the end");
    server.terminate(Duration::from_secs(10));
}

/// `start_echo` for a wildcard listen address: waits on `probe`.
fn start_echo_any(
    topo: &lkl_rig::VenetTopology,
    listen: SocketAddr,
    probe: SocketAddr,
) -> common::Server {
    let bin = echo_server_bin();
    let mut server = common::Server::spawn(
        common::command_in(
            topo.container_ns(),
            bin.to_str().unwrap(),
            &[&listen.to_string()],
            &common::lkl_env(topo),
        ),
        "echo_server",
    );
    server.wait_listening(topo.peer_ns(), probe, Duration::from_secs(30));
    assert!(
        !common::host_listens_on(topo.container_ns(), PORT),
        "the echo server listens on the host stack"
    );
    server
}
