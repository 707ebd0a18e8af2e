//! Blocking socket calls behave on LKL as on the host kernel: a signal handler without
//! SA_RESTART interrupts accept/recv with EINTR, one with SA_RESTART lets them go on,
//! SO_RCVTIMEO gives EAGAIN (and EINTR whatever the handler), epoll_wait is never restarted,
//! shutdown from another thread wakes a blocked recv or accept, MSG_WAITALL waits for all.
//! The C program prints one line per check; both runs must print the same.

mod common;

use std::path::PathBuf;

use common::{build_c, check_output, command_in, lkl_env, venet, CSource};
use lkl_rig::Topology;

fn build() -> PathBuf {
    build_c("blocking_signals", CSource::File)
}

#[test]
fn blocking_calls_signals_and_timeouts_match_the_host_kernel() {
    let program = build();
    let program = program.to_str().unwrap();
    let topo = venet();
    let host = check_output(&mut command_in(topo.container_ns(), program, &[], &[]));
    let mut env = lkl_env(&topo);
    env.push(("LKL_HIJACK_DEBUG".into(), "1".into()));
    let out = command_in(topo.container_ns(), program, &[], &env)
        .output()
        .unwrap();
    let lkl = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("booted Linux"),
        "the sockets were not LKL's:\n{stderr}"
    );
    assert!(host.lines().count() >= 10, "{host}");
    assert!(
        host.contains("accept, handler without SA_RESTART: EINTR"),
        "{host}"
    );
    assert_eq!(host, lkl, "host (left) and LKL (right) differ");
}
