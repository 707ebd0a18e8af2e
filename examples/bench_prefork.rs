//! Pre-fork scaling: nginx with one worker and with two (`master_process on`), on LKL (under
//! `LD_PRELOAD=liblkl_hijack.so`, each worker a kernel of its own) and on the host kernel, in
//! one run on the veth rig; medians of RUNS runs. `scripts/bench.sh` builds and runs it.
//!
//! * requests/s: `wrk` from the peer, 64 kept-alive connections fetching a 4 KiB file;
//! * Gbit/s: `wrk`, 16 connections fetching a 1 MiB file.
//!
//! The load generator (`wrk -t2`) runs on the same CPUs as the server, as on a small VPS
//! whose clients are local (a proxy in front, say); the table says how many CPUs it took.
//! Environment: RUNS (default 3), SECS (seconds per wrk run, default 5), BENCH_OUT (default
//! target/bench: prefork.md is written there).

use std::fmt::Write as _;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use lkl_rig::{Topology, VethTopology};

const PORT: u16 = 8090;
const GBIT: f64 = 1e9 / 8.0;

fn env_num(key: &str, default: f64) -> f64 {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse()
                .unwrap_or_else(|e| panic!("{key}={v:?}: not a number ({e})"))
        })
        .unwrap_or(default)
}

#[derive(Clone, Copy, PartialEq)]
enum Stack {
    Lkl,
    Host,
}

/// nginx with `workers` workers serving `dir` on `addr`; killed (with its workers) on drop.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: killpg on the group our child leads (started with process_group(0)).
        unsafe { libc::killpg(self.0.id() as i32, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

fn start_nginx(
    topo: &VethTopology,
    stack: Stack,
    so: &Path,
    dir: &Path,
    workers: usize,
) -> Result<(Nginx, SocketAddr), String> {
    use std::os::unix::process::CommandExt;
    let a = topo.addrs();
    let ip: IpAddr = match stack {
        Stack::Lkl => a.lkl_v4.into(),
        Stack::Host => a.host_v4.into(),
    };
    let addr = SocketAddr::new(ip, PORT);
    let tmp = dir.join("tmp");
    let conf = format!(
        "daemon off;
master_process on;
worker_processes {workers};
error_log stderr;
pid {tmp}/nginx-{workers}.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{ listen {addr}; root {www}; }}
}}
",
        tmp = tmp.display(),
        www = dir.join("www").display(),
    );
    let conf_path = dir.join(format!("nginx-{workers}.conf"));
    std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
    let mut cmd = topo
        .container_ns()
        .command("nginx")
        .map_err(|e| e.to_string())?;
    cmd.args(["-c", &conf_path.display().to_string(), "-e", "stderr"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    if stack == Stack::Lkl {
        cmd.env("LD_PRELOAD", so)
            .env("LKL_HIJACK_NET_IFTYPE", "packet")
            .env("LKL_HIJACK_NET_IFPARAMS", topo.container_if())
            .env("LKL_HIJACK_NET_IP", a.lkl_v4.to_string());
    }
    let nginx = Nginx(cmd.spawn().map_err(|e| format!("nginx: {e}"))?);
    let started = Instant::now();
    while topo
        .peer_ns()
        .in_thread(|| TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err())
        .map_err(|e| e.to_string())?
    {
        if started.elapsed() > Duration::from_secs(20) {
            return Err(format!("nginx did not listen on {addr}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((nginx, addr))
}

/// One wrk run from the peer: requests/s, bytes/s, and the CPUs wrk itself took.
fn wrk(topo: &VethTopology, url: &str, conns: usize, secs: f64) -> Result<(f64, f64, f64), String> {
    let mut cmd = topo.peer_ns().command("wrk").map_err(|e| e.to_string())?;
    cmd.args([
        "-t2",
        &format!("-c{conns}"),
        &format!("-d{}s", secs.round().max(1.0)),
        url,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("wrk: {e}"))?;
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut out)
        .map_err(|e| e.to_string())?;
    // SAFETY: rusage and status are plain data; wait4 reaps our own child.
    let (status, ru) = unsafe {
        let mut status = 0;
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::wait4(child.id() as i32, &mut status, 0, &mut ru);
        (status, ru)
    };
    let wall = started.elapsed().as_secs_f64();
    if status != 0 {
        return Err(format!("wrk exited with status {status}: {out}"));
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpus = (tv(ru.ru_utime) + tv(ru.ru_stime)) / wall;
    let field = |key: &str| -> Result<&str, String> {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(str::trim)
            .ok_or_else(|| format!("no {key} in wrk's output: {out}"))
    };
    let rps: f64 = field("Requests/sec:")?
        .parse()
        .map_err(|e| format!("Requests/sec: {e}"))?;
    let transfer = field("Transfer/sec:")?;
    let (num, unit) = transfer.split_at(transfer.find(|c: char| c.is_alphabetic()).unwrap_or(0));
    let scale = match unit {
        "B" => 1.0,
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("Transfer/sec {transfer:?}")),
    };
    let bytes = num.parse::<f64>().map_err(|e| e.to_string())? * scale;
    Ok((rps, bytes, cpus))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Medians over `runs` of (requests/s, Gbit/s, wrk's CPUs in each): the small-file and the
/// big-file load on nginx with `workers` workers on `stack`.
fn measure(
    stack: Stack,
    workers: usize,
    so: &Path,
    dir: &Path,
    runs: usize,
    secs: f64,
) -> Result<(f64, f64, f64, f64), String> {
    let topo = VethTopology::new().map_err(|e| format!("veth rig: {e}"))?;
    let (_nginx, addr) = start_nginx(&topo, stack, so, dir, workers)?;
    let (mut rps, mut gbit, mut cpu_small, mut cpu_big) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let (r, _, c) = wrk(&topo, &format!("http://{addr}/small.bin"), 64, secs)?;
        rps.push(r);
        cpu_small.push(c);
        let (_, bytes, c) = wrk(&topo, &format!("http://{addr}/big.bin"), 16, secs)?;
        gbit.push(bytes / GBIT);
        cpu_big.push(c);
    }
    Ok((
        median(rps),
        median(gbit),
        median(cpu_small),
        median(cpu_big),
    ))
}

fn main() {
    let exe = std::env::current_exe().expect("own path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let so = profile.join("liblkl_hijack.so");
    assert!(
        so.is_file(),
        "{} is missing: run scripts/bench.sh",
        so.display()
    );
    let runs = env_num("RUNS", 3.0).max(1.0) as usize;
    let secs = env_num("SECS", 5.0);
    let out = std::env::var_os("BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench"));
    let dir = out.join("prefork");
    for sub in ["www", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).expect("bench directory");
    }
    let file = |name: &str, len: usize| {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 131 % 251) as u8).collect();
        std::fs::write(dir.join("www").join(name), bytes).expect("write a file to serve");
    };
    file("small.bin", 4 << 10);
    file("big.bin", 1 << 20);

    let mut figures = Vec::new();
    for stack in [Stack::Lkl, Stack::Host] {
        for workers in [1, 2] {
            let m = measure(stack, workers, &so, &dir, runs, secs)
                .unwrap_or_else(|e| panic!("{} with {workers} worker(s): {e}", name(stack)));
            figures.push(m);
        }
    }
    let [l1, l2, h1, h2] = [figures[0], figures[1], figures[2], figures[3]];
    let mut md = String::new();
    let _ = writeln!(
        md,
        "nginx pre-fork scaling on the veth rig ({} CPUs), medians of {runs} runs of {secs} s; \
         wrk -t2 in the peer on the same CPUs (it took {:.2} / {:.2} CPUs on average for \
         requests / Gbit/s).\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        (l1.2 + l2.2 + h1.2 + h2.2) / 4.0,
        (l1.3 + l2.3 + h1.3 + h2.3) / 4.0,
    );
    let _ = writeln!(md, "| figure | 1 worker | 2 workers | 2 ÷ 1 |");
    let _ = writeln!(md, "|---|---|---|---|");
    let row = |md: &mut String, what: &str, one: f64, two: f64| {
        let _ = writeln!(md, "| {what} | {one:.1} | {two:.1} | {:.2} |", two / one);
    };
    row(&mut md, "LKL requests/s (4 KiB)", l1.0, l2.0);
    row(&mut md, "host requests/s (4 KiB)", h1.0, h2.0);
    row(&mut md, "LKL Gbit/s (1 MiB)", l1.1, l2.1);
    row(&mut md, "host Gbit/s (1 MiB)", h1.1, h2.1);
    let _ = writeln!(
        md,
        "\nLKL's 1→2 scaling ÷ the host's: requests {:.2}, Gbit/s {:.2} (target ≥ 0.8).",
        (l2.0 / l1.0) / (h2.0 / h1.0),
        (l2.1 / l1.1) / (h2.1 / h1.1),
    );
    print!("{md}");
    std::fs::write(out.join("prefork.md"), &md).expect("write prefork.md");
}

fn name(stack: Stack) -> &'static str {
    match stack {
        Stack::Lkl => "LKL",
        Stack::Host => "host",
    }
}
