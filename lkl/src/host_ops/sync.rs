//! Semaphores and mutexes. A kernel mutex is a semaphore that starts at one: the ABI's
//! mutex is not recursive and is unlocked by the thread that locked it, so a count does all
//! it needs.
//!
//! The semaphore is a futex word of its own: no state outside it that a thread of the parent
//! could hold at fork(2) (see `crate::locks`), and no system call on either side unless a
//! thread really sleeps (the kernel hands its CPU over through these on every switch).

use std::ffi::c_int;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use super::no_unwind;
use crate::sys;

struct Semaphore {
    count: AtomicI32,
    /// Threads in `down` that found the count at zero.
    sleepers: AtomicU32,
}

impl Semaphore {
    fn new(count: i32) -> *mut Semaphore {
        Box::into_raw(Box::new(Semaphore {
            count: AtomicI32::new(count),
            sleepers: AtomicU32::new(0),
        }))
    }

    fn up(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        // SeqCst on both sides: either a sleeper sees the new count before it sleeps (the
        // futex refuses to sleep on a changed word), or this sees it counted and wakes it.
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            self.futex(libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1);
        }
    }

    fn down(&self) {
        if self.try_down() {
            return;
        }
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        while !self.try_down() {
            self.futex(libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, 0);
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    fn try_down(&self) -> bool {
        let mut count = self.count.load(Ordering::SeqCst);
        while count > 0 {
            match self.count.compare_exchange_weak(
                count,
                count - 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(now) => count = now,
            }
        }
        false
    }

    /// FUTEX_WAIT (while the count is `val`) or FUTEX_WAKE (`val` threads) on the count.
    fn futex(&self, op: c_int, val: i32) {
        // SAFETY: the word is a live, aligned i32 for the duration of the call; no timeout.
        // EINTR and EAGAIN (the count changed) only send the caller round its loop again.
        // The raw system call, not libc's syscall(): in the preload library that symbol is
        // the library's own hook.
        unsafe {
            crate::raw_syscall!(
                libc::SYS_futex,
                self.count.as_ptr(),
                op,
                val,
                std::ptr::null::<libc::timespec>(),
            )
        };
    }
}

/// # Safety
/// `ptr` must come from `Semaphore::new` (through sem_alloc or mutex_alloc) and not be freed.
unsafe fn semaphore<'a, T>(ptr: *mut T) -> &'a Semaphore {
    // SAFETY: per this function's contract the pointer is a live Box<Semaphore>.
    unsafe { &*ptr.cast::<Semaphore>() }
}

/// # Safety
/// As for `semaphore`; freed once, when no thread uses it.
unsafe fn free<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: the caller's promise.
        drop(unsafe { Box::from_raw(ptr.cast::<Semaphore>()) });
    }
}

pub(super) unsafe extern "C" fn sem_alloc(count: c_int) -> *mut sys::lkl_sem {
    no_unwind("sem_alloc", || Semaphore::new(count).cast())
}

pub(super) unsafe extern "C" fn sem_free(sem: *mut sys::lkl_sem) {
    // SAFETY: the kernel frees each semaphore from sem_alloc once, when no thread uses it.
    no_unwind("sem_free", || unsafe { free(sem) })
}

pub(super) unsafe extern "C" fn sem_up(sem: *mut sys::lkl_sem) {
    // SAFETY: the kernel only passes semaphores it allocated and has not freed.
    no_unwind("sem_up", || unsafe { semaphore(sem) }.up())
}

pub(super) unsafe extern "C" fn sem_down(sem: *mut sys::lkl_sem) {
    // SAFETY: as in sem_up.
    no_unwind("sem_down", || unsafe { semaphore(sem) }.down())
}

pub(super) unsafe extern "C" fn mutex_alloc() -> *mut sys::lkl_mutex {
    no_unwind("mutex_alloc", || Semaphore::new(1).cast())
}

pub(super) unsafe extern "C" fn mutex_free(mutex: *mut sys::lkl_mutex) {
    // SAFETY: the kernel frees each mutex from mutex_alloc once, unlocked and unused.
    no_unwind("mutex_free", || unsafe { free(mutex) })
}

pub(super) unsafe extern "C" fn mutex_lock(mutex: *mut sys::lkl_mutex) {
    // SAFETY: the kernel only passes mutexes it allocated and has not freed.
    no_unwind("mutex_lock", || unsafe { semaphore(mutex) }.down())
}

pub(super) unsafe extern "C" fn mutex_unlock(mutex: *mut sys::lkl_mutex) {
    // SAFETY: as in mutex_lock; only the thread that locked it unlocks it (the ABI's rule).
    no_unwind("mutex_unlock", || unsafe { semaphore(mutex) }.up())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::thread;
    use std::time::Duration;

    use crate::host_ops::{op, OPS};
    use crate::sys;

    #[test]
    fn semaphore_counts_and_blocks() {
        // SAFETY: (the whole test) the ops are called as the kernel would, on live objects.
        unsafe {
            let sem = op(OPS.sem_alloc)(1);
            op(OPS.sem_down)(sem); // the initial count lets one through
            let (tx, rx) = mpsc::channel();
            let sem_addr = sem as usize;
            let waiter = thread::spawn(move || {
                op(OPS.sem_down)(sem_addr as *mut sys::lkl_sem);
                tx.send(()).unwrap();
            });
            assert!(
                rx.recv_timeout(Duration::from_millis(50)).is_err(),
                "sem_down at 0 must block"
            );
            op(OPS.sem_up)(sem);
            rx.recv_timeout(Duration::from_secs(5))
                .expect("sem_up wakes the waiter");
            waiter.join().unwrap();
            op(OPS.sem_free)(sem);
        }
    }

    #[test]
    fn mutex_excludes() {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        // SAFETY: a live mutex used by lock/unlock pairs on the same thread.
        let m = unsafe { op(OPS.mutex_alloc)() } as usize;
        let threads: Vec<_> = (0..4)
            .map(|_| {
                thread::spawn(move || {
                    for _ in 0..10_000 {
                        // SAFETY: as above.
                        unsafe { op(OPS.mutex_lock)(m as *mut sys::lkl_mutex) };
                        // A non-atomic read-modify-write: lost updates if exclusion failed.
                        let v = COUNTER.load(Ordering::Relaxed);
                        COUNTER.store(v + 1, Ordering::Relaxed);
                        // SAFETY: as above.
                        unsafe { op(OPS.mutex_unlock)(m as *mut sys::lkl_mutex) };
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(COUNTER.load(Ordering::Relaxed), 40_000);
        // SAFETY: unlocked and unused now.
        unsafe { op(OPS.mutex_free)(m as *mut sys::lkl_mutex) };
    }
}
