//! Nothing is left behind: not after a drop, not after a failed build, not after a killed test.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use common::{ip_netns_list, process_gone};
use lkl_rig::{Topology, VenetTopology, VethTopology};

/// These tests look at every namespace this process owns: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn my_namespaces() -> Vec<String> {
    let pid = std::process::id();
    let mine = [format!("lklc-{pid}-"), format!("lklp-{pid}-")];
    ip_netns_list()
        .into_iter()
        .filter(|n| mine.iter().any(|m| n.starts_with(m)))
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dropping_topologies_leaves_no_namespace_and_no_process() {
    let _serial = serial();
    let venet = VenetTopology::builder().delay_ms(1.0).build().unwrap();
    let veth = VethTopology::new().unwrap();
    let forwarder = venet.forwarder_pid();
    let stats_file = venet.stats_file().to_path_buf();
    venet.forwarder_stats().unwrap();
    assert!(stats_file.exists());
    let topologies: [&dyn Topology; 2] = [&venet, &veth];
    let mut names = Vec::new();
    let mut sleepers: Vec<Child> = Vec::new();
    for ns in topologies
        .iter()
        .flat_map(|t| [t.container_ns(), t.peer_ns()])
    {
        names.push(ns.name().to_string());
        let sleeper = ns.command("sleep").unwrap().arg("60").spawn().unwrap();
        wait_until("the sleeper is in its namespace", || {
            ns.pids().unwrap().contains(&sleeper.id())
        });
        sleepers.push(sleeper);
    }
    let listed = ip_netns_list();
    assert!(
        names.iter().all(|n| listed.contains(n)),
        "{names:?} not all in {listed:?}"
    );

    drop(venet);
    drop(veth);

    let listed = ip_netns_list();
    assert!(
        names.iter().all(|n| !listed.contains(n)),
        "{names:?} left in {listed:?}"
    );
    assert!(process_gone(forwarder), "forwarder {forwarder} still runs");
    for mut sleeper in sleepers {
        let status = sleeper.wait().unwrap();
        assert!(
            status.signal().is_some(),
            "sleeper {} ended with {status}",
            sleeper.id()
        );
    }
    assert!(!stats_file.exists(), "{} left behind", stats_file.display());
    assert_eq!(my_namespaces(), Vec::<String>::new());
}

#[test]
fn bad_impairments_are_refused_before_anything_is_created() {
    let _serial = serial();
    let err = VenetTopology::builder()
        .loss_pct(200.0)
        .build()
        .err()
        .expect("loss 200% accepted");
    assert_eq!(err.to_string(), "--loss 200: expected a percentage 0..100");
    assert_eq!(my_namespaces(), Vec::<String>::new());
}

/// A namespace the rig did not create, removed when the test ends however it ends.
struct Squatter(String);

impl Drop for Squatter {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

#[test]
fn failed_build_removes_what_it_created_and_nothing_else() {
    let _serial = serial();
    let name = format!("fail{}", std::process::id());
    let squatter = Squatter(format!("lklp-{name}"));
    assert!(Command::new("ip")
        .args(["netns", "add", &squatter.0])
        .status()
        .unwrap()
        .success());

    let err = VenetTopology::builder()
        .name(&name)
        .build()
        .err()
        .expect("built over an existing namespace");
    assert_eq!(
        err.to_string(),
        format!("network namespace {} already exists", squatter.0)
    );

    let listed = ip_netns_list();
    assert!(
        !listed.contains(&format!("lklc-{name}")),
        "the half-built container is left: {listed:?}"
    );
    assert!(
        listed.contains(&squatter.0),
        "a namespace the rig did not create was removed"
    );
}

/// Kills the helper process if the test fails before it does.
struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_killed_owner_leaves_nothing_after_the_next_build() {
    let _serial = serial();
    let mut helper = Helper(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "hold_a_topology_until_killed",
                "--ignored",
                "--nocapture",
            ])
            .env("LKL_RIG_HOLD", "1")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = BufReader::new(helper.0.stdout.take().unwrap());
    let line = stdout
        .lines()
        .map(Result::unwrap)
        .find(|l| l.starts_with("HOLD "))
        .expect("the helper printed no HOLD line");
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {line:?}"))
            .to_string()
    };
    let (container, peer) = (field("container="), field("peer="));
    let forwarder: u32 = field("forwarder=").parse().unwrap();
    let sleeper: u32 = field("sleeper=").parse().unwrap();
    assert!(ip_netns_list().contains(&container));

    helper.0.kill().unwrap();
    helper.0.wait().unwrap();
    wait_until("the forwarder notices its owner died", || {
        process_gone(forwarder)
    });

    let _next = VethTopology::new().unwrap();
    let listed = ip_netns_list();
    assert!(
        !listed.contains(&container) && !listed.contains(&peer),
        "stale {container}/{peer} in {listed:?}"
    );
    wait_until("the process left in the stale namespace is killed", || {
        process_gone(sleeper)
    });
}

#[test]
#[ignore = "helper process of a_killed_owner_leaves_nothing_after_the_next_build"]
fn hold_a_topology_until_killed() {
    if std::env::var_os("LKL_RIG_HOLD").is_none() {
        return;
    }
    let topo = VenetTopology::builder().build().unwrap();
    let mut sleeper = topo
        .peer_ns()
        .command("sleep")
        .unwrap()
        .arg("60")
        .spawn()
        .unwrap();
    println!(
        "HOLD container={} peer={} forwarder={} sleeper={}",
        topo.container_ns().name(),
        topo.peer_ns().name(),
        topo.forwarder_pid(),
        sleeper.id()
    );
    // Hold until killed (or for the sleeper's 60 s).
    sleeper.wait().unwrap();
}
