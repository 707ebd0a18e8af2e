//! The whole benchmark (throughput, CPU per GB, goodput under loss, request/response,
//! connection rate, memory, boot time), LKL (a real server program run under
//! `LD_PRELOAD=liblkl_hijack.so` in a rig's container namespace) against the host kernel
//! (the same program without the preload, on the container's host-stack address), in one run;
//! medians of RUNS runs. `scripts/bench.sh` builds what it needs and runs it.
//!
//! * single-stream throughput, veth and venet topologies (venet0 typed `link/void` as on
//!   OpenVZ, and as a plain tun, where the library uses SOCK_RAW with offloads), both
//!   directions: `iperf3 -s` in the container, `iperf3 -c` in the peer; CPU seconds of the
//!   server process per GB moved, from /proc/PID/stat. BBR on both stacks (iperf3 `-C bbr`).
//! * goodput on venet with 25 ms delay each way, random loss and a 100 Mbit/s rate, the server
//!   sending (`-R`): LKL with BBR (its default) against the host with cubic (`-C cubic`, which
//!   iperf3's server sets on its socket); the 1 % point is the figure, 0 .. 5 % the plot.
//! * forward mode on venet, both directions: `lkl-run --forward` (LKL's address → an `iperf3
//!   -s` on the container's loopback, host stack) against a direct connection to `iperf3 -s`
//!   on the container's host-stack address; CPU seconds of the forwarder process per GB.
//! * 1-byte ping-pong over one connection, and connections per second (connect, 1-byte echo,
//!   close), against `examples/bench_rr.rs` as the server, on the veth topology.
//! * RSS of the idle server after one connection, with and without the preload.
//! * 10 000 concurrent idle connections: all echo a byte, held, echo again; RSS growth.
//! * boot time: the `booted Linux in X ms` line of `LKL_HIJACK_DEBUG=1` (first socket to the
//!   interface configured and the firewall rules installed), and with the firewall off.
//!
//! Every rig is torn down when its measurement ends, also when it fails (a failed figure shows
//! as an error in its row and the rest goes on); nothing outside the rig's namespaces is
//! changed. Environment: RUNS (default 3), SWEEP_RUNS (runs per loss point other than 1 %,
//! default 1), SECS (throughput seconds, 5), LOSSY_SECS (10), RR_SECS (3), CONNS (10000),
//! CONNECT_THREADS (2), PIN (1: pin the request/response server and client to CPUs; 0: not),
//! FIGURES (a subset of throughput,forward,lossy,rr,latency,conns,boot), BENCH_OUT (default
//! target/bench).

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use lkl_rig::{Netns, Topology, VenetTopology, VethTopology};

const IPERF_PORT: u16 = 5201;
const RR_PORT: u16 = 7000;
/// The port `lkl-run --forward` publishes on LKL's address.
const FORWARD_PORT: u16 = 5202;
const GB: f64 = 1e9;
const LOSSES: [f64; 6] = [0.0, 0.1, 0.5, 1.0, 2.0, 5.0];
/// The loss rate of the table's goodput figure.
const FIGURE_LOSS: f64 = 1.0;
const START_LIMIT: Duration = Duration::from_secs(20);

fn env_num(key: &str, default: f64) -> f64 {
    match std::env::var(key) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .unwrap_or_else(|e| panic!("{key}={v:?}: not a number ({e})")),
        _ => default,
    }
}

/// Settings and paths of one benchmark run.
struct Bench {
    so: PathBuf,
    rr_bin: PathBuf,
    /// target/<profile>/lkl-run (not required: only the forward figure needs it).
    lkl_run: PathBuf,
    out: PathBuf,
    logs: PathBuf,
    runs: usize,
    sweep_runs: usize,
    secs: f64,
    lossy_secs: f64,
    rr_secs: f64,
    conns: usize,
    connect_threads: usize,
    /// Every single measurement, for bench.md.
    raw: std::sync::Mutex<String>,
}

impl Bench {
    fn from_env() -> Bench {
        let exe = std::env::current_exe().expect("own path");
        // target/<profile>/examples/bench_suite
        let profile = exe
            .parent()
            .and_then(|p| p.parent())
            .expect("target/<profile>");
        let so = profile.join("liblkl_hijack.so");
        let rr_bin = profile.join("examples/bench_rr");
        for p in [&so, &rr_bin] {
            assert!(
                p.is_file(),
                "{} is missing: run scripts/bench.sh",
                p.display()
            );
        }
        let out = std::env::var_os("BENCH_OUT")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench"));
        let logs = out.join("logs");
        let _ = fs::remove_dir_all(&logs);
        fs::create_dir_all(&logs).expect("create the output directory");
        let runs = env_num("RUNS", 3.0).max(1.0) as usize;
        Bench {
            so,
            rr_bin,
            lkl_run: profile.join("lkl-run"),
            out,
            logs,
            runs,
            sweep_runs: env_num("SWEEP_RUNS", 1.0).max(1.0) as usize,
            secs: env_num("SECS", 5.0),
            lossy_secs: env_num("LOSSY_SECS", 10.0),
            rr_secs: env_num("RR_SECS", 3.0),
            conns: env_num("CONNS", 10000.0) as usize,
            connect_threads: env_num("CONNECT_THREADS", 2.0).max(1.0) as usize,
            raw: Default::default(),
        }
    }

    fn record(&self, line: String) {
        eprintln!("  {line}");
        let mut raw = self.raw.lock().unwrap();
        raw.push_str(&line);
        raw.push('\n');
    }

    /// A fresh log file for a process's stderr.
    fn log_path(&self, name: &str) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let clean: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        self.logs.join(format!("{n:03}-{clean}.log"))
    }

    /// The preload's environment for `topo` (as tests/common's `lkl_env`).
    fn lkl_env(&self, topo: &dyn Topology) -> Vec<(String, String)> {
        let a = topo.addrs();
        vec![
            ("LD_PRELOAD".into(), self.so.display().to_string()),
            ("LKL_HIJACK_NET_IFTYPE".into(), "packet".into()),
            ("LKL_HIJACK_NET_IFPARAMS".into(), topo.container_if().into()),
            ("LKL_HIJACK_NET_IP".into(), a.lkl_v4.to_string()),
        ]
    }
}

/// Which stack serves: LKL under the preload, or the container's host kernel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stack {
    Lkl,
    Host,
}

impl Stack {
    fn name(self) -> &'static str {
        match self {
            Stack::Lkl => "lkl",
            Stack::Host => "host",
        }
    }

    /// The server's address and environment on `topo`.
    fn server(self, b: &Bench, topo: &dyn Topology) -> (IpAddr, Vec<(String, String)>) {
        match self {
            Stack::Lkl => (topo.addrs().lkl_v4.into(), b.lkl_env(topo)),
            Stack::Host => (topo.addrs().host_v4.into(), Vec::new()),
        }
    }
}

/// A background process (a server, or a client held open): stdout lines arrive on a channel,
/// stderr goes to a log file. Killed when dropped.
struct Proc {
    child: Child,
    name: String,
    lines: mpsc::Receiver<String>,
    stdin: Option<ChildStdin>,
    log: PathBuf,
}

impl Proc {
    fn spawn(
        b: &Bench,
        ns: &Netns,
        program: &Path,
        args: &[&str],
        env: &[(String, String)],
        name: &str,
        cpu: Option<usize>,
    ) -> Result<Proc, String> {
        let log = b.log_path(name);
        let err = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = ns.command(program).map_err(|e| format!("{name}: {e}"))?;
        pin(&mut cmd, cpu);
        let mut child = cmd
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {name} ({}): {e}", program.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(Proc {
            child,
            name: name.to_string(),
            lines,
            stdin,
            log,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of its stderr log, for error messages.
    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(5)..].join(" / ");
        format!("{} (log {})", tail, self.log.display())
    }

    /// The first stdout line containing `what`, within `limit`.
    fn wait_line(&mut self, what: &str, limit: Duration) -> Result<String, String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(what) => return Ok(line),
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{}: no {what:?} within {limit:?}: {}",
                        self.name,
                        self.log_tail()
                    ))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                    return Err(format!(
                        "{} exited ({status}) before {what:?}: {}",
                        self.name,
                        self.log_tail()
                    ));
                }
            }
        }
    }

    /// Waits for a line containing `what` in its stderr log (for programs that report there).
    fn wait_log(&mut self, what: &str, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        while !fs::read_to_string(&self.log)
            .unwrap_or_default()
            .contains(what)
        {
            self.check_alive()?;
            if Instant::now() > deadline {
                return Err(format!(
                    "{}: no {what:?} within {limit:?}: {}",
                    self.name,
                    self.log_tail()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Fails when the process has exited.
    fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited ({status}): {}",
                self.name,
                self.log_tail()
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// User + system CPU seconds of the process so far (all its threads).
    fn cpu_secs(&self) -> Result<f64, String> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .map_err(|e| format!("{}: /proc stat: {e}", self.name))?;
        // Fields after the command name, which is in parentheses: state is field 3, utime 14.
        let rest = &stat[stat.rfind(')').ok_or("bad /proc stat")? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
        // SAFETY: sysconf has no memory arguments.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Ok(ticks / hz)
    }

    /// VmRSS in KiB.
    fn rss_kib(&self) -> Result<f64, String> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .map_err(|e| format!("{}: /proc status: {e}", self.name))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("{}: no VmRSS", self.name))
    }

    /// SIGTERM, then SIGKILL after 3 s.
    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe { libc::kill(self.pid() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Makes the child run on `cpu` only (its threads inherit that).
fn pin(cmd: &mut Command, cpu: Option<usize>) {
    let Some(cpu) = cpu else { return };
    // SAFETY: the hook runs in the forked child before exec and only calls
    // sched_setaffinity (a plain syscall) on a local set.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Two CPUs this process may use, for pinning the request/response server and client apart
/// (or together); none with PIN=0 or a single CPU.
fn two_cpus() -> Option<(usize, usize)> {
    if env_num("PIN", 1.0) == 0.0 {
        return None;
    }
    // SAFETY: sched_getaffinity writes one cpu_set_t into a live local.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        set
    };
    // SAFETY: CPU_ISSET reads the set, within CPU_SETSIZE.
    let mut cpus = (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) });
    Some((cpus.next()?, cpus.next()?))
}

/// Runs `program args` in `ns` to completion within `limit`; its stdout, or an error with both
/// streams' ends.
fn run_client(
    ns: &Netns,
    program: &Path,
    args: &[&str],
    limit: Duration,
    cpu: Option<usize>,
) -> Result<String, String> {
    let mut cmd = ns.command(program).map_err(|e| e.to_string())?;
    pin(&mut cmd, cpu);
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let reader = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    let cmd = format!("{} {}", program.display(), args.join(" "));
    let ends = |s: &str| {
        s.trim()
            .chars()
            .rev()
            .take(400)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<String>()
    };
    match status {
        Some(s) if s.success() => Ok(out),
        Some(s) => Err(format!("`{cmd}`: {s}: {} {}", ends(&err), ends(&out))),
        None => Err(format!(
            "`{cmd}`: no result within {limit:?} (killed): {}",
            ends(&err)
        )),
    }
}

/// The number at the end of a key path in JSON, each key searched after the previous one
/// (enough for iperf3's fixed layout).
fn json_number(json: &str, keys: &[&str]) -> Result<f64, String> {
    let mut rest = json;
    for key in keys {
        let quoted = format!("\"{key}\"");
        let at = rest
            .find(&quoted)
            .ok_or_else(|| format!("no {quoted} (path {keys:?}) in iperf3's output"))?;
        rest = &rest[at + quoted.len()..];
    }
    let value = rest.trim_start().trim_start_matches(':').trim_start();
    let end = value
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(value.len());
    value[..end]
        .parse()
        .map_err(|e| format!("{keys:?} = {:?}: {e}", &value[..end]))
}

/// `key=value` from a client's result line.
fn kv(line: &str, key: &str) -> Result<f64, String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no {key}= in {line:?}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// An iperf3 server in the container on `ip`, once it listens.
fn iperf3_server(
    b: &Bench,
    topo: &dyn Topology,
    ip: IpAddr,
    env: &[(String, String)],
    name: &str,
) -> Result<Proc, String> {
    let ip_s = ip.to_string();
    let port = IPERF_PORT.to_string();
    let mut p = Proc::spawn(
        b,
        topo.container_ns(),
        Path::new("iperf3"),
        &["-s", "-B", &ip_s, "-p", &port, "--forceflush"],
        env,
        &format!("iperf3-s-{name}"),
        None,
    )?;
    p.wait_line("Server listening", START_LIMIT)?;
    Ok(p)
}

/// One iperf3 test against a fresh server of `stack`: bits/s received, the server's CPU
/// seconds per GB and the sender's congestion control. `cc` is the client's `-C`, which the
/// server applies to its socket too (a socket option: the container namespace's default,
/// `net.ipv4.tcp_congestion_control`, can only name an algorithm of the machine's
/// `tcp_allowed_congestion_control` outside the initial namespace, and that is not changed).
fn iperf_run(
    b: &Bench,
    topo: &dyn Topology,
    stack: Stack,
    reverse: bool,
    secs: f64,
    cc: Option<&str>,
) -> Result<(f64, f64, String), String> {
    let (ip, env) = stack.server(b, topo);
    let mut server = iperf3_server(b, topo, ip, &env, stack.name())?;
    let to = SocketAddr::new(ip, IPERF_PORT);
    iperf_client(topo, &mut server, to, reverse, secs, cc)
}

/// One iperf3 client run from the peer to `to`: bits/s received, CPU seconds of `server` per
/// GB and the sender's congestion control (see `iperf_run`).
fn iperf_client(
    topo: &dyn Topology,
    server: &mut Proc,
    to: SocketAddr,
    reverse: bool,
    secs: f64,
    cc: Option<&str>,
) -> Result<(f64, f64, String), String> {
    let ip = to.ip().to_string();
    let port = to.port().to_string();
    let t = format!("{}", secs.round().max(1.0) as u64);
    let mut args = vec![
        "-c",
        &ip,
        "-p",
        &port,
        "-t",
        &t,
        "--json",
        "--connect-timeout",
        "5000",
    ];
    if reverse {
        args.push("-R");
    }
    if let Some(cc) = cc {
        args.extend(["-C", cc]);
    }
    let cpu0 = server.cpu_secs()?;
    let json = run_client(
        topo.peer_ns(),
        Path::new("iperf3"),
        &args,
        Duration::from_secs_f64(secs + 30.0),
        None,
    )?;
    let cpu1 = server.cpu_secs()?;
    server.check_alive()?;
    if let Some(at) = json.find("\"error\"") {
        return Err(format!("iperf3: {}", &json[at..json.len().min(at + 200)]));
    }
    let bytes = json_number(&json, &["end", "sum_received", "bytes"])?;
    let bps = json_number(&json, &["end", "sum_received", "bits_per_second"])?;
    if bytes <= 0.0 {
        return Err("iperf3 moved no data".into());
    }
    let sender_cc = json
        .split("\"sender_tcp_congestion\"")
        .nth(1)
        .and_then(|r| r.split('"').nth(1))
        .unwrap_or("?")
        .to_string();
    if let Some(cc) = cc {
        if sender_cc != cc {
            return Err(format!("the sender used {sender_cc}, not {cc}"));
        }
    }
    Ok((bps, (cpu1 - cpu0) / (bytes / GB), sender_cc))
}

/// One row of the table.
struct Row {
    figure: String,
    lkl: String,
    host: String,
    ratio: String,
    target: String,
    met: String,
}

impl Row {
    fn error(figure: &str, target: &str, e: &str) -> Row {
        Row {
            figure: figure.into(),
            lkl: "error".into(),
            host: "error".into(),
            ratio: "—".into(),
            target: target.into(),
            met: format!("no (error: {})", e.replace('|', "/").replace('\n', " ")),
        }
    }
}

fn yes(ok: bool) -> String {
    if ok { "yes" } else { "**no**" }.into()
}

/// What a throughput figure compares: LKL against the host on veth or venet, or (Forward,
/// venet) `lkl-run --forward` to a host-stack server against that server reached directly.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tput {
    Veth,
    /// venet0 as OpenVZ has it (`link/void`): the library's socket is SOCK_DGRAM, no offloads.
    Venet,
    /// venet0 a plain tun (`link/none`): SOCK_RAW with the host's offloads.
    VenetTun,
    Forward,
}

impl Tput {
    fn name(self) -> &'static str {
        match self {
            Tput::Veth => "veth",
            Tput::Venet => "venet (link/void as on OpenVZ: SOCK_DGRAM)",
            Tput::VenetTun => "venet as a plain tun (SOCK_RAW, offloads)",
            Tput::Forward => "venet, lkl-run --forward (LKL column) vs direct (host column)",
        }
    }

    fn target(self) -> &'static str {
        match self {
            Tput::Veth => "≥ 10 Gbit/s and ≥ 0.25 × host",
            Tput::Venet => "≥ 0.8 × host",
            Tput::VenetTun => "≥ 0.7 × host",
            Tput::Forward => "(diagnostic)",
        }
    }
}

/// Runs of the host (index 0) and of LKL (1).
type PerStack<T> = [Vec<T>; 2];

/// One forward-mode run: a fresh `iperf3 -s` on the container's loopback (host stack) and a
/// fresh `lkl-run --forward FORWARD_PORT=127.0.0.1:IPERF_PORT` on LKL's address, the client in
/// the peer; the CPU is the forwarder's (lkl-run execs itself as the forwarder).
fn forward_run(
    b: &Bench,
    topo: &dyn Topology,
    reverse: bool,
) -> Result<(f64, f64, String), String> {
    if !b.lkl_run.is_file() {
        return Err(format!(
            "{} is missing: cargo build --release -p lkl-run",
            b.lkl_run.display()
        ));
    }
    let lkl_v4 = topo.addrs().lkl_v4;
    let _target = iperf3_server(b, topo, Ipv4Addr::LOCALHOST.into(), &[], "loopback")?;
    let (v4, rule) = (
        lkl_v4.to_string(),
        format!("{FORWARD_PORT}=127.0.0.1:{IPERF_PORT}"),
    );
    let args = [
        "--iface",
        topo.container_if(),
        "--ip",
        &v4,
        "--forward",
        &rule,
    ];
    let mut fwd = Proc::spawn(
        b,
        topo.container_ns(),
        &b.lkl_run,
        &args,
        &[],
        "lkl-run-forward",
        None,
    )?;
    fwd.wait_log("lkl-run: forwarding", START_LIMIT)?;
    let to = SocketAddr::new(lkl_v4.into(), FORWARD_PORT);
    iperf_client(topo, &mut fwd, to, reverse, b.secs, Some("bbr"))
}

/// Throughput and CPU per GB on one topology, both directions.
fn throughput(b: &Bench, kind: Tput) -> Vec<Row> {
    let dirs = [(false, "peer → server"), (true, "server → peer")];
    let names = match kind {
        Tput::Forward => ["direct", "forward"],
        _ => [Stack::Host.name(), Stack::Lkl.name()],
    };
    let measured = (|| -> Result<Vec<PerStack<(f64, f64)>>, String> {
        let (v, n);
        let topo: &dyn Topology = if kind == Tput::Veth {
            v = VethTopology::new().map_err(|e| format!("veth rig: {e}"))?;
            &v
        } else {
            let builder = VenetTopology::builder();
            let builder = if kind == Tput::VenetTun {
                builder.plain_tun()
            } else {
                builder
            };
            n = builder.build().map_err(|e| format!("venet rig: {e}"))?;
            &n
        };
        let mut res: Vec<PerStack<(f64, f64)>> = vec![Default::default(), Default::default()];
        for run in 0..b.runs {
            for (d, (reverse, dname)) in dirs.iter().enumerate() {
                for (s, stack) in [Stack::Host, Stack::Lkl].into_iter().enumerate() {
                    let r = match (kind, stack) {
                        (Tput::Forward, Stack::Lkl) => forward_run(b, topo, *reverse)?,
                        _ => iperf_run(b, topo, stack, *reverse, b.secs, Some("bbr"))?,
                    };
                    b.record(format!(
                        "throughput {} {dname} {} run {run}: {:.3} Gbit/s, {:.3} CPU s/GB",
                        kind.name(),
                        names[s],
                        r.0 / 1e9,
                        r.1
                    ));
                    res[d][s].push((r.0, r.1));
                }
            }
        }
        Ok(res)
    })();
    let mut rows = Vec::new();
    let (who, cpu_target, cpu_limit) = match kind {
        Tput::Forward => ("forwarder / direct server", "(diagnostic)", f64::INFINITY),
        Tput::Venet => ("server", "≤ 1.2 s/GB", 1.2),
        _ => ("server", "≤ 1 s/GB", 1.0),
    };
    for (d, (_, dname)) in dirs.iter().enumerate() {
        let kname = kind.name();
        let fig = format!("throughput, {kname}, {dname} (Gbit/s)");
        let cfig = format!("{who} CPU per GB moved, {kname}, {dname} (CPU s/GB)");
        let target = kind.target();
        match &measured {
            Err(e) => {
                rows.push(Row::error(&fig, target, e));
                rows.push(Row::error(&cfig, cpu_target, e));
            }
            Ok(res) => {
                let med =
                    |s: usize, f: fn(&(f64, f64)) -> f64| median(res[d][s].iter().map(f).collect());
                let (host, lkl) = (med(0, |r| r.0), med(1, |r| r.0));
                let ratio = lkl / host;
                let ok = match kind {
                    Tput::Veth => yes(lkl >= 10e9 && ratio >= 0.25),
                    Tput::Venet => yes(ratio >= 0.8),
                    Tput::VenetTun => yes(ratio >= 0.7),
                    Tput::Forward => "—".into(),
                };
                rows.push(Row {
                    figure: fig,
                    lkl: format!("{:.2}", lkl / 1e9),
                    host: format!("{:.2}", host / 1e9),
                    ratio: format!("{ratio:.2}"),
                    target: target.into(),
                    met: ok,
                });
                let (hc, lc) = (med(0, |r| r.1), med(1, |r| r.1));
                rows.push(Row {
                    figure: cfig,
                    lkl: format!("{lc:.2}"),
                    host: format!("{hc:.2}"),
                    ratio: format!("{:.2}", lc / hc),
                    target: cpu_target.into(),
                    met: if kind == Tput::Forward {
                        "—".into()
                    } else {
                        yes(lc <= cpu_limit)
                    },
                });
            }
        }
    }
    rows
}

/// Goodput (the server sending) against loss: one venet rig per loss rate. Returns the
/// figure's row and the sweep (loss, LKL Mbit/s, host Mbit/s), medians.
fn lossy(b: &Bench) -> (Row, Vec<(f64, f64, f64)>) {
    let fig = format!("goodput, venet 50 ms RTT, {FIGURE_LOSS} % loss, 100 Mbit/s: LKL BBR vs host cubic (Mbit/s)");
    let target = "≥ 5 × host and ≥ 80 Mbit/s";
    let mut sweep = Vec::new();
    let mut row = Row::error(&fig, target, "not measured");
    for loss in LOSSES {
        let runs = if loss == FIGURE_LOSS {
            b.runs
        } else {
            b.sweep_runs
        };
        let measured = (|| -> Result<(f64, f64), String> {
            let topo = VenetTopology::builder()
                .delay_ms(25.0)
                .loss_pct(loss)
                .rate_mbit(100.0)
                .seed(6)
                .build()
                .map_err(|e| format!("venet rig: {e}"))?;
            let (mut l, mut h) = (Vec::new(), Vec::new());
            for run in 0..runs {
                for stack in [Stack::Host, Stack::Lkl] {
                    // LKL with its default (BBR), the host with cubic.
                    let cc = (stack == Stack::Host).then_some("cubic");
                    let (bps, _, used) = iperf_run(b, &topo, stack, true, b.lossy_secs, cc)?;
                    b.record(format!(
                        "goodput loss {loss} % {} ({used}) run {run}: {:.1} Mbit/s",
                        stack.name(),
                        bps / 1e6
                    ));
                    match stack {
                        Stack::Lkl => l.push(bps / 1e6),
                        Stack::Host => h.push(bps / 1e6),
                    }
                }
            }
            Ok((median(l), median(h)))
        })();
        match measured {
            Ok((l, h)) => {
                sweep.push((loss, l, h));
                if loss == FIGURE_LOSS {
                    let ratio = l / h;
                    row = Row {
                        figure: fig.clone(),
                        lkl: format!("{l:.1}"),
                        host: format!("{h:.1}"),
                        ratio: format!("{ratio:.1}"),
                        target: target.into(),
                        met: yes(ratio >= 5.0 && l >= 80.0),
                    };
                }
            }
            Err(e) => {
                b.record(format!("goodput loss {loss} %: error: {e}"));
                if loss == FIGURE_LOSS {
                    row = Row::error(&fig, target, &e);
                }
            }
        }
    }
    (row, sweep)
}

/// A `bench_rr server` of `stack` on `topo`, once it listens.
fn rr_server(
    b: &Bench,
    topo: &dyn Topology,
    stack: Stack,
    extra_env: &[(&str, &str)],
    cpu: Option<usize>,
) -> Result<(Proc, SocketAddr), String> {
    let (ip, mut env) = stack.server(b, topo);
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let addr = SocketAddr::new(ip, RR_PORT);
    let a = addr.to_string();
    let mut p = Proc::spawn(
        b,
        topo.container_ns(),
        &b.rr_bin,
        &["server", &a],
        &env,
        &format!("bench_rr-server-{}", stack.name()),
        cpu,
    )?;
    p.wait_line("listening on", START_LIMIT)?;
    Ok((p, addr))
}

/// The result line of a `bench_rr` client in the peer namespace.
fn rr_client(
    b: &Bench,
    topo: &dyn Topology,
    args: &[&str],
    secs: f64,
    cpu: Option<usize>,
) -> Result<String, String> {
    let out = run_client(
        topo.peer_ns(),
        &b.rr_bin,
        args,
        Duration::from_secs_f64(secs + 30.0),
        cpu,
    )?;
    Ok(out.lines().last().unwrap_or_default().to_string())
}

/// Per stack and run: idle RSS (KiB) after one connection, transactions/s with the client on
/// another CPU, transactions/s with the client on the server's CPU, connections/s.
type RrResult = [f64; 4];

/// Request/response, connection rate and idle RSS on the veth rig. The server is pinned to one
/// CPU and the client to the other (as a remote client would be), so that every run measures
/// the same thing: left to the scheduler, a ping-pong pair lands now on one CPU, now on two,
/// and the rate changes tenfold. The one-CPU variant shows the stacks' CPU cost per
/// transaction (no cross-CPU wake-ups).
fn rr_figures(b: &Bench) -> Vec<Row> {
    let cpus = two_cpus();
    let (server_cpu, client_cpu) = match cpus {
        Some((s, c)) => (Some(s), Some(c)),
        None => (None, None),
    };
    let apart = if cpus.is_some() {
        "server and client on different CPUs"
    } else {
        "not pinned"
    };
    let figs = [
        (
            format!("request/response, 1-byte ping-pong over one connection, veth, {apart} (transactions/s)"),
            "≥ 1.0 × host",
        ),
        (
            "request/response as above, server and client on one CPU (transactions/s)".to_string(),
            "≥ 0.9 × host",
        ),
        (
            format!("connection setup rate, veth, {apart}, {} client threads: connect + 1-byte echo + close (connections/s)", b.connect_threads),
            "≥ 0.8 × host",
        ),
        (
            "RSS of the idle server after one connection (MiB; ratio column: LKL − host)".to_string(),
            "LKL − host ≤ 24 MiB",
        ),
    ];
    let measured = (|| -> Result<[Vec<RrResult>; 2], String> {
        let topo = VethTopology::new().map_err(|e| format!("veth rig: {e}"))?;
        let mut res: [Vec<RrResult>; 2] = Default::default();
        for run in 0..b.runs {
            for (s, stack) in [Stack::Host, Stack::Lkl].into_iter().enumerate() {
                let (mut server, addr) = rr_server(b, &topo, stack, &[], server_cpu)?;
                let a = addr.to_string();
                // One connection (64 transactions), then idle.
                rr_client(b, &topo, &["rr", &a, "0"], 0.0, client_cpu)?;
                thread::sleep(Duration::from_millis(500));
                let rss = server.rss_kib()?;
                let secs = b.rr_secs.to_string();
                let line = rr_client(b, &topo, &["rr", &a, &secs], b.rr_secs, client_cpu)?;
                let tps = kv(&line, "rate")?;
                let tps_one = match cpus {
                    Some(_) => {
                        let line = rr_client(b, &topo, &["rr", &a, &secs], b.rr_secs, server_cpu)?;
                        kv(&line, "rate")?
                    }
                    None => f64::NAN,
                };
                let threads = b.connect_threads.to_string();
                let line = rr_client(
                    b,
                    &topo,
                    &["connect", &a, &secs, &threads],
                    b.rr_secs,
                    client_cpu,
                )?;
                let cps = kv(&line, "rate")?;
                server.check_alive()?;
                b.record(format!(
                    "rr {} run {run}: idle RSS {:.1} MiB, {tps:.0} transactions/s ({tps_one:.0} on one CPU), {cps:.0} connections/s",
                    stack.name(),
                    rss / 1024.0
                ));
                res[s].push([rss, tps, tps_one, cps]);
            }
        }
        Ok(res)
    })();
    let res = match measured {
        Ok(res) => res,
        Err(e) => return figs.iter().map(|(f, t)| Row::error(f, t, &e)).collect(),
    };
    let med = |s: usize, i: usize| median(res[s].iter().map(|r| r[i]).collect());
    let mut rows = Vec::new();
    for (fig, i, min) in [(0, 1, 1.0), (1, 2, 0.9), (2, 3, 0.8)] {
        let (h, l) = (med(0, i), med(1, i));
        rows.push(Row {
            figure: figs[fig].0.clone(),
            lkl: format!("{l:.0}"),
            host: format!("{h:.0}"),
            ratio: format!("{:.2}", l / h),
            target: figs[fig].1.into(),
            met: yes(l / h >= min),
        });
    }
    let (h, l) = (med(0, 0) / 1024.0, med(1, 0) / 1024.0);
    rows.push(Row {
        figure: figs[3].0.clone(),
        lkl: format!("{l:.1}"),
        host: format!("{h:.1}"),
        ratio: format!("{:+.1} MiB", l - h),
        target: figs[3].1.into(),
        met: yes(l - h <= 24.0),
    });
    rows
}

/// Latency of 1 KiB requests on the veth rig, server and client pinned as for `rr_figures`:
/// each run measures both stacks' saturation (requests back to back over one connection),
/// then both at half the lower of the two, so both see the same load. Per stack, medians of
/// p50 and p99 over the runs.
fn latency_figures(b: &Bench) -> Vec<Row> {
    let (server_cpu, client_cpu) = match two_cpus() {
        Some((s, c)) => (Some(s), Some(c)),
        None => (None, None),
    };
    let figs = [
        ("latency of 1 KiB requests over one connection at 50 % of saturation, veth, p50 (µs; ratio: LKL / host)", "(diagnostic)"),
        ("latency as above, p99 (µs; ratio: LKL / host)", "LKL ≤ 1.2 × host"),
    ];
    let size = "1024";
    let secs = b.rr_secs.to_string();
    let measured = (|| -> Result<[Vec<[f64; 2]>; 2], String> {
        let topo = VethTopology::new().map_err(|e| format!("veth rig: {e}"))?;
        let mut res: [Vec<[f64; 2]>; 2] = Default::default();
        for run in 0..b.runs {
            let mut servers = Vec::new();
            let mut sat = f64::INFINITY;
            for stack in [Stack::Host, Stack::Lkl] {
                let (server, addr) = rr_server(b, &topo, stack, &[], server_cpu)?;
                let a = addr.to_string();
                let line = rr_client(
                    b,
                    &topo,
                    &["lat", &a, &secs, "0", size],
                    b.rr_secs,
                    client_cpu,
                )?;
                sat = sat.min(kv(&line, "rate")?);
                servers.push((server, a));
            }
            let rate = format!("{:.0}", sat / 2.0);
            for (s, (server, a)) in servers.iter_mut().enumerate() {
                let line = rr_client(
                    b,
                    &topo,
                    &["lat", a, &secs, &rate, size],
                    b.rr_secs,
                    client_cpu,
                )?;
                server.check_alive()?;
                let (p50, p99) = (kv(&line, "p50_us")?, kv(&line, "p99_us")?);
                b.record(format!(
                    "latency {} run {run}: {rate} requests/s, p50 {p50:.1} µs, p99 {p99:.1} µs",
                    [Stack::Host, Stack::Lkl][s].name()
                ));
                res[s].push([p50, p99]);
            }
        }
        Ok(res)
    })();
    let res = match measured {
        Ok(res) => res,
        Err(e) => return figs.iter().map(|(f, t)| Row::error(f, t, &e)).collect(),
    };
    let med = |s: usize, i: usize| median(res[s].iter().map(|r| r[i]).collect());
    (0..2)
        .map(|i| {
            let (h, l) = (med(0, i), med(1, i));
            Row {
                figure: figs[i].0.into(),
                lkl: format!("{l:.1}"),
                host: format!("{h:.1}"),
                ratio: format!("{:.2}", l / h),
                target: figs[i].1.into(),
                met: if i == 1 {
                    yes(l / h <= 1.2)
                } else {
                    "—".into()
                },
            }
        })
        .collect()
}

/// Connections held, RSS growth in KiB per connection.
type Held = (usize, f64);

/// CONNS idle connections to a server of `stack`: (held, RSS growth KiB per connection).
fn hold_one(b: &Bench, topo: &dyn Topology, stack: Stack) -> Result<(usize, f64), String> {
    let (mut server, addr) = rr_server(b, topo, stack, &[], None)?;
    let a = addr.to_string();
    rr_client(b, topo, &["rr", &a, "0"], 0.0, None)?;
    thread::sleep(Duration::from_millis(500));
    let rss0 = server.rss_kib()?;
    let count = b.conns.to_string();
    let mut client = Proc::spawn(
        b,
        topo.peer_ns(),
        &b.rr_bin,
        &["hold", &a, &count],
        &[],
        &format!("bench_rr-hold-{}", stack.name()),
        None,
    )?;
    let with_server_log = |e: String| format!("{e}; server: {}", server.log_tail());
    let first = client
        .wait_line("connected=", Duration::from_secs(120))
        .map_err(with_server_log)?;
    thread::sleep(Duration::from_millis(500));
    let rss1 = server.rss_kib()?;
    // Held for a while, idle; then each echoes again.
    thread::sleep(Duration::from_secs(2));
    drop(client.stdin.take());
    let last = client
        .wait_line("held=", Duration::from_secs(120))
        .map_err(with_server_log)?;
    server.check_alive()?;
    let held = kv(&last, "held")? as usize;
    let per_conn = (rss1 - rss0) / b.conns as f64;
    b.record(format!(
        "{} connections {}: {first}; {last}; RSS {:.1} -> {:.1} MiB, {per_conn:.2} KiB per connection",
        b.conns,
        stack.name(),
        rss0 / 1024.0,
        rss1 / 1024.0
    ));
    Ok((held, per_conn))
}

fn many_connections(b: &Bench) -> Row {
    let fig = format!(
        "{} concurrent idle connections: held, RSS growth per connection (KiB)",
        b.conns
    );
    let target = "all held, ≤ 10 KiB per connection";
    let measured = (|| -> Result<(Held, Held), String> {
        let topo = VethTopology::new().map_err(|e| format!("veth rig: {e}"))?;
        let host = hold_one(b, &topo, Stack::Host)?;
        let lkl = hold_one(b, &topo, Stack::Lkl)?;
        Ok((lkl, host))
    })();
    match measured {
        Err(e) => Row::error(&fig, target, &e),
        Ok(((lh, lk), (hh, hk))) => Row {
            figure: fig,
            lkl: format!("{lh}/{} held, {lk:.2}", b.conns),
            host: format!("{hh}/{} held, {hk:.2}", b.conns),
            ratio: "—".into(),
            target: target.into(),
            met: yes(lh == b.conns && lk <= 10.0),
        },
    }
}

/// `booted Linux in X ms` of preloaded servers (median of max(RUNS, 5)), with the default
/// settings or with `LKL_HIJACK_FIREWALL=off` (the nft rules are part of the boot line).
fn boot(b: &Bench, firewall: bool) -> Row {
    let fig = if firewall {
        "boot: first socket → kernel up, interface configured, firewall rules in (ms)"
    } else {
        "boot with LKL_HIJACK_FIREWALL=off (ms)"
    };
    let target = "≤ 50 ms";
    let mut env = vec![("LKL_HIJACK_DEBUG", "1")];
    if !firewall {
        env.push(("LKL_HIJACK_FIREWALL", "off"));
    }
    let measured = (|| -> Result<f64, String> {
        let topo = VethTopology::new().map_err(|e| format!("veth rig: {e}"))?;
        let mut ms = Vec::new();
        for run in 0..b.runs.max(5) {
            let (mut server, _) = rr_server(b, &topo, Stack::Lkl, &env, None)?;
            server.stop();
            let log = fs::read_to_string(&server.log).map_err(|e| e.to_string())?;
            let v = log
                .lines()
                .find_map(|l| l.split("booted Linux in ").nth(1))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| format!("no 'booted Linux in' line in {}", server.log.display()))?;
            b.record(format!(
                "boot (firewall {}) run {run}: {v:.1} ms",
                if firewall { "auto" } else { "off" }
            ));
            ms.push(v);
        }
        Ok(median(ms))
    })();
    match measured {
        Err(e) => Row::error(fig, target, &e),
        Ok(ms) => Row {
            figure: fig.into(),
            lkl: format!("{ms:.1}"),
            host: "—".into(),
            ratio: "—".into(),
            target: target.into(),
            met: yes(ms <= 50.0),
        },
    }
}

/// Writes the sweep's data and gnuplot script and runs gnuplot; the PNG's path or an error.
fn plot(b: &Bench, sweep: &[(f64, f64, f64)]) -> Result<PathBuf, String> {
    let dat = b.out.join("goodput_vs_loss.dat");
    let png = b.out.join("goodput_vs_loss.png");
    let gp = b.out.join("goodput_vs_loss.gp");
    let mut text = String::from("# loss_pct lkl_bbr_mbit host_cubic_mbit\n");
    for (loss, l, h) in sweep {
        let _ = writeln!(text, "{loss} {l:.2} {h:.2}");
    }
    fs::write(&dat, text).map_err(|e| e.to_string())?;
    let _ = fs::remove_file(&png);
    if sweep.is_empty() {
        return Err("no loss point was measured".into());
    }
    let script = format!(
        "set terminal pngcairo size 900,560 font ',11'\n\
         set output '{png}'\n\
         set title 'Goodput vs random loss: venet, 50 ms RTT, 100 Mbit/s, server sending, {secs} s per run'\n\
         set xlabel 'random loss each way (%)'\n\
         set ylabel 'goodput (Mbit/s)'\n\
         set logscale y\n\
         set yrange [*:200]\n\
         set xrange [-0.2:5.2]\n\
         set grid\n\
         set key top right\n\
         plot '{dat}' using 1:2 with linespoints lw 2 pt 7 title 'LKL, BBR', \\\n\
              '{dat}' using 1:3 with linespoints lw 2 pt 5 title 'host kernel, cubic'\n",
        png = png.display(),
        dat = dat.display(),
        secs = b.lossy_secs
    );
    fs::write(&gp, script).map_err(|e| e.to_string())?;
    let out = Command::new("gnuplot")
        .arg(&gp)
        .output()
        .map_err(|e| format!("gnuplot: {e} (install gnuplot-nox: scripts/setup.sh)"))?;
    if !out.status.success() || !png.is_file() {
        return Err(format!(
            "gnuplot failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(png)
}

/// Runs `f`; a panic becomes an error row (its rig has been dropped by then).
fn guarded<T>(what: &str, fallback: impl FnOnce(String) -> T, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    eprintln!("bench: {what} ...");
    let r = panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into());
        fallback(format!("panic: {msg}"))
    });
    eprintln!(
        "bench: {what} done in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    r
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let started = Instant::now();
    let b = Bench::from_env();
    eprintln!(
        "bench: RUNS={} SECS={} LOSSY_SECS={} RR_SECS={} CONNS={}; output in {}",
        b.runs,
        b.secs,
        b.lossy_secs,
        b.rr_secs,
        b.conns,
        b.out.display()
    );
    // FIGURES=throughput,forward,lossy,rr,latency,conns,boot: a subset (for working on one).
    let only = std::env::var("FIGURES").unwrap_or_default();
    let want = |f: &str| only.is_empty() || only.split(',').any(|w| w.trim() == f);
    let mut rows = Vec::new();
    for (kind, figure) in [
        (Tput::Veth, "throughput"),
        (Tput::Venet, "throughput"),
        (Tput::VenetTun, "throughput"),
        (Tput::Forward, "forward"),
    ] {
        if !want(figure) {
            continue;
        }
        rows.extend(guarded(
            &format!("throughput {}", kind.name()),
            |e| {
                vec![Row::error(
                    &format!("throughput, {}", kind.name()),
                    kind.target(),
                    &e,
                )]
            },
            || throughput(&b, kind),
        ));
    }
    let mut sweep = Vec::new();
    if want("lossy") {
        let (lossy_row, points) = guarded(
            "goodput vs loss",
            |e| {
                (
                    Row::error(
                        "goodput on the lossy venet",
                        "≥ 5 × host and ≥ 80 Mbit/s",
                        &e,
                    ),
                    vec![],
                )
            },
            || lossy(&b),
        );
        rows.push(lossy_row);
        sweep = points;
    }
    if want("rr") {
        rows.extend(guarded(
            "request/response, connection rate, idle RSS",
            |e| vec![Row::error("request/response", "", &e)],
            || rr_figures(&b),
        ));
    }
    if want("latency") {
        rows.extend(guarded(
            "latency at half saturation",
            |e| vec![Row::error("latency", "", &e)],
            || latency_figures(&b),
        ));
    }
    if want("conns") {
        rows.push(guarded(
            "concurrent connections",
            |e| Row::error("concurrent connections", "", &e),
            || many_connections(&b),
        ));
    }
    for firewall in [true, false] {
        if want("boot") {
            rows.push(guarded(
                "boot",
                |e| Row::error("boot", "≤ 50 ms", &e),
                || boot(&b, firewall),
            ));
        }
    }
    let plot = if want("lossy") {
        plot(&b, &sweep)
    } else {
        Err("FIGURES leaves the loss sweep out".into())
    };

    let mut md = String::new();
    let _ = writeln!(
        md,
        "lkl-hijack benchmark: LKL (server under LD_PRELOAD=liblkl_hijack.so) vs the host kernel \
         (same server, no preload), medians of {} runs; {} s iperf3 runs, {} s lossy runs, \
         {} s request/response and connection runs; BBR on both stacks for throughput; on the lossy \
         link LKL with its default (BBR, fq) and the host with cubic (iperf3 -C).\n",
        b.runs, b.secs, b.lossy_secs, b.rr_secs
    );
    let _ = writeln!(md, "| figure | LKL | host | ratio | target | met? |");
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            r.figure, r.lkl, r.host, r.ratio, r.target, r.met
        );
    }
    let _ = writeln!(md);
    if !sweep.is_empty() {
        let _ = writeln!(
            md,
            "Goodput vs loss (venet, 50 ms RTT, 100 Mbit/s; Mbit/s):\n"
        );
        let _ = writeln!(md, "| loss % | LKL BBR | host cubic | ratio |");
        let _ = writeln!(md, "|---|---|---|---|");
        for (loss, l, h) in &sweep {
            let _ = writeln!(md, "| {loss} | {l:.1} | {h:.1} | {:.1} |", l / h);
        }
    }
    let _ = writeln!(md);
    match &plot {
        Ok(png) => {
            let _ = writeln!(md, "Plot: {}", png.display());
        }
        Err(e) => {
            let _ = writeln!(md, "Plot: not written: {e}");
        }
    }
    let _ = writeln!(
        md,
        "\nTotal time {:.0} s. Server logs: {}",
        started.elapsed().as_secs_f64(),
        b.logs.display()
    );
    print!("{md}");
    let _ = io::stdout().flush();
    let raw = b.raw.lock().unwrap().clone();
    let report = format!("{md}\n## Every run\n\n```\n{raw}```\n");
    let path = b.out.join("bench.md");
    if let Err(e) = fs::write(&path, report) {
        eprintln!("bench: cannot write {}: {e}", path.display());
        std::process::exit(1);
    }
    eprintln!("bench: wrote {}", path.display());
}
