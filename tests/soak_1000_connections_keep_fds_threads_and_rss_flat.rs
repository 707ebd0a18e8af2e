//! Soak: the echo server example under the preload on LKL's address, 1 000
//! connections from the peer open at once, each moving data continuously (4 KiB out, its
//! echo back and checked byte for byte, round after round) for the test's duration. The
//! server's fd count (/proc/PID/fd), thread count (/proc/PID/task) and RSS are sampled every
//! second; over the last half they must stay flat: fds and threads within a small margin of
//! their values at the half, RSS without a growth trend (last quarter's mean at most 5 % + 8 MiB
//! above the third quarter's).
//!
//! CI: 25 s. `LKL_SOAK=1`: 10 minutes.

mod common;
mod echo;
mod proc_sample;
mod run_length;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{lkl_v4, raise_fd_limit, venet};
use echo::{assert_alive, start_echo, stream_byte};
use lkl_rig::Topology;
use proc_sample::sample_proc;
use run_length::soak;

const PORT: u16 = 7;
const CONNECTIONS: usize = 1000;
const THREADS: usize = 10;
const CHUNK: usize = 4096;

fn client(
    addr: SocketAddr,
    first: usize,
    count: usize,
    barrier: &Barrier,
    stop: &AtomicBool,
    moved: &AtomicU64,
) -> Result<(), String> {
    let mut conns = Vec::with_capacity(count);
    let mut err = None;
    for i in first..first + count {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
                conns.push((s, 0u64, i as u64));
            }
            Err(e) => {
                err = Some(format!("connection {i}: connect: {e}"));
                break;
            }
        }
    }
    barrier.wait();
    if let Some(e) = err {
        return Err(e);
    }
    let mut out = vec![0u8; CHUNK];
    let mut back = vec![0u8; CHUNK];
    while !stop.load(Ordering::Relaxed) {
        for (s, offset, seed) in conns.iter_mut() {
            for (k, b) in out.iter_mut().enumerate() {
                *b = stream_byte(*seed, *offset + k as u64);
            }
            s.write_all(&out)
                .map_err(|e| format!("connection {seed}: write at {offset}: {e}"))?;
            s.read_exact(&mut back)
                .map_err(|e| format!("connection {seed}: read at {offset}: {e}"))?;
            if back != out {
                return Err(format!(
                    "connection {seed}: echo differs at offset {offset}"
                ));
            }
            *offset += CHUNK as u64;
            moved.fetch_add(CHUNK as u64, Ordering::Relaxed);
        }
    }
    Ok(())
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

#[test]
fn a_thousand_connections_moving_data_keep_fds_threads_and_rss_flat() {
    let duration = if soak() {
        Duration::from_secs(600)
    } else {
        Duration::from_secs(25)
    };
    let topo = venet();
    let addr = lkl_v4(&topo, PORT);
    let mut server = start_echo(&topo, addr, &[]);
    let pid = server.child.id();
    raise_fd_limit(CONNECTIONS as u64 + 512);

    let stop = Arc::new(AtomicBool::new(false));
    let moved = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let per = CONNECTIONS / THREADS;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (stop, moved, barrier) = (stop.clone(), moved.clone(), barrier.clone());
            topo.peer_ns()
                .spawn_thread(move || client(addr, t * per, per, &barrier, &stop, &moved))
                .unwrap()
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < duration {
        std::thread::sleep(Duration::from_secs(1));
        assert_alive(&mut server, "during the soak");
        if let Some(s) = sample_proc(pid, start.elapsed()) {
            samples.push(s);
        }
        if handles.iter().any(|h| h.is_finished()) {
            break; // a client failed: collected below
        }
    }
    stop.store(true, Ordering::Relaxed);
    let errors: Vec<String> = handles
        .into_iter()
        .filter_map(|h| h.join().expect("client panicked").err())
        .collect();
    let total = moved.load(Ordering::Relaxed);
    eprintln!(
        "{CONNECTIONS} connections, {:.1?}: {} MiB echoed and verified",
        start.elapsed(),
        total >> 20
    );
    for s in samples.iter().step_by((samples.len() / 12).max(1)) {
        eprintln!(
            "  t={:>5.1?} fds={} threads={} rss={} KiB",
            s.at, s.fds, s.threads, s.rss_kib
        );
    }
    assert!(errors.is_empty(), "client errors: {errors:#?}");
    assert!(samples.len() >= 8, "too few samples: {}", samples.len());
    let half = &samples[samples.len() / 2..];
    let (first, last) = (half[0], *half.last().unwrap());
    eprintln!("last half: start {first:?}\n           end   {last:?}");
    let fds: Vec<usize> = half.iter().map(|s| s.fds).collect();
    let threads: Vec<usize> = half.iter().map(|s| s.threads).collect();
    let (fmin, fmax) = (*fds.iter().min().unwrap(), *fds.iter().max().unwrap());
    let (tmin, tmax) = (
        *threads.iter().min().unwrap(),
        *threads.iter().max().unwrap(),
    );
    assert!(
        fmax - fmin <= 8,
        "fd count moved in the last half: {fmin}..{fmax}"
    );
    assert!(
        tmax - tmin <= 8,
        "thread count moved in the last half: {tmin}..{tmax}"
    );
    assert!(
        fmax >= CONNECTIONS,
        "the server holds {fmax} fds for {CONNECTIONS} connections"
    );
    let q = half.len() / 2;
    let rss3 = mean(
        &half[..q]
            .iter()
            .map(|s| s.rss_kib as f64)
            .collect::<Vec<_>>(),
    );
    let rss4 = mean(
        &half[q..]
            .iter()
            .map(|s| s.rss_kib as f64)
            .collect::<Vec<_>>(),
    );
    eprintln!("RSS mean: third quarter {rss3:.0} KiB, last quarter {rss4:.0} KiB");
    assert!(
        rss4 <= rss3 * 1.05 + 8192.0,
        "RSS grows: third quarter {rss3:.0} KiB, last quarter {rss4:.0} KiB"
    );
    assert!(total > 0);
    server.terminate(Duration::from_secs(20));
}
