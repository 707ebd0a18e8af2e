//! The echo server example under the preload, and echo transfers from the peer that check
//! every byte that comes back. On top of `common`.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lkl_rig::{Topology, VenetTopology};

use crate::common::{command_in, echo_server_bin, lkl_env, set_env, Server};

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
