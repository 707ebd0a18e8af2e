//! The packet socket on the host kernels OpenVZ users have (3.10; also what 4.18 lacks):
//! PACKET_IGNORE_OUTGOING (4.20) is refused there, and the library's socket filter drops its
//! own outgoing packets instead. A real preloaded program serves the peer under the rig's 3.10
//! kernel profile on venet0 (link/void), and `lkl-run --check` under the same profile sets
//! the socket up as the library will and lists each fallback in one line.

mod apps;
mod common;

use std::process::Command;
use std::time::Duration;

use apps::{curl_download, http_url, sha256_of, write_random_file, Scratch, MIB};
use common::{
    command_in, http_server_command, lkl_env, lkl_run_bin, lkl_v4, set_env, venet, Server,
};
use lkl_rig::{KernelProfile, Topology};

const PORT: u16 = 8000;

/// The lines every run under the 3.10 profile on the rig's venet0 reports (the start-up log
/// at debug, and `lkl-run --check`): the socket type venet0 needs, then each fallback.
const FALLBACK_LINES: &[&str] = &[
    "venet0 is link/void (OpenVZ venet): SOCK_DGRAM, no offloads",
    "the host kernel lacks PACKET_IGNORE_OUTGOING (Linux 4.20): the socket filter drops the \
     interface's outgoing packets",
    "the host kernel lacks epoll_pwait2 (Linux 5.11)",
    "the host kernel lacks close_range (Linux 5.9)",
    "the host kernel lacks pidfd_open (Linux 5.3)",
];

fn under_3_10(mut cmd: Command) -> Command {
    KernelProfile::named("3.10").unwrap().confine(&mut cmd);
    cmd
}

#[test]
fn python_http_server_serves_a_file_intact_on_a_3_10_host() {
    let topo = venet();
    let addr = lkl_v4(&topo, PORT);
    let dir = Scratch::new("old-host-http");
    let www = dir.join("www");
    std::fs::create_dir(&www).unwrap();
    let file = www.join("blob.bin");
    let size = 16 * MIB;
    write_random_file(&file, size, 0x3_10);

    let mut env = lkl_env(&topo);
    set_env(&mut env, "RUST_LOG", "lkl_hijack=debug");
    let cmd = http_server_command(
        topo.container_ns(),
        &PORT.to_string(),
        &addr.ip().to_string(),
        &www.display().to_string(),
        &env,
    );
    let mut server = Server::spawn(under_3_10(cmd), "python3 -m http.server");
    server.wait_listening(topo.peer_ns(), addr, Duration::from_secs(20));
    let got = dir.join("download.bin");
    curl_download(topo.peer_ns(), &http_url(addr, "/blob.bin"), &got, 40);
    assert_eq!(
        std::fs::metadata(&got).unwrap().len(),
        size,
        "download size"
    );
    assert_eq!(sha256_of(&got), sha256_of(&file), "downloaded bytes differ");
    server.terminate(Duration::from_secs(10));
    let log = server.output();
    for line in FALLBACK_LINES {
        assert!(log.contains(line), "{line:?} not in the log:\n{log}");
    }
}

#[test]
fn lkl_run_check_lists_each_fallback_on_a_3_10_host_and_says_ready() {
    let topo = venet();
    let cmd = command_in(
        topo.container_ns(),
        lkl_run_bin().to_str().unwrap(),
        &[
            "--check",
            "--ip",
            &topo.addrs().lkl_v4.to_string(),
            "--",
            "/usr/bin/python3",
            "-V",
        ],
        &[],
    );
    let out = under_3_10(cmd).output().expect("run lkl-run");
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}");
    assert_eq!(out.status.code(), Some(0), "{report}");
    for line in FALLBACK_LINES {
        assert!(
            report
                .lines()
                .any(|l| l.starts_with("ok    ") && l.contains(line)),
            "{line:?} not a line of the report"
        );
    }
    assert_eq!(
        report.lines().last(),
        Some("ready: lkl-run can start this"),
        "{report}"
    );
}
