//! redis-server, unmodified, on LKL: redis-benchmark from the peer runs 100 000 SETs and
//! 100 000 GETs (50 connections) without an error, the data really lives in that server, and
//! it shuts down in order on SIGTERM.

mod common;

use std::time::Duration;

use common::{check_output, command_in, host_listens_on, lkl_env, lkl_v4, venet, Server};
use lkl_rig::Topology;

const PORT: u16 = 6390;
const REQUESTS: &str = "100000";

#[test]
fn redis_on_lkl_serves_100000_sets_and_gets_from_redis_benchmark_without_errors_then_shuts_down() {
    let topo = venet();
    let addr = lkl_v4(&topo, PORT);
    let host = addr.ip().to_string();
    let port = PORT.to_string();
    // No persistence: nothing is written to disk, so no working directory is needed. Redis 7
    // refuses non-loopback clients without a password unless protected mode is off; the
    // server is reachable only inside the rig's namespaces.
    let mut server = Server::spawn(
        command_in(
            topo.container_ns(),
            "redis-server",
            &[
                "--port",
                &port,
                "--bind",
                &host,
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ],
            &lkl_env(&topo),
        ),
        "redis-server",
    );
    server.wait_listening(topo.peer_ns(), addr, Duration::from_secs(20));
    assert!(
        !host_listens_on(topo.container_ns(), PORT),
        "the container's host stack listens on {PORT}: redis is not on LKL"
    );

    let cli = |args: &[&str]| {
        let mut all = vec!["-h", &host, "-p", &port];
        all.extend_from_slice(args);
        check_output(&mut command_in(topo.peer_ns(), "redis-cli", &all, &[]))
    };
    assert_eq!(cli(&["PING"]).trim(), "PONG");

    // -e: show error replies (they would otherwise only be counted silently).
    let out = check_output(&mut command_in(
        topo.peer_ns(),
        "redis-benchmark",
        &[
            "-h", &host, "-p", &port, "-n", REQUESTS, "-t", "set,get", "-q", "-e",
        ],
        &[],
    ));
    // -q redraws a progress line with \r; the final result of each test ends in
    // "requests per second".
    let results: Vec<&str> = out
        .split(['\r', '\n'])
        .filter(|l| l.contains("requests per second"))
        .collect();
    for test in ["SET", "GET"] {
        let line = results
            .iter()
            .find(|l| l.starts_with(&format!("{test}: ")))
            .unwrap_or_else(|| panic!("no {test} result in redis-benchmark's output:\n{out}"));
        let rps: f64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no rate in {line:?}"));
        assert!(rps > 0.0, "{line}");
        eprintln!("{line}");
    }
    assert!(
        !out.contains("ERR") && !out.contains("Error"),
        "redis-benchmark saw errors:\n{out}"
    );

    // The benchmark's writes landed in this server: its key exists, with its 3-byte value.
    assert_eq!(cli(&["STRLEN", "key:__rand_int__"]).trim(), "3");
    let info = cli(&["INFO", "stats"]);
    let commands: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no total_commands_processed in INFO:\n{info}"));
    assert!(
        commands >= 200_000,
        "the server processed only {commands} commands"
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "redis-server exited\n{}",
        server.output()
    );
    // SIGTERM is redis's orderly shutdown (exit 0), which needs the sockets to close normally.
    let status = server.terminate(Duration::from_secs(10));
    let log = server.output();
    assert!(status.success(), "redis-server on SIGTERM: {status}\n{log}");
    assert!(log.contains("ready to exit, bye bye"), "{log}");
}
