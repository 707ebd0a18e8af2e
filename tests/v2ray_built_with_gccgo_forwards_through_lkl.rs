//! v2ray built with gccgo-12 (scripts/build-v2ray.sh), run by the launcher (`lkl-run --iface
//! IF --ip V4 --ip6 V6 -- v2ray-lkl ARGS`), serves from LKL: its dokodemo-door listener on
//! LKL's address forwards a 20 MiB download from a web server in the peer intact, and its
//! VMess inbound on LKL serves Debian's gc-built v2ray (scripts/fetch-gc-v2ray.sh) as a client.
//! The memory of the forwarding job is printed beside that of the same gccgo binary on the host
//! stack and of Debian's v2ray.

mod apps;
mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use apps::{curl_download, http_url, sha256_of, write_random_file, Scratch, MIB};
use common::{command_in, host_listens_on, http_server_command, lkl_run_bin, venet, Server};
use lkl_rig::{Netns, Topology, VenetTopology};

/// The web server in the peer, on the host kernel.
const WEB_PORT: u16 = 8000;
/// v2ray's inbounds: dokodemo-door under lkl-run, the same binary on the host stack,
/// Debian's v2ray on the host stack, VMess under lkl-run, the VMess client in the peer.
const LKL_PORT: u16 = 1080;
const GCCGO_HOST_PORT: u16 = 1081;
const GC_HOST_PORT: u16 = 1082;
const VMESS_PORT: u16 = 10086;
const VMESS_CLIENT_PORT: u16 = 1083;

/// v2ray-lkl, the gccgo build (built once into the user's cache, then only looked up).
fn v2ray_lkl() -> &'static str {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| common::script_program("build-v2ray.sh"))
        .to_str()
        .unwrap()
}

/// Debian's gc-built v2ray, taken from its package into the user's cache.
fn gc_v2ray() -> &'static str {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| common::script_program("fetch-gc-v2ray.sh"))
        .to_str()
        .unwrap()
}

/// `lkl-run --iface IF --ip V4 --ip6 V6 -- program args...` in the container namespace, with
/// no environment of our own: the launcher preloads the library and sets LKL_HIJACK_*, then
/// execs the program, which keeps lkl-run's pid.
fn under_lkl_run(topo: &VenetTopology, program: &str, args: &[&str], name: &str) -> Server {
    let a = topo.addrs();
    let (v4, v6) = (a.lkl_v4.to_string(), a.lkl_v6.to_string());
    let mut argv = vec!["--iface", topo.container_if(), "--ip", &v4, "--ip6", &v6];
    argv.extend(["--", program]);
    argv.extend_from_slice(args);
    let launcher = lkl_run_bin();
    Server::spawn(
        command_in(topo.container_ns(), launcher.to_str().unwrap(), &argv, &[]),
        name,
    )
}

/// A directory with `www/blob.bin` (random bytes) and the checksum of that file.
struct Payload {
    dir: Scratch,
    sha256: String,
}

impl Payload {
    fn new(tag: &str, size: u64) -> Payload {
        let dir = Scratch::new(tag);
        std::fs::create_dir(dir.join("www")).unwrap();
        let file = dir.join("www").join("blob.bin");
        write_random_file(&file, size, 0x7672_6179 ^ size);
        let sha256 = sha256_of(&file);
        Payload { dir, sha256 }
    }

    /// `python3 -m http.server` serving www/ on the peer's address, in the peer (host kernel).
    fn serve_from_peer(&self, topo: &dyn Topology) -> (Server, SocketAddr) {
        let addr = SocketAddr::new(IpAddr::V4(topo.addrs().peer_v4), WEB_PORT);
        let mut server = Server::spawn(
            http_server_command(
                topo.peer_ns(),
                &WEB_PORT.to_string(),
                &addr.ip().to_string(),
                &self.dir.str("www"),
                &[],
            ),
            "python3 -m http.server (peer)",
        );
        server.wait_listening(topo.peer_ns(), addr, Duration::from_secs(20));
        (server, addr)
    }

    /// Downloads blob.bin from `via` with curl in the peer; the bytes must be the file's.
    /// Returns how long the download took.
    fn download_through(&self, peer: &Netns, via: SocketAddr, what: &str) -> Duration {
        let got = self.dir.join(&format!("download-{}.bin", via.port()));
        let started = Instant::now();
        curl_download(peer, &http_url(via, "/blob.bin"), &got, 60);
        let took = started.elapsed();
        assert_eq!(
            sha256_of(&got),
            self.sha256,
            "{what}: the bytes downloaded through {via} differ from the file"
        );
        std::fs::remove_file(&got).unwrap();
        took
    }
}

/// Fails the test, with the process's output, when it has exited.
fn assert_running(server: &mut Server) {
    if let Some(status) = server.child.try_wait().unwrap() {
        let output = server.output();
        panic!("{} exited: {status}\n{output}", server.name);
    }
}

/// VmRSS of a running process, in MiB.
fn rss_mib(server: &mut Server) -> f64 {
    assert_running(server);
    let pid = server.child.id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status:\n{status}"));
    kib / 1024.0
}

/// Downloads through a started v2ray, then reads its RSS and stops it (SIGTERM: it must exit).
fn measure(
    server: &mut Server,
    payload: &Payload,
    topo: &dyn Topology,
    via: SocketAddr,
) -> (Duration, f64) {
    server.wait_listening(topo.peer_ns(), via, Duration::from_secs(30));
    let took = payload.download_through(topo.peer_ns(), via, &server.name);
    let rss = rss_mib(server);
    eprintln!(
        "{}: 20 MiB in {:.2} s, VmRSS {rss:.1} MiB",
        server.name,
        took.as_secs_f64()
    );
    server.terminate(Duration::from_secs(10));
    (took, rss)
}

/// A v2ray JSON configuration for Debian's binary: dokodemo-door on `listen` forwarding TCP to
/// `to`, out through `outbound` (a complete outbound object).
fn gc_v2ray_config(listen: SocketAddr, to: SocketAddr, outbound: &str) -> String {
    format!(
        r#"{{
  "log": {{"loglevel": "warning"}},
  "inbounds": [{{
    "listen": "{}", "port": {}, "protocol": "dokodemo-door",
    "settings": {{"address": "{}", "port": {}, "network": "tcp"}}
  }}],
  "outbounds": [{outbound}]
}}
"#,
        listen.ip(),
        listen.port(),
        to.ip(),
        to.port()
    )
}

#[test]
fn v2ray_built_with_gccgo_forwards_a_20_mib_download_through_lkl_intact() {
    let bin = v2ray_lkl();
    let topo = venet();
    let addrs = topo.addrs();
    let payload = Payload::new("v2ray-gccgo", 20 * MIB);
    let (_web, web) = payload.serve_from_peer(&topo);
    let to = web.to_string();

    // gccgo v2ray under lkl-run, listening on LKL's address. lkl-run execs it, so the pid
    // (whose RSS is measured) is v2ray's.
    let lkl = SocketAddr::new(IpAddr::V4(addrs.lkl_v4), LKL_PORT);
    let mut v2ray = under_lkl_run(
        &topo,
        bin,
        &["-listen", &lkl.to_string(), "-to", &to],
        "gccgo v2ray on LKL (lkl-run)",
    );
    v2ray.wait_listening(topo.peer_ns(), lkl, Duration::from_secs(30));
    // The RSS read below is v2ray's only if lkl-run exec'd it in place (same pid).
    let exe = std::fs::read_link(format!("/proc/{}/exe", v2ray.child.id())).unwrap();
    assert_eq!(
        exe.canonicalize().unwrap(),
        Path::new(bin).canonicalize().unwrap(),
        "the process lkl-run started is not v2ray itself"
    );
    assert!(
        !host_listens_on(topo.container_ns(), LKL_PORT),
        "the container's host stack listens on {LKL_PORT}: v2ray is not on LKL"
    );
    let (lkl_took, lkl_rss) = measure(&mut v2ray, &payload, &topo, lkl);

    // The same binary without the preload, on the container's own address.
    let host = SocketAddr::new(IpAddr::V4(addrs.host_v4), GCCGO_HOST_PORT);
    let mut v2ray = Server::spawn(
        command_in(
            topo.container_ns(),
            bin,
            &["-listen", &host.to_string(), "-to", &to],
            &[],
        ),
        "gccgo v2ray on the host stack",
    );
    let (host_took, host_rss) = measure(&mut v2ray, &payload, &topo, host);

    // Debian's gc-built v2ray doing the same job from a JSON configuration.
    let gc = SocketAddr::new(IpAddr::V4(addrs.host_v4), GC_HOST_PORT);
    let config = payload.dir.join("gc-v2ray.json");
    std::fs::write(
        &config,
        gc_v2ray_config(gc, web, r#"{"protocol": "freedom"}"#),
    )
    .unwrap();
    let mut v2ray = Server::spawn(
        command_in(
            topo.container_ns(),
            gc_v2ray(),
            &["-config", config.to_str().unwrap()],
            &[],
        ),
        "gc v2ray on the host stack",
    );
    let (gc_took, gc_rss) = measure(&mut v2ray, &payload, &topo, gc);

    eprintln!(
        "v2ray RSS after a 20 MiB download: gccgo+LKL {lkl_rss:.1} MiB, gccgo host \
         {host_rss:.1} MiB, gc host {gc_rss:.1} MiB (download {:.2} s, {:.2} s, {:.2} s)",
        lkl_took.as_secs_f64(),
        host_took.as_secs_f64(),
        gc_took.as_secs_f64()
    );
}

#[test]
fn v2ray_built_with_gccgo_serves_vmess_from_lkl_to_debians_v2ray() {
    let bin = v2ray_lkl();
    let topo = venet();
    let addrs = topo.addrs();
    let payload = Payload::new("v2ray-vmess", 8 * MIB);
    let (_web, web) = payload.serve_from_peer(&topo);
    let id = std::fs::read_to_string("/proc/sys/kernel/random/uuid").unwrap();
    let id = id.trim();

    // The VMess server: gccgo v2ray under lkl-run on LKL's address.
    let vmess = SocketAddr::new(IpAddr::V4(addrs.lkl_v4), VMESS_PORT);
    let mut server = under_lkl_run(
        &topo,
        bin,
        &["-vmess-listen", &vmess.to_string(), "-vmess-id", id],
        "gccgo v2ray VMess server on LKL (lkl-run)",
    );
    server.wait_listening(topo.peer_ns(), vmess, Duration::from_secs(30));
    assert!(
        !host_listens_on(topo.container_ns(), VMESS_PORT),
        "the container's host stack listens on {VMESS_PORT}: v2ray is not on LKL"
    );

    // The client: Debian's v2ray in the peer, whose dokodemo-door asks the VMess server for
    // the web server (AEAD header: alterId 0).
    let client_at = SocketAddr::new(IpAddr::V4(addrs.peer_v4), VMESS_CLIENT_PORT);
    let config = payload.dir.join("vmess-client.json");
    let outbound = format!(
        r#"{{"protocol": "vmess", "settings": {{"vnext": [{{"address": "{}", "port": {},
            "users": [{{"id": "{id}", "alterId": 0}}]}}]}}}}"#,
        vmess.ip(),
        vmess.port()
    );
    std::fs::write(&config, gc_v2ray_config(client_at, web, &outbound)).unwrap();
    let mut client = Server::spawn(
        command_in(
            topo.peer_ns(),
            gc_v2ray(),
            &["-config", config.to_str().unwrap()],
            &[],
        ),
        "gc v2ray VMess client (peer)",
    );
    client.wait_listening(topo.peer_ns(), client_at, Duration::from_secs(20));

    let took = payload.download_through(topo.peer_ns(), client_at, "VMess");
    eprintln!(
        "8 MiB through VMess to gccgo v2ray on LKL in {:.2} s",
        took.as_secs_f64()
    );
    assert_running(&mut server);
    assert_running(&mut client);
}
