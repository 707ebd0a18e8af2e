//! Helpers for the tests of the port policy and the firewall (issue 5): LKL on the container's
//! own host-stack address, nftables/iptables inspection in the container namespace, servers
//! whose output goes to files (readable while they run), small host-stack TCP services and a
//! raw HTTP/1.0 client. On top of `common` and `apps`.
#![allow(dead_code)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use lkl_rig::{Netns, Topology};

use crate::apps::Scratch;
// set_env is re-exported for the tests that take their helpers from here.
pub use crate::common::set_env;
use crate::common::{lkl_env, Server};

/// `lkl_env` with LKL on the container's host-stack IPv4 address: one address for both stacks.
pub fn shared_ip_env(topo: &dyn Topology) -> Vec<(String, String)> {
    let mut env = lkl_env(topo);
    set_env(
        &mut env,
        "LKL_HIJACK_NET_IP",
        &topo.addrs().host_v4.to_string(),
    );
    env
}

/// The name of the nftables table (family inet) of the instance `pid` on `ifname`.
pub fn table_name(ifname: &str, pid: u32) -> String {
    let ifname: String = ifname
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("lklhijack_{ifname}_{pid}")
}

/// `nft ARGS` in `ns`; Err carries the status and stderr.
pub fn nft(ns: &Netns, args: &[&str]) -> Result<String, String> {
    let out = ns
        .command("nft")
        .expect("open the namespace")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run nft");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "nft {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Every nftables table in `ns`, as "FAMILY NAME".
pub fn nft_tables(ns: &Netns) -> Vec<String> {
    nft(ns, &["list", "tables"])
        .unwrap_or_else(|e| panic!("{e}"))
        .lines()
        .filter_map(|l| l.trim().strip_prefix("table "))
        .map(str::to_string)
        .collect()
}

/// The tables in `ns` that belong to some lkl-hijack instance.
pub fn lklhijack_tables(ns: &Netns) -> Vec<String> {
    nft_tables(ns)
        .into_iter()
        .filter(|t| t.contains("lklhijack_"))
        .collect()
}

/// `nft list table inet NAME`, or None when there is no such table.
pub fn nft_table_listing(ns: &Netns, name: &str) -> Option<String> {
    nft(ns, &["list", "table", "inet", name]).ok()
}

/// iptables/ip6tables raw-table lines of lkl-hijack's fall-back chains (`LKLH-...`) in `ns`.
pub fn iptables_lklh_lines(ns: &Netns) -> Vec<String> {
    let mut lines = Vec::new();
    for tool in ["iptables", "ip6tables"] {
        let Ok(out) = ns.run(tool, &["-t", "raw", "-S"]) else {
            continue; // no ip6tables, or no raw table: nothing of ours there either
        };
        lines.extend(
            out.lines()
                .filter(|l| l.contains("LKLH-"))
                .map(|l| format!("{tool}: {l}")),
        );
    }
    lines
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

/// A counter of the host stack of `ns` from /proc/net/snmp, e.g. ("Tcp", "OutRsts").
pub fn snmp_counter(ns: &Netns, group: &str, name: &str) -> u64 {
    let snmp = ns
        .run("cat", &["/proc/net/snmp"])
        .expect("read /proc/net/snmp");
    let prefix = format!("{group}:");
    let mut rows = snmp.lines().filter(|l| l.starts_with(&prefix));
    let (names, values) = (
        rows.next().expect("header row"),
        rows.next().expect("value row"),
    );
    let i = names
        .split_whitespace()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no {group} {name} in /proc/net/snmp"));
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

/// The host stack's TCP `OutRsts` counter of `ns` (RST segments the container kernel sent).
pub fn host_tcp_out_rsts(ns: &Netns) -> u64 {
    snmp_counter(ns, "Tcp", "OutRsts")
}

/// Deletes an nftables table (family inet) in `ns` when dropped, so a table a test created or
/// applied by hand never outlives the test, even when it fails.
pub struct TableGuard<'a> {
    pub ns: &'a Netns,
    pub name: String,
}

impl Drop for TableGuard<'_> {
    fn drop(&mut self) {
        let _ = nft(self.ns, &["delete", "table", "inet", &self.name]);
    }
}

/// A process whose stdout and stderr go to files, so they can be read while it runs (a pipe
/// would have to be drained); killed when dropped, and its stderr shown if the test failed.
pub struct LoggedServer {
    pub server: Server,
    logs: Scratch,
}

impl LoggedServer {
    pub fn spawn(mut cmd: Command, name: &str) -> LoggedServer {
        let tag: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let logs = Scratch::new(&format!("log-{tag}"));
        cmd.stdout(File::create(logs.join("stdout")).expect("stdout file"))
            .stderr(File::create(logs.join("stderr")).expect("stderr file"));
        LoggedServer {
            server: Server::spawn(cmd, name),
            logs,
        }
    }

    pub fn pid(&self) -> u32 {
        self.server.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        self.server.child.try_wait().expect("try_wait").is_none()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.logs.join("stdout")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.logs.join("stderr")).unwrap_or_default()
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.logs.join("stderr")
    }
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        if thread::panicking() {
            let _ = self.server.child.kill();
            let _ = self.server.child.wait();
            eprintln!(
                "--- {} stdout ---\n{}--- {} stderr ---\n{}",
                self.server.name,
                self.stdout(),
                self.server.name,
                self.stderr()
            );
        }
    }
}

/// A TCP service on a host stack: listens on `addr` inside `ns` and runs `handler` on a thread
/// per connection; stops accepting when dropped.
pub struct TcpService {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TcpService {
    pub fn start<F>(ns: &Netns, addr: SocketAddr, handler: F) -> TcpService
    where
        F: Fn(TcpStream, SocketAddr) + Send + Sync + 'static,
    {
        let listener = ns
            .in_thread(|| TcpListener::bind(addr))
            .expect("enter namespace")
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        // Non-blocking, polled, so that dropping the service can stop the loop.
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let handler = Arc::new(handler);
        let thread = thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, from)) => {
                        conn.set_nonblocking(false).unwrap();
                        let handler = handler.clone();
                        thread::spawn(move || handler(conn, from));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(2))
                    }
                    Err(e) => panic!("accept on {addr}: {e}"),
                }
            }
        });
        TcpService {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TcpService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads an HTTP request head (up to the blank line) and returns its path.
pub fn read_request_path(conn: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "request cut short",
            ));
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    Ok(head.split_whitespace().nth(1).unwrap_or("").to_string())
}

/// `GET path` over HTTP/1.0 to `addr` (from the calling thread's namespace): the status line
/// and the body. Any connect, reset or timeout error is returned as is.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<(String, Vec<u8>)> {
    let mut conn = TcpStream::connect_timeout(&addr, timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply)?;
    let _ = conn.shutdown(Shutdown::Both);
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no header end in {} bytes", reply.len()),
            )
        })?;
    let status = String::from_utf8_lossy(&reply[..split])
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    Ok((status, reply[split + 4..].to_vec()))
}

/// `http_get` that must return 200 with `expected` as the body; the error says what differed.
pub fn http_get_expect(addr: SocketAddr, path: &str, expected: &[u8]) -> Result<(), String> {
    match http_get(addr, path, Duration::from_secs(5)) {
        Err(e) => Err(format!("{e} ({:?})", e.kind())),
        Ok((status, _)) if !status.contains(" 200 ") => Err(format!("status {status:?}")),
        Ok((_, body)) if body != expected => Err(format!(
            "body of {} bytes differs from the expected {} bytes",
            body.len(),
            expected.len()
        )),
        Ok(_) => Ok(()),
    }
}

/// From the peer's namespace, `http_get_expect` of `path` at `addr` `times` times; the
/// failures, numbered.
pub fn fetch_from_peer(
    topo: &dyn Topology,
    addr: SocketAddr,
    path: &str,
    expected: &[u8],
    times: usize,
) -> Vec<String> {
    topo.peer_ns()
        .in_thread(|| {
            (0..times)
                .filter_map(|i| {
                    http_get_expect(addr, path, expected)
                        .err()
                        .map(|e| format!("#{i}: {e}"))
                })
                .collect()
        })
        .expect("enter the peer namespace")
}

/// The lines `lkl-hijack: firewall: <command>` of a stderr text, as commands.
pub fn firewall_commands(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("lkl-hijack: firewall: "))
        .map(str::to_string)
        .collect()
}

/// Whether `text`, without the table name `table` (whose pid could look like a port), names
/// `port` as a number of its own.
pub fn mentions_port(text: &str, table: &str, port: u16) -> bool {
    text.replace(table, "")
        .split(|c: char| !c.is_ascii_digit())
        .any(|n| n == port.to_string())
}

/// A pid that no process has (above this machine's pid_max when possible).
pub fn dead_pid() -> u32 {
    let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if max < 4_194_303 {
        return 4_194_303;
    }
    (2..max)
        .rev()
        .find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        .expect("a free pid")
}
