//! `examples/echo_server` under the preload, listening on LKL's address in the container:
//! 1 000 TCP connections from the peer, all open at once, each echo distinct data byte for
//! byte; UDP datagrams come back too.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::*;
use lkl_rig::Topology;

const PORT: u16 = 7;
const CONNECTIONS: usize = 1000;
/// Client threads; each holds CONNECTIONS / THREADS connections.
const THREADS: usize = 10;
const BYTES: usize = 4096;
const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// What connection `i` sends: its index, then bytes derived from it.
fn payload(i: usize) -> Vec<u8> {
    let mut data = (i as u32).to_le_bytes().to_vec();
    data.extend((4..BYTES).map(|j| (i * 131 + j * 7 + j / 253) as u8));
    data
}

/// One client thread's connections `first..first + count`: all connected, then (once every
/// thread has connected: `barrier`) each sends its payload, then each reads its echo back.
/// The connections stay open until every thread is done, so all of them are open at once.
fn clients(addr: SocketAddr, first: usize, count: usize, barrier: &Barrier) -> Result<(), String> {
    let mut streams = Vec::with_capacity(count);
    let mut result = Ok(());
    for i in first..first + count {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
            Ok(s) => streams.push(s),
            Err(e) => {
                result = Err(format!("connection {i}: connect: {e}"));
                break;
            }
        }
    }
    // Every thread reaches both barriers, failed or not, so that none waits forever.
    barrier.wait();
    if result.is_ok() {
        result = exchange(&mut streams, first);
    }
    barrier.wait();
    result
}

fn exchange(streams: &mut [TcpStream], first: usize) -> Result<(), String> {
    for (k, s) in streams.iter_mut().enumerate() {
        let i = first + k;
        s.set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        s.write_all(&payload(i))
            .map_err(|e| format!("connection {i}: write: {e}"))?;
    }
    let mut back = vec![0u8; BYTES];
    for (k, s) in streams.iter_mut().enumerate() {
        let i = first + k;
        s.read_exact(&mut back)
            .map_err(|e| format!("connection {i}: reading the echo: {e}"))?;
        if back != payload(i) {
            let at = back.iter().zip(payload(i)).position(|(a, b)| *a != b);
            return Err(format!("connection {i}: echo differs at byte {at:?}"));
        }
    }
    Ok(())
}

#[test]
fn echo_server_under_lkl_echoes_1000_concurrent_connections_and_udp() {
    let bin = echo_server_bin();
    let topo = venet();
    // Bound to LKL's own address, TCP and UDP alike belong to LKL.
    let addr = lkl_v4(&topo, PORT);
    let listen = addr.to_string();
    let mut server = Server::spawn(
        command_in(
            topo.container_ns(),
            bin.to_str().expect("utf-8 path"),
            &[&listen],
            &lkl_env(&topo),
        ),
        "echo_server",
    );
    server.wait_listening(topo.peer_ns(), addr, Duration::from_secs(20));
    assert!(
        !host_listens_on(topo.container_ns(), PORT),
        "echo_server listens on the container's host stack, not in LKL"
    );

    raise_fd_limit(CONNECTIONS as u64 + 256);
    let barrier = Arc::new(Barrier::new(THREADS));
    let per_thread = CONNECTIONS / THREADS;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let barrier = Arc::clone(&barrier);
            topo.peer_ns()
                .spawn_thread(move || clients(addr, t * per_thread, per_thread, &barrier))
                .expect("client thread")
        })
        .collect();
    let errors: Vec<String> = handles
        .into_iter()
        .filter_map(|h| h.join().expect("client thread panicked").err())
        .collect();
    assert!(
        errors.is_empty(),
        "{} of {THREADS} client threads failed: {errors:#?}",
        errors.len()
    );

    // UDP on the same port; 4000 bytes arrive in IP fragments (MTU 1500).
    topo.peer_ns()
        .in_thread(|| {
            let udp = UdpSocket::bind("0.0.0.0:0").expect("udp bind");
            udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = vec![0u8; 65536];
            for (k, size) in [1usize, 100, 1472, 4000].into_iter().enumerate() {
                let data: Vec<u8> = (0..size).map(|j| (j * 13 + k) as u8).collect();
                udp.send_to(&data, addr).expect("udp send");
                let (n, from) = udp
                    .recv_from(&mut buf)
                    .unwrap_or_else(|e| panic!("no UDP echo of {size} bytes: {e}"));
                assert_eq!(from, addr, "UDP echo of {size} bytes from elsewhere");
                assert!(
                    buf[..n] == data[..],
                    "UDP echo of {size} bytes differs ({n} bytes back)"
                );
            }
        })
        .expect("enter the peer namespace");

    server.terminate(Duration::from_secs(10));
}
