//! With `LKL_HIJACK_CLIENTS=lkl` and one IP shared with the host stack, a program
//! under the preload (curl) downloads 10 MiB from a server in the peer namespace through LKL:
//! the server sees the connection come from LKL's client port range 61000-65535, which the
//! container's host stack does not use. In the middle of that transfer a host-stack curl
//! downloads the same file from the same server, from the host's own port range. A UDP
//! client under the preload likewise sends from LKL's range and gets the peer's replies.

mod apps;
mod common;
mod host_firewall;
mod logged_server;
mod shared_ip;
mod tcp_service;

use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use apps::{curl_download, sha256_of, write_random_file, Scratch, MIB};
use common::{command_in, set_env, venet, wait_until};
use host_firewall::nft_table_listing;
use lkl_ports::firewall::table_name;
use lkl_rig::Topology;
use logged_server::LoggedServer;
use shared_ip::{shared_ip_env, snmp_counter};
use tcp_service::{read_request_path, TcpService};

const PEER_PORT: u16 = 8080;
const LKL_CLIENT_PORTS: std::ops::RangeInclusive<u16> = 61000..=65535;

/// One flag and its condition variable.
type Flag = Arc<(Mutex<bool>, Condvar)>;

/// Raises a flag when dropped.
struct Release(Flag);

impl Drop for Release {
    fn drop(&mut self) {
        let (done, cv) = &*self.0;
        *done.lock().unwrap() = true;
        cv.notify_all();
    }
}

#[test]
fn an_lkl_client_downloads_from_lkl_ports_while_a_host_client_downloads_from_the_hosts() {
    let topo = venet();
    let a = topo.addrs().clone();

    // Precondition: the container's host stack takes its ephemeral ports outside LKL's range,
    // so a source port in that range can only be LKL's.
    let range = topo
        .container_ns()
        .run("cat", &["/proc/sys/net/ipv4/ip_local_port_range"])
        .unwrap();
    let host_range: Vec<u16> = range
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        host_range[1] < *LKL_CLIENT_PORTS.start(),
        "the container's ip_local_port_range {range:?} overlaps LKL's client range"
    );

    let dir = Scratch::new("lkl-clients");
    let file = dir.join("blob.bin");
    write_random_file(&file, 10 * MIB, 0xc11e47);
    let payload = Arc::new(std::fs::read(&file).unwrap());

    // The peer's server records who asked for what. It sends the first MiB of /lkl, waits until
    // the host client is done, then sends the rest: the two transfers overlap for certain.
    let seen: Arc<Mutex<Vec<(String, SocketAddr)>>> = Arc::default();
    let host_done: Flag = Arc::default();
    let peer_addr = SocketAddr::new(a.peer_v4.into(), PEER_PORT);
    let _peer_server = {
        let (seen, host_done, payload) = (seen.clone(), host_done.clone(), payload.clone());
        TcpService::start(topo.peer_ns(), peer_addr, move |mut conn, from| {
            let Ok(path) = read_request_path(&mut conn) else {
                return;
            };
            seen.lock().unwrap().push((path.clone(), from));
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                payload.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let mut body: &[u8] = &payload;
            if path == "/lkl" {
                let _ = conn.write_all(&body[..MIB as usize]);
                body = &body[MIB as usize..];
                let (done, cv) = &*host_done;
                let guard = done.lock().unwrap();
                let _ = cv.wait_timeout_while(guard, Duration::from_secs(30), |d| !*d);
            }
            let _ = conn.write_all(body);
            let _ = conn.shutdown(Shutdown::Write);
        })
    };

    // curl under the preload, its connect sent through LKL.
    let mut env = shared_ip_env(&topo);
    set_env(&mut env, "LKL_HIJACK_CLIENTS", "lkl");
    let lkl_got = dir.join("via-lkl.bin");
    let lkl_got_s = lkl_got.display().to_string();
    let url = |path: &str| format!("http://{peer_addr}{path}");
    let mut lkl_curl = LoggedServer::spawn(
        command_in(
            topo.container_ns(),
            "curl",
            &[
                "--silent",
                "--show-error",
                "--fail",
                "--max-time",
                "40",
                "--output",
                &lkl_got_s,
                &url("/lkl"),
            ],
            &env,
        ),
        "curl under the preload",
    );
    let asked = wait_until(Duration::from_secs(20), || {
        seen.lock().unwrap().iter().any(|(p, _)| p == "/lkl") || !lkl_curl.is_running()
    });
    assert!(
        asked.is_some() && lkl_curl.is_running(),
        "curl under the preload did not get its request to the peer (running: {})\n{}",
        lkl_curl.is_running(),
        lkl_curl.stderr()
    );

    // Mid-transfer: the instance's table also claims the client range.
    let table = table_name(topo.container_if(), lkl_curl.pid());
    let listing = nft_table_listing(topo.container_ns(), &table)
        .unwrap_or_else(|| panic!("no table inet {table} while curl runs"));
    assert!(
        listing.contains("61000-65535"),
        "table {table} does not name the client port range 61000-65535:\n{listing}"
    );

    // A host-stack client downloads from the same server meanwhile.
    let host_got = dir.join("via-host.bin");
    {
        let _release = Release(host_done.clone()); // even if the host download fails
        curl_download(topo.container_ns(), &url("/host"), &host_got, 20);
    }

    let status = lkl_curl.server.wait_for_exit(Duration::from_secs(40));
    assert!(
        status.success(),
        "curl under the preload: {status}\n{}",
        lkl_curl.stderr()
    );
    let want = sha256_of(&file);
    assert_eq!(
        sha256_of(&lkl_got),
        want,
        "the download through LKL differs from the file"
    );
    assert_eq!(
        sha256_of(&host_got),
        want,
        "the host-stack download differs from the file"
    );

    let seen = seen.lock().unwrap().clone();
    let from = |path: &str| -> SocketAddr {
        let hits: Vec<SocketAddr> = seen
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, a)| *a)
            .collect();
        assert_eq!(hits.len(), 1, "requests for {path}: {seen:?}");
        hits[0]
    };
    let (via_lkl, via_host) = (from("/lkl"), from("/host"));
    assert_eq!(
        via_lkl.ip(),
        std::net::IpAddr::from(a.host_v4),
        "LKL's client address"
    );
    assert!(
        LKL_CLIENT_PORTS.contains(&via_lkl.port()),
        "the preloaded curl connected from port {}, outside LKL's client range: not through LKL",
        via_lkl.port()
    );
    assert_eq!(via_host.ip(), std::net::IpAddr::from(a.host_v4));
    assert!(
        (host_range[0]..=host_range[1]).contains(&via_host.port()),
        "the host-stack curl connected from port {}, outside the host's range {range:?}",
        via_host.port()
    );
}

/// Sends 5 datagrams to the peer's echo service and prints each reply and its own port.
const UDP_CLIENT: &str = "import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
for i in range(5):
    s.sendto(b'datagram %d' % i, (sys.argv[1], int(sys.argv[2])))
    data, _ = s.recvfrom(100)
    print(data.decode(), s.getsockname()[1], flush=True)
";

#[test]
fn an_lkl_udp_client_sends_from_lkl_ports_and_gets_the_replies() {
    let topo = venet();
    let a = topo.addrs().clone();
    let echo_addr = SocketAddr::new(a.peer_v4.into(), PEER_PORT);
    let echo = topo
        .peer_ns()
        .in_thread(|| std::net::UdpSocket::bind(echo_addr))
        .unwrap()
        .expect("bind the peer's UDP echo");
    echo.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let echoer = std::thread::spawn(move || {
        let mut sources = Vec::new();
        let mut buf = [0u8; 100];
        for _ in 0..5 {
            let Ok((n, from)) = echo.recv_from(&mut buf) else {
                break;
            };
            sources.push(from);
            let _ = echo.send_to(&buf[..n], from);
        }
        sources
    });

    let mut env = shared_ip_env(&topo);
    set_env(&mut env, "LKL_HIJACK_CLIENTS", "lkl");
    let (ip, port) = (a.peer_v4.to_string(), PEER_PORT.to_string());
    let unreachs_before = snmp_counter(topo.container_ns(), "Icmp", "OutDestUnreachs");
    let out = command_in(
        topo.container_ns(),
        "/usr/bin/python3",
        &["-c", UDP_CLIENT, &ip, &port],
        &env,
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "UDP client: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let sources = echoer.join().unwrap();
    assert_eq!(sources.len(), 5, "the peer got {sources:?}");
    for from in &sources {
        assert_eq!(from.ip(), std::net::IpAddr::from(a.host_v4));
        assert!(
            LKL_CLIENT_PORTS.contains(&from.port()),
            "a datagram came from port {}, outside LKL's client range: not through LKL",
            from.port()
        );
    }
    // The host stack never saw the replies (dropped before it): it sent no port unreachable.
    let unreachs = snmp_counter(topo.container_ns(), "Icmp", "OutDestUnreachs") - unreachs_before;
    assert_eq!(
        unreachs, 0,
        "the container's host stack answered {unreachs} reply(ies) with ICMP unreachable"
    );
    // The program got every reply, on the port the peer saw.
    for (i, from) in sources.iter().enumerate() {
        let line = format!("datagram {i} {}", from.port());
        assert!(
            stdout.lines().any(|l| l == line),
            "no {line:?} in {stdout:?}"
        );
    }
}
