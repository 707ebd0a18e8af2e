//! Busy polling: a thread about to sleep on an LKL socket or epoll instance first polls LKL's
//! network device itself, for the time Linux's busy-poll settings give (`SO_BUSY_POLL`,
//! `net.core.busy_read` for a socket; `net.core.busy_poll` for epoll), so that a packet
//! arriving meanwhile is taken in by the waiting thread, not handed across the backend's
//! thread, an irq and a wake-up (kernel side: lkl-sys/arch/lkl/kernel/busy_poll.c). Nothing
//! spins when no thread waits.

use std::ffi::c_long;
use std::time::Instant;

use lkl::sys::__NR_lkl_busy_wait;
use lkl::Errno;

use crate::kernel;

/// Polls until `fd` (an LKL socket or epoll instance) is ready for `events` or its busy-poll
/// time is up. True when the caller should look again at once, false when it should sleep.
pub fn wait(fd: lkl::Fd, events: i16) -> bool {
    let start = Instant::now();
    loop {
        let spent = u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX);
        // SAFETY: no pointers; the call only polls.
        let r = unsafe {
            kernel::call(
                __NR_lkl_busy_wait,
                [
                    c_long::from(fd),
                    c_long::from(events as u16),
                    c_long::from(spent),
                    0,
                    0,
                    0,
                ],
            )
        };
        match r {
            // The kernel stepped out for its interrupts: its time is not over yet.
            Err(Errno::EAGAIN) => continue,
            Ok(ready) => return ready > 0,
            Err(_) => return false,
        }
    }
}
