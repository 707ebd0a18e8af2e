//! The gccgo build of v2ray takes v2ray's own command line: `-version`, `-test` (accepting a
//! good configuration, rejecting a broken one with the message and status Debian's gc-built
//! v2ray gives), `-config` given twice (the files merged), the asset directory from
//! `V2RAY_LOCATION_ASSET` or `v2ray.location.asset`; and a configuration using QUIC, which
//! this build lacks, stops it at start under lkl-run with one line naming QUIC.

mod apps;
mod common;
mod v2ray;

use std::process::{Command, Output};
use std::time::Duration;

use common::Server;
use lkl_rig::Topology;
use v2ray::{assert_running, config, gc_v2ray, gccgo_v2ray, Rig};

/// The QUIC transport's one line (v2ray/overlay/.../quic/unavailable.go).
const QUIC_LINE: &str =
    "QUIC transport is not available in this build: gccgo-12 cannot compile quic-go";

fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// stdout and stderr, together.
fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The line of `out` that reports the configuration's verdict (after the version banner and
/// the "Reading config" log line, which differ between the builds).
fn verdict(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn version_prints_v2rays_version() {
    let out = run(gccgo_v2ray(), &["-version"], &[]);
    assert!(
        out.status.success(),
        "-version: {}\n{}",
        out.status,
        text(&out)
    );
    assert!(
        text(&out).starts_with("V2Ray 4.34.0 "),
        "-version printed {:?}",
        text(&out)
    );
}

#[test]
fn test_flag_accepts_a_good_config_and_rejects_a_broken_one_as_upstream_does() {
    let good = config("vmess-tcp.server.json");
    let out = run(
        gccgo_v2ray(),
        &["-test", "-config", good.to_str().unwrap()],
        &[],
    );
    assert!(
        out.status.success(),
        "-test on a good config: {}\n{}",
        out.status,
        text(&out)
    );
    assert_eq!(verdict(&out), "Configuration OK.");

    let broken = config("broken.server.json");
    let args = ["-test", "-config", broken.to_str().unwrap()];
    let ours = run(gccgo_v2ray(), &args, &[]);
    let theirs = run(gc_v2ray(), &args, &[]);
    assert_eq!(
        theirs.status.code(),
        Some(23),
        "Debian's v2ray: {}",
        text(&theirs)
    );
    assert_eq!(
        ours.status.code(),
        Some(23),
        "-test on a broken config: {}",
        text(&ours)
    );
    assert!(
        verdict(&ours).contains("failed to parse ID"),
        "-test on a broken config said {:?}",
        verdict(&ours)
    );
    assert_eq!(
        verdict(&ours),
        verdict(&theirs),
        "the message differs from Debian's v2ray"
    );
}

/// No Debian package ships geoip.dat or geosite.dat, so the asset directory is shown to be the
/// one the environment names by where v2ray looks for the file a geoip: rule needs.
#[test]
fn the_asset_directory_comes_from_the_environment() {
    let geo = config("geoip-rule.json");
    let args = ["-test", "-config", geo.to_str().unwrap()];
    for var in ["V2RAY_LOCATION_ASSET", "v2ray.location.asset"] {
        let out = run(gccgo_v2ray(), &args, &[(var, "/nonexistent/v2ray-assets")]);
        assert_eq!(out.status.code(), Some(23), "{var}: {}", text(&out));
        assert!(
            verdict(&out)
                .ends_with("open /nonexistent/v2ray-assets/geoip.dat: no such file or directory"),
            "{var}: {:?}",
            verdict(&out)
        );
    }
}

#[test]
fn config_given_twice_merges_both_files_under_lkl_run() {
    let rig = Rig::new("v2ray-split", apps::MIB);
    let (socks, http) = (config("split-socks.json"), config("split-http.json"));
    let mut server = Server::spawn(
        rig.lkl_run_v2ray_args(
            "1080,8080",
            &[
                "-config",
                socks.to_str().unwrap(),
                "-config",
                http.to_str().unwrap(),
            ],
            &[],
        ),
        "gccgo v2ray with two -config files (lkl-run)",
    );
    for port in [1080, 8080] {
        server.wait_listening(
            rig.topo.peer_ns(),
            rig.server_addr(port),
            Duration::from_secs(30),
        );
    }
    rig.fetch_through(
        &format!("socks5://{}", rig.server_addr(1080)),
        "first file's inbound",
    );
    rig.fetch_through(
        &format!("http://{}", rig.server_addr(8080)),
        "second file's inbound",
    );
    assert_running(&mut server);
}

#[test]
fn a_config_using_quic_stops_v2ray_at_start_with_one_line_naming_it() {
    let rig = Rig::new("v2ray-quic", 1);
    let mut server = Server::spawn(
        rig.lkl_run_v2ray("10091", &config("quic.server.json"), &[]),
        "gccgo v2ray with a QUIC inbound (lkl-run)",
    );
    let status = server.wait_for_exit(Duration::from_secs(30));
    let output = server.output();
    assert!(
        !status.success(),
        "v2ray with QUIC exited {status}\n{output}"
    );
    let lines: Vec<&str> = output.lines().filter(|l| l.contains("QUIC")).collect();
    assert_eq!(lines.len(), 1, "want one line about QUIC:\n{output}");
    assert!(
        lines[0].ends_with(QUIC_LINE),
        "the line does not end with {QUIC_LINE:?}: {:?}",
        lines[0]
    );
}
