//! Boots Linux 6.12 inside this process, runs a TCP echo over its loopback and tells what
//! happened. `RUST_LOG=info` also shows the kernel's own console.

use std::time::Instant;

use lkl::consts::{AF_INET, SHUT_WR, SOCK_CLOEXEC, SOCK_STREAM};
use lkl::sys::{IPPROTO_TCP, TCP_CONGESTION};
use lkl::{BootOptions, Errno, Kernel};

const BYTES: usize = 16 << 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();

    let start = Instant::now();
    let kernel = Kernel::boot(BootOptions::default())?;
    let k = &kernel;
    let boot = start.elapsed();
    let uts = k.uname()?;
    println!(
        "booted {} {} ({}) in {boot:.1?}, mem={}M",
        uts.sysname,
        uts.release,
        uts.machine,
        lkl::DEFAULT_MEM_MIB
    );
    println!(
        "congestion control: {} (available: {})",
        k.sysctl_read("net.ipv4.tcp_congestion_control")?,
        k.sysctl_read("net.ipv4.tcp_available_congestion_control")?
    );

    let listener = k.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)?;
    k.bind(listener, &"127.0.0.1:0".parse()?)?;
    k.listen(listener, 16)?;
    let addr = k.getsockname(listener)?;
    println!("echo server listening on {addr} inside LKL");

    let data: Vec<u8> = (0..BYTES).map(|i| (i % 251) as u8).collect();
    let started = Instant::now();
    let (echoed, client_cc, peer) = std::thread::scope(|s| -> Result<_, Errno> {
        let server = s.spawn(move || -> Result<usize, Errno> {
            let (fd, _) = k.accept4(listener, SOCK_CLOEXEC)?;
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = 0;
            loop {
                let n = k.read(fd, &mut buf)?;
                if n == 0 {
                    break;
                }
                let mut rest = &buf[..n];
                while !rest.is_empty() {
                    rest = &rest[k.write(fd, rest)?..];
                }
                total += n;
            }
            k.close(fd)?;
            Ok(total)
        });
        let fd = k.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)?;
        let connect_start = Instant::now();
        k.connect(fd, &addr)?;
        println!(
            "connected from {} in {:.1?}",
            k.getsockname(fd)?,
            connect_start.elapsed()
        );
        let mut cc = [0u8; 16];
        let n = k.getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, &mut cc)?;
        let cc = String::from_utf8_lossy(cc[..n].split(|&b| b == 0).next().unwrap_or_default())
            .into_owned();

        let reader = s.spawn(move || -> Result<Vec<u8>, Errno> {
            let mut back = Vec::with_capacity(BYTES);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match k.read(fd, &mut buf)? {
                    0 => return Ok(back),
                    n => back.extend_from_slice(&buf[..n]),
                }
            }
        });
        let mut rest = &data[..];
        while !rest.is_empty() {
            rest = &rest[k.write(fd, rest)?..];
        }
        k.shutdown(fd, SHUT_WR)?;
        let back = reader.join().expect("reader thread")?;
        let served = server.join().expect("server thread")?;
        k.close(fd)?;
        assert_eq!(served, BYTES);
        Ok((back, cc, addr))
    })?;
    let took = started.elapsed();
    let ok = echoed == data;
    println!(
        "echoed {} of {} bytes via {peer} with {client_cc}: {} in {took:.1?} ({:.2} Gbit/s each way)",
        echoed.len(),
        BYTES,
        if ok { "every byte matches" } else { "MISMATCH" },
        BYTES as f64 * 8.0 / took.as_secs_f64() / 1e9
    );
    k.close(listener)?;

    let halt_start = Instant::now();
    kernel.halt()?;
    println!("halted in {:.1?}", halt_start.elapsed());
    if ok {
        Ok(())
    } else {
        Err("echo mismatch".into())
    }
}
