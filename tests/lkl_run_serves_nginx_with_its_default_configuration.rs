//! Debian's nginx as installed — its own /etc/nginx/nginx.conf, unmodified: a master as root,
//! `worker_processes auto` workers as www-data, the default site on port 80 over IPv4 and
//! IPv6 — under `lkl-run --ports 80`, as the README tells a user to start it. From the peer,
//! the welcome page comes back byte for byte over both, from LKL (the host stack holds no
//! listener on 80), `nginx -s reload` keeps it serving, and nothing is left once nginx quits.
//!
//! nginx writes its pid file and logs where the configuration says (/run, /var/log/nginx):
//! it runs in a mount namespace of its own where those are empty directories of the test's.

mod apps;
mod common;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use apps::Scratch;
use common::{command_in, host_listens_on, lkl_run_bin, venet, wait_until, Server};
use lkl_rig::Topology;

const PAGE: &str = "/var/www/html/index.nginx-debian.html";

/// `GET /` from the peer to `addr`: the body, which must come with status 200.
fn fetch(topo: &dyn Topology, addr: SocketAddr) -> Result<Vec<u8>, String> {
    use std::io::{Read, Write};
    topo.peer_ns()
        .in_thread(|| {
            let mut conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .map_err(|e| format!("connect {addr}: {e}"))?;
            conn.set_read_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| e.to_string())?;
            conn.write_all(b"GET / HTTP/1.0\r\nHost: lkl\r\n\r\n")
                .map_err(|e| e.to_string())?;
            let mut reply = Vec::new();
            conn.read_to_end(&mut reply)
                .map_err(|e| format!("read from {addr}: {e}"))?;
            let split = reply
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .ok_or("no end of headers")?;
            let head = String::from_utf8_lossy(&reply[..split]);
            if !head.starts_with("HTTP/1.1 200 ") {
                return Err(format!("{addr}: {head}"));
            }
            Ok(reply[split + 4..].to_vec())
        })
        .map_err(|e| e.to_string())?
}

/// The processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let text = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
        .unwrap_or_default();
    text.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn debians_nginx_with_its_own_configuration_serves_from_lkl_under_lkl_run() {
    let page = std::fs::read(PAGE).expect("Debian's nginx is installed (scripts/setup.sh)");
    let topo = venet();
    let a = topo.addrs();
    let scratch = Scratch::new("nginx-default");
    for sub in ["log", "run"] {
        std::fs::create_dir_all(scratch.join(sub)).unwrap();
    }
    let script = format!(
        "mount --bind {log} /var/log/nginx && mount --bind {run} /run && exec \"$@\"",
        log = scratch.str("log"),
        run = scratch.str("run"),
    );
    let lkl_run = lkl_run_bin();
    let mut cmd = command_in(
        topo.container_ns(),
        "unshare",
        &[
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
            lkl_run.to_str().unwrap(),
            "--ports",
            "80",
            "--",
            "/usr/sbin/nginx",
            "-g",
            "daemon off;",
        ],
        &[],
    );
    cmd.process_group(0);
    let mut server = Server::spawn(cmd, "lkl-run nginx");
    let _group = KillGroup(server.child.id() as i32);
    let v4 = SocketAddr::new(a.host_v4.into(), 80);
    let v6 = SocketAddr::new(a.host_v6.into(), 80);
    server.wait_listening(topo.peer_ns(), v4, Duration::from_secs(20));
    assert!(
        !host_listens_on(topo.container_ns(), 80),
        "the container's host stack listens on 80: nginx is not on LKL"
    );
    // exec'd by sh and by lkl-run: the server's pid is nginx's master.
    let master = server.child.id();
    let workers = children_of(master);
    assert!(
        !workers.is_empty(),
        "nginx's master {master} has no workers"
    );
    for round in ["before", "after"] {
        for addr in [v4, v6] {
            for _ in 0..20 {
                let body = fetch(&topo, addr).unwrap_or_else(|e| panic!("{round} reload: {e}"));
                assert!(body == page, "{round} reload, {addr}: not the welcome page");
            }
        }
        if round == "before" {
            // What `nginx -s reload` sends (the pid file it reads is in nginx's namespace).
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe { libc::kill(master as i32, libc::SIGHUP) };
            // The old workers end once the new ones serve.
            wait_until(Duration::from_secs(10), || {
                let now = children_of(master);
                !now.is_empty() && now.iter().all(|p| !workers.contains(p))
            })
            .unwrap_or_else(|| panic!("nginx did not replace its workers {workers:?}"));
        }
    }
    // `nginx -s quit`.
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe { libc::kill(master as i32, libc::SIGQUIT) };
    let status = server.wait_for_exit(Duration::from_secs(15));
    assert!(status.success(), "nginx: {status}\n{}", server.output());
    let tables = || {
        topo.container_ns()
            .run("nft", &["list", "tables"])
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(5), || !tables().contains("lklhijack")).is_some(),
        "firewall rules left after nginx quit: {}",
        tables()
    );
}

/// Kills the launcher's process group (nginx's master and workers) when dropped.
struct KillGroup(i32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        // SAFETY: killpg(2) on the group our child leads (started with process_group(0)).
        unsafe { libc::killpg(self.0, libc::SIGKILL) };
    }
}
