//! The link emulation of one direction: loss, burst loss, duplication, reordering, rate limit
//! and delay, over a preallocated packet ring (no allocation per packet).

use std::collections::VecDeque;
use std::io;
use std::os::fd::BorrowedFd;

use super::stats::DirStats;
use crate::sys;

/// Largest packet a tun device can hand us (its maximum MTU is 65535).
pub const MAX_PACKET: usize = 65536;
/// Bytes of packet storage per direction (virtual memory; only pages in use get touched).
const RING_BYTES: usize = 64 << 20;
/// Packets that can be queued per direction.
const MAX_QUEUED: usize = 1 << 18;
/// A packet held back for reordering goes out after this long even if no other packet follows.
const REORDER_HOLD_NS: u64 = 5_000_000;

/// What the forwarder does to the packets, in both directions. All percentages are 0..=100.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Impairments {
    /// One-way delay in milliseconds.
    pub delay_ms: f64,
    /// Independent random loss, percent.
    pub loss_pct: f64,
    /// Burst loss: probability (percent) that a packet starts a burst of `burst_len` drops.
    pub burst_pct: f64,
    /// Length of a loss burst in packets (the packet that starts it included).
    pub burst_len: u32,
    /// Probability (percent) that a packet is held back and sent after the next one.
    pub reorder_pct: f64,
    /// Probability (percent) that a packet is sent twice.
    pub duplicate_pct: f64,
    /// Rate limit in Mbit/s (0: unlimited).
    pub rate_mbit: f64,
    /// Rate limiter backlog limit in bytes (default: see [`Impairments::queue_limit`]).
    pub queue_bytes: Option<u64>,
    /// PRNG seed: the same seed and traffic give the same drops.
    pub seed: u64,
}

/// Command line help for the options [`Impairments::parse_flag`] accepts.
pub const IMPAIRMENT_USAGE: &str = "\
  --delay-ms MS        one-way delay, both directions (default 0)
  --loss PCT           random loss (default 0)
  --burst-loss PCT     probability that a packet starts a loss burst (default 0)
  --burst-len N        packets dropped per burst, the first included (default 3; 0 = 3)
  --reorder PCT        probability that a packet is sent after the next one (default 0)
  --duplicate PCT      probability that a packet is sent twice (default 0)
  --rate-mbit MBIT     rate limit (default 0: unlimited)
  --queue-bytes N      rate limiter backlog limit (default: one RTT at the rate, >= 64 KiB)
  --seed N             PRNG seed (default 0)";

fn parse_num<T: std::str::FromStr>(flag: &str, value: &str, what: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag} {value:?}: expected {what}"))
}

impl Impairments {
    /// Applies one `--flag value` pair; `Ok(false)` if `flag` is not an impairment option.
    /// Ranges are checked by [`Impairments::validate`].
    pub fn parse_flag(&mut self, flag: &str, value: &str) -> Result<bool, String> {
        match flag {
            "--delay-ms" => self.delay_ms = parse_num(flag, value, "a number")?,
            "--loss" => self.loss_pct = parse_num(flag, value, "a percentage")?,
            "--burst-loss" => self.burst_pct = parse_num(flag, value, "a percentage")?,
            "--burst-len" => self.burst_len = parse_num(flag, value, "a packet count")?,
            "--reorder" => self.reorder_pct = parse_num(flag, value, "a percentage")?,
            "--duplicate" => self.duplicate_pct = parse_num(flag, value, "a percentage")?,
            "--rate-mbit" => self.rate_mbit = parse_num(flag, value, "a number")?,
            "--queue-bytes" => self.queue_bytes = Some(parse_num(flag, value, "a byte count")?),
            "--seed" => self.seed = parse_num(flag, value, "an unsigned integer")?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks the ranges: percentages 0..=100, delay and rate finite and >= 0.
    pub fn validate(&self) -> Result<(), String> {
        for (flag, pct) in [
            ("--loss", self.loss_pct),
            ("--burst-loss", self.burst_pct),
            ("--reorder", self.reorder_pct),
            ("--duplicate", self.duplicate_pct),
        ] {
            if !(0.0..=100.0).contains(&pct) {
                return Err(format!("{flag} {pct}: expected a percentage 0..100"));
            }
        }
        for (flag, x) in [
            ("--delay-ms", self.delay_ms),
            ("--rate-mbit", self.rate_mbit),
        ] {
            if !(x.is_finite() && x >= 0.0) {
                return Err(format!("{flag} {x}: expected a number >= 0"));
            }
        }
        Ok(())
    }

    /// The command line options that reproduce these settings.
    pub fn to_args(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut push = |flag: &str, value: String| {
            out.push(flag.to_string());
            out.push(value);
        };
        for (flag, value) in [
            ("--delay-ms", self.delay_ms),
            ("--loss", self.loss_pct),
            ("--burst-loss", self.burst_pct),
            ("--reorder", self.reorder_pct),
            ("--duplicate", self.duplicate_pct),
            ("--rate-mbit", self.rate_mbit),
        ] {
            if value != 0.0 {
                push(flag, value.to_string());
            }
        }
        if self.burst_len != 0 {
            push("--burst-len", self.burst_len.to_string());
        }
        if let Some(q) = self.queue_bytes {
            push("--queue-bytes", q.to_string());
        }
        if self.seed != 0 {
            push("--seed", self.seed.to_string());
        }
        out
    }

    /// Rate limiter backlog limit in bytes: `queue_bytes`, or by default the bytes the rate
    /// carries in one round trip (twice the delay, at least 20 ms), and at least 64 KiB.
    pub fn queue_limit(&self) -> u64 {
        self.queue_bytes.unwrap_or_else(|| {
            let rtt_s = (2.0 * self.delay_ms / 1000.0).max(0.02);
            ((self.rate_mbit * 1e6 / 8.0 * rtt_s) as u64).max(64 << 10)
        })
    }
}

/// Impairments turned into the form the fast path uses.
pub struct LinkParams {
    delay_ns: u64,
    loss: u64,
    burst: u64,
    burst_len: u32,
    reorder: u64,
    duplicate: u64,
    /// Nanoseconds per byte at the rate limit; 0 when unlimited.
    ns_per_byte: f64,
    queue_limit: u64,
}

/// Probability threshold for [`Rng::chance`]: `pct` percent of the u64 range.
fn threshold(pct: f64) -> u64 {
    // `as` saturates: 100 % maps to u64::MAX.
    (pct / 100.0 * 18_446_744_073_709_551_616.0) as u64
}

impl LinkParams {
    pub fn new(imp: &Impairments) -> Self {
        LinkParams {
            delay_ns: (imp.delay_ms * 1e6) as u64,
            loss: threshold(imp.loss_pct),
            burst: threshold(imp.burst_pct),
            burst_len: if imp.burst_len == 0 { 3 } else { imp.burst_len },
            reorder: threshold(imp.reorder_pct),
            duplicate: threshold(imp.duplicate_pct),
            ns_per_byte: if imp.rate_mbit > 0.0 {
                8e3 / imp.rate_mbit
            } else {
                0.0
            },
            queue_limit: imp.queue_limit(),
        }
    }
}

/// xorshift64* seeded through splitmix64: deterministic, fast, good enough for drop decisions.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Rng(if z == 0 { 1 } else { z })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True with the probability `threshold` / 2^64; draws nothing when the threshold is 0.
    fn chance(&mut self, threshold: u64) -> bool {
        threshold != 0 && self.next_u64() < threshold
    }
}

#[derive(Clone, Copy)]
struct Queued {
    off: u32,
    len: u32,
    due_ns: u64,
    copies: u8,
    hold: bool,
}

/// FIFO of packets stored back to back in one ring buffer. Release times are non-decreasing
/// (constant delay after a serialising rate limiter), so one FIFO serves every impairment.
struct PacketQueue {
    buf: Box<[u8]>,
    queued: VecDeque<Queued>,
    /// Where the next packet goes when the queue is not empty.
    tail: usize,
}

impl PacketQueue {
    fn new() -> Self {
        PacketQueue {
            // A zeroed allocation this large comes from mmap: pages are touched only when used.
            buf: vec![0u8; RING_BYTES].into_boxed_slice(),
            queued: VecDeque::with_capacity(MAX_QUEUED),
            tail: 0,
        }
    }

    /// Offset of a free, contiguous MAX_PACKET-byte slot, or None if the ring is full.
    fn slot(&mut self) -> Option<usize> {
        if self.queued.len() >= MAX_QUEUED {
            return None;
        }
        let Some(head) = self.queued.front().map(|q| q.off as usize) else {
            self.tail = 0;
            return Some(0);
        };
        if self.tail > head {
            // Data in [head, tail): room after tail, or wrap to the start.
            if self.buf.len() - self.tail >= MAX_PACKET {
                Some(self.tail)
            } else if head > MAX_PACKET {
                Some(0)
            } else {
                None
            }
        } else if head - self.tail > MAX_PACKET {
            // Wrapped: data in [head, end) and [0, tail).
            Some(self.tail)
        } else {
            None
        }
    }

    fn push(&mut self, q: Queued) {
        self.tail = (q.off + q.len) as usize;
        self.queued.push_back(q);
    }
}

/// The link's run-time switches, flipped by signals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Switches {
    /// Drop everything.
    pub blackhole: bool,
    /// Apply the random impairments (loss, burst loss, duplication, reordering); off, the
    /// link keeps only its delay and rate, so a test can confine faults to a spell.
    pub faults: bool,
}

/// One direction of the link: reads from one device, writes to the other.
pub struct Direction {
    queue: PacketQueue,
    held: Box<[u8]>,
    held_len: usize,
    held_since_ns: u64,
    rng: Rng,
    burst_left: u32,
    /// Virtual time at which the rate limiter finishes sending what it has accepted.
    busy_until_ns: u64,
    pub stats: DirStats,
}

/// How many packets one readiness event reads at most, so the directions take turns.
const BATCH: usize = 64;

impl Direction {
    pub fn new(seed: u64) -> Self {
        Direction {
            queue: PacketQueue::new(),
            held: vec![0u8; MAX_PACKET].into_boxed_slice(),
            held_len: 0,
            held_since_ns: 0,
            rng: Rng::new(seed),
            burst_left: 0,
            busy_until_ns: 0,
            stats: DirStats::default(),
        }
    }

    /// Reads up to BATCH packets from `src` and queues (or drops) them. `scratch` takes packets
    /// that are read only to be dropped because the queue is full.
    pub fn receive(
        &mut self,
        src: BorrowedFd<'_>,
        p: &LinkParams,
        switches: Switches,
        now_ns: u64,
        scratch: &mut [u8],
    ) -> io::Result<()> {
        for _ in 0..BATCH {
            let Some(off) = self.queue.slot() else {
                match sys::read_packet(src, scratch)? {
                    Some(_) => {
                        self.stats.received += 1;
                        self.stats.overflow += 1;
                        continue;
                    }
                    None => return Ok(()),
                }
            };
            let Some(len) = sys::read_packet(src, &mut self.queue.buf[off..off + MAX_PACKET])?
            else {
                return Ok(());
            };
            self.stats.received += 1;
            if let Some(q) = self.decide(p, switches, now_ns, off, len) {
                self.queue.push(q);
            }
        }
        Ok(())
    }

    /// Applies the impairments to a packet just read; None if it is dropped.
    fn decide(
        &mut self,
        p: &LinkParams,
        switches: Switches,
        now_ns: u64,
        off: usize,
        len: usize,
    ) -> Option<Queued> {
        let s = &mut self.stats;
        if switches.blackhole {
            s.blackholed += 1;
            return None;
        }
        let (copies, hold) = if switches.faults {
            if self.burst_left > 0 {
                self.burst_left -= 1;
                s.burst_lost += 1;
                return None;
            }
            if self.rng.chance(p.burst) {
                self.burst_left = p.burst_len - 1;
                s.burst_lost += 1;
                return None;
            }
            if self.rng.chance(p.loss) {
                s.lost += 1;
                return None;
            }
            let copies = if self.rng.chance(p.duplicate) { 2 } else { 1 };
            (copies, self.rng.chance(p.reorder))
        } else {
            self.burst_left = 0;
            (1, false)
        };
        let mut due_ns = now_ns + p.delay_ns;
        if p.ns_per_byte > 0.0 {
            let backlog_bytes =
                (self.busy_until_ns.saturating_sub(now_ns) as f64 / p.ns_per_byte) as u64;
            if backlog_bytes + len as u64 > p.queue_limit {
                s.overflow += 1;
                return None;
            }
            let start = self.busy_until_ns.max(now_ns);
            self.busy_until_ns = start + ((len * copies) as f64 * p.ns_per_byte) as u64;
            due_ns = self.busy_until_ns + p.delay_ns;
        }
        if copies == 2 {
            s.duplicated += 1;
        }
        Some(Queued {
            off: off as u32,
            len: len as u32,
            due_ns,
            copies: copies as u8,
            hold,
        })
    }

    fn send(stats: &mut DirStats, dst: BorrowedFd<'_>, pkt: &[u8]) {
        match sys::write_packet(dst, pkt) {
            Ok(()) => {
                stats.forwarded += 1;
                stats.bytes += pkt.len() as u64;
            }
            Err(_) => stats.tx_errors += 1,
        }
    }

    /// Writes every packet due by `now_ns` to `dst`.
    pub fn flush(&mut self, dst: BorrowedFd<'_>, now_ns: u64) {
        while let Some(&q) = self.queue.queued.front() {
            if q.due_ns > now_ns {
                break;
            }
            let pkt = &self.queue.buf[q.off as usize..(q.off + q.len) as usize];
            if q.hold && self.held_len == 0 {
                self.held[..pkt.len()].copy_from_slice(pkt);
                self.held_len = pkt.len();
                self.held_since_ns = now_ns;
                self.stats.reordered += 1;
            } else {
                for _ in 0..q.copies {
                    Self::send(&mut self.stats, dst, pkt);
                }
                if self.held_len != 0 {
                    Self::send(&mut self.stats, dst, &self.held[..self.held_len]);
                    self.held_len = 0;
                }
            }
            self.queue.queued.pop_front();
        }
        if self.held_len != 0 && now_ns >= self.held_since_ns + REORDER_HOLD_NS {
            Self::send(&mut self.stats, dst, &self.held[..self.held_len]);
            self.held_len = 0;
        }
    }

    /// When this direction next has something to send.
    pub fn next_deadline(&self) -> Option<u64> {
        let queued = self.queue.queued.front().map(|q| q.due_ns);
        let held = (self.held_len != 0).then_some(self.held_since_ns + REORDER_HOLD_NS);
        match (queued, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impairment_flags_round_trip() {
        let mut imp = Impairments::default();
        let args = [
            ("--delay-ms", "20"),
            ("--loss", "2.5"),
            ("--burst-loss", "1"),
            ("--burst-len", "4"),
            ("--reorder", "3"),
            ("--duplicate", "1"),
            ("--rate-mbit", "100"),
            ("--queue-bytes", "100000"),
            ("--seed", "42"),
        ];
        for (flag, value) in args {
            assert_eq!(imp.parse_flag(flag, value), Ok(true), "{flag}");
        }
        let mut again = Impairments::default();
        for pair in imp.to_args().chunks(2) {
            assert_eq!(again.parse_flag(&pair[0], &pair[1]), Ok(true));
        }
        assert_eq!(again, imp);
        assert_eq!(imp.parse_flag("--other", "1"), Ok(false));
    }

    #[test]
    fn impairment_flags_reject_bad_values() {
        let mut imp = Impairments::default();
        assert_eq!(
            imp.parse_flag("--seed", "x").unwrap_err(),
            "--seed \"x\": expected an unsigned integer"
        );
        assert!(imp.parse_flag("--burst-len", "-1").is_err());
        imp.parse_flag("--loss", "101").unwrap();
        assert_eq!(
            imp.validate().unwrap_err(),
            "--loss 101: expected a percentage 0..100"
        );
        let imp = Impairments {
            delay_ms: -1.0,
            ..Impairments::default()
        };
        assert_eq!(
            imp.validate().unwrap_err(),
            "--delay-ms -1: expected a number >= 0"
        );
        assert_eq!(Impairments::default().validate(), Ok(()));
    }

    #[test]
    fn default_queue_limit_is_one_rtt_at_the_rate() {
        let imp = Impairments {
            rate_mbit: 100.0,
            delay_ms: 20.0,
            ..Impairments::default()
        };
        assert_eq!(imp.queue_limit(), 500_000);
        let slow = Impairments {
            rate_mbit: 1.0,
            ..Impairments::default()
        };
        assert_eq!(slow.queue_limit(), 64 << 10);
    }

    #[test]
    fn rng_chance_matches_probability() {
        let mut rng = Rng::new(1);
        let t = threshold(2.0);
        let hits = (0..1_000_000).filter(|_| rng.chance(t)).count();
        assert!((19_000..21_000).contains(&hits), "{hits}");
        assert!(!Rng::new(1).chance(threshold(0.0)));
        assert!(Rng::new(1).chance(threshold(100.0)));
    }

    #[test]
    fn ring_wraps_and_refuses_when_full() {
        let mut q = PacketQueue::new();
        let mut due = 0;
        // Fill the ring with maximum-size packets until it refuses.
        while let Some(off) = q.slot() {
            q.push(Queued {
                off: off as u32,
                len: MAX_PACKET as u32,
                due_ns: due,
                copies: 1,
                hold: false,
            });
            due += 1;
        }
        assert_eq!(q.queued.len(), RING_BYTES / MAX_PACKET);
        // Free two slots at the head: the next packet wraps to offset 0.
        q.queued.pop_front();
        q.queued.pop_front();
        assert_eq!(q.slot(), Some(0));
        q.push(Queued {
            off: 0,
            len: 100,
            due_ns: due,
            copies: 1,
            hold: false,
        });
        // Wrapped: the free space runs from the tail up to the head.
        assert_eq!(q.slot(), Some(100));
    }
}
