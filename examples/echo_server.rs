//! A TCP and UDP echo server on one address, std only, to run under the preload:
//!
//! ```sh
//! LD_PRELOAD=target/release/liblkl_hijack.so LKL_HIJACK_NET_IFTYPE=packet ... \
//!     target/release/examples/echo_server 0.0.0.0:7
//! ```
//!
//! Every TCP connection gets a thread that writes back what it reads until EOF; UDP datagrams
//! to the same port go back to their sender. Port 0 picks a free port (the same for UDP when
//! possible); the address is printed on stdout once both sockets are bound.

use std::env;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::raw::c_int;
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

/// Pending connections the listener queues: std listens with 128, too few for a burst of
/// clients (SYNs beyond it are dropped and retried only after a second).
const BACKLOG: c_int = 1024;
/// Per-connection threads need little stack, and a thousand of them should stay cheap; the
/// margin covers a network stack that runs on the caller's thread (as LKL does).
const STACK: usize = 256 << 10;

extern "C" {
    // libc's listen(2), which std already links; listen on a listening socket only changes
    // its backlog.
    fn listen(fd: c_int, backlog: c_int) -> c_int;
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: echo_server ADDRESS:PORT\n\
         \n\
         Echoes TCP connections and UDP datagrams on ADDRESS:PORT, e.g. 0.0.0.0:7 or [::]:7."
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let addr: SocketAddr = match args.as_slice() {
        [a] if a != "-h" && a != "--help" => match a.parse() {
            Ok(addr) => addr,
            Err(e) => {
                eprintln!("echo_server: bad address {a:?}: {e}");
                return usage();
            }
        },
        _ => return usage(),
    };
    match run(addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(addr: SocketAddr) -> io::Result<()> {
    let tcp = TcpListener::bind(addr).map_err(|e| context(e, format!("tcp bind {addr}")))?;
    // SAFETY: listen(2) on a socket this function owns.
    if unsafe { listen(tcp.as_raw_fd(), BACKLOG) } < 0 {
        return Err(context(io::Error::last_os_error(), "listen".into()));
    }
    let local = tcp.local_addr()?;
    let udp = UdpSocket::bind(local).map_err(|e| context(e, format!("udp bind {local}")))?;
    println!("echo_server: listening on {local} (tcp and udp)");

    thread::Builder::new()
        .name("udp".into())
        .spawn(move || udp_echo(udp))?;

    for conn in tcp.incoming() {
        match conn {
            Ok(stream) => {
                let spawned = thread::Builder::new()
                    .stack_size(STACK)
                    .spawn(move || tcp_echo(stream));
                if let Err(e) = spawned {
                    // The connection is dropped (closed) with the failed closure.
                    eprintln!("echo_server: cannot start a connection thread: {e}");
                }
            }
            Err(e) => {
                eprintln!("echo_server: accept: {e}");
                // Out of fds or memory: give connections time to end instead of spinning.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    Ok(())
}

fn tcp_echo(mut stream: TcpStream) {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if let Err(e) = stream.write_all(&buf[..n]) {
                    eprintln!("echo_server: tcp write: {e}");
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("echo_server: tcp read: {e}");
                return;
            }
        }
    }
}

fn udp_echo(udp: UdpSocket) {
    let mut buf = vec![0u8; 65536];
    loop {
        match udp.recv_from(&mut buf) {
            Ok((n, from)) => {
                if let Err(e) = udp.send_to(&buf[..n], from) {
                    eprintln!("echo_server: udp send to {from}: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("echo_server: udp receive: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
