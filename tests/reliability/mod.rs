//! Helpers for the reliability tests (issue 7), on top of `common`: the echo server example
//! under the preload, verified echo transfers from the peer, a seeded PRNG, a packet socket on
//! the peer's tun device that injects raw IP packets towards LKL (and sees what comes back),
//! packet builders with checksums, and /proc sampling of a process.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lkl_rig::{Topology, VenetTopology};

// Re-exported for the test files that use this module's helpers with `reliability::*`.
use crate::common::{command_in, lkl_env, set_env, Server};
#[allow(unused_imports)]
pub use crate::common::{echo_server_bin, raise_fd_limit};

/// `LKL_SOAK=1` selects the long forms (10-minute soak, long fuzz runs, 30 s blackhole).
pub fn soak() -> bool {
    std::env::var("LKL_SOAK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The echo server under the preload on `listen` (LKL's address), with `extra` environment;
/// returns once the peer can connect.
pub fn start_echo(topo: &VenetTopology, listen: SocketAddr, extra: &[(&str, &str)]) -> Server {
    let bin = echo_server_bin();
    let mut env = lkl_env(topo);
    for (k, v) in extra {
        set_env(&mut env, k, v);
    }
    let mut server = Server::spawn(
        command_in(
            topo.container_ns(),
            bin.to_str().unwrap(),
            &[&listen.to_string()],
            &env,
        ),
        "echo_server",
    );
    // A wildcard listener is probed at LKL's IPv4 address.
    let probe = if listen.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(topo.addrs().lkl_v4), listen.port())
    } else {
        listen
    };
    server.wait_listening(topo.peer_ns(), probe, Duration::from_secs(30));
    server
}

/// Fails the test (with the server's output) if the server has exited.
pub fn assert_alive(server: &mut Server, when: &str) {
    if let Some(status) = server.child.try_wait().expect("try_wait") {
        let out = server.output();
        panic!("{} died {when}: {status}\n{out}", server.name);
    }
}

/// splitmix64: a small seeded PRNG, the same sequence for the same seed. Interior state, so
/// that calls can nest (`rng.bytes(rng.below(9))`).
#[derive(Clone)]
pub struct Rng(pub std::cell::Cell<u64>);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(std::cell::Cell::new(seed))
    }
    pub fn next_u64(&self) -> u64 {
        let s = self.0.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.0.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
    pub fn range(&self, lo: u64, hi_inclusive: u64) -> u64 {
        lo + self.below(hi_inclusive - lo + 1)
    }
    pub fn chance(&self, pct: u64) -> bool {
        self.below(100) < pct
    }
    pub fn bytes(&self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
    pub fn fill(&self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }
    pub fn pick<'a, T>(&self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Byte `i` of the stream of `seed`: position-dependent, so a lost, duplicated or shifted
/// segment shows at the first byte it touches.
pub fn stream_byte(seed: u64, i: u64) -> u8 {
    let x = i
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(seed.wrapping_mul(0xd6e8_feb8_6659_fd93));
    ((x >> 32) ^ (x >> 13) ^ i) as u8
}

fn fill_stream(seed: u64, offset: u64, buf: &mut [u8]) {
    for (k, b) in buf.iter_mut().enumerate() {
        *b = stream_byte(seed, offset + k as u64);
    }
}

/// An endless [`echo_transfer`] from the peer to `addr`, every byte checked, running beside
/// whatever the test does until [`Alongside::finish`].
pub struct Alongside {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<Result<Transfer, String>>,
}

impl Alongside {
    pub fn start(topo: &VenetTopology, addr: SocketAddr, seed: u64, io_timeout: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = topo
            .peer_ns()
            .spawn_thread(move || echo_transfer(addr, u64::MAX, seed, Some(stop2), io_timeout))
            .expect("start the transfer in the peer namespace");
        Alongside { stop, thread }
    }

    /// Stops the transfer and waits for it: what it verified, or why it failed (a panic of
    /// its thread goes on here).
    pub fn finish(self) -> Result<Transfer, String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// What an echo transfer did.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    pub sent: u64,
    pub verified: u64,
    pub elapsed: Duration,
}

/// Connects from the peer (this thread must be in the peer namespace) to an echo server at
/// `addr`, sends `bytes` bytes of stream `seed` (or until `stop` is set, when `bytes` is
/// `u64::MAX`) while a second thread reads the echo back and checks every byte; then
/// half-closes and waits for EOF. `io_timeout` bounds each blocking read or write.
pub fn echo_transfer(
    addr: SocketAddr,
    bytes: u64,
    seed: u64,
    stop: Option<Arc<AtomicBool>>,
    io_timeout: Duration,
) -> Result<Transfer, String> {
    let start = Instant::now();
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    echo_over(stream, bytes, seed, stop, io_timeout, start)
}

/// [`echo_transfer`] over an already connected stream.
pub fn echo_over(
    stream: TcpStream,
    bytes: u64,
    seed: u64,
    stop: Option<Arc<AtomicBool>>,
    io_timeout: Duration,
    start: Instant,
) -> Result<Transfer, String> {
    stream.set_read_timeout(Some(io_timeout)).unwrap();
    stream.set_write_timeout(Some(io_timeout)).unwrap();
    let mut reader = stream.try_clone().map_err(|e| e.to_string())?;
    let verify = thread::spawn(move || -> Result<u64, String> {
        let mut buf = vec![0u8; 64 << 10];
        let mut got = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(got),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read after {got} bytes: {e}")),
            };
            for (k, &b) in buf[..n].iter().enumerate() {
                let want = stream_byte(seed, got + k as u64);
                if b != want {
                    return Err(format!(
                        "echo differs at byte {}: {b:#04x} instead of {want:#04x}",
                        got + k as u64
                    ));
                }
            }
            got += n as u64;
        }
    });
    let mut writer = stream;
    let mut buf = vec![0u8; 32 << 10];
    let mut sent = 0u64;
    let mut write_err = None;
    while sent < bytes {
        if stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
            break;
        }
        let n = (bytes - sent).min(buf.len() as u64) as usize;
        fill_stream(seed, sent, &mut buf[..n]);
        if let Err(e) = writer.write_all(&buf[..n]) {
            write_err = Some(format!("write after {sent} bytes: {e}"));
            break;
        }
        sent += n as u64;
    }
    let _ = writer.shutdown(Shutdown::Write);
    let verified = verify.join().expect("verifier panicked");
    if let Some(e) = write_err {
        return Err(format!("{e} (reader: {verified:?})"));
    }
    let verified = verified?;
    if verified != sent {
        return Err(format!(
            "sent {sent} bytes, {verified} came back before EOF"
        ));
    }
    Ok(Transfer {
        sent,
        verified,
        elapsed: start.elapsed(),
    })
}

/// One echo exchange of `bytes` from the peer namespace, on a fresh thread there.
pub fn echo_from_peer(
    topo: &VenetTopology,
    addr: SocketAddr,
    bytes: u64,
    seed: u64,
) -> Result<Transfer, String> {
    topo.peer_ns()
        .in_thread(move || echo_transfer(addr, bytes, seed, None, Duration::from_secs(30)))
        .expect("enter the peer namespace")
}

/// fd count, thread count and RSS (KiB) of `pid`.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    pub at: Duration,
    pub fds: usize,
    pub threads: usize,
    pub rss_kib: u64,
}

pub fn sample_proc(pid: u32, at: Duration) -> Option<ProcSample> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(ProcSample {
        at,
        fds,
        threads,
        rss_kib,
    })
}

// ---------------------------------------------------------------------------------------------
// Raw packets.

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ALL: u16 = 0x0003;

/// An `AF_PACKET, SOCK_DGRAM` socket bound to a device of the namespace it was made in: what
/// it sends is transmitted on the device as is (no IP layer checks), what the device receives
/// can be read back. On the peer's `tun0`, a sent packet goes to the forwarder, which writes
/// it into the container's `venet0`, where LKL's packet socket receives it.
pub struct Injector {
    fd: OwnedFd,
    ifindex: i32,
    pub sent: u64,
    pub send_errors: u64,
}

impl Injector {
    /// Must be called on a thread inside the namespace of `dev`.
    pub fn open(dev: &str) -> io::Result<Injector> {
        let name = std::ffi::CString::new(dev).unwrap();
        // SAFETY: plain syscalls with valid arguments; the fd is owned right away.
        unsafe {
            let ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
            if ifindex == 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_ALL.to_be()),
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(fd);
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = ETH_P_ALL.to_be();
            sll.sll_ifindex = ifindex;
            if libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            ) < 0
            {
                return Err(io::Error::last_os_error());
            }
            let buf: libc::c_int = 8 << 20;
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&buf as *const libc::c_int).cast(),
                4,
            );
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&buf as *const libc::c_int).cast(),
                4,
            );
            Ok(Injector {
                fd,
                ifindex,
                sent: 0,
                send_errors: 0,
            })
        }
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
        // SAFETY: sendto with a valid buffer and sockaddr_ll.
        unsafe {
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto.to_be();
            sll.sll_ifindex = self.ifindex;
            for attempt in 0..200 {
                let rc = libc::sendto(
                    self.fd.as_raw_fd(),
                    packet.as_ptr().cast(),
                    packet.len(),
                    0,
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                if rc >= 0 {
                    self.sent += 1;
                    // The tun device drops what does not fit its ring (4000 packets) while
                    // the forwarder is off the CPU: stay well below that.
                    if self.sent % 32 == 0 {
                        thread::sleep(Duration::from_micros(400));
                    }
                    return;
                }
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::ENOBUFS) | Some(libc::EAGAIN) if attempt < 199 => {
                        thread::sleep(Duration::from_micros(200))
                    }
                    _ => {
                        self.send_errors += 1;
                        return;
                    }
                }
            }
        }
    }

    /// The next packet the device received within `timeout` (IP header first), if any.
    pub fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll and recvfrom on an owned fd with valid buffers.
            unsafe {
                if libc::poll(&mut pfd, 1, left.as_millis() as i32) <= 0 {
                    return None;
                }
                let mut sll: libc::sockaddr_ll = std::mem::zeroed();
                let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                let n = libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&mut sll as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                );
                if n < 0 {
                    if Instant::now() > deadline {
                        return None;
                    }
                    continue;
                }
                // Only what the device received, not our own transmissions.
                if sll.sll_pkttype == libc::PACKET_OUTGOING {
                    continue;
                }
                return Some(buf[..n as usize].to_vec());
            }
        }
    }

    /// Discards what was received so far.
    pub fn drain(&self) {
        while self.recv(Duration::ZERO).is_some() {}
    }
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
