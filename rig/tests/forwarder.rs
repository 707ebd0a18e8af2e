//! The forwarder's link emulation, measured through the venet topology.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{ping, ping_avg_ms, tcp_transfer, udp_numbered, MIB};
use lkl_rig::{Topology, VenetTopology};

const PACKETS: u32 = 10_000;

/// Sends PACKETS numbered datagrams peer -> container and returns the numbers received.
fn blast(topo: &VenetTopology) -> Vec<u32> {
    udp_numbered(
        topo.peer_ns(),
        topo.container_ns(),
        topo.addrs().host_v4.into(),
        PACKETS,
    )
    .unwrap()
}

#[test]
fn random_loss_drops_the_configured_share() {
    let topo = VenetTopology::builder()
        .loss_pct(2.0)
        .seed(11)
        .build()
        .unwrap();
    let got = blast(&topo);
    let s = topo.forwarder_stats().unwrap().b2a;
    assert_eq!(s.received, u64::from(PACKETS), "{s:?}");
    let loss = s.lost as f64 / s.received as f64;
    assert!((0.01..=0.03).contains(&loss), "loss {loss}: {s:?}");
    assert_eq!(s.forwarded, s.received - s.lost, "{s:?}");
    assert_eq!(got.len() as u64, s.forwarded, "receiver count");
}

#[test]
fn duplication_sends_the_configured_share_twice() {
    let topo = VenetTopology::builder()
        .duplicate_pct(10.0)
        .seed(12)
        .build()
        .unwrap();
    let got = blast(&topo);
    let s = topo.forwarder_stats().unwrap().b2a;
    let dup = s.duplicated as f64 / s.received as f64;
    assert!((0.08..=0.12).contains(&dup), "duplication {dup}: {s:?}");
    assert_eq!(s.forwarded, s.received + s.duplicated, "{s:?}");
    assert_eq!(got.len() as u64, s.forwarded, "receiver count");
}

#[test]
fn reordering_swaps_the_configured_share_with_the_next_packet() {
    let topo = VenetTopology::builder()
        .reorder_pct(10.0)
        .seed(13)
        .build()
        .unwrap();
    let got = blast(&topo);
    let s = topo.forwarder_stats().unwrap().b2a;
    let inversions = got.windows(2).filter(|w| w[1] < w[0]).count() as u64;
    let share = s.reordered as f64 / s.received as f64;
    assert!((0.08..=0.12).contains(&share), "reordered {share}: {s:?}");
    // A held packet goes out right after its successor: one inversion each (a few leave alone
    // after the hold timeout, at the end of a burst).
    assert!(
        inversions <= s.reordered && inversions * 10 >= s.reordered * 9,
        "{inversions} inversions: {s:?}"
    );
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..PACKETS).collect::<Vec<_>>(),
        "every packet arrives once"
    );
}

#[test]
fn burst_loss_drops_runs_of_the_configured_length() {
    let topo = VenetTopology::builder()
        .burst_loss(1.0, 5)
        .seed(14)
        .build()
        .unwrap();
    let got = blast(&topo);
    let s = topo.forwarder_stats().unwrap().b2a;
    assert!(s.burst_lost > 0 && s.burst_lost % 5 == 0, "{s:?}");
    // Each burst drops 5 packets: ~1% of bursts started on the packets not already dropped.
    let share = s.burst_lost as f64 / s.received as f64;
    assert!((0.03..=0.07).contains(&share), "burst loss {share}: {s:?}");
    let gaps: Vec<u32> = got
        .windows(2)
        .map(|w| w[1] - w[0] - 1)
        .filter(|&g| g > 0)
        .collect();
    assert!(gaps.iter().all(|g| g % 5 == 0), "gaps {gaps:?}");
}

#[test]
fn same_seed_drops_the_same_packets() {
    let run = |seed| {
        let topo = VenetTopology::builder()
            .loss_pct(5.0)
            .seed(seed)
            .build()
            .unwrap();
        udp_numbered(
            topo.peer_ns(),
            topo.container_ns(),
            topo.addrs().host_v4.into(),
            2000,
        )
        .unwrap()
    };
    let first = run(21);
    assert_eq!(first, run(21));
    assert_ne!(first, run(22));
}

#[test]
fn delay_adds_twice_its_value_to_the_round_trip() {
    let topo = VenetTopology::builder().delay_ms(20.0).build().unwrap();
    let a = topo.addrs();
    for addr in [IpAddr::from(a.host_v4), IpAddr::from(a.host_v6)] {
        let rtt = ping_avg_ms(&ping(topo.peer_ns(), addr, 5).unwrap());
        // Never below twice the delay; the upper bound leaves room for a loaded machine.
        assert!((40.0..70.0).contains(&rtt), "rtt {rtt} ms to {addr}");
    }
}

#[test]
fn rate_limit_caps_tcp_throughput() {
    let topo = VenetTopology::builder()
        .rate_mbit(20.0)
        .delay_ms(5.0)
        .build()
        .unwrap();
    let a = topo.addrs();
    let t = tcp_transfer(
        topo.container_ns(),
        a.host_v4.into(),
        topo.peer_ns(),
        4 * MIB,
        Duration::from_secs(20),
    )
    .unwrap();
    let rate = t.mbit_per_s();
    let s = topo.forwarder_stats().unwrap();
    eprintln!("20 Mbit/s limit: {rate:.1} Mbit/s goodput, {s:?}");
    // Never above the limit; the lower bound leaves room for a loaded machine.
    assert!((10.0..=20.5).contains(&rate), "goodput {rate} Mbit/s");
}

#[test]
fn blackhole_drops_everything_until_turned_off() {
    let topo = VenetTopology::builder().build().unwrap();
    let host: IpAddr = topo.addrs().host_v4.into();
    ping(topo.peer_ns(), host, 1).unwrap();
    topo.set_blackhole(true).unwrap();
    let err = ping(topo.peer_ns(), host, 2).unwrap_err().to_string();
    assert!(err.contains("100% packet loss"), "{err}");
    let s = topo.forwarder_stats().unwrap();
    assert!(s.switches.blackhole && s.b2a.blackholed == 2, "{s:?}");
    topo.set_blackhole(false).unwrap();
    ping(topo.peer_ns(), host, 1).unwrap();
    assert!(!topo.forwarder_stats().unwrap().switches.blackhole);
}

#[test]
fn random_faults_apply_only_while_switched_on() {
    let topo = VenetTopology::builder().loss_pct(100.0).build().unwrap();
    let host: IpAddr = topo.addrs().host_v4.into();
    let err = ping(topo.peer_ns(), host, 1).unwrap_err().to_string();
    assert!(err.contains("100% packet loss"), "{err}");
    topo.set_faults(false).unwrap();
    ping(topo.peer_ns(), host, 2).unwrap();
    let s = topo.forwarder_stats().unwrap();
    assert!(!s.switches.faults && s.b2a.lost == 1, "{s:?}");
    topo.set_faults(true).unwrap();
    let err = ping(topo.peer_ns(), host, 1).unwrap_err().to_string();
    assert!(err.contains("100% packet loss"), "{err}");
    assert_eq!(topo.forwarder_stats().unwrap().b2a.lost, 2);
}
