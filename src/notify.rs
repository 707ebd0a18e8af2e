//! LKL readiness made visible to the host: a notifier on an LKL file (kernel side in
//! lkl-sys/arch/lkl/kernel/notify.c) signals a host eventfd, so one host wait (poll, epoll)
//! covers host fds and LKL sockets together. The eventfd only says "look again"; readiness
//! itself is always read from LKL.

use std::cell::OnceCell;
use std::ffi::{c_int, c_long, c_void};
use std::sync::atomic::{AtomicBool, Ordering};

use lkl::sys::{__NR_lkl_notify_add, __NR_lkl_notify_del};

use crate::ffi::{host_result, SysResult};
use crate::{host, kernel};

/// A host eventfd (close-on-exec).
pub struct EventFd {
    fd: c_int,
    blocking: bool,
    /// What the notifiers signal through (boxed: they hold its address).
    signal: Box<Signal>,
}

/// The eventfd's number, and whether a notifier wrote to it since the last drain: until the
/// next drain, more writes would only cost system calls (a thread that busy polls sees many
/// readiness changes and drains only before it sleeps).
struct Signal {
    fd: c_int,
    signalled: AtomicBool,
}

impl EventFd {
    /// A blocking one can be slept on with read(2), which the host restarts after a signal
    /// handler installed with SA_RESTART, exactly as it would restart the program's call.
    pub fn new(blocking: bool) -> SysResult<EventFd> {
        let flags = libc::EFD_CLOEXEC | if blocking { 0 } else { libc::EFD_NONBLOCK };
        // SAFETY: eventfd takes no pointers.
        let fd = host_result(unsafe { host::eventfd(0, flags) })?;
        let signal = Box::new(Signal {
            fd,
            signalled: AtomicBool::new(false),
        });
        Ok(EventFd {
            fd,
            blocking,
            signal,
        })
    }

    pub fn fd(&self) -> c_int {
        self.fd
    }

    /// Resets the counter (the next signal makes it readable again).
    pub fn drain(&self) {
        // Before the read: a notifier that runs from here on writes again.
        self.signal.signalled.store(false, Ordering::SeqCst);
        if self.blocking {
            let mut p = libc::pollfd {
                fd: self.fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one live pollfd, no wait.
            if unsafe { host::ppoll(&mut p, 1, &ZERO, std::ptr::null()) } != 1 {
                return;
            }
        }
        let mut count = 0u64;
        // SAFETY: reads 8 bytes into a live u64; the eventfd is readable or nonblocking, so
        // this does not wait.
        unsafe { host::read(self.fd, (&mut count as *mut u64).cast(), 8) };
    }

    /// Sleeps until signalled (blocking eventfds only); EINTR when a signal handler without
    /// SA_RESTART ran.
    pub fn wait(&self) -> SysResult<()> {
        debug_assert!(self.blocking);
        let mut count = 0u64;
        // SAFETY: reads 8 bytes into a live u64.
        host_result(unsafe { host::read(self.fd, (&mut count as *mut u64).cast(), 8) }).map(drop)
    }
}

const ZERO: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once.
        unsafe { host::close(self.fd) };
    }
}

thread_local! {
    /// The eventfd this thread's waits sleep on; made on first wait, closed at thread exit.
    static THREAD_WAKE: OnceCell<EventFd> = const { OnceCell::new() };
}

/// Runs `f` with the calling thread's (blocking) wake-up eventfd.
pub fn with_thread_eventfd<T>(f: impl FnOnce(&EventFd) -> SysResult<T>) -> SysResult<T> {
    THREAD_WAKE.with(|w| {
        if w.get().is_none() {
            let _ = w.set(EventFd::new(true)?);
        }
        f(w.get().expect("set above"))
    })
}

/// Called by the kernel, in any context, when the watched file's queue wakes. A raw write
/// (no hook, no lock, no allocation): it may run in the kernel's softirq.
extern "C" fn signal_eventfd(arg: *mut c_void) {
    // SAFETY: `arg` is the Signal of an EventFd, which outlives its notifiers (owners drop
    // the notifier first).
    let signal = unsafe { &*arg.cast_const().cast::<Signal>() };
    if signal.signalled.swap(true, Ordering::SeqCst) {
        return;
    }
    let one = 1u64;
    // SAFETY: writes 8 bytes from a live u64 to the eventfd, open while the notifier exists.
    unsafe {
        lkl::raw_syscall!(
            libc::SYS_write,
            c_long::from(signal.fd),
            &one as *const u64,
            8usize,
        )
    };
}

/// Signals an eventfd whenever an LKL file may have become ready; detached on drop. The
/// eventfd must outlive it.
pub struct Notifier(c_long);

/// Tests: the next attach fails as the kernel's does when it cannot allocate the notifier
/// (ENOMEM), which a test cannot bring about on demand.
#[cfg(test)]
pub static FAIL_NEXT_ATTACH: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

impl Notifier {
    pub fn attach(lkl_fd: lkl::Fd, efd: &EventFd) -> SysResult<Notifier> {
        #[cfg(test)]
        if FAIL_NEXT_ATTACH.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(lkl::Errno::ENOMEM);
        }
        let callback: extern "C" fn(*mut c_void) = signal_eventfd;
        // SAFETY: the callback is a function of this library (alive for the process), the
        // argument the eventfd's Signal, which outlives the notifier; the kernel only calls
        // the callback with it.
        unsafe {
            kernel::call(
                __NR_lkl_notify_add,
                [
                    c_long::from(lkl_fd),
                    callback as usize as c_long,
                    &*efd.signal as *const Signal as c_long,
                    0,
                    0,
                    0,
                ],
            )
        }
        .map(Notifier)
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        // SAFETY: the handle came from lkl_notify_add and is given back exactly once.
        let _ = unsafe { kernel::call(__NR_lkl_notify_del, [self.0, 0, 0, 0, 0, 0]) };
    }
}
