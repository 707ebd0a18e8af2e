//! Raw IP packets into the peer's tun device (towards LKL), and what comes back.
#![allow(dead_code)]

use std::io;
use std::thread;
use std::time::{Duration, Instant};

use lkl_rig::PacketSocket;

use crate::packets::{parse_tcp, Seen, ETH_P_IP, ETH_P_IPV6};

/// A packet socket ([`PacketSocket`]) on a device of the namespace it was made in, with
/// counts of what it sent: what it sends is transmitted on the device as is (no IP layer
/// checks), what the device receives can be read back. On the peer's `tun0`, a sent packet
/// goes to the forwarder, which writes it into the container's `venet0`, where LKL's packet
/// socket receives it.
pub struct Injector {
    socket: PacketSocket,
    dev: String,
    /// The device's transmit drops when last looked at (see [`Injector::send_proto`]).
    dropped: u64,
    pub sent: u64,
    pub send_errors: u64,
}

impl Injector {
    /// Must be called on a thread inside the namespace of `dev`.
    pub fn open(dev: &str) -> io::Result<Injector> {
        let socket = PacketSocket::open(dev)?;
        // Room for bursts; the host's limits may cap it, which only costs some drops.
        let _ = socket.set_buffer_sizes(8 << 20);
        Ok(Injector {
            dropped: own_tx_dropped(dev),
            dev: dev.to_string(),
            socket,
            sent: 0,
            send_errors: 0,
        })
    }

    /// Transmits `packet` (starting at its IP header) with the link protocol from its version
    /// nibble (IPv4 unless it starts with 6). Transmit queue overflows are retried briefly.
    pub fn send(&mut self, packet: &[u8]) {
        let proto = if packet.first().is_some_and(|b| b >> 4 == 6) {
            ETH_P_IPV6
        } else {
            ETH_P_IP
        };
        self.send_proto(packet, proto);
    }

    pub fn send_proto(&mut self, packet: &[u8], proto: u16) {
        for attempt in 0..200 {
            match self.socket.send(packet, proto) {
                Ok(()) => {
                    self.sent += 1;
                    // The tun device drops what does not fit its ring (4000 packets) while
                    // the forwarder is off the CPU: stay well below that, and where the ring
                    // overflowed all the same (a loaded machine), give the forwarder time to
                    // empty it before going on.
                    if self.sent % 32 == 0 {
                        thread::sleep(Duration::from_micros(400));
                        let dropped = own_tx_dropped(&self.dev);
                        if dropped > self.dropped {
                            self.dropped = dropped;
                            thread::sleep(Duration::from_millis(50));
                        }
                    }
                    return;
                }
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN))
                        && attempt < 199 =>
                {
                    thread::sleep(Duration::from_micros(200))
                }
                Err(_) => {
                    self.send_errors += 1;
                    return;
                }
            }
        }
    }

    /// The next packet the device received within `timeout` (IP header first), if any.
    pub fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.socket.recv_timeout(left) {
                // Only what the device received, not our own transmissions.
                Ok(Some(packet)) if packet.outgoing => continue,
                Ok(Some(packet)) => return Some(packet.data),
                Ok(None) => return None,
                Err(_) if Instant::now() > deadline => return None,
                Err(_) => continue,
            }
        }
    }

    /// Discards what was received so far.
    pub fn drain(&self) {
        while self.recv(Duration::ZERO).is_some() {}
    }
}

/// Packets `dev` dropped on transmit, for a device of the calling thread's namespace: from
/// /proc/thread-self/net/dev, cheap enough to read between packets.
fn own_tx_dropped(dev: &str) -> u64 {
    let table = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap_or_default();
    // "  tun0: rx bytes packets errs drop fifo frame compressed multicast, tx bytes packets
    // errs drop ...": the transmit drops are the twelfth number.
    table
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(dev)?.strip_prefix(':'))
        .and_then(|numbers| numbers.split_whitespace().nth(11)?.parse().ok())
        .unwrap_or(0)
}

/// Packets `dev` in `ns` dropped on transmit (a full tun ring), from `ip -s link`.
pub fn tx_dropped(ns: &lkl_rig::Netns, dev: &str) -> u64 {
    let out = ns
        .run("ip", &["-s", "-s", "link", "show", "dev", dev])
        .unwrap_or_default();
    // "TX: bytes packets errors dropped carrier collsns" then the numbers.
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    lines
        .iter()
        .position(|l| l.starts_with("TX:"))
        .and_then(|i| lines.get(i + 1))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Waits up to `timeout` for a TCP packet on `inj` matching `pred`.
pub fn wait_tcp(inj: &Injector, timeout: Duration, pred: impl Fn(&Seen) -> bool) -> Option<Seen> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Some(p) = inj.recv(left) {
            if let Some(s) = parse_tcp(&p) {
                if pred(&s) {
                    return Some(s);
                }
            }
        }
    }
    None
}
