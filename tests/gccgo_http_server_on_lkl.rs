//! A Go net/http server built with gccgo (whose runtime calls glibc, so the preload sees its
//! sockets) serves from LKL: the peer gets the fixed body and a 16 MiB generated one intact.

mod apps;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use apps::{curl_get, http_url, lkl_v6};
use common::{check_output, command_in, host_listens_on, lkl_env, lkl_v4, venet, Server};
use lkl_rig::Topology;

const PORT: u16 = 8081;

/// tests/programs/go-http built once per test binary, into cargo's scratch directory.
fn go_http() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/go-http/main.go");
        let bin = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-http");
        check_output(
            Command::new("gccgo-12")
                .arg("-O2")
                .arg("-o")
                .arg(&bin)
                .arg(&src),
        );
        bin
    })
}

/// Starts the server under the preload on `addr` and fetches `/` and `/bytes?n=` from the peer.
fn serve_and_fetch(topo: &dyn Topology, addr: std::net::SocketAddr, n: usize) {
    let listen = addr.to_string();
    let mut server = Server::spawn(
        command_in(
            topo.container_ns(),
            go_http().to_str().unwrap(),
            &[&listen],
            &lkl_env(topo),
        ),
        "go-http (gccgo)",
    );
    server.wait_listening(topo.peer_ns(), addr, Duration::from_secs(20));
    assert!(
        !host_listens_on(topo.container_ns(), PORT),
        "the container's host stack listens on {PORT}: the Go server is not on LKL"
    );

    let hello = curl_get(topo.peer_ns(), &http_url(addr, "/"), 20);
    assert_eq!(String::from_utf8_lossy(&hello), "hello from gccgo\n");

    let body = curl_get(
        topo.peer_ns(),
        &http_url(addr, &format!("/bytes?n={n}")),
        30,
    );
    assert_eq!(body.len(), n, "length of /bytes?n={n}");
    if let Some(i) = (0..n).find(|&i| body[i] != (i % 251) as u8) {
        panic!(
            "/bytes?n={n}: byte {i} is {}, expected {}",
            body[i],
            i % 251
        );
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the Go server exited\n{}",
        server.output()
    );
}

#[test]
fn gccgo_http_server_on_lkl_serves_the_peer_over_ipv4() {
    let topo = venet();
    serve_and_fetch(&topo, lkl_v4(&topo, PORT), 16 << 20);
}

#[test]
fn gccgo_http_server_on_lkl_serves_the_peer_over_ipv6() {
    let topo = venet();
    serve_and_fetch(&topo, lkl_v6(&topo, PORT), 1 << 20);
}
