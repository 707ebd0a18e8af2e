//! The gccgo build of v2ray's own main, run as a user runs it (`lkl-run --ports ... --user
//! nobody -- v2ray -config FILE`, the file from tests/v2ray/configs/ unchanged), serves each
//! protocol and transport users configure from LKL: Debian's gc-built v2ray in the peer (or
//! curl, for the SOCKS5 and HTTP inbounds) fetches a file through it from a web server in the
//! peer, and the bytes are checked by sha256.

mod apps;
mod common;
mod v2ray;

use apps::MIB;
use lkl_rig::Topology;
use v2ray::{assert_running, curl_in, wait_udp_bound, Rig};

/// What each transfer carries.
const SIZE: u64 = 8 * MIB;

/// A server configuration and its matching client's, one SOCKS inbound on the peer's port
/// 1080: the file must come through intact.
fn serves_debians_client(tag: &str, server: &str, client: &str, ports: &[u16], tls: bool) {
    let rig = Rig::new(tag, SIZE);
    if tls {
        rig.make_certificate();
    }
    let mut server = rig.serve(server, ports);
    let mut client = rig.client(client, &[1080]);
    rig.fetch_through("socks5://127.0.0.1:1080", tag);
    assert_running(&mut server);
    assert_running(&mut client);
}

#[test]
fn vmess_over_tcp_with_aead_serves_debians_client() {
    serves_debians_client(
        "vmess-tcp",
        "vmess-tcp.server.json",
        "vmess-tcp.client.json",
        &[10086],
        false,
    );
}

#[test]
fn vmess_over_websocket_with_a_path_serves_debians_client() {
    serves_debians_client(
        "vmess-ws",
        "vmess-ws.server.json",
        "vmess-ws.client.json",
        &[10087],
        false,
    );
}

/// The "http" header obfuscation: the server parses the client's disguise request with the
/// overlay's readRequest (upstream's //go:linkname does not build with gccgo).
#[test]
fn vmess_dressed_as_http_serves_debians_client() {
    serves_debians_client(
        "vmess-http-header",
        "vmess-http-header.server.json",
        "vmess-http-header.client.json",
        &[10088],
        false,
    );
}

#[test]
fn vless_over_tls_serves_debians_client() {
    serves_debians_client(
        "vless-tls",
        "vless-tls.server.json",
        "vless-tls.client.json",
        &[10443],
        true,
    );
}

#[test]
fn trojan_over_tls_serves_debians_client() {
    serves_debians_client(
        "trojan-tls",
        "trojan-tls.server.json",
        "trojan-tls.client.json",
        &[11443],
        true,
    );
}

#[test]
fn shadowsocks_with_aes_128_gcm_and_chacha20_poly1305_serves_debians_client() {
    let rig = Rig::new("shadowsocks", SIZE);
    let mut server = rig.serve("shadowsocks.server.json", &[8388, 8389]);
    let mut client = rig.client("shadowsocks.client.json", &[1080, 1081]);
    rig.fetch_through("socks5://127.0.0.1:1080", "shadowsocks aes-128-gcm");
    rig.fetch_through(
        "socks5://127.0.0.1:1081",
        "shadowsocks chacha20-ietf-poly1305",
    );
    assert_running(&mut server);
    assert_running(&mut client);
}

#[test]
fn socks5_and_http_inbounds_serve_curl() {
    let rig = Rig::new("socks-http", SIZE);
    let mut server = rig.serve("socks-http.server.json", &[1080, 8080]);
    let socks = format!("socks5://{}", rig.server_addr(1080));
    let http = format!("http://{}", rig.server_addr(8080));
    rig.fetch_through(&socks, "SOCKS5 inbound");
    rig.fetch_through(&http, "HTTP inbound");
    assert_running(&mut server);
}

/// mKCP runs over UDP, which the port policy leaves on the host stack: v2ray's UDP socket is
/// the container's own, while the process runs under lkl-run as for any other config. The
/// legacy mKCP packet authentication runs the overlay's XOR routine against the client's
/// assembly one.
#[test]
fn mkcp_over_the_host_stacks_udp_serves_debians_client() {
    let rig = Rig::new("mkcp", SIZE);
    let mut server = common::Server::spawn(
        rig.lkl_run_v2ray("10090", &v2ray::config("mkcp.server.json"), &[]),
        "gccgo v2ray mKCP server (lkl-run)",
    );
    wait_udp_bound(&mut server, rig.topo.container_ns(), 10090);
    let mut client = rig.client("mkcp.client.json", &[1080]);
    rig.fetch_through("socks5://127.0.0.1:1080", "mKCP");
    assert_running(&mut server);
    assert_running(&mut client);
}

/// routing.server.json: blocked.example goes to the blackhole, which answers 403; the LAN
/// (10.213.0.0/16, the rig's addresses) is reached directly through either inbound; any other
/// address is refused (blackhole) although the container could reach it.
#[test]
fn two_inbounds_route_by_domain_and_cidr_as_configured() {
    let rig = Rig::new("routing", SIZE);
    let mut server = rig.serve("routing.server.json", &[1080, 8080]);
    let socks = format!("socks5h://{}", rig.server_addr(1080));
    let http = format!("http://{}", rig.server_addr(8080));
    // The CIDR rule: the web server in the peer, through both inbounds.
    rig.fetch_through(&socks, "routing, LAN through SOCKS5");
    rig.fetch_through(&http, "routing, LAN through HTTP");

    // The domain rule, through both inbounds: the blackhole's HTTP answer. (socks5h: the
    // proxy gets the name, as a browser configured for it sends it.)
    for proxy in [&socks, &http] {
        let out = common::check_output(&mut curl_in(
            rig.topo.peer_ns(),
            proxy,
            "http://blocked.example/",
            &["--output", "/dev/null", "--write-out", "%{http_code}"],
        ));
        assert_eq!(out, "403", "blocked.example through {proxy}: HTTP status");
    }

    // Outside the CIDR: the container's loopback has a web server the freedom outbound could
    // reach; the last rule sends it to the blackhole instead.
    let mut local = common::Server::spawn(
        common::http_server_command(
            rig.topo.container_ns(),
            "8001",
            "127.0.0.1",
            &rig.dir.str("www"),
            &[],
        ),
        "python3 -m http.server (container loopback)",
    );
    local.wait_listening(
        rig.topo.container_ns(),
        std::net::SocketAddr::from(([127, 0, 0, 1], 8001)),
        std::time::Duration::from_secs(20),
    );
    let out = common::check_output(&mut curl_in(
        rig.topo.peer_ns(),
        &http,
        "http://127.0.0.1:8001/blob.bin",
        &["--output", "/dev/null", "--write-out", "%{http_code}"],
    ));
    assert_eq!(
        out, "403",
        "127.0.0.1:8001 through the HTTP inbound: HTTP status"
    );
    assert_running(&mut server);
}
