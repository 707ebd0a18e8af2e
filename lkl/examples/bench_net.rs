//! Network benchmark: single-stream TCP throughput between the container and the
//! peer, LKL (packet backend, Rust API, BBR) against the container's host kernel (iperf3 with
//! BBR), both directions, on the veth and the venet topology; the median of RUNS runs of
//! SECS seconds each. CPU seconds per GB are those of the LKL process minus its peer-side
//! thread, and of the iperf3 client in the container.
//!
//! Root, iperf3 and the rig's forwarder are needed: `scripts/bench-net.sh`. Linux boots once
//! per process and a kernel holds one device, so each topology is measured by a child process
//! (`bench_net veth|venet`) that prints its table rows.

#[path = "../tests/net/mod.rs"]
mod net;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lkl::consts::{SOCK_CLOEXEC, SOCK_STREAM};
use lkl::{BootOptions, Kernel};
use lkl_rig::{Topology, VenetTopology, VethTopology};

const SECS: u64 = 5;
const RUNS: usize = 3;
const GB: f64 = 1e9;

/// CPU time (user + system) of the process or of the calling thread.
fn cpu_secs(who: libc::c_int) -> f64 {
    // SAFETY: rusage is plain data, all zeroes is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage into `ru`, alive during the call.
    let ret = unsafe { libc::getrusage(who, &mut ru) };
    assert_eq!(ret, 0, "getrusage: {}", std::io::Error::last_os_error());
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One measured run: bits per second and CPU seconds per GB.
#[derive(Clone, Copy)]
struct Run {
    bps: f64,
    cpu_per_gb: f64,
}

fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.bps.total_cmp(&b.bps));
    runs[runs.len() / 2]
}

/// The peer side of an LKL run, on a thread in the peer namespace: receives until EOF
/// (`send` false) or sends for SECS seconds. Returns the bytes moved, the seconds from the
/// connection's start to its end, and the CPU seconds the thread used.
fn peer_side(mut s: TcpStream, send: bool) -> (u64, f64, f64) {
    let cpu0 = cpu_secs(libc::RUSAGE_THREAD);
    let start = Instant::now();
    let mut buf = vec![0u8; net::CHUNK];
    let mut bytes = 0u64;
    if send {
        while start.elapsed() < Duration::from_secs(SECS) {
            s.write_all(&buf).unwrap();
            bytes += buf.len() as u64;
        }
        s.shutdown(std::net::Shutdown::Write).unwrap();
        // Until LKL has read everything and closed.
        while s.read(&mut buf).unwrap() != 0 {}
    } else {
        loop {
            match s.read(&mut buf).unwrap() {
                0 => break,
                n => bytes += n as u64,
            }
        }
    }
    (
        bytes,
        start.elapsed().as_secs_f64(),
        cpu_secs(libc::RUSAGE_THREAD) - cpu0,
    )
}

/// LKL connects to a host-kernel server in the peer namespace and sends for SECS seconds
/// (`lkl_sends`), or receives for as long from it.
fn lkl_run(k: &Kernel, topo: &dyn Topology, lkl_sends: bool) -> Run {
    let peer_ip: IpAddr = topo.addrs().peer_v4.into();
    let listener = topo
        .peer_ns()
        .in_thread(|| TcpListener::bind((peer_ip, 0)))
        .unwrap()
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let cpu0 = cpu_secs(libc::RUSAGE_SELF);
    let peer = std::thread::spawn(move || peer_side(listener.accept().unwrap().0, !lkl_sends));
    let fd = k
        .socket(net::family(&addr), SOCK_STREAM | SOCK_CLOEXEC, 0)
        .unwrap();
    k.connect(fd, &addr).unwrap();
    let mut buf = vec![0u8; net::CHUNK];
    if lkl_sends {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(SECS) {
            let mut data = &buf[..];
            while !data.is_empty() {
                data = &data[k.write(fd, data).unwrap()..];
            }
        }
    } else {
        while k.read(fd, &mut buf).unwrap() != 0 {}
    }
    k.close(fd).unwrap();
    let (bytes, secs, peer_cpu) = peer.join().unwrap();
    let lkl_cpu = cpu_secs(libc::RUSAGE_SELF) - cpu0 - peer_cpu;
    Run {
        bps: bytes as f64 * 8.0 / secs,
        cpu_per_gb: lkl_cpu / (bytes as f64 / GB),
    }
}

/// The number after `"key":` at or after `from` in iperf3's JSON.
fn json_number(json: &str, key: &str, from: usize) -> f64 {
    let pat = format!("\"{key}\":");
    let at = from
        + json[from..]
            .find(&pat)
            .unwrap_or_else(|| panic!("{key} in {json}"));
    let rest = json[at + pat.len()..].trim_start();
    let end = rest.find([',', '\n', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().unwrap()
}

/// iperf3 from the container's host stack to the peer's server (`container_sends`), or the
/// reverse (-R).
fn host_run(topo: &dyn Topology, server: SocketAddr, container_sends: bool) -> Run {
    let secs = SECS.to_string();
    let port = server.port().to_string();
    let ip = server.ip().to_string();
    let mut args = vec!["-c", &ip, "-p", &port, "-t", &secs, "-C", "bbr", "-J"];
    if !container_sends {
        args.push("-R");
    }
    let json = topo.container_ns().run("iperf3", &args).unwrap();
    let end = json.find("\"end\":").expect("iperf3 end section");
    let received = end + json[end..].find("\"sum_received\":").unwrap();
    let bps = json_number(&json, "bits_per_second", received);
    let bytes = json_number(&json, "bytes", received);
    let cpu_pct = json_number(&json, "host_total", end);
    Run {
        bps,
        cpu_per_gb: cpu_pct / 100.0 * SECS as f64 / (bytes / GB),
    }
}

/// An iperf3 server in the peer namespace, returned once it listens (its stdout stays a
/// pipe of the returned child).
fn iperf3_server(topo: &dyn Topology, ip: IpAddr) -> (Child, SocketAddr) {
    let port = 5201;
    let mut child = topo
        .peer_ns()
        .command("iperf3")
        .unwrap()
        .args([
            "-s",
            "--forceflush",
            "-B",
            &ip.to_string(),
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("Server listening") {
        line.clear();
        assert_ne!(
            stdout.read_line(&mut line).unwrap(),
            0,
            "iperf3 server exited"
        );
    }
    child.stdout = Some(stdout.into_inner());
    (child, SocketAddr::new(ip, port))
}

/// Measures one topology and prints its two table rows.
fn measure(which: &str) {
    let k = Kernel::boot(BootOptions::default()).unwrap_or_else(|e| panic!("boot: {e}"));
    let veth = (which == "veth").then(|| VethTopology::new().unwrap());
    let venet = (which == "venet").then(|| VenetTopology::builder().build().unwrap());
    let topo: &dyn Topology = match (&veth, &venet) {
        (Some(t), _) => t,
        (_, Some(t)) => t,
        _ => panic!("unknown topology {which}: expected veth or venet"),
    };
    // The host kernel first, with the topology as built.
    let (mut server, addr) = iperf3_server(topo, topo.addrs().peer_v4.into());
    let host_out = median((0..RUNS).map(|_| host_run(topo, addr, true)).collect());
    let host_in = median((0..RUNS).map(|_| host_run(topo, addr, false)).collect());
    server.kill().unwrap();
    server.wait().unwrap();
    let lkl = match &veth {
        Some(veth) => net::attach_veth(&k, veth),
        None => net::attach(&k, topo, None),
    };
    let lkl_out = median((0..RUNS).map(|_| lkl_run(&k, topo, true)).collect());
    let lkl_in = median((0..RUNS).map(|_| lkl_run(&k, topo, false)).collect());
    lkl.backend.stop_rx();
    for (dir, host, lkl) in [
        ("container -> peer", host_out, lkl_out),
        ("peer -> container", host_in, lkl_in),
    ] {
        println!(
            "| {which} | {dir} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} |",
            host.bps / 1e9,
            lkl.bps / 1e9,
            lkl.bps / host.bps,
            lkl.cpu_per_gb,
            host.cpu_per_gb
        );
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    if let Some(which) = std::env::args().nth(1) {
        measure(&which);
        return;
    }
    println!(
        "Single-stream TCP, IPv4, BBR, median of {RUNS} runs of {SECS} s; host kernel: iperf3 \
         in the container namespace; LKL: packet backend through the Rust API.\n"
    );
    println!(
        "| topology | direction | host Gbit/s | LKL Gbit/s | LKL/host | LKL CPU s/GB | host \
         iperf3 CPU s/GB |"
    );
    println!("|---|---|---|---|---|---|---|");
    let me = std::env::current_exe().unwrap();
    for which in ["veth", "venet"] {
        let status = Command::new(&me).arg(which).status().unwrap();
        assert!(status.success(), "{which}: {status}");
    }
}
