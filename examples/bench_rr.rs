//! Small TCP server and clients for the benchmark suite (`examples/bench_suite.rs`), std and
//! libc only, so the same binary runs plain (host kernel) or under the preload (LKL):
//!
//! ```text
//! bench_rr server ADDR:PORT            echo server: one thread, level-triggered epoll
//! bench_rr rr ADDR:PORT SECS           1-byte ping-pong over one connection; transactions/s
//! bench_rr connect ADDR:PORT SECS N    N threads: connect, 1-byte echo, close; connections/s
//! bench_rr lat ADDR:PORT SECS RATE SIZE  SIZE-byte requests over one connection, RATE a second
//!                                      (0: back to back, the saturation); p50/p99 latency
//! bench_rr hold ADDR:PORT COUNT        COUNT idle connections, each echoes a byte, held until a
//!                                      line (or EOF) on stdin, then each echoes a byte again
//! ```
//!
//! The server prints `listening on ADDR` once it listens and raises its RLIMIT_NOFILE; it keeps
//! no per-connection thread, so its memory per idle connection is the stack's, not a thread
//! stack. Clients print one line of `key=value` results on stdout. The `connect` client closes
//! with SO_LINGER 0 (an RST), so neither side keeps TIME_WAIT state and the peer's port range
//! never runs out however many connections a run makes.

use std::collections::HashMap;
use std::env;
use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::raw::c_int;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Pending connections the listener queues (the kernel caps it at somaxconn, 4096).
const BACKLOG: c_int = 4096;
/// Descriptors this process may hold: 10 000 connections and change.
const NOFILE: u64 = 65536;
const IO_TIMEOUT: Duration = Duration::from_secs(20);

extern "C" {
    // libc's listen(2): on a listening socket it only changes the backlog.
    fn listen(fd: c_int, backlog: c_int) -> c_int;
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: bench_rr server ADDR:PORT\n       bench_rr rr ADDR:PORT SECS\n       \
         bench_rr connect ADDR:PORT SECS THREADS\n       bench_rr lat ADDR:PORT SECS RATE SIZE\n       \
         bench_rr hold ADDR:PORT COUNT"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let addr = |s: &str| -> Result<SocketAddr, String> {
        s.parse().map_err(|e| format!("bad address {s:?}: {e}"))
    };
    let num = |s: &str| -> Result<f64, String> {
        s.parse().map_err(|e| format!("bad number {s:?}: {e}"))
    };
    let result = match words.as_slice() {
        ["server", a] => addr(a).and_then(|a| server(a).map_err(|e| e.to_string())),
        ["rr", a, secs] => (|| rr(addr(a)?, num(secs)?).map_err(|e| e.to_string()))(),
        ["connect", a, secs, threads] => {
            (|| connect_rate(addr(a)?, num(secs)?, num(threads)? as usize))()
        }
        ["lat", a, secs, rate, size] => (|| {
            latency(addr(a)?, num(secs)?, num(rate)?, num(size)? as usize)
                .map_err(|e| e.to_string())
        })(),
        ["hold", a, count] => (|| hold(addr(a)?, num(count)? as usize))(),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_rr: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Raises RLIMIT_NOFILE (soft and, as root, hard) to at least `want`.
fn raise_nofile(want: u64) -> io::Result<()> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return Err(io::Error::last_os_error());
        }
        if rl.rlim_cur >= want {
            return Ok(());
        }
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: rl.rlim_max.max(want),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            // Not root: as far as the hard limit goes.
            rl.rlim_cur = rl.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

fn epoll_ctl(ep: RawFd, op: c_int, fd: RawFd) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: fd as u64,
    };
    // SAFETY: epoll_ctl on live fds with a live event struct.
    if unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The echo server: accepts everything, writes back what it reads, closes on EOF or error.
fn server(addr: SocketAddr) -> io::Result<()> {
    if let Err(e) = raise_nofile(NOFILE) {
        eprintln!("bench_rr: cannot raise RLIMIT_NOFILE: {e}");
    }
    let listener = TcpListener::bind(addr)?;
    // SAFETY: listen(2) on a socket this function owns.
    if unsafe { listen(listener.as_raw_fd(), BACKLOG) } != 0 {
        return Err(io::Error::last_os_error());
    }
    listener.set_nonblocking(true)?;
    // SAFETY: epoll_create1 has no memory arguments.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(io::Error::last_os_error());
    }
    let lfd = listener.as_raw_fd();
    epoll_ctl(ep, libc::EPOLL_CTL_ADD, lfd)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;

    let mut conns: HashMap<RawFd, TcpStream> = HashMap::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = vec![0u8; 64 << 10];
    let mut accept_errors = 0u64;
    let mut last_report = Instant::now() - Duration::from_secs(1);
    loop {
        // SAFETY: the event array is live and its length is passed.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as c_int, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in &events[..n as usize] {
            let fd = ev.u64 as RawFd;
            if fd == lfd {
                loop {
                    match listener.accept() {
                        Ok((s, _)) => {
                            s.set_nonblocking(true)?;
                            let _ = s.set_nodelay(true);
                            let sfd = s.as_raw_fd();
                            epoll_ctl(ep, libc::EPOLL_CTL_ADD, sfd)?;
                            conns.insert(sfd, s);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                        Err(e) => {
                            // Out of descriptors, typically: the connection stays queued.
                            // Reported at most once a second; a short pause instead of a
                            // busy loop on the listener that stays readable.
                            accept_errors += 1;
                            if last_report.elapsed() >= Duration::from_secs(1) {
                                eprintln!("bench_rr: accept: {e} ({accept_errors} times)");
                                last_report = Instant::now();
                                accept_errors = 0;
                            }
                            thread::sleep(Duration::from_millis(1));
                            break;
                        }
                    }
                }
                continue;
            }
            let Some(s) = conns.get_mut(&fd) else {
                continue;
            };
            let close = match s.read(&mut buf) {
                Ok(0) => true,
                Ok(n) => {
                    let written = match s.write(&buf[..n]) {
                        Ok(w) => Ok(w),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                        Err(e) => Err(e),
                    };
                    match written {
                        Ok(w) if w == n => false,
                        // Echoes are tiny, so a full send buffer is rare: finish blocking.
                        Ok(w) => {
                            s.set_nonblocking(false)?;
                            let r = s.write_all(&buf[w..n]);
                            s.set_nonblocking(true)?;
                            r.is_err()
                        }
                        Err(_) => true,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => false,
                Err(_) => true,
            };
            if close {
                let _ = epoll_ctl(ep, libc::EPOLL_CTL_DEL, fd);
                conns.remove(&fd);
            }
        }
    }
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// Sends one byte and reads it back.
fn echo_byte(s: &mut TcpStream, byte: u8) -> io::Result<()> {
    s.write_all(&[byte])?;
    let mut got = [0u8; 1];
    s.read_exact(&mut got)?;
    if got[0] != byte {
        return Err(io::Error::other(format!(
            "echo: sent {byte}, got {}",
            got[0]
        )));
    }
    Ok(())
}

fn rr(addr: SocketAddr, secs: f64) -> io::Result<()> {
    let mut s = connect(addr)?;
    let limit = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n: u64 = 0;
    loop {
        echo_byte(&mut s, n as u8)?;
        n += 1;
        // The clock is read every 64 transactions only.
        if n % 64 == 0 && start.elapsed() >= limit {
            break;
        }
    }
    let t = start.elapsed().as_secs_f64();
    println!("transactions={n} secs={t:.3} rate={:.1}", n as f64 / t);
    Ok(())
}

/// Requests of `size` bytes, each echoed whole, sent `rate` a second (0: each as soon as the
/// last came back), on a fixed schedule (a late answer makes the next request go at once). A
/// request's latency is from its write to the end of its echo: the client's own oversleep is
/// left out, and its timer slack is cut to 1 ns so that the schedule holds.
fn latency(addr: SocketAddr, secs: f64, rate: f64, size: usize) -> io::Result<()> {
    // SAFETY: PR_SET_TIMERSLACK takes a number, no pointers.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    let mut s = connect(addr)?;
    let limit = Duration::from_secs_f64(secs);
    let (req, mut got) = (vec![7u8; size], vec![0u8; size]);
    let mut lat_ns = Vec::new();
    let start = Instant::now();
    let mut due = start;
    while due.duration_since(start) < limit {
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        let sent = Instant::now();
        s.write_all(&req)?;
        s.read_exact(&mut got)?;
        let done = Instant::now();
        lat_ns.push(done.duration_since(sent).as_nanos() as u64);
        due = if rate > 0.0 {
            due + Duration::from_secs_f64(1.0 / rate)
        } else {
            done
        };
    }
    let t = start.elapsed().as_secs_f64();
    lat_ns.sort_unstable();
    let pct = |p: f64| lat_ns[((lat_ns.len() - 1) as f64 * p) as usize] as f64 / 1e3;
    println!(
        "requests={} secs={t:.3} rate={:.1} p50_us={:.1} p99_us={:.1} max_us={:.1}",
        lat_ns.len(),
        lat_ns.len() as f64 / t,
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    Ok(())
}

/// Closes with an RST: no TIME_WAIT on either side.
fn abort(s: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a live socket with a live struct of the size passed.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
}

fn connect_rate(addr: SocketAddr, secs: f64, threads: usize) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let (stop, count) = (Arc::clone(&stop), Arc::clone(&count));
            thread::spawn(move || -> io::Result<()> {
                while !stop.load(Ordering::Relaxed) {
                    let mut s = connect(addr)?;
                    echo_byte(&mut s, 1)?;
                    abort(s);
                    count.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let n = count.load(Ordering::Relaxed);
    let t = start.elapsed().as_secs_f64();
    for w in workers {
        w.join()
            .map_err(|_| "a client thread panicked".to_string())?
            .map_err(|e| format!("connect client: {e}"))?;
    }
    println!("connections={n} secs={t:.3} rate={:.1}", n as f64 / t);
    Ok(())
}

/// Echoes a byte on every connection: all writes first, then all reads. Returns how many
/// came back right.
fn echo_all(conns: &mut [TcpStream], byte: u8) -> usize {
    let sent: Vec<bool> = conns
        .iter_mut()
        .map(|s| s.write_all(&[byte]).is_ok())
        .collect();
    let mut ok = 0;
    for (s, sent) in conns.iter_mut().zip(sent) {
        let mut got = [0u8; 1];
        if sent && s.read_exact(&mut got).is_ok() && got[0] == byte {
            ok += 1;
        }
    }
    ok
}

fn hold(addr: SocketAddr, count: usize) -> Result<(), String> {
    raise_nofile(NOFILE.max(count as u64 + 1024)).map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
    let start = Instant::now();
    let mut conns = Vec::with_capacity(count);
    for i in 0..count {
        conns.push(connect(addr).map_err(|e| format!("connection {i} of {count}: {e}"))?);
    }
    let connect_secs = start.elapsed().as_secs_f64();
    let first = echo_all(&mut conns, 1);
    println!(
        "connected={} echoed={first} connect_secs={connect_secs:.3}",
        conns.len()
    );
    io::stdout().flush().map_err(|e| e.to_string())?;
    // Held until told (a line or EOF on stdin).
    let mut line = String::new();
    let _ = io::stdin().lock().read_line(&mut line);
    let held = echo_all(&mut conns, 2);
    println!("held={held}");
    for s in &conns {
        let _ = s.shutdown(Shutdown::Both);
    }
    Ok(())
}
