//! Kernel benchmark: boot time (median of 10 fresh processes: Linux boots once per process),
//! system call round trip, loopback TCP throughput inside LKL, and RSS growth from boot.
//!
//! `cargo run --release -p lkl --example bench_boot` (scripts/bench-kernel.sh).

use std::process::Command;
use std::time::{Duration, Instant};

use lkl::consts::{AF_INET, SHUT_WR, SOCK_CLOEXEC, SOCK_STREAM};
use lkl::{BootOptions, Kernel};

const BOOT_RUNS: usize = 10;
const GETPID_CALLS: u32 = 200_000;
const TCP_BYTES: usize = 1 << 30;
/// argv[1] of the child processes that only time a boot.
const CHILD_ARG: &str = "--boot-once";

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    if std::env::args().nth(1).as_deref() == Some(CHILD_ARG) {
        let start = Instant::now();
        let k = Kernel::boot(BootOptions::default()).unwrap_or_else(|e| panic!("boot: {e}"));
        println!("{}", start.elapsed().as_nanos());
        k.halt().expect("halt");
        return;
    }

    let mut boots: Vec<Duration> = (0..BOOT_RUNS).map(|_| boot_in_child()).collect();
    boots.sort();

    let rss_before = rss_kib();
    let k = Kernel::boot(BootOptions::default()).unwrap_or_else(|e| panic!("boot: {e}"));
    let rss_after = rss_kib();

    k.getpid().unwrap();
    let start = Instant::now();
    for _ in 0..GETPID_CALLS {
        k.getpid().unwrap();
    }
    let getpid_ns = start.elapsed().as_nanos() as f64 / f64::from(GETPID_CALLS);

    let gbits = tcp_throughput(&k);
    let rss_busy = rss_kib();
    k.halt().expect("halt");

    println!("| metric                            | value      | target    |");
    println!("|-----------------------------------|------------|-----------|");
    println!(
        "| boot time, median of {BOOT_RUNS:<2}           | {:>7.1} ms | <= 50 ms  |",
        ms(boots[BOOT_RUNS / 2])
    );
    println!(
        "| boot time, min / max              | {:.1} / {:.1} ms |           |",
        ms(boots[0]),
        ms(boots[BOOT_RUNS - 1])
    );
    println!("| getpid round trip                 | {getpid_ns:>7.0} ns |           |");
    println!("| loopback TCP inside LKL, 1 stream | {gbits:>5.2} Gbit/s |           |");
    println!(
        "| RSS growth from boot              | {:>6.1} MiB | <= 24 MiB |",
        (rss_after - rss_before) as f64 / 1024.0
    );
    println!(
        "| RSS growth after the TCP run      | {:>6.1} MiB |           |",
        (rss_busy - rss_before) as f64 / 1024.0
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn boot_in_child() -> Duration {
    let exe = std::env::current_exe().expect("own path");
    let out = Command::new(exe)
        .arg(CHILD_ARG)
        .output()
        .expect("spawn child");
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ns: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("child prints ns");
    Duration::from_nanos(ns)
}

fn rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS value")
}

/// One connection over LKL's loopback, 1 GiB written from one thread and read in another.
fn tcp_throughput(k: &Kernel) -> f64 {
    let listener = k.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0).unwrap();
    k.bind(listener, &"127.0.0.1:0".parse().unwrap()).unwrap();
    k.listen(listener, 1).unwrap();
    let addr = k.getsockname(listener).unwrap();
    let elapsed = std::thread::scope(|s| {
        let sink = s.spawn(|| {
            let (fd, _) = k.accept4(listener, SOCK_CLOEXEC).unwrap();
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0;
            loop {
                match k.read(fd, &mut buf).unwrap() {
                    0 => break,
                    n => total += n,
                }
            }
            k.close(fd).unwrap();
            total
        });
        let fd = k.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0).unwrap();
        k.connect(fd, &addr).unwrap();
        let chunk = vec![0x5au8; 256 * 1024];
        let start = Instant::now();
        let mut sent = 0;
        while sent < TCP_BYTES {
            sent += k.write(fd, &chunk).unwrap();
        }
        k.shutdown(fd, SHUT_WR).unwrap();
        assert_eq!(sink.join().unwrap(), sent);
        let elapsed = start.elapsed();
        k.close(fd).unwrap();
        elapsed
    });
    k.close(listener).unwrap();
    TCP_BYTES as f64 * 8.0 / elapsed.as_secs_f64() / 1e9
}
