//! Fuzzing the packet rx path through the real library, deterministic: the
//! echo server example under the preload on LKL's addresses, and from the peer namespace a
//! packet socket on the peer's tun device sends seeded-random packets, exactly what the
//! backend's rx then reads into the kernel's buffer: random bytes behind an IPv4 or IPv6
//! header that names LKL's address (the packet filter passes nothing else), and valid TCP,
//! UDP, ICMP, fragment and extension-header packets mutated by bit flips, byte overwrites,
//! truncation and extension. An echo transfer runs alongside and checks every byte; the
//! server must be alive afterwards and new connections must echo.
//!
//! CI: 150 000 packets. `LKL_SOAK=1`: 5 000 000. `LKL_FUZZ_SEED=N` picks another seed.
//! The virtio_net header the backend hands the kernel comes from the host's packet socket and
//! cannot be chosen from the wire.

mod common;
mod echo;
mod injector;
mod packets;
mod rng;
mod run_length;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::venet;
use echo::{assert_alive, echo_from_peer, start_echo, Alongside};
use injector::{tx_dropped, Injector};
use lkl_rig::Topology;
use packets::{fix_ipv4_csum, ipv4_header, ipv6, pseudo4, pseudo6, Tcp};
use rng::Rng;
use run_length::soak;

const PORT: u16 = 7;

fn seed() -> u64 {
    std::env::var("LKL_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xf022)
}

fn mutate(rng: &Rng, mut p: Vec<u8>, keep: usize) -> Vec<u8> {
    for _ in 0..rng.range(1, 8) {
        let len = p.len();
        if len <= keep {
            break;
        }
        let at = rng.range(keep as u64, len as u64 - 1) as usize;
        match rng.below(5) {
            0 => p[at] ^= 1 << rng.below(8),
            1 => p[at] = rng.next_u64() as u8,
            2 => p.truncate(at.max(keep)),
            3 => p.extend(rng.bytes(rng.below(64) as usize)),
            _ => {
                let v = *rng.pick(&[0u8, 0xff, 0x7f, 0x80, 1]);
                p[at] = v;
            }
        }
    }
    p
}

#[test]
fn random_and_mutated_packets_neither_crash_nor_wedge_lkl() {
    let topo = venet();
    let a = topo.addrs().clone();
    let addr4 = SocketAddr::new(IpAddr::V4(a.lkl_v4), PORT);
    let addr6 = SocketAddr::new(IpAddr::V6(a.lkl_v6), PORT);
    let mut server = start_echo(
        &topo,
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), PORT),
        &[],
    );

    let alongside = Alongside::start(&topo, addr4, 0xf, Duration::from_secs(90));

    let count: u64 = if soak() { 5_000_000 } else { 150_000 };
    let o = a.lkl_v4.octets();
    let started = Instant::now();
    let (sent, errors) = topo
        .peer_ns()
        .in_thread(|| {
            let rng = Rng::new(seed());
            let mut inj = Injector::open(topo.peer_if()).expect("packet socket on tun0");
            for i in 0..count {
                let src4 = std::net::Ipv4Addr::new(o[0], o[1], o[2], rng.range(100, 249) as u8);
                let mut src6 = a.lkl_v6.segments();
                src6[7] = rng.range(0x100, 0xfff) as u16;
                let src6 = Ipv6Addr::from(src6);
                let v6 = i % 3 == 2;
                let p = match rng.below(4) {
                    0 => {
                        // Random bytes; only version and destination fixed.
                        let mut p = rng.bytes(rng.range(20, 1500) as usize);
                        if v6 {
                            p.resize(p.len().max(40), 0);
                            p[0] = 0x60 | (p[0] & 0x0f);
                            p[24..40].copy_from_slice(&a.lkl_v6.octets());
                        } else {
                            p[0] = 0x40 | (p[0] & 0x0f);
                            p[16..20].copy_from_slice(&a.lkl_v4.octets());
                            if rng.chance(50) {
                                fix_ipv4_csum(&mut p);
                            }
                        }
                        p
                    }
                    k => {
                        // A valid packet, mutated behind the destination address.
                        let mut t = Tcp::new(
                            rng.range(1024, 65535) as u16,
                            *rng.pick(&[PORT, PORT, 9, rng.next_u64() as u16]),
                            rng.next_u64() as u32,
                            rng.next_u64() as u32,
                            rng.next_u64() as u8,
                        );
                        t.options = rng.bytes(rng.below(12) as usize);
                        t.payload = rng.bytes(rng.below(200) as usize);
                        let (base, keep) = if v6 {
                            let body = match k {
                                1 => t.bytes(pseudo6(
                                    src6,
                                    a.lkl_v6,
                                    6,
                                    20 + t.options.len().next_multiple_of(4) + t.payload.len(),
                                )),
                                _ => rng.bytes(rng.below(300) as usize),
                            };
                            let next = if k == 1 {
                                6
                            } else {
                                *rng.pick(&[0u8, 43, 44, 58, 60, 17, 51, 59])
                            };
                            (ipv6(src6, a.lkl_v6, next, &body), 40)
                        } else {
                            let proto = if k == 1 {
                                6
                            } else {
                                *rng.pick(&[1u8, 17, 6, 2, 47, 4, 41])
                            };
                            let body = if k == 1 {
                                t.bytes(pseudo4(
                                    src4,
                                    a.lkl_v4,
                                    6,
                                    20 + t.options.len().next_multiple_of(4) + t.payload.len(),
                                ))
                            } else {
                                rng.bytes(rng.below(300) as usize)
                            };
                            let frag = if rng.chance(20) {
                                rng.next_u64() as u16 & 0x3fff
                            } else {
                                0x4000
                            };
                            let mut p = ipv4_header(
                                src4,
                                a.lkl_v4,
                                proto,
                                body.len(),
                                rng.next_u64() as u16,
                                frag,
                                &[],
                            );
                            p.extend(&body);
                            (p, 20)
                        };
                        let mut p = mutate(&rng, base, keep);
                        if !v6 && rng.chance(30) {
                            // Header fields too, with a correct checksum so that they count.
                            p[rng.range(1, 9) as usize] = rng.next_u64() as u8;
                            fix_ipv4_csum(&mut p);
                        }
                        p
                    }
                };
                inj.send(&p);
            }
            (inj.sent, inj.send_errors)
        })
        .unwrap();
    let took = started.elapsed();
    let dropped = tx_dropped(topo.peer_ns(), topo.peer_if());
    eprintln!(
        "{sent} fuzz packets sent ({errors} refused by the sending socket, {dropped} dropped by tun0) in {took:.1?}"
    );
    assert!(dropped * 100 <= sent, "tun0 dropped {dropped} of {sent}");
    assert_alive(&mut server, "under the fuzz packets");
    let t = alongside
        .finish()
        .unwrap_or_else(|e| panic!("the transfer alongside failed: {e}"));
    eprintln!(
        "transfer alongside: {} bytes verified in {:.1?}",
        t.verified, t.elapsed
    );
    for addr in [addr4, addr6] {
        let t = echo_from_peer(&topo, addr, 1 << 20, 3)
            .unwrap_or_else(|e| panic!("new connection to {addr} after the fuzzing: {e}"));
        eprintln!("new connection to {addr}: {} bytes verified", t.verified);
    }
    assert_alive(&mut server, "at the end");
    server.terminate(Duration::from_secs(10));
}
