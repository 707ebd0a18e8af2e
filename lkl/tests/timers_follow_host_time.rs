//! Kernel timers and clocks track the host's: sleeps last as long as asked, time (the
//! clocksource and jiffies) moves on while the kernel sits idle, and the timer wheel, which the
//! tick drives (TCP's retransmission timers live there), fires.

mod common;

use std::time::{Duration, Instant};

use lkl::consts::{SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM};
use lkl::sys::{CLOCK_MONOTONIC, EPOLLIN, EPOLL_CTL_ADD};
use lkl::{EpollEvent, Errno};

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

/// A SYN dropped because the listener's accept queue is full is only sent again when TCP's
/// retransmission timer (a timer-wheel timer, initial RTO 1 s) fires.
#[test]
fn a_dropped_syn_is_retransmitted_by_the_timer_wheel() {
    let k = common::kernel();
    let (probe, addr) = common::listener(k, "127.0.0.1:0");
    k.close(probe).unwrap();
    let listener = k
        .socket(common::family(&addr), SOCK_STREAM | SOCK_CLOEXEC, 0)
        .unwrap();
    k.bind(listener, &addr).unwrap();
    // Backlog 0: the accept queue holds one connection; further SYNs are dropped.
    k.listen(listener, 0).unwrap();
    let first = common::connect(k, &addr);

    let second = k
        .socket(
            common::family(&addr),
            SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
            0,
        )
        .unwrap();
    let started = Instant::now();
    assert_eq!(k.connect(second, &addr), Err(Errno::EINPROGRESS));
    std::thread::sleep(Duration::from_millis(200));
    let (accepted, _) = k.accept4(listener, SOCK_CLOEXEC).unwrap();

    let epfd = k.epoll_create1(0).unwrap();
    k.epoll_ctl(
        epfd,
        EPOLL_CTL_ADD,
        listener,
        Some(EpollEvent {
            events: EPOLLIN,
            data: 0,
        }),
    )
    .unwrap();
    let mut events = [EpollEvent::default()];
    let ready = k.epoll_pwait(epfd, &mut events, 5000).unwrap();
    let took = started.elapsed();
    assert_eq!(ready, 1, "the retransmitted SYN never came ({took:?})");
    assert!(
        took >= Duration::from_millis(900),
        "no retransmission needed? {took:?}"
    );

    for fd in [first, second, accepted, epfd, listener] {
        k.close(fd).unwrap();
    }
}
