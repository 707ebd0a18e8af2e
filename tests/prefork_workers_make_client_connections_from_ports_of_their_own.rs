//! A pre-fork server whose workers are clients too, through LKL (`LKL_HIJACK_CLIENTS=lkl`):
//! each worker's kernel picks local ports from the same address, so two workers could pick
//! the same port to the same upstream, which the upstream would take for one connection.
//! Each forked process gets a slice of the client port range of its own: two workers each
//! hold 300 connections to one upstream in the peer at once, every one echoes intact, and no
//! local port is used by both (`tests/programs/prefork_clients.py`).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::thread;

use common::{command_in, lkl_env, lkl_v4, venet};
use lkl_rig::Topology;

const WORKERS: usize = 2;
const CONNECTIONS: usize = 300;

/// An echo of one line per connection, in the peer, for as long as the test runs.
fn start_upstream(topo: &dyn Topology) -> SocketAddr {
    let addr = SocketAddr::new(topo.addrs().peer_v4.into(), 9100);
    let listener = topo
        .peer_ns()
        .in_thread(|| TcpListener::bind(addr))
        .expect("enter the peer namespace")
        .expect("bind the upstream");
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut line = String::new();
                let mut reader = BufReader::new(&conn);
                if reader.read_line(&mut line).is_ok() {
                    let _ = (&conn).write_all(line.as_bytes());
                }
                // Held until the worker closes (it exits).
                let _ = reader.read_line(&mut line);
            });
        }
    });
    addr
}

#[test]
fn two_workers_hold_300_client_connections_each_from_ports_no_other_uses() {
    let topo = venet();
    let upstream = start_upstream(&topo);
    let listen = lkl_v4(&topo, 8082);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/prefork_clients.py");
    let mut env = lkl_env(&topo);
    env.push(("LKL_HIJACK_CLIENTS".into(), "lkl".into()));
    let out = command_in(
        topo.container_ns(),
        "python3",
        &[
            script.to_str().unwrap(),
            &listen.ip().to_string(),
            &listen.port().to_string(),
            &upstream.ip().to_string(),
            &upstream.port().to_string(),
            &WORKERS.to_string(),
            &CONNECTIONS.to_string(),
        ],
        &env,
    )
    .output()
    .expect("run the pre-fork client program");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut ports: Vec<BTreeSet<u16>> = Vec::new();
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["worker", _, "ok", n, list] => {
                assert_eq!(n.parse::<usize>().unwrap(), CONNECTIONS, "{line}");
                ports.push(list.split(',').map(|p| p.parse().unwrap()).collect());
            }
            _ => panic!("a worker failed: {line}\n{stdout}{stderr}"),
        }
    }
    assert!(out.status.success(), "{}\n{stdout}{stderr}", out.status);
    assert_eq!(ports.len(), WORKERS, "{stdout}{stderr}");
    let both: Vec<&u16> = ports[0].intersection(&ports[1]).collect();
    assert!(
        both.is_empty(),
        "local ports used by both workers: {both:?}"
    );
}
