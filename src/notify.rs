//! LKL readiness made visible to the host: a notifier on an LKL file (kernel side in
//! lkl-sys/arch/lkl/kernel/notify.c) signals a host eventfd, so one host wait (poll, epoll)
//! covers host fds and LKL sockets together. The eventfd only says "look again"; readiness
//! itself is always read from LKL.

use std::ffi::{c_int, c_long, c_void};

use lkl::sys::{__NR_lkl_notify_add, __NR_lkl_notify_del};

use crate::ffi::{host_result, SysResult};
use crate::{host, stack};

/// A host eventfd, nonblocking and close-on-exec.
pub struct EventFd(c_int);

impl EventFd {
    pub fn new() -> SysResult<EventFd> {
        // SAFETY: eventfd takes no pointers.
        host_result(unsafe { host::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })
            .map(EventFd)
    }

    pub fn fd(&self) -> c_int {
        self.0
    }

    /// Resets the counter (the next signal makes it readable again).
    pub fn drain(&self) {
        let mut count = 0u64;
        // SAFETY: reads 8 bytes into a live u64; nonblocking, so it never waits.
        unsafe { host::read(self.0, (&mut count as *mut u64).cast(), 8) };
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once.
        unsafe { host::close(self.0) };
    }
}

/// Called by the kernel, in any context, when the watched file's queue wakes. A raw write
/// (no hook, no lock, no allocation): it may run in the kernel's softirq.
extern "C" fn signal_eventfd(arg: *mut c_void) {
    let one = 1u64;
    // SAFETY: writes 8 bytes from a live u64 to the eventfd number carried in `arg`, which
    // stays open while the notifier exists (owners drop the notifier first).
    unsafe {
        libc::syscall(
            libc::SYS_write,
            arg as usize as c_long,
            &one as *const u64,
            8usize,
        )
    };
}

/// Signals an eventfd whenever an LKL file may have become ready; detached on drop. The
/// eventfd must outlive it.
pub struct Notifier(c_long);

impl Notifier {
    pub fn attach(lkl_fd: lkl::Fd, efd: &EventFd) -> SysResult<Notifier> {
        let callback: extern "C" fn(*mut c_void) = signal_eventfd;
        // SAFETY: the callback is a function of this library (alive for the process), the
        // argument is a plain number; the kernel only calls the callback with it.
        unsafe {
            stack::call(
                __NR_lkl_notify_add,
                [
                    c_long::from(lkl_fd),
                    callback as usize as c_long,
                    c_long::from(efd.fd()),
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
        let _ = unsafe { stack::call(__NR_lkl_notify_del, [self.0, 0, 0, 0, 0, 0]) };
    }
}
