//! Signals held back while a wait that may sleep looks at LKL first (busy polls, reads
//! readiness). A handler that ran then would be missed by the host sleep that follows, and a
//! program whose handler is meant to interrupt its epoll_wait or poll (nginx's SIGTERM) would
//! sleep on. As pselect(2) does, the sleep lets them in atomically: one that came meanwhile
//! interrupts it at once (EINTR).

use libc::sigset_t;

/// The thread's signals blocked until this drops; faults stay deliverable (a bad pointer in
/// a call into LKL must still become EFAULT, see lkl's fault handler).
pub struct Held {
    old: sigset_t,
}

impl Held {
    pub fn new() -> Held {
        // SAFETY: sigset_t is plain data; the calls fill or read live sets, and
        // pthread_sigmask only changes this thread's mask.
        unsafe {
            let mut block: sigset_t = std::mem::zeroed();
            let mut old: sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut block);
            for sync in [
                libc::SIGSEGV,
                libc::SIGBUS,
                libc::SIGFPE,
                libc::SIGILL,
                libc::SIGTRAP,
                libc::SIGSYS,
            ] {
                libc::sigdelset(&mut block, sync);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old);
            Held { old }
        }
    }

    /// The mask for the host's sleep: the caller's own (epoll_pwait, ppoll), else the one
    /// the thread had.
    pub fn sleep_mask(&self, caller: *const sigset_t) -> *const sigset_t {
        if caller.is_null() {
            &self.old
        } else {
            caller
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: puts back the mask `new` saved, on the same thread (Held is not Send: it
        // holds a raw sigset and is only made and dropped inside one call).
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}
