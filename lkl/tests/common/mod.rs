//! Shared by the integration tests. Each test file is one process and Linux boots once per
//! process, so a file's tests share one kernel.
#![allow(dead_code)] // each test file uses a subset

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use lkl::consts::{AF_INET, AF_INET6, SOCK_CLOEXEC, SOCK_STREAM};
use lkl::{BootOptions, Errno, Fd, Kernel};

/// The file's kernel, booted with default options on first use.
pub fn kernel() -> &'static Kernel {
    kernel_with(BootOptions::default)
}

/// The file's kernel, booted on first use with `options()` (the first caller's choice wins).
/// A watchdog ends the process if the file's tests are still running after `TIMEOUT`: a
/// deadlocked kernel fails the run instead of hanging it.
pub fn kernel_with(options: impl FnOnce() -> BootOptions) -> &'static Kernel {
    static KERNEL: OnceLock<Kernel> = OnceLock::new();
    KERNEL.get_or_init(|| {
        let _ = env_logger::builder().is_test(true).try_init();
        std::thread::spawn(|| {
            std::thread::sleep(TIMEOUT);
            fail_now(&format!(
                "test file still running after {TIMEOUT:?}: deadlock?"
            ));
        });
        Kernel::boot(options()).unwrap_or_else(|e| panic!("boot: {e}"))
    })
}

/// Fails the whole test process at once: for failures that leave threads blocked inside the
/// kernel, where a panic would wait for them forever.
pub fn fail_now(message: &str) -> ! {
    eprintln!("{message}; aborting");
    std::process::abort();
}

pub const TIMEOUT: Duration = Duration::from_secs(300);

/// A listening TCP socket on `addr` (port 0: any) and the address it got.
pub fn listener(k: &Kernel, addr: &str) -> (Fd, SocketAddr) {
    let addr: SocketAddr = addr.parse().unwrap();
    let fd = k
        .socket(family(&addr), SOCK_STREAM | SOCK_CLOEXEC, 0)
        .unwrap();
    k.bind(fd, &addr).unwrap();
    k.listen(fd, 1024).unwrap();
    (fd, k.getsockname(fd).unwrap())
}

pub fn connect(k: &Kernel, addr: &SocketAddr) -> Fd {
    let fd = k
        .socket(family(addr), SOCK_STREAM | SOCK_CLOEXEC, 0)
        .unwrap();
    k.connect(fd, addr)
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    fd
}

pub fn family(addr: &SocketAddr) -> u32 {
    if addr.is_ipv4() {
        AF_INET
    } else {
        AF_INET6
    }
}

pub fn write_all(k: &Kernel, fd: Fd, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        let n = k.write(fd, data)?;
        data = &data[n..];
    }
    Ok(())
}

/// Reads until EOF.
pub fn read_to_end(k: &Kernel, fd: Fd) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match k.read(fd, &mut buf)? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Echoes everything read on `fd` back until EOF, then closes it; returns the byte count.
pub fn echo(k: &Kernel, fd: Fd) -> usize {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = k.read(fd, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        write_all(k, fd, &buf[..n]).unwrap();
        total += n;
    }
    k.close(fd).unwrap();
    total
}

/// Deterministic test data that differs per connection and per offset.
pub fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + seed * 17 + i / 251) % 256) as u8)
        .collect()
}
