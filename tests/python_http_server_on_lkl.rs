//! Python's `http.server`, unmodified, serves a large file from LKL: the bytes a client on the
//! peer receives are the file's, and the container's host stack has no listener.

mod apps;
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use apps::{assert_downloads_intact, http_url, lkl_v6, write_random_file, Scratch, MIB};
use common::{host_listens_on, http_server_command, lkl_env, lkl_v4, venet, Server};
use lkl_rig::Topology;

const PORT: u16 = 8000;

#[test]
fn python_http_server_on_lkl_serves_a_50_mib_file_intact_to_the_peer() {
    let topo = venet();
    serve_and_download(&topo, lkl_v4(&topo, PORT), 50 * MIB);
}

#[test]
fn python_http_server_on_lkl_ipv6_address_serves_a_file_intact_to_the_peer() {
    let topo = venet();
    serve_and_download(&topo, lkl_v6(&topo, PORT), 8 * MIB);
}

/// Runs `http.server` bound to `addr` (one of LKL's addresses) over a directory holding one
/// file of `size` random bytes; the peer downloads it with curl and the checksums must match.
fn serve_and_download(topo: &dyn Topology, addr: SocketAddr, size: u64) {
    let dir = Scratch::new("python-http");
    let www = dir.join("www");
    std::fs::create_dir(&www).unwrap();
    let file = www.join("blob.bin");
    write_random_file(&file, size, 0x5eed_0001 ^ size);

    let port = PORT.to_string();
    let bind = addr.ip().to_string();
    let www_s = www.display().to_string();
    let mut server = Server::spawn(
        http_server_command(topo.container_ns(), &port, &bind, &www_s, &lkl_env(topo)),
        "python3 -m http.server",
    );
    server.wait_listening(topo.peer_ns(), addr, Duration::from_secs(20));
    // The listener is LKL's, not the container kernel's.
    assert!(
        !host_listens_on(topo.container_ns(), PORT),
        "the container's host stack listens on {PORT}: the server is not on LKL"
    );

    assert_downloads_intact(
        topo.peer_ns(),
        &http_url(addr, "/blob.bin"),
        &dir.join("download.bin"),
        40,
        &file,
        size,
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server exited while serving\n{}",
        server.output()
    );
}
