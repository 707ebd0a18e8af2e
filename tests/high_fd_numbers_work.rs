//! LKL sockets get real host fd numbers: with 1 500 host fds open before the first socket,
//! every socket is above FD_SETSIZE (1024), and poll/epoll over those sockets together with a
//! host pipe must work as on the host stack (`tests/programs/many_fds.c`).

mod common;

use std::path::PathBuf;

use common::*;
use lkl_rig::Topology;

/// `tests/programs/many_fds.c`, compiled into cargo's scratch directory.
fn many_fds() -> PathBuf {
    build_c("many_fds", CSource::File)
}

#[test]
fn sockets_above_fd_1024_echo_and_poll_like_on_the_host() {
    let prog = many_fds();
    let prog = prog.to_str().expect("utf-8 path");
    let topo = venet();
    let ns = topo.container_ns();

    let host = check_output(&mut command_in(ns, prog, &[], &[]));
    for key in [
        "listener number above 1024: true",
        "echo over poll: sent 262144, echoed 262144, match true, pipe events 1, errors 0, waited more than once: true",
        "echo over epoll: sent 262144, echoed 262144, match true, pipe events 1, errors 0, waited more than once: true",
        "done",
    ] {
        assert!(host.lines().any(|l| l == key), "the host run lacks {key:?}:\n{host}");
    }

    // Every socket in LKL, the clients too (by default only listeners are).
    let mut env = lkl_env(&topo);
    env.push(("LKL_HIJACK_CLIENTS".into(), "lkl".into()));
    let lkl = check_output(&mut command_in(ns, prog, &[], &env));
    assert_eq!(
        lkl, host,
        "many_fds under the preload (left) differs from the host run (right)"
    );
}
