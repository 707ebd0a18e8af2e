//! A bad port policy or firewall setting (`LKL_HIJACK_PORTS`,
//! `LKL_HIJACK_CLIENT_PORTS`, `LKL_HIJACK_CLIENTS`, `LKL_HIJACK_FIREWALL`) stops the program
//! before `main` with one line naming the variable and exit status 78; the documented forms
//! of each are accepted.

mod common;

use std::process::Output;

use common::{lkl_env, run_socket_probe, set_env, venet};
use lkl_rig::Topology;

fn run(topo: &dyn Topology, changes: &[(&str, &str)]) -> Output {
    let mut env = lkl_env(topo);
    for (var, value) in changes {
        set_env(&mut env, var, value);
    }
    run_socket_probe(topo, &env)
}

#[test]
fn bad_policy_values_are_named_and_exit_78_before_main() {
    let topo = venet();
    let bad: &[(&str, &str)] = &[
        ("LKL_HIJACK_PORTS", "0"),
        ("LKL_HIJACK_PORTS", "70000"),
        ("LKL_HIJACK_PORTS", "80-70"),
        ("LKL_HIJACK_PORTS", "8o"),
        ("LKL_HIJACK_PORTS", "443,8000-8100,x"),
        ("LKL_HIJACK_PORTS", "1-2-3"),
        ("LKL_HIJACK_CLIENT_PORTS", "5-3"),
        ("LKL_HIJACK_CLIENT_PORTS", "x"),
        ("LKL_HIJACK_CLIENT_PORTS", "61000-70000"),
        ("LKL_HIJACK_CLIENTS", "maybe"),
        ("LKL_HIJACK_FIREWALL", "on"),
        ("LKL_HIJACK_FIREWALL", "yes"),
    ];
    let mut wrong = Vec::new();
    for (var, value) in bad {
        let out = run(&topo, &[(var, value)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let one_line = stderr.lines().count() == 1;
        let named = stderr.starts_with(&format!("lkl-hijack: {var}="));
        if out.status.code() != Some(78) || !one_line || !named || stdout.contains("main ran") {
            wrong.push(format!(
                "{var}={value}: {} (want exit 78, one line naming {var}, main not run)\n  stdout: {stdout:?}\n  stderr: {stderr:?}",
                out.status
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn documented_policy_values_are_accepted() {
    let topo = venet();
    let good: &[&[(&str, &str)]] = &[
        &[
            ("LKL_HIJACK_PORTS", "443,8000-8100"),
            ("LKL_HIJACK_FIREWALL", "off"),
        ],
        &[("LKL_HIJACK_PORTS", "8000"), ("LKL_HIJACK_FIREWALL", "off")],
        &[
            ("LKL_HIJACK_CLIENT_PORTS", "61000-65535"),
            ("LKL_HIJACK_FIREWALL", "off"),
        ],
        &[
            ("LKL_HIJACK_CLIENTS", "host"),
            ("LKL_HIJACK_FIREWALL", "off"),
        ],
        &[
            ("LKL_HIJACK_CLIENTS", "lkl"),
            ("LKL_HIJACK_FIREWALL", "off"),
        ],
        &[("LKL_HIJACK_FIREWALL", "print")],
        &[("LKL_HIJACK_FIREWALL", "auto")],
    ];
    let mut wrong = Vec::new();
    for changes in good {
        let out = run(&topo, changes);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || stdout != "main ran\nsocket opened\n" {
            wrong.push(format!(
                "{changes:?}: {}\n  stdout: {stdout:?}\n  stderr: {:?}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
