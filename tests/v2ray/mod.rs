//! The v2ray tests' rig: the gccgo build of v2ray's own main (scripts/build-v2ray.sh) run by
//! `lkl-run --ports ... --user nobody` in the container with a configuration of
//! `tests/v2ray/configs/` unchanged, Debian's gc-built v2ray (scripts/fetch-gc-v2ray.sh) as
//! the client in the peer, and a web server in the peer whose file the client fetches through
//! both, checked byte for byte.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use lkl_rig::{Netns, Topology, VenetTopology};

use crate::apps::{sha256_of, write_random_file, Scratch};
use crate::common::{
    check_output, command_in, host_listens_on, http_server_command, lkl_run_bin, wait_until, Server,
};

/// The web server's port in the peer.
pub const WEB_PORT: u16 = 8000;

/// The gccgo build of v2ray (built once into the user's cache, then only looked up), copied
/// where `nobody` can run it: root's cache is closed to other users, as a user's
/// /usr/local/bin is not.
pub fn gccgo_v2ray() -> &'static str {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let built = crate::common::script_program("build-v2ray.sh");
        // The cache entry's name (v2ray-<hash of the inputs>) keeps builds apart.
        let entry = built.parent().unwrap().file_name().unwrap();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gccgo-v2ray");
        let bin = dir.join(entry);
        if !bin.is_file() {
            std::fs::create_dir_all(&dir).unwrap();
            // Test binaries run at once may copy together: each its own file, renamed in.
            let part = dir.join(format!(
                "{}.{}",
                entry.to_str().unwrap(),
                std::process::id()
            ));
            std::fs::copy(&built, &part).unwrap();
            std::fs::rename(&part, &bin).unwrap();
        }
        bin
    })
    .to_str()
    .unwrap()
}

/// Debian's gc-built v2ray, taken from its package into the user's cache.
pub fn gc_v2ray() -> &'static str {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| crate::common::script_program("fetch-gc-v2ray.sh"))
        .to_str()
        .unwrap()
}

/// `tests/v2ray/configs/NAME`.
pub fn config(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/v2ray/configs")
        .join(name);
    assert!(path.is_file(), "no configuration {}", path.display());
    path
}

/// A venet topology, a scratch directory (readable by nobody: v2ray runs as nobody there) and
/// a web server in the peer serving a file of random bytes.
pub struct Rig {
    pub topo: VenetTopology,
    pub dir: Scratch,
    pub web: SocketAddr,
    pub size: u64,
    pub sha256: String,
    _web_server: Server,
}

impl Rig {
    pub fn new(tag: &str, size: u64) -> Rig {
        let topo = crate::common::venet();
        let dir = Scratch::new(tag);
        std::fs::create_dir(dir.join("www")).unwrap();
        let file = dir.join("www").join("blob.bin");
        write_random_file(&file, size, 0x7672_6179 ^ size);
        let sha256 = sha256_of(&file);
        let web = SocketAddr::new(IpAddr::V4(topo.addrs().peer_v4), WEB_PORT);
        let mut web_server = Server::spawn(
            http_server_command(
                topo.peer_ns(),
                &WEB_PORT.to_string(),
                &web.ip().to_string(),
                &dir.str("www"),
                &[],
            ),
            "python3 -m http.server (peer)",
        );
        web_server.wait_listening(topo.peer_ns(), web, Duration::from_secs(20));
        Rig {
            topo,
            dir,
            web,
            size,
            sha256,
            _web_server: web_server,
        }
    }

    /// The container's address, which LKL shares (lkl-run's default).
    pub fn server_ip(&self) -> IpAddr {
        IpAddr::V4(self.topo.addrs().host_v4)
    }

    pub fn server_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.server_ip(), port)
    }

    /// `http://WEB/blob.bin`, the file's URL in the peer.
    pub fn blob_url(&self) -> String {
        format!("http://{}/blob.bin", self.web)
    }

    /// A test certificate for `v2ray.test` (server.crt, server.key) in the scratch directory.
    pub fn make_certificate(&self) {
        check_output(Command::new("openssl").current_dir(&self.dir.path).args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=v2ray.test",
            "-addext",
            "subjectAltName=DNS:v2ray.test",
            "-keyout",
            "server.key",
            "-out",
            "server.crt",
        ]));
        // v2ray reads them as nobody.
        let key = self.dir.join("server.key");
        let mut perms = std::fs::metadata(&key).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
        std::fs::set_permissions(&key, perms).unwrap();
    }

    /// `lkl-run --ports PORTS --user nobody -- v2ray -config CONFIG` in the container, from
    /// the scratch directory (where relative paths of the configuration point), with `env`.
    pub fn lkl_run_v2ray(&self, ports: &str, config: &Path, env: &[(String, String)]) -> Command {
        self.lkl_run_v2ray_args(ports, &["-config", config.to_str().unwrap()], env)
    }

    /// `lkl-run --ports PORTS --user nobody -- v2ray ARGS...`, as [`Rig::lkl_run_v2ray`].
    pub fn lkl_run_v2ray_args(
        &self,
        ports: &str,
        args: &[&str],
        env: &[(String, String)],
    ) -> Command {
        self.lkl_run_with(&["--ports", ports, "--user", "nobody"], args, env)
    }

    /// `lkl-run LAUNCHER_ARGS... -- v2ray ARGS...`, as [`Rig::lkl_run_v2ray`].
    pub fn lkl_run_with(
        &self,
        launcher_args: &[&str],
        args: &[&str],
        env: &[(String, String)],
    ) -> Command {
        let mut argv = launcher_args.to_vec();
        argv.extend(["--", gccgo_v2ray()]);
        argv.extend_from_slice(args);
        let mut cmd = command_in(
            self.topo.container_ns(),
            lkl_run_bin().to_str().unwrap(),
            &argv,
            env,
        );
        cmd.current_dir(&self.dir.path);
        cmd
    }

    /// The gccgo v2ray under lkl-run with configuration `name` unchanged, listening on LKL for
    /// each TCP port of `ports` (checked from the peer; the container's host stack must not
    /// listen there).
    pub fn serve(&self, name: &str, ports: &[u16]) -> Server {
        let list = ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut server = Server::spawn(
            self.lkl_run_v2ray(&list, &config(name), &[]),
            &format!("gccgo v2ray on LKL ({name})"),
        );
        for &port in ports {
            server.wait_listening(
                self.topo.peer_ns(),
                self.server_addr(port),
                Duration::from_secs(30),
            );
            assert!(
                !host_listens_on(self.topo.container_ns(), port),
                "the container's host stack listens on {port}: v2ray is not on LKL"
            );
        }
        server
    }

    /// Debian's v2ray in the peer with client configuration `name`, the server's address put
    /// for `@SERVER@`; waits for its SOCKS inbounds on the peer's loopback, `socks_ports`.
    pub fn client(&self, name: &str, socks_ports: &[u16]) -> Server {
        let text = std::fs::read_to_string(config(name)).unwrap();
        let written = self.dir.join(name);
        std::fs::write(
            &written,
            text.replace("@SERVER@", &self.server_ip().to_string()),
        )
        .unwrap();
        let mut client = Server::spawn(
            command_in(
                self.topo.peer_ns(),
                gc_v2ray(),
                &["-config", written.to_str().unwrap()],
                &[],
            ),
            &format!("gc v2ray client in the peer ({name})"),
        );
        for &port in socks_ports {
            client.wait_listening(
                self.topo.peer_ns(),
                SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_secs(20),
            );
        }
        client
    }

    /// curl in the peer fetching the file through `proxy` (curl's `--proxy` syntax:
    /// `socks5://...`, `http://...`); the bytes must be the file's. Returns the time taken.
    pub fn fetch_through(&self, proxy: &str, what: &str) -> Duration {
        let got = self.dir.join("download.bin");
        let _ = std::fs::remove_file(&got);
        let started = Instant::now();
        check_output(&mut curl_in(
            self.topo.peer_ns(),
            proxy,
            &self.blob_url(),
            &["--fail", "--output", got.to_str().unwrap()],
        ));
        let took = started.elapsed();
        assert_eq!(
            std::fs::metadata(&got).unwrap().len(),
            self.size,
            "{what}: download size"
        );
        assert_eq!(
            sha256_of(&got),
            self.sha256,
            "{what}: the bytes downloaded through {proxy} differ from the file"
        );
        std::fs::remove_file(&got).unwrap();
        eprintln!(
            "{what}: {} bytes through {proxy} intact in {:.2} s",
            self.size,
            took.as_secs_f64()
        );
        took
    }
}

impl Rig {
    /// A web server on the container's loopback serving the same file: reachable by v2ray's
    /// freedom outbound, not from the peer.
    pub fn serve_on_container_loopback(&self, port: u16) -> Server {
        let mut server = Server::spawn(
            http_server_command(
                self.topo.container_ns(),
                &port.to_string(),
                "127.0.0.1",
                &self.dir.str("www"),
                &[],
            ),
            "python3 -m http.server (container loopback)",
        );
        server.wait_listening(
            self.topo.container_ns(),
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(20),
        );
        server
    }
}

/// The HTTP status curl in `ns` gets for `url` through `proxy`.
pub fn status_through(ns: &Netns, proxy: &str, url: &str) -> String {
    check_output(&mut curl_in(
        ns,
        proxy,
        url,
        &["--output", "/dev/null", "--write-out", "%{http_code}"],
    ))
}

/// `curl --silent --show-error --max-time 60 --proxy PROXY EXTRA... URL` in `ns`.
pub fn curl_in(ns: &Netns, proxy: &str, url: &str, extra: &[&str]) -> Command {
    let mut args = vec![
        "--silent",
        "--show-error",
        "--max-time",
        "60",
        "--proxy",
        proxy,
    ];
    args.extend_from_slice(extra);
    args.push(url);
    command_in(ns, "curl", &args, &[])
}

/// Waits until the container's host stack has a UDP socket on `port` (mKCP's listener stays
/// on the host stack: LKL serves TCP listeners only).
pub fn wait_udp_bound(server: &mut Server, ns: &Netns, port: u16) {
    let bound = || {
        let out = ns.run("ss", &["-Hlun"]).expect("ss");
        out.lines().any(|l| {
            l.split_whitespace()
                .nth(3)
                .is_some_and(|local| local.rsplit(':').next() == Some(&port.to_string()))
        })
    };
    if wait_until(Duration::from_secs(30), || {
        bound() || server.child.try_wait().ok().flatten().is_some()
    })
    .is_none()
        || !bound()
    {
        let _ = server.child.kill();
        let _ = server.child.wait();
        let output = server.output();
        panic!("{} did not bind UDP port {port}\n{output}", server.name);
    }
}

/// Fails the test, with the process's output, when it has exited.
pub fn assert_running(server: &mut Server) {
    if let Some(status) = server.child.try_wait().unwrap() {
        let output = server.output();
        panic!("{} exited: {status}\n{output}", server.name);
    }
}
