//! LKL shares the container's IPv4 address with the host stack. A host-stack TCP
//! server and python's http.server on LKL run at once on that one address; the peer reaches
//! each 100 times with no failure and the container kernel sends no RST; the host's UDP echo
//! service and ping keep working; and while the server runs, its firewall table exists and
//! holds its listening port.

mod apps;
mod common;
mod host_firewall;
mod http_client;
mod logged_server;
mod shared_ip;
mod tcp_service;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apps::{write_random_file, Scratch};
use common::{host_listens_on, http_server_command, venet};
use host_firewall::{mentions_port, nft_table_listing};
use http_client::http_get_expect;
use lkl_ports::firewall::table_name;
use lkl_rig::Topology;
use logged_server::LoggedServer;
use shared_ip::{host_tcp_out_rsts, shared_ip_env};
use tcp_service::TcpService;

/// The host stack's TCP service.
const HOST_TCP_PORT: u16 = 7070;
/// The host stack's UDP echo service.
const HOST_UDP_PORT: u16 = 7071;
/// python's http.server on LKL.
const LKL_PORT: u16 = 8000;

#[test]
fn host_tcp_udp_icmp_and_an_lkl_http_server_share_the_container_address() {
    let topo = venet();
    let a = topo.addrs().clone();
    let host_tcp = SocketAddr::new(a.host_v4.into(), HOST_TCP_PORT);
    let host_udp = SocketAddr::new(a.host_v4.into(), HOST_UDP_PORT);
    let lkl = SocketAddr::new(a.host_v4.into(), LKL_PORT);

    let dir = Scratch::new("shared-ip");
    let www = dir.join("www");
    std::fs::create_dir(&www).unwrap();
    write_random_file(&www.join("blob.bin"), 64 << 10, 0x5ca1_ab1e);
    let blob = std::fs::read(www.join("blob.bin")).unwrap();

    // The host stack's own services on the container address.
    let host_body: Vec<u8> = (0..16 << 10).map(|i| (i * 7 % 251) as u8).collect();
    let served = host_body.clone();
    let _tcp_service = TcpService::start(topo.container_ns(), host_tcp, move |mut conn, _| {
        let _ = conn.write_all(&served);
    });
    let udp = topo
        .container_ns()
        .in_thread(|| UdpSocket::bind(host_udp))
        .unwrap()
        .expect("bind the UDP echo socket");
    udp.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let stop_udp = Arc::new(AtomicBool::new(false));
    let stopping = stop_udp.clone();
    let udp_echo = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stopping.load(Ordering::Relaxed) {
            if let Ok((n, from)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(&buf[..n], from);
            }
        }
    });

    // python's http.server on LKL, on the same address (every listener goes to LKL by default).
    let www_s = www.display().to_string();
    let bind = a.host_v4.to_string();
    let port = LKL_PORT.to_string();
    let mut server = LoggedServer::spawn(
        http_server_command(
            topo.container_ns(),
            &port,
            &bind,
            &www_s,
            &shared_ip_env(&topo),
        ),
        "python3 -m http.server (LKL, shared IP)",
    );
    server
        .server
        .wait_listening(topo.peer_ns(), lkl, Duration::from_secs(20));
    assert!(
        !host_listens_on(topo.container_ns(), LKL_PORT),
        "the container's host stack listens on {LKL_PORT}: the server is not on LKL"
    );
    assert!(host_listens_on(topo.container_ns(), HOST_TCP_PORT));

    // The instance's firewall table exists and drops TCP to the listening port.
    let table = table_name(topo.container_if(), server.pid());
    let listing = nft_table_listing(topo.container_ns(), &table).unwrap_or_else(|| {
        panic!(
            "no table inet {table} while the server runs; tables: {:?}",
            host_firewall::nft_tables(topo.container_ns())
        )
    });
    assert!(
        mentions_port(&listing, &table, LKL_PORT),
        "table {table} does not name port {LKL_PORT}:\n{listing}"
    );

    // 100 rounds, alternating host stack and LKL on one address. Counted from here: the
    // connection attempts of wait_listening may have met the host's RST before the rules were in.
    let rsts_before = host_tcp_out_rsts(topo.container_ns());
    let failures: Vec<String> =
        topo.peer_ns()
            .in_thread(|| {
                let mut failures = Vec::new();
                for i in 0..100 {
                    let host = TcpStream::connect_timeout(&host_tcp, Duration::from_secs(5))
                        .and_then(|mut c| {
                            c.set_read_timeout(Some(Duration::from_secs(5)))?;
                            let mut got = Vec::new();
                            c.read_to_end(&mut got).map(|_| got)
                        });
                    match host {
                        Ok(got) if got == host_body => {}
                        Ok(got) => failures.push(format!(
                            "#{i} host stack: {} bytes, wrong content",
                            got.len()
                        )),
                        Err(e) => failures.push(format!("#{i} host stack: {e}")),
                    }
                    if let Err(e) = http_get_expect(lkl, "/blob.bin", &blob) {
                        failures.push(format!("#{i} LKL: {e}"));
                    }
                }
                failures
            })
            .unwrap();
    let rsts = host_tcp_out_rsts(topo.container_ns()) - rsts_before;
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        rsts, 0,
        "the container's host stack sent {rsts} RST(s) during the 200 connections"
    );

    // The host's UDP service answers the peer (LKL does not take UDP it does not own).
    topo.peer_ns()
        .in_thread(|| {
            let s = UdpSocket::bind(SocketAddr::new(a.peer_v4.into(), 0)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            for i in 0..10 {
                let msg = format!("datagram {i}");
                s.send_to(msg.as_bytes(), host_udp).unwrap();
                let mut buf = [0u8; 64];
                let (n, from) = s
                    .recv_from(&mut buf)
                    .unwrap_or_else(|e| panic!("no UDP echo for datagram {i}: {e}"));
                assert_eq!(
                    (&buf[..n], from),
                    (msg.as_bytes(), host_udp),
                    "UDP echo {i}"
                );
            }
        })
        .unwrap();

    // ICMP stays the host's too.
    topo.peer_ns()
        .run(
            "ping",
            &["-c", "3", "-i", "0.2", "-W", "2", &a.host_v4.to_string()],
        )
        .unwrap_or_else(|e| panic!("ping {} from the peer: {e}", a.host_v4));

    assert!(server.is_running(), "the LKL server exited while serving");
    stop_udp.store(true, Ordering::Relaxed);
    udp_echo.join().unwrap();
}
