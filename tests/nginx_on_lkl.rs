//! nginx, unmodified (single process, sendfile on), serves from LKL: a 100 MiB file arrives
//! intact at the peer, wrk's 10 000 small requests all succeed, and nginx then exits cleanly.

mod apps;
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use apps::{assert_downloads_intact, http_url, write_random_file, Scratch, MIB};
use common::{check_output, command_in, host_listens_on, lkl_env, lkl_v4, venet, Server};
use lkl_rig::{Topology, VenetTopology};

const PORT: u16 = 8080;
/// The small file wrk asks for; each response body is compared with it.
const SMALL_BODY: &str = "small body from nginx on lkl\n";
const WRK_REQUESTS: u64 = 10_000;

/// nginx under the preload in the container, listening on `addr`, serving `dir`/www.
/// The config keeps everything nginx writes inside `dir` and its log on stderr.
fn start_nginx(topo: &VenetTopology, dir: &Scratch, addr: SocketAddr) -> Server {
    for sub in ["www", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::write(dir.join("www/small.txt"), SMALL_BODY).unwrap();
    let tmp = dir.str("tmp");
    let conf = format!(
        "daemon off;
master_process off;
worker_processes 1;
error_log stderr;
pid {tmp}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen {addr};
        root {www};
    }}
}}
",
        www = dir.str("www"),
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    // -e: the error log before the config is read, else nginx opens /var/log/nginx/error.log.
    let mut server = Server::spawn(
        command_in(
            topo.container_ns(),
            "nginx",
            &[
                "-p",
                &dir.str(""),
                "-c",
                &dir.str("nginx.conf"),
                "-e",
                "stderr",
            ],
            &lkl_env(topo),
        ),
        "nginx",
    );
    server.wait_listening(topo.peer_ns(), addr, Duration::from_secs(20));
    assert!(
        !host_listens_on(topo.container_ns(), PORT),
        "the container's host stack listens on {PORT}: nginx is not on LKL"
    );
    server
}

#[test]
fn nginx_on_lkl_sendfiles_a_100_mib_file_intact_to_the_peer() {
    let topo = venet();
    let dir = Scratch::new("nginx-big");
    let addr = lkl_v4(&topo, PORT);
    let mut server = start_nginx(&topo, &dir, addr);
    let file = dir.join("www/blob.bin");
    write_random_file(&file, 100 * MIB, 0x6e67_696e);

    assert_downloads_intact(
        topo.peer_ns(),
        &http_url(addr, "/blob.bin"),
        &dir.join("download.bin"),
        45,
        &file,
        100 * MIB,
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "nginx exited while serving\n{}",
        server.output()
    );
}

/// wrk's Lua hooks (wrk counts by time, not requests): its one thread stops the run after
/// `WRK_REQUESTS` responses; every response must be 200 with the small file's bytes; `done`
/// prints wrk's own counters and ours on one line.
fn wrk_script() -> String {
    format!(
        r#"local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) responses = 0; bad = 0 end
function response(status, headers, body)
    responses = responses + 1
    if status ~= 200 or body ~= {body:?} then bad = bad + 1 end
    if responses == {WRK_REQUESTS} then
        wrk.thread:stop()
        -- wrk's main thread sleeps for all of -d; its SIGINT handler ends the run now.
        local ffi = require("ffi")
        ffi.cdef("int tgkill(int tgid, int tid, int sig); int getpid(void);")
        ffi.C.tgkill(ffi.C.getpid(), ffi.C.getpid(), 2)
    end
end
function done(summary, latency, requests)
    local bad_total = 0
    for _, t in ipairs(threads) do bad_total = bad_total + t:get("bad") end
    local e = summary.errors
    io.write(string.format("RESULT requests=%d connect=%d read=%d write=%d status=%d timeout=%d bad=%d\n",
        summary.requests, e.connect, e.read, e.write, e.status, e.timeout, bad_total))
end
"#,
        body = SMALL_BODY,
    )
}

#[test]
fn nginx_on_lkl_answers_10000_wrk_requests_without_an_error_then_exits_cleanly() {
    let topo = venet();
    let dir = Scratch::new("nginx-wrk");
    let addr = lkl_v4(&topo, PORT);
    let mut server = start_nginx(&topo, &dir, addr);
    let script = dir.join("count.lua");
    std::fs::write(&script, wrk_script()).unwrap();

    // One thread (the Lua counters are per thread), 10 connections; the duration only bounds
    // the run: the script ends it after 10 000 responses.
    let out = check_output(&mut command_in(
        topo.peer_ns(),
        "wrk",
        &[
            "-t1",
            "-c10",
            "-d30s",
            "--timeout",
            "5s",
            "-s",
            &script.display().to_string(),
            &http_url(addr, "/small.txt"),
        ],
        &[],
    ));
    let line = out
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line in wrk's output:\n{out}"));
    let count = |key: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {line:?}"))
    };
    assert!(
        count("requests") >= WRK_REQUESTS,
        "wrk completed fewer than {WRK_REQUESTS} requests in 30 s:\n{out}"
    );
    for key in ["connect", "read", "write", "status", "timeout", "bad"] {
        assert_eq!(count(key), 0, "wrk counted {key} errors:\n{out}");
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "nginx exited under load\n{}",
        server.output()
    );
    // SIGTERM is nginx's fast shutdown: it closes its sockets and exits 0 (the library halts
    // LKL at exit without hanging the process).
    let status = server.terminate(Duration::from_secs(10));
    assert!(
        status.success(),
        "nginx on SIGTERM: {status}\n{}",
        server.output()
    );
}
