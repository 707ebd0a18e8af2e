//! How long a thread sleeping in poll/epoll on a host pipe *and* a TCP socket takes to wake
//! when data arrives on the socket. Run it plain (host kernel) and under the preload (the
//! socket in LKL, the pipe on the host); `scripts/bench-hijack.sh` does both and prints the
//! ratio. Prints `poll_median_us=... epoll_median_us=...` and percentiles.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const ROUNDS: usize = 2000;

/// Sleeps on both fds with poll (or epoll) and reports when the socket became readable.
fn waiter(pipe: i32, mut sock: TcpStream, use_epoll: bool, woke: mpsc::Sender<Instant>) {
    let fd = sock.as_raw_fd();
    let ep = if use_epoll {
        // SAFETY: epoll_create1 takes a flag.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        for f in [pipe, fd] {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: f as u64,
            };
            // SAFETY: `ev` is a live event for the call.
            let added = unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, f, &mut ev) };
            assert_eq!(added, 0);
        }
        ep
    } else {
        -1
    };
    let mut byte = [0u8; 1];
    for _ in 0..ROUNDS {
        if use_epoll {
            let mut ev = libc::epoll_event { events: 0, u64: 0 };
            // SAFETY: room for the one event asked for.
            let n = unsafe { libc::epoll_wait(ep, &mut ev, 1, -1) };
            assert_eq!(n, 1);
            assert_eq!({ ev.u64 }, fd as u64);
        } else {
            let mut fds = [
                libc::pollfd {
                    fd: pipe,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: `fds` holds the two entries passed.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            assert_eq!(n, 1);
            assert!(fds[1].revents & libc::POLLIN != 0);
        }
        let now = Instant::now();
        sock.read_exact(&mut byte).unwrap();
        woke.send(now).unwrap();
    }
}

fn run(use_epoll: bool) -> Vec<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    client.set_nodelay(true).unwrap();
    let (server, _) = listener.accept().unwrap();
    let mut pipe = [0i32; 2];
    // SAFETY: pipe(2) fills the two-element array.
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    let (tx, rx) = mpsc::channel();
    let t = thread::spawn(move || waiter(pipe[0], server, use_epoll, tx));
    let mut samples = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        // Let the waiter fall asleep before the byte is sent.
        thread::sleep(Duration::from_micros(300));
        let sent = Instant::now();
        client.write_all(b"x").unwrap();
        samples.push(rx.recv().unwrap() - sent);
    }
    t.join().unwrap();
    // SAFETY: closing the pipe's own fds.
    unsafe {
        libc::close(pipe[0]);
        libc::close(pipe[1]);
    }
    samples.sort();
    samples
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    for (name, epoll) in [("poll", false), ("epoll", true)] {
        let s = run(epoll);
        println!(
            "{name}_median_us={:.1} {name}_p90_us={:.1} {name}_p99_us={:.1}",
            us(s[s.len() / 2]),
            us(s[s.len() * 9 / 10]),
            us(s[s.len() * 99 / 100])
        );
    }
}
