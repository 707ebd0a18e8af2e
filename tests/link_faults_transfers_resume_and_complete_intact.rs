//! Link faults: the echo server example under the preload on LKL's address,
//! a client in the peer sending a long stream and checking every echoed byte, with the rig's
//! forwarder as a bad link between them: a 5 s spell of burst loss of about 20 %, reordering,
//! 1 % duplication, and a 5 s blackhole (both directions dropped). Each transfer must resume
//! and complete intact; the forwarder's counters show the faults were injected.
//!
//! Loss comes in spells, as on real links, rather than for a whole transfer: bursts counted in
//! packets would, on a link that has gone quiet, swallow each of a sender's backed-off
//! retransmissions in turn, and the host kernel's own TCP then stalls for minutes just the same.
//!
//! `LKL_SOAK=1` makes the spells 30 s and the transfers longer.

mod common;
mod echo;
mod run_length;

use std::time::{Duration, Instant};

use common::lkl_v4;
use echo::{assert_alive, echo_from_peer, echo_transfer, start_echo, Alongside, Transfer};
use lkl_rig::forwarder::Stats;
use lkl_rig::{Topology, VenetTopology};
use run_length::soak;

const PORT: u16 = 7;

fn transfer_through(topo: &VenetTopology, bytes: u64, seed: u64, what: &str) -> Transfer {
    let addr = lkl_v4(topo, PORT);
    let mut server = start_echo(topo, addr, &[]);
    let t = topo
        .peer_ns()
        .in_thread(move || echo_transfer(addr, bytes, seed, None, Duration::from_secs(120)))
        .unwrap()
        .unwrap_or_else(|e| {
            panic!(
                "{what}: {e}\nforwarder: {}",
                topo.forwarder_stats()
                    .map(|s| s.summary())
                    .unwrap_or_default()
            )
        });
    let stats = topo.forwarder_stats().unwrap();
    eprintln!(
        "{what}: {} bytes each way verified in {:.1?}\n{}",
        t.verified,
        t.elapsed,
        stats.summary()
    );
    assert_alive(&mut server, what);
    server.terminate(Duration::from_secs(10));
    t
}

/// Runs an endless verified echo transfer, turns a fault on with `switch` for `spell` after it
/// has started, turns it off again, and lets the transfer go on until the link carries traffic
/// again. Returns the transfer and the forwarder's counters before and at the end of the spell.
fn transfer_through_a_spell(
    topo: &VenetTopology,
    seed: u64,
    spell: Duration,
    what: &str,
    switch: fn(&VenetTopology, bool),
) -> (Transfer, Stats, Stats) {
    let addr = lkl_v4(topo, PORT);
    let mut server = start_echo(topo, addr, &[]);
    let alongside = Alongside::start(topo, addr, seed, spell + Duration::from_secs(90));
    std::thread::sleep(Duration::from_millis(700));
    let before = topo.forwarder_stats().unwrap();
    switch(topo, true);
    let started = Instant::now();
    std::thread::sleep(spell);
    switch(topo, false);
    let during = topo.forwarder_stats().unwrap();
    eprintln!(
        "{what} for {:.1?}:\n{}",
        started.elapsed(),
        during.summary()
    );
    // The transfer must move again: wait for new traffic, then let it run a while.
    let resumed = Instant::now();
    let mut moving = false;
    while resumed.elapsed() < Duration::from_secs(70) {
        std::thread::sleep(Duration::from_millis(200));
        let now = topo.forwarder_stats().unwrap();
        if now.b2a.forwarded > during.b2a.forwarded + 1000 {
            moving = true;
            break;
        }
    }
    eprintln!(
        "traffic moving again {:.1?} after the {what} ended: {moving}",
        resumed.elapsed()
    );
    std::thread::sleep(Duration::from_secs(1));
    let t = alongside.finish().unwrap_or_else(|e| panic!("{what}: {e}"));
    eprintln!(
        "{what}: {} bytes each way verified in {:.1?}",
        t.verified, t.elapsed
    );
    assert!(moving, "no traffic within 70 s after the {what}");
    assert_alive(&mut server, &format!("after the {what}"));
    // And a new connection works.
    echo_from_peer(topo, addr, 1 << 20, seed + 100)
        .unwrap_or_else(|e| panic!("new connection after the {what}: {e}"));
    server.terminate(Duration::from_secs(10));
    (t, before, during)
}

fn spell() -> Duration {
    Duration::from_secs(if soak() { 30 } else { 5 })
}

#[test]
fn a_transfer_completes_intact_through_a_spell_of_20_percent_burst_loss() {
    // A burst of 5 starts with probability 5 %: 0.25 / 1.2 = ~21 % of the packets lost.
    let topo = VenetTopology::builder()
        .burst_loss(5.0, 5)
        .delay_ms(1.0)
        .seed(7)
        .build()
        .unwrap();
    topo.set_faults(false).unwrap();
    let switch = |topo: &VenetTopology, on| topo.set_faults(on).unwrap();
    let (_, before, during) = transfer_through_a_spell(&topo, 1, spell(), "burst loss", switch);
    assert_eq!(
        before.a2b.burst_lost + before.b2a.burst_lost,
        0,
        "loss before the spell"
    );
    let lost = during.a2b.burst_lost + during.b2a.burst_lost;
    let seen =
        during.a2b.received + during.b2a.received - before.a2b.received - before.b2a.received;
    eprintln!("burst-lost {lost} of {seen} packets in the spell");
    assert!(
        lost * 100 >= seen * 10,
        "less loss than intended: {lost} of {seen}"
    );
}

#[test]
fn a_transfer_completes_intact_through_reordering() {
    let topo = VenetTopology::builder()
        .reorder_pct(10.0)
        .delay_ms(2.0)
        .seed(8)
        .build()
        .unwrap();
    let bytes = if soak() { 256 << 20 } else { 32 << 20 };
    transfer_through(&topo, bytes, 2, "10 % reordering");
    let s = topo.forwarder_stats().unwrap();
    assert!(s.a2b.reordered + s.b2a.reordered > 100, "{}", s.summary());
}

#[test]
fn a_transfer_completes_intact_through_1_percent_duplication() {
    let topo = VenetTopology::builder()
        .duplicate_pct(1.0)
        .delay_ms(1.0)
        .seed(9)
        .build()
        .unwrap();
    let bytes = if soak() { 256 << 20 } else { 32 << 20 };
    transfer_through(&topo, bytes, 3, "1 % duplication");
    let s = topo.forwarder_stats().unwrap();
    assert!(s.a2b.duplicated + s.b2a.duplicated > 100, "{}", s.summary());
}

#[test]
fn a_transfer_resumes_after_a_blackhole_and_completes_intact() {
    let topo = VenetTopology::builder().delay_ms(1.0).build().unwrap();
    let switch = |topo: &VenetTopology, on| topo.set_blackhole(on).unwrap();
    let (_, _, during) = transfer_through_a_spell(&topo, 4, spell(), "blackhole", switch);
    assert!(during.a2b.blackholed + during.b2a.blackholed > 0);
}
