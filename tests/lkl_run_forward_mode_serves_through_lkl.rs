//! `lkl-run --forward` publishes a service that cannot be preloaded (a static or gc-built Go
//! binary, here also Debian's v2ray, fetched by scripts/fetch-gc-v2ray.sh) on LKL: the
//! forwarder, which the launcher runs preloaded, listens on LKL's address and connects to the
//! service on the container's host stack. Bytes must pass intact both ways, half-closes must
//! pass through, the PROXY protocol header must carry the peer's real address, and finished
//! connections must leave nothing behind.

mod apps;
mod common;

use std::fs;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use apps::{curl_download, http_url, lkl_v6, sha256_of, write_random_file, Scratch, MIB};
use common::{
    command_in, host_listens_on, http_server_command, lkl_run_bin, lkl_v4, venet, Server,
};
use lkl_rig::{Netns, Topology, VenetTopology};

/// The port the forwarder publishes on LKL's address.
const PUBLIC: u16 = 8443;
/// How long a test's socket call may block before the test fails instead of hanging.
const IO_LIMIT: Duration = Duration::from_secs(30);

/// Starts the forwarder in the container namespace with the public CLI, `lkl-run --iface IF
/// --ip V4 --ip6 V6 --forward RULE... [--proxy-protocol V]` (the launcher sets up the preload
/// itself), and waits until the peer reaches each rule's PORT on LKL's address.
fn start_forwarder(topo: &VenetTopology, rules: &[String], proxy_protocol: Option<&str>) -> Server {
    let a = topo.addrs();
    let (v4, v6) = (a.lkl_v4.to_string(), a.lkl_v6.to_string());
    let mut argv: Vec<&str> = vec!["--iface", topo.container_if(), "--ip", &v4, "--ip6", &v6];
    for rule in rules {
        argv.extend(["--forward", rule.as_str()]);
    }
    if let Some(version) = proxy_protocol {
        argv.extend(["--proxy-protocol", version]);
    }
    let ports: Vec<u16> = rules
        .iter()
        .map(|r| {
            r.split_once('=')
                .and_then(|(port, _)| port.parse().ok())
                .unwrap_or_else(|| panic!("forward rule {r:?} is not PORT=HOST:PORT"))
        })
        .collect();
    let bin = lkl_run_bin().display().to_string();
    // No environment of our own: the launcher sets LD_PRELOAD and LKL_HIJACK_*.
    let mut fwd = Server::spawn(
        command_in(topo.container_ns(), &bin, &argv, &[]),
        "lkl-run --forward",
    );
    for port in ports {
        fwd.wait_listening(topo.peer_ns(), lkl_v4(topo, port), Duration::from_secs(20));
    }
    fwd
}

#[test]
fn forward_mode_serves_a_20_mib_download_from_a_loopback_only_service() {
    let topo = venet();
    let dir = Scratch::new("fwd-http");
    let www = dir.join("www");
    fs::create_dir(&www).unwrap();
    let file = www.join("blob.bin");
    let size = 20 * MIB;
    write_random_file(&file, size, 0xf0d0_0001);

    // The service is reachable only on the container's loopback, on the host stack.
    let mut http = Server::spawn(
        http_server_command(
            topo.container_ns(),
            "18080",
            "127.0.0.1",
            &www.display().to_string(),
            &[],
        ),
        "python3 -m http.server",
    );
    http.wait_listening(
        topo.container_ns(),
        "127.0.0.1:18080".parse().unwrap(),
        Duration::from_secs(20),
    );
    let mut fwd = start_forwarder(&topo, &[format!("{PUBLIC}=127.0.0.1:18080")], None);
    // The public port is LKL's, not the container kernel's.
    assert!(
        !host_listens_on(topo.container_ns(), PUBLIC),
        "the container's host stack listens on {PUBLIC}: the forwarder is not on LKL"
    );

    let secs = download_through(&topo, &dir, &file, 60, "the file");
    eprintln!(
        "forwarder throughput: {:.1} MiB/s ({} MiB in {secs:.2} s, peer -> LKL -> forwarder -> \
         container loopback, curl start included)",
        size as f64 / MIB as f64 / secs,
        size / MIB
    );
    assert_running(&mut fwd);
}

#[test]
fn forward_mode_publishes_debians_gc_built_v2ray() {
    let v2ray = gc_v2ray();
    let topo = venet();
    let a = topo.addrs().clone();
    let dir = Scratch::new("fwd-v2ray");
    let www = dir.join("www");
    fs::create_dir(&www).unwrap();
    let file = www.join("blob.bin");
    let size = 20 * MIB;
    write_random_file(&file, size, 0xf0d0_0002);

    // The origin is on the peer's side; v2ray, on the container's host stack, relays to it.
    let mut origin = Server::spawn(
        http_server_command(
            topo.peer_ns(),
            "8000",
            &a.peer_v4.to_string(),
            &www.display().to_string(),
            &[],
        ),
        "python3 -m http.server (origin)",
    );
    origin.wait_listening(
        topo.peer_ns(),
        SocketAddr::new(a.peer_v4.into(), 8000),
        Duration::from_secs(20),
    );
    let config = dir.join("v2ray.json");
    fs::write(
        &config,
        format!(
            r#"{{
  "log": {{ "loglevel": "warning" }},
  "inbounds": [{{
    "listen": "127.0.0.1",
    "port": 10800,
    "protocol": "dokodemo-door",
    "settings": {{ "address": "{}", "port": 8000, "network": "tcp" }}
  }}],
  "outbounds": [{{ "protocol": "freedom" }}]
}}
"#,
            a.peer_v4
        ),
    )
    .unwrap();
    // Debian's 4.34 takes `-config FILE` (the `run -c` form is v5's).
    let mut relay = Server::spawn(
        command_in(
            topo.container_ns(),
            &v2ray.display().to_string(),
            &["-config", &config.display().to_string()],
            &[],
        ),
        "v2ray",
    );
    relay.wait_listening(
        topo.container_ns(),
        "127.0.0.1:10800".parse().unwrap(),
        Duration::from_secs(20),
    );
    let mut fwd = start_forwarder(&topo, &[format!("{PUBLIC}=127.0.0.1:10800")], None);
    assert!(!host_listens_on(topo.container_ns(), PUBLIC));

    let secs = download_through(&topo, &dir, &file, 90, "forwarder -> v2ray -> origin");
    eprintln!(
        "forwarder + v2ray throughput: {:.1} MiB/s",
        size as f64 / MIB as f64 / secs
    );
    assert_running(&mut fwd);
    assert_running(&mut relay);
}

#[test]
fn proxy_protocol_v1_header_carries_the_peer_address_and_port() {
    let topo = venet();
    let peer = topo.addrs().peer_v4.into();
    proxy_header_round_trip(&topo, "v1", 1, lkl_v4(&topo, PUBLIC), peer);
}

#[test]
fn proxy_protocol_v2_header_carries_the_peer_address_and_port() {
    let topo = venet();
    let peer = topo.addrs().peer_v4.into();
    proxy_header_round_trip(&topo, "v2", 2, lkl_v4(&topo, PUBLIC), peer);
}

#[test]
fn proxy_protocol_v2_header_carries_an_ipv6_peer_address() {
    let topo = venet();
    let peer = topo.addrs().peer_v6.into();
    proxy_header_round_trip(&topo, "v2", 2, lkl_v6(&topo, PUBLIC), peer);
}

/// The peer connects to `public` through a forwarder sending PROXY `version`: the service
/// must read a header naming the peer's address `peer` and its real source port, and the
/// payload after it must arrive intact and come back intact.
fn proxy_header_round_trip(
    topo: &VenetTopology,
    version: &str,
    version_number: u8,
    public: SocketAddr,
    peer: IpAddr,
) {
    // Every connection reports its header and payload: the forwarder's readiness probes come
    // through here too, and are told apart by their source port.
    let (tx, rx) = mpsc::channel::<(io::Result<ProxyHeader>, Vec<u8>)>();
    let tx = Mutex::new(tx);
    let service = Service::start(topo.container_ns(), move |mut s| {
        let header = read_proxy_header(&mut s);
        let mut seen = Vec::new();
        if header.is_ok() {
            seen = echo_until_eof(&mut s);
        }
        let _ = tx.lock().unwrap().send((header, seen));
    });
    let mut fwd = start_forwarder(topo, &[format!("{PUBLIC}={}", service.addr)], Some(version));

    let payload = pattern(3 * MIB as usize + 7, 0x9e37_79b9);
    let (source, echoed) = topo
        .peer_ns()
        .in_thread(|| exchange(public, &payload, None))
        .unwrap();
    assert_eq!(
        source.ip(),
        peer,
        "the peer's socket is not on its own address"
    );
    let (header, seen) = peer_report(&rx);
    assert_eq!(
        header,
        ProxyHeader {
            version: version_number,
            src: source,
            dst: public,
        },
        "the header must name the peer's address and port and LKL's side of the connection"
    );
    assert!(
        seen == payload,
        "the payload after the header arrived altered"
    );
    assert!(echoed == payload, "the payload came back altered");
    assert_running(&mut fwd);
}

#[test]
fn half_close_from_the_peer_reaches_the_service_and_the_reply_follows() {
    let topo = venet();
    // Replies only after the peer's end of stream: without a passed-on half-close it waits
    // forever, and the peer's read times out.
    let service = Service::start(topo.container_ns(), |mut s| {
        let mut got = Vec::new();
        if s.read_to_end(&mut got).is_ok() {
            let _ = s.write_all(&got);
        }
        // Dropping closes: the peer must see the end of the reply.
    });
    let mut fwd = start_forwarder(&topo, &[format!("{PUBLIC}={}", service.addr)], None);
    let payload = pattern(MIB as usize, 7);
    let (_, echoed) = topo
        .peer_ns()
        .in_thread(|| exchange(lkl_v4(&topo, PUBLIC), &payload, None))
        .unwrap();
    assert!(
        echoed == payload,
        "the reply differs from what the peer sent"
    );
    assert_running(&mut fwd);
}

#[test]
fn half_close_from_the_service_leaves_the_peer_able_to_send() {
    let topo = venet();
    let greeting = pattern(200 << 10, 11);
    let payload = pattern(MIB as usize, 13);
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let tx = Mutex::new(tx);
    let service = {
        let greeting = greeting.clone();
        Service::start(topo.container_ns(), move |mut s| {
            // The service says its piece and ends its sending side, then keeps listening.
            if s.write_all(&greeting).is_err() || s.shutdown(Shutdown::Write).is_err() {
                return;
            }
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            let _ = tx.lock().unwrap().send(got);
        })
    };
    let mut fwd = start_forwarder(&topo, &[format!("{PUBLIC}={}", service.addr)], None);
    topo.peer_ns()
        .in_thread(|| {
            let mut s = connect(lkl_v4(&topo, PUBLIC));
            let mut got = Vec::new();
            s.read_to_end(&mut got)
                .expect("read the greeting up to the service's end of stream");
            assert!(got == greeting, "the greeting arrived altered");
            // The service's half-close must not have ended the other direction.
            s.write_all(&payload)
                .expect("send after the service's half-close");
            s.shutdown(Shutdown::Write).unwrap();
            let mut rest = [0u8; 1];
            assert_eq!(s.read(&mut rest).expect("read after end of stream"), 0);
        })
        .unwrap();
    // Reports of the readiness probe are empty; the peer's is the payload.
    let deadline = Instant::now() + IO_LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let got = rx
            .recv_timeout(left)
            .expect("the service never got the peer's data and end of stream");
        if !got.is_empty() {
            assert!(got == payload, "the service got the peer's data altered");
            break;
        }
    }
    assert_running(&mut fwd);
}

#[test]
fn finished_and_reset_connections_leave_no_fds_threads_or_service_connections() {
    let topo = venet();
    let open = Arc::new(AtomicUsize::new(0));
    let service = {
        let open = Arc::clone(&open);
        Service::start(topo.container_ns(), move |mut s| {
            open.fetch_add(1, Ordering::SeqCst);
            let mut kind = [0u8; 1];
            match s.read(&mut kind) {
                // Echo until the end of stream.
                Ok(1) if kind[0] == b'e' => {
                    let _ = echo_until_eof(&mut s);
                }
                // Send until the connection breaks (the peer resets it).
                Ok(1) if kind[0] == b'f' => {
                    let chunk = pattern(64 << 10, 3);
                    while s.write_all(&chunk).is_ok() {}
                }
                _ => {}
            }
            open.fetch_sub(1, Ordering::SeqCst);
        })
    };
    let mut fwd = start_forwarder(&topo, &[format!("{PUBLIC}={}", service.addr)], None);
    let pid = fwd.child.id();
    let public = lkl_v4(&topo, PUBLIC);

    let round = |n: usize| {
        topo.peer_ns()
            .in_thread(|| {
                thread::scope(|scope| {
                    for i in 0..n {
                        scope.spawn(move || {
                            let payload = pattern(64 << 10, i as u64);
                            let (_, echoed) = exchange(public, &payload, Some(b'e'));
                            assert!(echoed == payload, "echo {i} altered");
                        });
                        scope.spawn(move || {
                            let mut s = connect(public);
                            s.write_all(b"f").unwrap();
                            let mut buf = vec![0u8; 256 << 10];
                            s.read_exact(&mut buf)
                                .expect("read from the flooding service");
                            // Closing with unread data resets the connection.
                            drop(s);
                        });
                    }
                })
            })
            .unwrap()
    };
    // A first round brings the forwarder and the library to their steady state.
    round(4);
    let settled = |limit: usize| {
        wait_for(Duration::from_secs(10), || {
            open.load(Ordering::SeqCst) <= limit
        })
    };
    assert!(
        settled(0),
        "service connections still open after the first round"
    );
    let (fds, threads) = (count_dir(pid, "fd"), count_dir(pid, "task"));

    round(25);
    assert!(
        settled(0),
        "{} service connections stayed open: the forwarder did not close its side",
        open.load(Ordering::SeqCst)
    );
    let back = wait_for(Duration::from_secs(10), || {
        count_dir(pid, "fd") <= fds && count_dir(pid, "task") <= threads
    });
    assert!(
        back,
        "the forwarder holds {} fds and {} threads, {fds} and {threads} before the round",
        count_dir(pid, "fd"),
        count_dir(pid, "task")
    );
    assert_running(&mut fwd);
}

#[test]
fn unreachable_target_closes_the_client_and_logs_one_line() {
    let topo = venet();
    // A port nothing listens on: taken and released.
    let closed = topo
        .container_ns()
        .in_thread(|| {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        })
        .unwrap();
    let mut fwd = start_forwarder(&topo, &[format!("{PUBLIC}={closed}")], Some("v2"));
    let client = topo
        .peer_ns()
        .in_thread(|| {
            let mut s = connect(lkl_v4(&topo, PUBLIC));
            let mut buf = [0u8; 16];
            // Closed (end of stream) or reset, but promptly and with no data.
            match s.read(&mut buf) {
                Ok(n) => assert_eq!(n, 0, "data from an unreachable target"),
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
            }
            s.local_addr().unwrap()
        })
        .unwrap();
    fwd.terminate(Duration::from_secs(10));
    let log = fwd.output();
    let start = format!("lkl-run: forwarding {PUBLIC} -> {closed} (proxy protocol v2)");
    assert!(
        log.lines().any(|l| l == start),
        "no start line {start:?} in\n{log}"
    );
    // The forwarder logs before it closes the client, so the line is there by now (the
    // readiness probe's may not be).
    let failure = format!("lkl-run: port {PUBLIC}: cannot connect to {closed} for {client}: ");
    let lines = log.lines().filter(|l| l.starts_with(&failure)).count();
    assert_eq!(lines, 1, "want one line starting {failure:?} in\n{log}");
}

#[test]
fn bad_usage_exits_2_with_one_line() {
    for args in [
        &[][..],
        &["0=127.0.0.1:80"],
        &["443=localhost:80"],
        &["--proxy-protocol", "v3", "443=127.0.0.1:80"],
        &["443=127.0.0.1:443"],
    ] {
        let out = Command::new(lkl_run_bin())
            .arg("__forward")
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("lkl-run: "), "{args:?}: {err}");
    }
}

// --- helpers ---

/// Downloads /blob.bin from the peer through the forwarder's public port into `dir` and
/// checks it against `file`; returns the seconds it took (curl's start included).
fn download_through(
    topo: &VenetTopology,
    dir: &Scratch,
    file: &Path,
    limit: u32,
    path: &str,
) -> f64 {
    let got = dir.join("download.bin");
    let started = Instant::now();
    curl_download(
        topo.peer_ns(),
        &http_url(lkl_v4(topo, PUBLIC), "/blob.bin"),
        &got,
        limit,
    );
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(
        fs::metadata(&got).unwrap().len(),
        fs::metadata(file).unwrap().len(),
        "download size"
    );
    assert_eq!(
        sha256_of(&got),
        sha256_of(file),
        "bytes through {path} differ from the file"
    );
    secs
}

/// Debian's gc-built v2ray, taken from its package into the user's cache by
/// scripts/fetch-gc-v2ray.sh (once; later runs only look it up). The package itself is not
/// installed: its postinst starts a VMess server with a published user id, an open proxy.
fn gc_v2ray() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| common::script_program("fetch-gc-v2ray.sh"))
}

/// A service on the container's host stack at 127.0.0.1 (an ephemeral port): `handler` gets
/// each connection on its own thread, with timeouts so that a test fails instead of hanging.
struct Service {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Service {
    fn start<H>(ns: &Netns, handler: H) -> Service
    where
        H: Fn(TcpStream) + Send + Sync + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let acceptor = {
            let stop = Arc::clone(&stop);
            let handler = Arc::new(handler);
            ns.spawn_thread(move || {
                let listener = TcpListener::bind("127.0.0.1:0").expect("service bind");
                // Polled, so that dropping the service ends the acceptor.
                listener.set_nonblocking(true).unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            s.set_nonblocking(false).unwrap();
                            s.set_read_timeout(Some(IO_LIMIT)).unwrap();
                            s.set_write_timeout(Some(IO_LIMIT)).unwrap();
                            let handler = Arc::clone(&handler);
                            thread::spawn(move || handler(s));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5))
                        }
                        Err(e) => panic!("service accept: {e}"),
                    }
                }
            })
            .expect("enter the container namespace")
        };
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the service did not start");
        Service {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// A TCP connection to `addr` with the test's timeouts (call in the peer namespace).
fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(IO_LIMIT)).unwrap();
    s.set_write_timeout(Some(IO_LIMIT)).unwrap();
    s
}

/// Connects to `addr`, sends `kind` (a first byte some services expect) and `payload` and ends the sending
/// side, while reading everything that comes back up to the end of stream; returns the local
/// address and what came back. Sending and receiving run at once, so an echo cannot stall on
/// full buffers.
fn exchange(addr: SocketAddr, payload: &[u8], kind: Option<u8>) -> (SocketAddr, Vec<u8>) {
    let s = connect(addr);
    let local = s.local_addr().unwrap();
    let mut writer = s.try_clone().unwrap();
    let mut reader = s;
    thread::scope(|scope| {
        let sender = scope.spawn(move || {
            if let Some(k) = kind {
                writer.write_all(&[k]).expect("send the kind byte");
            }
            writer.write_all(payload).expect("send the payload");
            writer.shutdown(Shutdown::Write).expect("shutdown(Write)");
        });
        let mut back = Vec::new();
        reader
            .read_to_end(&mut back)
            .expect("read up to the end of stream");
        sender.join().unwrap();
        (local, back)
    })
}

/// Writes back what `s` sends until its end of stream, then ends the sending side; returns
/// what it read.
fn echo_until_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                if s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = s.shutdown(Shutdown::Write);
    seen
}

/// The service's report of the peer's connection: the first that carried a payload (the
/// forwarder's readiness probes carry none) or a header it could not read.
fn peer_report(rx: &Receiver<(io::Result<ProxyHeader>, Vec<u8>)>) -> (ProxyHeader, Vec<u8>) {
    let deadline = Instant::now() + IO_LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (header, seen) = rx
            .recv_timeout(left)
            .expect("the service never got the peer's connection");
        match header {
            Err(e) => panic!("bad PROXY header: {e}"),
            Ok(h) if !seen.is_empty() => return (h, seen),
            Ok(_) => {}
        }
    }
}

/// Bytes `0..len` of a xorshift stream: a shifted or repeated block cannot match.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn count_dir(pid: u32, what: &str) -> usize {
    fs::read_dir(format!("/proc/{pid}/{what}"))
        .map(|d| d.count())
        .unwrap_or(usize::MAX)
}

fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
    true
}

fn assert_running(server: &mut Server) {
    if let Some(status) = server.child.try_wait().unwrap() {
        let output = server.output();
        panic!("{} exited during the test: {status}\n{output}", server.name);
    }
}

/// A decoded PROXY protocol header (HAProxy's proxy-protocol.txt).
#[derive(Debug, PartialEq, Eq)]
struct ProxyHeader {
    version: u8,
    src: SocketAddr,
    dst: SocketAddr,
}

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Reads a PROXY header of either version from `s`, consuming nothing after it. Only what the
/// forwarder must send is accepted: TCP over IPv4 or IPv6, command PROXY.
fn read_proxy_header(s: &mut impl Read) -> io::Result<ProxyHeader> {
    let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let mut start = [0u8; 12];
    s.read_exact(&mut start)?;
    if &start == V2_SIGNATURE {
        let mut fixed = [0u8; 4];
        s.read_exact(&mut fixed)?;
        if fixed[0] != 0x21 {
            return Err(bad(format!(
                "v2 version/command {:#04x}, not 0x21",
                fixed[0]
            )));
        }
        let len = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
        let mut body = vec![0u8; len];
        s.read_exact(&mut body)?;
        let (ip_len, want) = match fixed[1] {
            0x11 => (4, 12),
            0x21 => (16, 36),
            f => return Err(bad(format!("v2 family/transport {f:#04x}"))),
        };
        if len != want {
            return Err(bad(format!("v2 address length {len}, not {want}")));
        }
        let ip = |b: &[u8]| -> IpAddr {
            if ip_len == 4 {
                IpAddr::from(<[u8; 4]>::try_from(b).unwrap())
            } else {
                IpAddr::from(<[u8; 16]>::try_from(b).unwrap())
            }
        };
        let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
        let p = 2 * ip_len;
        return Ok(ProxyHeader {
            version: 2,
            src: SocketAddr::new(ip(&body[..ip_len]), port(&body[p..])),
            dst: SocketAddr::new(ip(&body[ip_len..p]), port(&body[p + 2..])),
        });
    }
    // Version 1: a text line of at most 107 bytes, read a byte at a time so that nothing
    // after it is consumed.
    let mut line = start.to_vec();
    while !line.ends_with(b"\r\n") {
        if line.len() >= 107 {
            return Err(bad(format!(
                "no CRLF in {:?}",
                String::from_utf8_lossy(&line)
            )));
        }
        let mut b = [0u8; 1];
        s.read_exact(&mut b)?;
        line.push(b[0]);
    }
    let text = std::str::from_utf8(&line[..line.len() - 2])
        .map_err(|_| bad("v1 header is not text".into()))?;
    let fields: Vec<&str> = text.split(' ').collect();
    let [proxy, proto, src, dst, sport, dport] = fields[..] else {
        return Err(bad(format!("v1 header {text:?}")));
    };
    let ip =
        |s: &str| -> io::Result<IpAddr> { s.parse().map_err(|_| bad(format!("address {s:?}"))) };
    let port = |s: &str| -> io::Result<u16> { s.parse().map_err(|_| bad(format!("port {s:?}"))) };
    let (src, dst) = (
        SocketAddr::new(ip(src)?, port(sport)?),
        SocketAddr::new(ip(dst)?, port(dport)?),
    );
    let v4 = match proto {
        "TCP4" => true,
        "TCP6" => false,
        _ => return Err(bad(format!("v1 protocol {proto:?}"))),
    };
    if proxy != "PROXY" || src.is_ipv4() != v4 || dst.is_ipv4() != v4 {
        return Err(bad(format!("v1 header {text:?}")));
    }
    Ok(ProxyHeader {
        version: 1,
        src,
        dst,
    })
}

#[test]
fn the_tests_proxy_header_reader_rejects_what_it_should() {
    let read = |b: &[u8]| read_proxy_header(&mut &b[..]);
    let h = read(b"PROXY TCP4 10.0.0.1 10.0.0.3 40000 443\r\nrest").unwrap();
    assert_eq!(h.src, "10.0.0.1:40000".parse().unwrap());
    for bad in [
        &b"PROXY TCP6 10.0.0.1 10.0.0.3 40000 443\r\n"[..],
        b"PROXY TCP4 10.0.0.1 10.0.0.3 40000\r\n",
        b"PROXY UNKNOWN\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x20\x11\x00\x00",
    ] {
        assert!(read(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
}
