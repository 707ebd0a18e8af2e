//! Time: the monotonic clock and one-shot timers, each a host thread that sleeps until its
//! deadline and then calls the kernel.

use std::ffi::{c_int, c_ulonglong, c_void};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use std::sync::{Condvar, Mutex};

use super::no_unwind;
use super::threads::{join, spawn_library_thread};
use crate::locks::{lock, wait, wait_until};
use crate::sys;

pub(super) unsafe extern "C" fn time_ns() -> c_ulonglong {
    no_unwind("time_ns", monotonic_ns)
}

/// CLOCK_MONOTONIC in ns: the kernel's clock, and one clock for all of a program's processes.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A one-shot timer: a host thread that sleeps until the deadline and then calls the kernel.
/// `Instant` is CLOCK_MONOTONIC on Linux, the clock `time_ns` reports.
pub(super) struct Timer {
    state: Mutex<TimerState>,
    changed: Condvar,
    func: unsafe extern "C" fn(*mut c_void),
    arg: *mut c_void,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct TimerState {
    deadline: Option<Instant>,
    stopped: bool,
}

// SAFETY: `arg` is only handed back to the kernel's `func`, which the ABI runs on a host
// thread of the host's choosing; everything else is behind locks.
unsafe impl Send for Timer {}
// SAFETY: as above.
unsafe impl Sync for Timer {}

/// Timers allocated and not yet freed, so a halt can stop any the kernel left behind.
pub(super) static TIMERS: Mutex<Vec<Arc<Timer>>> = Mutex::new(Vec::new());

impl Timer {
    fn run(&self) {
        let mut state = lock(&self.state);
        loop {
            if state.stopped {
                return;
            }
            state = match state.deadline {
                None => wait(&self.changed, state),
                Some(deadline) if Instant::now() < deadline => {
                    wait_until(&self.changed, state, deadline)
                }
                Some(_) => {
                    state.deadline = None;
                    // Unlocked while the kernel runs: its handler re-arms this same timer.
                    drop(state);
                    // SAFETY: the kernel's callback for this timer, as it asked.
                    unsafe { (self.func)(self.arg) };
                    lock(&self.state)
                }
            }
        }
    }

    /// Cancels the timer and waits until its callback is not running and never will be.
    fn stop(&self) {
        lock(&self.state).stopped = true;
        self.changed.notify_all();
        let Some(thread) = lock(&self.thread).take() else {
            return;
        };
        if thread.thread().id() == thread::current().id() {
            log::error!(target: "lkl", "a timer was freed from its own callback; aborting");
            std::process::abort();
        }
        join(thread);
    }
}

pub(super) unsafe extern "C" fn timer_alloc(
    func: Option<unsafe extern "C" fn(*mut c_void)>,
    arg: *mut c_void,
) -> *mut sys::lkl_timer {
    no_unwind("timer_alloc", || {
        let Some(func) = func else {
            return std::ptr::null_mut();
        };
        let timer = Arc::new(Timer {
            state: Mutex::new(TimerState {
                deadline: None,
                stopped: false,
            }),
            changed: Condvar::new(),
            func,
            arg,
            thread: Mutex::new(None),
        });
        let runner = Arc::clone(&timer);
        match spawn_library_thread("lkl-timer", move || runner.run()) {
            Ok(handle) => *lock(&timer.thread) = Some(handle),
            Err(e) => {
                log::error!(target: "lkl", "cannot start a timer thread: {e}");
                return std::ptr::null_mut();
            }
        }
        lock(&TIMERS).push(Arc::clone(&timer));
        Arc::into_raw(timer).cast_mut().cast()
    })
}

pub(super) unsafe extern "C" fn timer_set_oneshot(
    timer: *mut sys::lkl_timer,
    delta_ns: c_ulonglong,
) -> c_int {
    no_unwind("timer_set_oneshot", || {
        // SAFETY: a live timer from timer_alloc (the raw pointer holds one Arc reference).
        let timer = unsafe { &*timer.cast_const().cast::<Timer>() };
        // An expiry beyond Instant's range is as good as never.
        lock(&timer.state).deadline = Instant::now().checked_add(Duration::from_nanos(delta_ns));
        timer.changed.notify_all();
        0
    })
}

pub(super) unsafe extern "C" fn timer_free(timer: *mut sys::lkl_timer) {
    no_unwind("timer_free", || {
        if timer.is_null() {
            return;
        }
        // SAFETY: the reference timer_alloc leaked into the raw pointer; the kernel frees once.
        let timer = unsafe { Arc::from_raw(timer.cast_const().cast::<Timer>()) };
        timer.stop();
        lock(&TIMERS).retain(|t| !Arc::ptr_eq(t, &timer));
    })
}

/// Stops the timers the kernel did not free before halting (their callbacks must not enter a
/// halted kernel, and their threads must not outlive it).
pub(crate) fn stop_leftover_timers() {
    let left = std::mem::take(&mut *lock(&TIMERS));
    if !left.is_empty() {
        log::debug!(target: "lkl", "stopping {} timer(s) the kernel left armed at halt", left.len());
    }
    for timer in left {
        timer.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::c_void;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::thread;
    use std::time::{Duration, Instant};

    use crate::host_ops::{op, OPS};
    use crate::sys;

    #[test]
    fn time_is_monotonic_nanoseconds() {
        // SAFETY: no preconditions.
        let (a, b) = unsafe {
            let a = op(OPS.time_ns)();
            thread::sleep(Duration::from_millis(20));
            (a, op(OPS.time_ns)())
        };
        assert!(b - a >= 20_000_000, "{a} -> {b}");
        assert!(b - a < 2_000_000_000, "{a} -> {b}");
    }

    /// Timer callback argument: counts expiries and re-arms itself while `rearm` > 0.
    struct Probe {
        fired: mpsc::Sender<Instant>,
        rearm: AtomicUsize,
        timer: AtomicUsize,
    }

    unsafe extern "C" fn probe_fired(arg: *mut c_void) {
        // SAFETY: the test keeps the probe alive until the timer is freed.
        let probe = unsafe { &*arg.cast::<Probe>() };
        let _ = probe.fired.send(Instant::now());
        if probe.rearm.load(Ordering::SeqCst) > 0 {
            probe.rearm.fetch_sub(1, Ordering::SeqCst);
            // Re-arming from inside the callback must not deadlock.
            // SAFETY: the timer is live while its callback runs.
            unsafe {
                op(OPS.timer_set_oneshot)(
                    probe.timer.load(Ordering::SeqCst) as *mut sys::lkl_timer,
                    1_000_000,
                )
            };
        }
    }

    /// Runs `test` with a live timer whose callback reports to the receiver, then frees the
    /// timer; returns the receiver for checks after the free.
    fn with_timer(
        rearm: usize,
        test: impl FnOnce(*mut sys::lkl_timer, &mpsc::Receiver<Instant>),
    ) -> mpsc::Receiver<Instant> {
        let (tx, rx) = mpsc::channel();
        let probe = Box::new(Probe {
            fired: tx,
            rearm: AtomicUsize::new(rearm),
            timer: AtomicUsize::new(0),
        });
        let arg = (&*probe as *const Probe).cast_mut().cast::<c_void>();
        // SAFETY: the probe outlives the timer (freed below, before the probe is dropped).
        let timer = unsafe { op(OPS.timer_alloc)(Some(probe_fired), arg) };
        assert!(!timer.is_null());
        probe.timer.store(timer as usize, Ordering::SeqCst);
        test(timer, &rx);
        // SAFETY: freed once; returns only when the callback cannot run any more.
        unsafe { op(OPS.timer_free)(timer) };
        drop(probe);
        rx
    }

    #[test]
    fn timer_fires_once_after_its_delay() {
        with_timer(0, |timer, fired| {
            let armed = Instant::now();
            // SAFETY: a live timer.
            unsafe { op(OPS.timer_set_oneshot)(timer, 20_000_000) };
            let at = fired.recv_timeout(Duration::from_secs(5)).expect("fires");
            assert!(at - armed >= Duration::from_millis(20), "{:?}", at - armed);
            assert!(
                fired.recv_timeout(Duration::from_millis(100)).is_err(),
                "one shot only"
            );
        });
    }

    #[test]
    fn zero_delay_fires_immediately_and_rearming_replaces_the_deadline() {
        with_timer(0, |timer, fired| {
            // SAFETY: a live timer.
            unsafe {
                op(OPS.timer_set_oneshot)(timer, 0);
                fired
                    .recv_timeout(Duration::from_secs(5))
                    .expect("0 ns fires");
                op(OPS.timer_set_oneshot)(timer, 10_000_000_000);
                let armed = Instant::now();
                op(OPS.timer_set_oneshot)(timer, 10_000_000);
                let at = fired
                    .recv_timeout(Duration::from_secs(5))
                    .expect("the new deadline fires");
                assert!(at - armed < Duration::from_secs(5));
                assert!(
                    fired.recv_timeout(Duration::from_millis(100)).is_err(),
                    "the replaced deadline is gone"
                );
            }
        });
    }

    #[test]
    fn callback_can_rearm_its_own_timer() {
        with_timer(3, |timer, fired| {
            // SAFETY: a live timer.
            unsafe { op(OPS.timer_set_oneshot)(timer, 0) };
            for _ in 0..4 {
                fired
                    .recv_timeout(Duration::from_secs(5))
                    .expect("each re-arm fires");
            }
            assert!(fired.recv_timeout(Duration::from_millis(100)).is_err());
        });
    }

    #[test]
    fn freeing_an_armed_timer_cancels_it_at_once() {
        let start = Instant::now();
        let fired = with_timer(0, |timer, _| {
            // SAFETY: a live timer; with_timer frees it right after this closure.
            unsafe { op(OPS.timer_set_oneshot)(timer, 200_000_000) };
        });
        assert!(
            start.elapsed() < Duration::from_millis(150),
            "timer_free waited for the expiry"
        );
        assert!(fired.try_recv().is_err(), "a cancelled timer never fires");
    }
}
