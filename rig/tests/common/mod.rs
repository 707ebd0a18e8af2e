//! Traffic helpers shared by the rig's integration tests (each test file uses a subset).
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use lkl_rig::{Netns, PacketSocket};

const CHUNK: usize = 64 << 10;
pub const MIB: u64 = 1 << 20;

/// Deterministic pseudo-random bytes (xorshift64*), so the receiver can check every byte
/// without a hash.
pub struct Pattern(u64);

impl Pattern {
    pub fn new(seed: u64) -> Self {
        Pattern(seed | 1)
    }

    /// Fills `buf` (a multiple of 8 bytes long) with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for word in buf.chunks_exact_mut(8) {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            word.copy_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
    }
}

fn set_congestion_control(stream: &TcpStream, name: &str) -> io::Result<()> {
    // SAFETY: the option value points at `name`'s bytes, valid for the given length during
    // the call; the descriptor is the stream's open socket.
    let ret = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if ret != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("TCP_CONGESTION {name}: {e}"),
        ));
    }
    Ok(())
}

/// Result of [`tcp_transfer`].
#[derive(Debug)]
pub struct Transfer {
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Transfer {
    pub fn mbit_per_s(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.elapsed.as_secs_f64() / 1e6
    }
}

/// Sends `bytes` of the pattern over TCP (BBR) from a client in `client_ns` to a server in
/// `server_ns` listening on `server_addr`; the server checks every byte. Fails after `limit`.
pub fn tcp_transfer(
    server_ns: &Netns,
    server_addr: IpAddr,
    client_ns: &Netns,
    bytes: u64,
    limit: Duration,
) -> io::Result<Transfer> {
    assert_eq!(
        bytes % CHUNK as u64,
        0,
        "transfer size must be a multiple of {CHUNK}"
    );
    let listener = server_ns.in_thread(|| TcpListener::bind((server_addr, 0)))??;
    let target = listener.local_addr()?;
    let deadline = Instant::now() + limit;
    let server = thread::spawn(move || -> io::Result<u64> {
        listener.set_nonblocking(true)?;
        let mut stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(5))
                }
                Err(e) => return Err(io::Error::new(e.kind(), format!("accept: {e}"))),
            }
        };
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(limit))?;
        let (mut expected, mut got) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
        let mut pattern = Pattern::new(bytes);
        let mut total = 0u64;
        while total < bytes {
            stream.read_exact(&mut got)?;
            pattern.fill(&mut expected);
            if let Some(i) = got.iter().zip(&expected).position(|(g, e)| g != e) {
                return Err(io::Error::other(format!(
                    "byte {} differs",
                    total + i as u64
                )));
            }
            total += CHUNK as u64;
        }
        if stream.read(&mut got)? != 0 {
            return Err(io::Error::other("data after the end of the stream"));
        }
        Ok(total)
    });
    let start = Instant::now();
    let sent = client_ns.in_thread(|| -> io::Result<()> {
        let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(5))
            .map_err(|e| io::Error::new(e.kind(), format!("connect to {target}: {e}")))?;
        set_congestion_control(&stream, "bbr")?;
        stream.set_write_timeout(Some(limit))?;
        let mut buf = vec![0u8; CHUNK];
        let mut pattern = Pattern::new(bytes);
        for _ in 0..bytes / CHUNK as u64 {
            pattern.fill(&mut buf);
            stream.write_all(&buf)?;
        }
        stream.shutdown(Shutdown::Write)
    })?;
    let received = server.join().expect("server thread panicked");
    sent?;
    let bytes = received?;
    Ok(Transfer {
        bytes,
        elapsed: start.elapsed(),
    })
}

/// `ping -c COUNT` from `ns` to `addr`, 0.2 s apart; returns ping's output (fails if any
/// reply is missing).
pub fn ping(ns: &Netns, addr: IpAddr, count: u32) -> io::Result<String> {
    ns.run(
        "ping",
        &[
            "-n",
            "-c",
            &count.to_string(),
            "-i",
            "0.2",
            "-W",
            "2",
            &addr.to_string(),
        ],
    )
}

/// Average round trip in ms from ping's summary line.
pub fn ping_avg_ms(output: &str) -> f64 {
    let line = output
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .expect("no rtt line in ping output");
    let values = line.split('=').nth(1).expect("rtt values");
    values
        .trim()
        .split('/')
        .nth(1)
        .expect("avg")
        .parse()
        .expect("avg is a number")
}

/// Sends `count` UDP datagrams numbered 0.. from `from_ns` to `to` (bound in `to_ns`), a
/// burst of 20 every millisecond; returns the numbers received, in arrival order.
pub fn udp_numbered(
    from_ns: &Netns,
    to_ns: &Netns,
    to: IpAddr,
    count: u32,
) -> io::Result<Vec<u32>> {
    let (bound_tx, bound) = mpsc::channel();
    let receiver = to_ns.spawn_thread(move || -> io::Result<Vec<u32>> {
        let rx = UdpSocket::bind((to, 0))?;
        rx.set_read_timeout(Some(Duration::from_millis(500)))?;
        // Room for every datagram even if the reader falls behind.
        set_int_option(&rx, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 16 << 20)?;
        // The sender waits for this address, so a failure above shows as a closed channel.
        let _ = bound_tx.send(rx.local_addr()?);
        let mut seen = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            match rx.recv(&mut buf) {
                Ok(n) if n >= 4 => seen.push(u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]])),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(seen)
                }
                Err(e) => return Err(e),
            }
        }
    })?;
    let Ok(target) = bound.recv() else {
        return receiver
            .join()
            .expect("receiver thread panicked")
            .map(|_| Vec::new());
    };
    from_ns.in_thread(|| -> io::Result<()> {
        let tx = UdpSocket::bind((
            if to.is_ipv4() {
                IpAddr::from([0u8; 4])
            } else {
                IpAddr::from([0u16; 8])
            },
            0,
        ))?;
        let mut payload = [0u8; 200];
        for seq in 0..count {
            payload[..4].copy_from_slice(&seq.to_le_bytes());
            tx.send_to(&payload, target)?;
            if seq % 20 == 19 {
                thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    })??;
    receiver.join().expect("receiver thread panicked")
}

fn set_int_option(
    sock: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value points at `value`, a c_int alive during the call.
    let ret = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Counts the IP packets addressed to `dst` that an AF_PACKET/SOCK_DGRAM socket bound to
/// `ifname` in `ns` (what LKL's backend will use) receives while `during` runs.
pub fn packet_socket_sees(
    ns: &Netns,
    ifname: &str,
    dst: IpAddr,
    during: impl FnOnce(),
) -> io::Result<usize> {
    let sock = PacketSocket::open_in(ns, ifname)?;
    during();
    Ok(sock
        .drain()?
        .iter()
        .filter(|p| p.destination() == Some(dst))
        .count())
}

/// Whether process `pid` is gone (no /proc entry, or a zombie nobody reaped yet).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// The namespaces `ip netns list` shows.
pub fn ip_netns_list() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}
