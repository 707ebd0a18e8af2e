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
use v2ray::{assert_running, status_through, wait_udp_bound, Rig};

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
        let status = status_through(rig.topo.peer_ns(), proxy, "http://blocked.example/");
        assert_eq!(
            status, "403",
            "blocked.example through {proxy}: HTTP status"
        );
    }

    // Outside the CIDR: the container's loopback has a web server the freedom outbound could
    // reach; the last rule sends it to the blackhole instead.
    let _local = rig.serve_on_container_loopback(8001);
    let status = status_through(rig.topo.peer_ns(), &http, "http://127.0.0.1:8001/blob.bin");
    assert_eq!(
        status, "403",
        "127.0.0.1:8001 through the HTTP inbound: HTTP status"
    );
    assert_running(&mut server);
}

/// A protobuf field: `number` with a varint or length-delimited value (what geoip.dat and
/// geosite.dat, v2ray's GeoIPList and GeoSiteList messages, are made of).
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_varint(number: u64, v: u64, out: &mut Vec<u8>) {
    varint(number << 3, out);
    varint(v, out);
}

fn field_bytes(number: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint((number << 3) | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// geoip.dat with one entry, `code`: `ip`/32. (GeoIPList.entry = 1; GeoIP.country_code = 1,
/// .cidr = 2; CIDR.ip = 1, .prefix = 2.)
fn geoip_dat(code: &str, ip: std::net::Ipv4Addr) -> Vec<u8> {
    let mut cidr = Vec::new();
    field_bytes(1, &ip.octets(), &mut cidr);
    field_varint(2, 32, &mut cidr);
    let mut geoip = Vec::new();
    field_bytes(1, code.as_bytes(), &mut geoip);
    field_bytes(2, &cidr, &mut geoip);
    let mut list = Vec::new();
    field_bytes(1, &geoip, &mut list);
    list
}

/// geosite.dat with one list, `code`: the full name `name`. (GeoSiteList.entry = 1;
/// GeoSite.country_code = 1, .domain = 2; Domain.type = 1 (Full = 3), .value = 2.)
fn geosite_dat(code: &str, name: &str) -> Vec<u8> {
    let mut domain = Vec::new();
    field_varint(1, 3, &mut domain);
    field_bytes(2, name.as_bytes(), &mut domain);
    let mut site = Vec::new();
    field_bytes(1, code.as_bytes(), &mut site);
    field_bytes(2, &domain, &mut site);
    let mut list = Vec::new();
    field_bytes(1, &site, &mut list);
    list
}

/// geo-routing.server.json, with geoip.dat and geosite.dat (made here: Debian packages
/// neither) in the directory V2RAY_LOCATION_ASSET names: geoip:lab holds the web server's
/// address in the peer, geosite:lab the name blocked.example.
#[test]
fn geoip_and_geosite_rules_read_the_asset_directory_the_environment_names() {
    let rig = Rig::new("geo-routing", SIZE);
    let assets = rig.dir.join("assets");
    std::fs::create_dir(&assets).unwrap();
    let peer = rig.topo.addrs().peer_v4;
    std::fs::write(assets.join("geoip.dat"), geoip_dat("LAB", peer)).unwrap();
    std::fs::write(
        assets.join("geosite.dat"),
        geosite_dat("LAB", "blocked.example"),
    )
    .unwrap();
    let env = [(
        "V2RAY_LOCATION_ASSET".to_string(),
        assets.display().to_string(),
    )];
    let mut server = common::Server::spawn(
        rig.lkl_run_v2ray("1080", &v2ray::config("geo-routing.server.json"), &env),
        "gccgo v2ray with geo rules (lkl-run)",
    );
    let socks_at = rig.server_addr(1080);
    server.wait_listening(
        rig.topo.peer_ns(),
        socks_at,
        std::time::Duration::from_secs(30),
    );
    let socks = format!("socks5h://{socks_at}");

    let status = status_through(rig.topo.peer_ns(), &socks, "http://blocked.example/");
    assert_eq!(status, "403", "blocked.example (geosite:lab): HTTP status");
    let status = status_through(rig.topo.peer_ns(), &socks, &rig.blob_url());
    assert_eq!(status, "403", "{} (geoip:lab): HTTP status", rig.web);
    // Not in geoip:lab: out through freedom, the file intact.
    let _local = rig.serve_on_container_loopback(8001);
    let got = rig.dir.join("local.bin");
    common::check_output(&mut v2ray::curl_in(
        rig.topo.peer_ns(),
        &socks,
        "http://127.0.0.1:8001/blob.bin",
        &["--fail", "--output", got.to_str().unwrap()],
    ));
    assert_eq!(
        apps::sha256_of(&got),
        rig.sha256,
        "the file through the direct outbound differs"
    );
    assert_running(&mut server);
}
