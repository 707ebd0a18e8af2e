//! Shared by the hijack tests: real programs run under `LD_PRELOAD=liblkl_hijack.so` in a rig's
//! container namespace, with LKL on the container's interface; clients run in the peer
//! namespace on the host kernel. Each test file uses a subset.
//!
//! The other helpers are modules by job, each declared only by the tests that need it (with
//! the modules it builds on):
//! * `apps`: scratch directories, payload files, downloads checked against their file.
//! * `echo`: the echo server example under the preload, echo transfers checking every byte.
//! * `packets`: raw IPv4/IPv6/TCP packets built and parsed; `injector`: sending them into
//!   the peer's tun device and reading what comes back.
//! * `rng`: a seeded PRNG; `run_length`: short or long (`LKL_SOAK`) forms of long tests.
//! * `proc_sample`: a process's fds, threads and RSS from /proc.
//! * `shared_ip`: LKL on the host stack's own address; `host_firewall`: the instances'
//!   nftables/iptables rules as seen from outside.
//! * `logged_server`: a server whose output goes to files; `tcp_service`: host-stack TCP
//!   services; `http_client`: a raw HTTP/1.0 client.
#![allow(dead_code)]

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use lkl_rig::{Netns, Topology, VenetTopology};

/// The preload library cargo built with this test binary: `cargo test` leaves it in
/// target/<profile>/deps (only `cargo build` copies it up to target/<profile>/, where an
/// older one may linger).
pub fn hijack_so() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("target/<profile>/deps");
    let candidates = [
        deps.join("liblkl_hijack.so"),
        deps.parent()
            .expect("target/<profile>")
            .join("liblkl_hijack.so"),
    ];
    candidates
        .iter()
        .find(|so| so.is_file())
        .cloned()
        .unwrap_or_else(|| panic!("liblkl_hijack.so not found at {candidates:?}"))
}

/// A fresh venet topology (tun venet0 in the container, forwarder, peer).
pub fn venet() -> VenetTopology {
    VenetTopology::builder().build().expect("venet topology")
}

/// The environment that puts a program's sockets on LKL, on the topology's container
/// interface with the rig's LKL addresses.
pub fn lkl_env(topo: &dyn Topology) -> Vec<(String, String)> {
    let a = topo.addrs();
    [
        ("LD_PRELOAD", hijack_so().display().to_string()),
        ("LKL_HIJACK_NET_IFTYPE", "packet".into()),
        ("LKL_HIJACK_NET_IFPARAMS", topo.container_if().into()),
        ("LKL_HIJACK_NET_IP", a.lkl_v4.to_string()),
        ("LKL_HIJACK_NET_IPV6", a.lkl_v6.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Sets `key=value` in an environment list (replacing an earlier value).
pub fn set_env(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_string(), value.to_string()));
}

/// A program that says it ran, then opens an IPv4 socket (which boots the kernel): what a bad
/// configuration must stop, before `main` or at that socket.
const SOCKET_PROBE: &str = "print('main ran', flush=True); import socket; socket.socket(); \
                            print('socket opened', flush=True)";

/// Runs the socket probe in the container with `env`, to completion.
pub fn run_socket_probe(topo: &dyn Topology, env: &[(String, String)]) -> Output {
    command_in(
        topo.container_ns(),
        "/usr/bin/python3",
        &["-c", SOCKET_PROBE],
        env,
    )
    .output()
    .expect("run python3")
}

/// `program args...` in `ns` with `env` added, stdout and stderr captured. In a rig's
/// container namespace, with `LKL_TEST_KERNEL_PROFILE` set (3.10, 4.18, 5.4, 5.10), the program
/// runs as on that host kernel: what the container runs (the library among it) meets what
/// such a host lacks, while the peer stays a modern machine.
pub fn command_in(ns: &Netns, program: &str, args: &[&str], env: &[(String, String)]) -> Command {
    let mut cmd = ns.command(program).expect("open the namespace");
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if ns.name().starts_with(lkl_rig::netns::CONTAINER_PREFIX) {
        if let Some(profile) = test_kernel_profile() {
            profile.confine(&mut cmd);
        }
    }
    cmd
}

/// The host kernel the container's programs run as (`LKL_TEST_KERNEL_PROFILE`), if any; an
/// unknown name fails the test.
pub fn test_kernel_profile() -> Option<lkl_rig::KernelProfile> {
    let name = std::env::var("LKL_TEST_KERNEL_PROFILE").ok()?;
    Some(lkl_rig::KernelProfile::named(&name).unwrap_or_else(|e| panic!("{e}")))
}

/// A server process; killed (and its output shown) when dropped, so a failing test leaves
/// nothing running.
pub struct Server {
    pub child: Child,
    pub name: String,
}

impl Server {
    pub fn spawn(mut cmd: Command, name: &str) -> Server {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Server {
            child,
            name: name.to_string(),
        }
    }

    /// Waits until a TCP connection from `from` to `addr` succeeds, or fails the test when
    /// the server exits or `limit` passes.
    pub fn wait_listening(&mut self, from: &Netns, addr: SocketAddr, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let output = self.output();
                panic!("{} exited before listening: {status}\n{output}", self.name);
            }
            let ok = from
                .in_thread(|| TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok())
                .expect("enter namespace");
            if ok {
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let output = self.output();
                panic!(
                    "{} did not listen on {addr} within {limit:?}\n{output}",
                    self.name
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits for the exit (SIGKILL after `limit`).
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        // SAFETY: kill(2) on our own child's pid, which is not reaped yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.wait_for_exit(limit)
    }

    /// Waits for the process to exit on its own; SIGKILL and a test failure after `limit`.
    pub fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let output = self.output();
                panic!("{} did not exit within {limit:?}\n{output}", self.name);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the process printed so far (it must have exited, or the pipes would block).
    pub fn output(&mut self) -> String {
        let mut text = String::new();
        if self.child.try_wait().ok().flatten().is_none() {
            return "(still running; output not read)".into();
        }
        for pipe in [
            self.child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read>),
            self.child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read>),
        ]
        .into_iter()
        .flatten()
        {
            let mut p = pipe;
            let _ = p.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            if thread::panicking() {
                let output = self.output();
                eprintln!("--- {} output ---\n{output}", self.name);
            }
        }
    }
}

/// Whether the container's host stack has a TCP listener on `port` (it must not, when the
/// server lives in LKL).
pub fn host_listens_on(ns: &Netns, port: u16) -> bool {
    let out = ns.run("ss", &["-Hltn"]).expect("ss");
    out.lines().any(|l| {
        l.split_whitespace()
            .nth(3)
            .is_some_and(|local| local.rsplit(':').next() == Some(&port.to_string()))
    })
}

/// A socket address of LKL's IPv4 address.
pub fn lkl_v4(topo: &dyn Topology, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(topo.addrs().lkl_v4), port)
}

/// Runs `cmd` to completion and returns stdout; failure shows both streams.
pub fn check_output(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        panic!(
            "{cmd:?}: {}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stdout
}

/// Runs http.server's own `__main__`, with one change: it names itself by a reverse DNS lookup
/// of the bind address, and the rig has no resolver (the query would leave for the machine's
/// nameserver and time out after 10 s).
const RUN_HTTP_SERVER: &str = "import runpy, socket; socket.getfqdn = lambda name='': name; \
     runpy.run_module('http.server', run_name='__main__', alter_sys=True)";

/// The interpreter and arguments of `python3 -m http.server PORT --bind BIND --directory DIR`
/// (Debian's interpreter by path: a version manager's shim on PATH would be a shell script).
pub fn http_server_argv(port: &str, bind: &str, dir: &str) -> Vec<String> {
    [
        "/usr/bin/python3",
        "-u",
        "-c",
        RUN_HTTP_SERVER,
        port,
        "--bind",
        bind,
        "--directory",
        dir,
    ]
    .map(String::from)
    .to_vec()
}

/// `python3 -m http.server` in `ns` with `env` (see [`http_server_argv`]).
pub fn http_server_command(
    ns: &Netns,
    port: &str,
    bind: &str,
    dir: &str,
    env: &[(String, String)],
) -> Command {
    let argv = http_server_argv(port, bind, dir);
    let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    command_in(ns, &argv[0], &args, env)
}

/// Where a C program for the tests comes from.
pub enum CSource<'a> {
    /// `tests/programs/NAME.c`.
    File,
    /// This text.
    Text(&'a str),
}

/// Compiles C program `name` (`cc -O1 -g -Wall -Werror -pthread`) into cargo's scratch
/// directory and returns its path. Tests of one binary may build the same program at once:
/// each compiles to its own file and renames it into place.
pub fn build_c(name: &str, source: CSource) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let src = match source {
        CSource::File => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/programs/{name}.c"))
        }
        CSource::Text(text) => {
            let src = dir.join(format!("{name}.c"));
            std::fs::write(&src, text).expect("write the C source");
            src
        }
    };
    let out = dir.join(name);
    let tmp = dir.join(format!(
        "{name}.{}.{:?}.tmp",
        std::process::id(),
        thread::current().id()
    ));
    check_output(
        Command::new("cc")
            .args(["-O1", "-g", "-Wall", "-Werror", "-pthread", "-o"])
            .arg(&tmp)
            .arg(&src),
    );
    std::fs::rename(&tmp, &out).expect("put the program in place");
    out
}

/// The example echo server cargo builds next to the tests (`target/<profile>/examples/`),
/// built here when `cargo test --test` did not build examples or the source is newer.
pub fn echo_server_bin() -> PathBuf {
    let bin = profile_dir().join("examples/echo_server");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/echo_server.rs");
    let mtime = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    let fresh = matches!((mtime(&bin), mtime(&src)), (Some(b), Some(s)) if b >= s);
    if !fresh {
        cargo_build(&["--example", "echo_server"]);
    }
    assert!(
        mtime(&bin).unwrap_or(SystemTime::UNIX_EPOCH) >= mtime(&src).expect("echo_server.rs"),
        "{} is missing or older than its source",
        bin.display()
    );
    bin
}

/// target/<profile>, where this test binary's profile puts its programs.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .to_path_buf()
}

/// `cargo build ARGS` in this test binary's profile.
fn cargo_build(args: &[&str]) {
    let dir = profile_dir();
    let profile = dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("profile directory name");
    let profile = if profile == "debug" { "dev" } else { profile };
    let status = Command::new(env!("CARGO"))
        .arg("build")
        .args(args)
        .args(["--profile", profile])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo build {args:?} failed");
}

/// The `lkl-run` launcher of this profile, (re)built once per test process (`cargo test` builds
/// a workspace member's binary only when the whole workspace is tested), with the preload
/// library it finds next to itself: `cargo test` leaves the fresh one in deps/ only.
pub fn lkl_run_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            cargo_build(&["-p", "lkl-run", "-p", "lkl-hijack"]);
            profile_dir().join("lkl-run")
        })
        .clone()
}

/// Runs `scripts/NAME` (a script that builds or fetches a program into a cache outside the
/// checkout, then only looks it up) and returns the program path it prints last.
pub fn script_program(name: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name);
    let started = Instant::now();
    let out = Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed: {}\n{stderr}",
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    assert!(
        path.is_file(),
        "{name} printed {stdout:?}, not a program\n{stderr}"
    );
    eprintln!(
        "{name}: {} in {:.1} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    path
}

/// Polls `done` every 20 ms until it holds (Some(time taken)) or `limit` passes (None).
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if done() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Raises this process's RLIMIT_NOFILE to at least `needed` (it holds many client sockets).
pub fn raise_fd_limit(needed: u64) {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        if rl.rlim_cur < needed {
            rl.rlim_cur = needed;
            rl.rlim_max = rl.rlim_max.max(needed);
            assert_eq!(
                libc::setrlimit(libc::RLIMIT_NOFILE, &rl),
                0,
                "cannot raise RLIMIT_NOFILE to {needed}"
            );
        }
    }
}
