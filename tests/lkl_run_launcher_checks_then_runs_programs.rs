//! `lkl-run`, the launcher: detects the interface and its address, checks what it
//! can before anything runs (each failure one line and its own exit status), opens the packet
//! socket and installs the firewall rules itself, drops privileges with `--user`, and execs the
//! program with the library preloaded.

mod common;
mod echo;

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use common::{build_c, command_in, echo_server_bin, lkl_run_bin, CSource, Server};
use echo::echo_from_peer;
use lkl_rig::{Netns, Topology, VenetTopology};

/// `lkl-run ARGS` in the container, to completion.
fn lkl_run(ns: &Netns, args: &[&str]) -> Output {
    command_in(ns, lkl_run_bin().to_str().unwrap(), args, &[])
        .output()
        .expect("run lkl-run")
}

/// One line on stderr containing `needle`, and exit status `status`.
fn assert_fails(out: &Output, status: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(status), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
}

fn nft_tables(ns: &Netns) -> String {
    ns.run("nft", &["list", "tables"]).unwrap_or_default()
}

#[test]
fn a_program_runs_as_nobody_on_the_shared_address_and_serves_through_lkl() {
    let topo = VenetTopology::builder().build().unwrap();
    let echo = echo_server_bin();
    // No --iface, no --ip: the launcher finds the container's interface and shares its
    // address.
    let mut server = Server::spawn(
        command_in(
            topo.container_ns(),
            lkl_run_bin().to_str().unwrap(),
            &[
                "--user",
                "nobody",
                "--ports",
                "8443",
                "--",
                echo.to_str().unwrap(),
                "0.0.0.0:8443",
            ],
            &[],
        ),
        "lkl-run echo_server",
    );
    let addr = SocketAddr::new(topo.addrs().host_v4.into(), 8443);
    server.wait_listening(topo.peer_ns(), addr, Duration::from_secs(20));
    let t = echo_from_peer(&topo, addr, 4 << 20, 3).expect("echo through LKL");
    eprintln!("{} bytes echoed as nobody", t.verified);

    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid.split_whitespace().skip(1).all(|u| u == "65534"),
        "not running as nobody: {uid}"
    );
    assert!(
        !common::host_listens_on(topo.container_ns(), 8443),
        "the host stack listens on 8443: the server is not in LKL"
    );
    let table = format!("lklhijack_{}_{}", topo.container_if(), server.child.id());
    assert!(
        nft_tables(topo.container_ns()).contains(&table),
        "the launcher's rules are missing: {}",
        nft_tables(topo.container_ns())
    );

    server.terminate(Duration::from_secs(10));
    // The watchdog the launcher left removes the rules once the program is gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while nft_tables(topo.container_ns()).contains(&table) {
        assert!(
            std::time::Instant::now() < deadline,
            "{table} left behind after the program ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn each_preflight_failure_has_its_line_and_exit_status() {
    let topo = VenetTopology::builder().build().unwrap();
    let ns = topo.container_ns();
    let iface = topo.container_if().to_string();
    // An interface that is down, and then one that is up without an address.
    ns.run("ip", &["tuntap", "add", "mode", "tun", "dev", "lkltest0"])
        .unwrap();
    let static_bin = {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        let src = dir.join("static_hello.c");
        std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
        let out = dir.join("static_hello");
        common::check_output(
            Command::new("cc")
                .arg("-static")
                .arg("-o")
                .arg(&out)
                .arg(&src),
        );
        out.display().to_string()
    };
    // gc writes a .go.buildinfo section into every binary; no gc toolchain is packaged here.
    let gc_like = build_c(
        "lkl_run_gc_like",
        CSource::Text(
            "__attribute__((section(\".go.buildinfo\"), used)) static const char info[32] = \
             \"\\xff Go buildinf:\";\nint main(void) { return 0; }\n",
        ),
    );
    let gc_like = gc_like.to_str().unwrap();

    let i = ["--iface", iface.as_str()];
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["--lib", "/nonexistent.so", "--", "true"],
            10,
            "--lib /nonexistent.so",
        ),
        (
            vec!["--iface", "nosuch0", "--", "true"],
            11,
            "--iface nosuch0: no such interface",
        ),
        (
            vec!["--iface", "lkltest0", "--", "true"],
            12,
            "lkltest0 is down",
        ),
        (
            vec![i[0], i[1], "--", "/nonexistent/prog"],
            14,
            "program not found",
        ),
        (vec![i[0], i[1], "--", &static_bin], 15, "statically linked"),
        (vec![i[0], i[1], "--", gc_like], 15, "gc Go toolchain"),
        (
            vec![i[0], i[1], "--user", "no-such-user", "--", "true"],
            18,
            "no such user",
        ),
        (
            vec![i[0], i[1], "--user", "nobody", "--", "true"],
            19,
            "needs --ports",
        ),
        (
            vec![i[0], i[1], "--bogus", "--", "true"],
            2,
            "unknown option --bogus",
        ),
    ];
    for (args, status, needle) in &cases {
        assert_fails(&lkl_run(ns, args), *status, needle);
    }
    ns.run("ip", &["link", "set", "lkltest0", "up"]).unwrap();
    assert_fails(
        &lkl_run(ns, &["--iface", "lkltest0", "--", "true"]),
        13,
        "no address",
    );
    let run = |wrapper: &[&str]| {
        let launcher = lkl_run_bin();
        let mut argv = wrapper.to_vec();
        argv.extend([launcher.to_str().unwrap(), "--iface", &iface, "--", "true"]);
        command_in(ns, argv[0], &argv[1..], &[]).output().unwrap()
    };
    // Without CAP_NET_RAW (setpriv drops it for the launcher it execs).
    let out = run(&[
        "setpriv",
        "--inh-caps=-net_raw",
        "--bounding-set=-net_raw",
        "--",
    ]);
    assert_fails(&out, 16, "no CAP_NET_RAW");
    // Hides the tools `$T` in a private mount namespace.
    let hide = "for t in $T; do mount --bind /dev/null /usr/sbin/$t || exit 1; done; exec \"$@\"";
    let hiding = |tools: &str| {
        let launcher = lkl_run_bin();
        let t = format!("T={tools}");
        let argv = [
            "env",
            &t,
            "unshare",
            "--mount",
            "sh",
            "-c",
            hide,
            "sh",
            launcher.to_str().unwrap(),
            "--check",
            "--iface",
            &iface,
            "--",
            "true",
        ];
        command_in(ns, argv[0], &argv[1..], &[]).output().unwrap()
    };
    // Neither nft nor any iptables.
    let out = hiding("nft iptables ip6tables iptables-legacy ip6tables-legacy");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(17), "{stdout}");
    assert!(
        stdout.contains("FAIL  neither nft nor iptables"),
        "{stdout}"
    );
    // Only the legacy iptables, which the firewall tries too.
    let out = hiding("nft iptables ip6tables");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("ok    firewall tools iptables-legacy\n"),
        "{stdout}"
    );
}

#[test]
fn check_reports_a_healthy_and_a_broken_setup() {
    let topo = VenetTopology::builder().build().unwrap();
    let ns = topo.container_ns();
    let healthy = lkl_run(ns, &["--check", "--", "/usr/bin/python3", "-V"]);
    let report = String::from_utf8_lossy(&healthy.stdout);
    eprintln!("{report}");
    assert_eq!(healthy.status.code(), Some(0), "{report}");
    for needle in [
        "ok    library ",
        &format!("ok    interface {} up", topo.container_if()),
        &format!("LKL address {} / ", topo.addrs().host_v4),
        "(shared with the host)",
        "ok    program /usr/bin/python3",
        "ok    packet socket",
        "ready",
    ] {
        assert!(report.contains(needle), "{needle:?} not in the report");
    }
    // The check runs nothing.
    assert!(!report.contains("Python 3"), "{report}");

    let broken = lkl_run(ns, &["--check", "--iface", "nosuch0"]);
    let report = String::from_utf8_lossy(&broken.stdout);
    eprintln!("{report}");
    assert_eq!(broken.status.code(), Some(11), "{report}");
    assert!(report.contains("ok    library "), "{report}");
    assert!(
        report
            .lines()
            .last()
            .unwrap()
            .starts_with("FAIL  --iface nosuch0"),
        "{report}"
    );
}
