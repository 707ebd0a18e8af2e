//! A bad LKL_HIJACK_* value stops the program with one line naming the variable and exit
//! status 78 (EX_CONFIG), never a silent fall-back to the host stack: before `main` for what
//! can be checked without the kernel, at the first socket for what only the kernel can judge.

mod common;

use std::process::Output;

use common::{lkl_env, run_socket_probe, set_env, venet};
use lkl_rig::Topology;

/// The socket probe with `changes` to the LKL environment (None: the variable unset).
fn run(topo: &dyn Topology, changes: &[(&str, Option<&str>)]) -> Output {
    let mut env = lkl_env(topo);
    for (var, value) in changes {
        match value {
            Some(v) => set_env(&mut env, var, v),
            None => env.retain(|(k, _)| k != var),
        }
    }
    run_socket_probe(topo, &env)
}

/// Exit 78, exactly one stderr line, which starts with "lkl-hijack: VAR=".
fn assert_refused(out: &Output, var: &str, main_ran: bool) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(78),
        "{var}: status {}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    assert_eq!(stderr.lines().count(), 1, "{var}: not one line: {stderr:?}");
    assert!(
        stderr.starts_with(&format!("lkl-hijack: {var}")),
        "{var}: the line does not name the variable: {stderr:?}"
    );
    assert_eq!(
        stdout.contains("main ran"),
        main_ran,
        "{var}: stdout {stdout:?}"
    );
    assert!(
        !stdout.contains("socket opened"),
        "{var}: a socket was opened anyway"
    );
}

#[test]
fn bad_values_are_named_and_exit_78() {
    let topo = venet();
    let pre_main: &[(&str, &str)] = &[
        ("LKL_HIJACK_NET_IFTYPE", "tap"),
        ("LKL_HIJACK_NET_IFPARAMS", "no-such-if0"),
        ("LKL_HIJACK_NET_IP", "10.0.0.300"),
        ("LKL_HIJACK_NET_IPV6", "fd00::zz"),
        ("LKL_HIJACK_NET_NETMASK_LEN", "33"),
        ("LKL_HIJACK_NET_MTU", "20"),
        ("LKL_HIJACK_MEMSIZE", "8M"),
        ("LKL_HIJACK_SYSCTL", "net.core.somaxconn"),
        ("LKL_HIJACK_NET_QDISC", "fq;x"),
        ("LKL_HIJACK_NET_FD", "-1"),
        // stdin: open, but not a packet socket from lkl-run.
        ("LKL_HIJACK_NET_FD", "0"),
    ];
    for (var, value) in pre_main {
        let out = run(&topo, &[(var, Some(value))]);
        assert_refused(&out, var, false);
    }
    let out = run(&topo, &[("LKL_HIJACK_NET_IFPARAMS", None)]);
    assert_refused(&out, "LKL_HIJACK_NET_IFPARAMS", false);
}

#[test]
fn values_only_the_kernel_can_judge_stop_the_program_at_its_first_socket() {
    let topo = venet();
    let at_boot: &[(&str, &str)] = &[
        ("LKL_HIJACK_SYSCTL", "net.ipv4.no_such_sysctl=1"),
        (
            "LKL_HIJACK_SYSCTL",
            "net.ipv4.tcp_congestion_control=no_such_cc",
        ),
        ("LKL_HIJACK_NET_QDISC", "no_such_qdisc"),
        ("LKL_HIJACK_BOOT_CMDLINE", "no_such_option=1"),
    ];
    for (var, value) in at_boot {
        let out = run(&topo, &[(var, Some(value))]);
        assert_refused(&out, var, true);
    }
}

#[test]
fn without_configuration_the_library_stays_out_of_the_way() {
    let topo = venet();
    let env: Vec<(String, String)> = lkl_env(&topo)
        .into_iter()
        .filter(|(k, _)| k == "LD_PRELOAD")
        .collect();
    let out = run_socket_probe(&topo, &env);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "main ran\nsocket opened\n"
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_interface_that_is_down_is_named_at_the_first_socket() {
    let topo = venet();
    topo.container_ns()
        .run("ip", &["link", "set", "dev", topo.container_if(), "down"])
        .unwrap();
    let out = run(&topo, &[]);
    // Only the packet backend, opened at boot, sees that the interface is down.
    assert_refused(&out, "LKL_HIJACK_NET_IFPARAMS", true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(it is down)"), "{stderr:?}");
}
