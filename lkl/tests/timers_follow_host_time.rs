//! Kernel timers and clocks track the host's: sleeps last as long as asked, and time (the
//! clocksource and jiffies) moves on while the kernel sits idle.

mod common;

use std::time::{Duration, Instant};

use lkl::sys::CLOCK_MONOTONIC;

#[test]
fn a_10ms_nanosleep_takes_10_to_30ms() {
    let k = common::kernel();
    let mut took: Vec<Duration> = (0..7)
        .map(|_| {
            let start = Instant::now();
            k.nanosleep(Duration::from_millis(10)).unwrap();
            start.elapsed()
        })
        .collect();
    took.sort();
    assert!(took[0] >= Duration::from_millis(10), "woke early: {took:?}");
    // The median: one late wake-up on a shared, busy 2-core machine is not a kernel bug.
    assert!(
        took[took.len() / 2] <= Duration::from_millis(30),
        "too slow: {took:?}"
    );
}

#[test]
fn clocks_and_jiffies_advance_while_idle() {
    let k = common::kernel();
    let mono0 = k.clock_gettime(CLOCK_MONOTONIC).unwrap();
    let ticks0 = k.times().unwrap();
    let host0 = Instant::now();
    // The kernel has nothing to do meanwhile.
    std::thread::sleep(Duration::from_millis(300));
    let mono1 = k.clock_gettime(CLOCK_MONOTONIC).unwrap();
    let ticks1 = k.times().unwrap();
    let host = host0.elapsed();

    let mono = mono1 - mono0;
    assert!(
        mono >= Duration::from_millis(300) && mono <= host + Duration::from_millis(50),
        "kernel {mono:?}, host {host:?}"
    );
    // times() counts USER_HZ (100/s) ticks derived from jiffies.
    let ticks = ticks1 - ticks0;
    assert!(
        (25..=(host.as_millis() as i64 / 10 + 5)).contains(&ticks),
        "{ticks} ticks in {host:?}"
    );
}
