//! Semaphores and mutexes, on parking_lot.

use std::ffi::c_int;

use parking_lot::lock_api::RawMutex as _;
use parking_lot::{Condvar, Mutex, RawMutex};

use super::no_unwind;
use crate::sys;

struct Semaphore {
    count: Mutex<i64>,
    wakeup: Condvar,
}

pub(super) unsafe extern "C" fn sem_alloc(count: c_int) -> *mut sys::lkl_sem {
    no_unwind("sem_alloc", || {
        let sem = Semaphore {
            count: Mutex::new(i64::from(count)),
            wakeup: Condvar::new(),
        };
        Box::into_raw(Box::new(sem)).cast()
    })
}

/// # Safety
/// `sem` must come from `sem_alloc` and not be freed yet.
unsafe fn semaphore<'a>(sem: *mut sys::lkl_sem) -> &'a Semaphore {
    // SAFETY: per this function's contract the pointer is a live Box<Semaphore>.
    unsafe { &*sem.cast::<Semaphore>() }
}

pub(super) unsafe extern "C" fn sem_free(sem: *mut sys::lkl_sem) {
    no_unwind("sem_free", || {
        if !sem.is_null() {
            // SAFETY: the kernel frees each semaphore from sem_alloc once, when no thread uses it.
            drop(unsafe { Box::from_raw(sem.cast::<Semaphore>()) });
        }
    })
}

pub(super) unsafe extern "C" fn sem_up(sem: *mut sys::lkl_sem) {
    no_unwind("sem_up", || {
        // SAFETY: the kernel only passes semaphores it allocated and has not freed.
        let sem = unsafe { semaphore(sem) };
        *sem.count.lock() += 1;
        sem.wakeup.notify_one();
    })
}

pub(super) unsafe extern "C" fn sem_down(sem: *mut sys::lkl_sem) {
    no_unwind("sem_down", || {
        // SAFETY: as in sem_up.
        let sem = unsafe { semaphore(sem) };
        let mut count = sem.count.lock();
        while *count <= 0 {
            sem.wakeup.wait(&mut count);
        }
        *count -= 1;
    })
}

pub(super) unsafe extern "C" fn mutex_alloc() -> *mut sys::lkl_mutex {
    no_unwind("mutex_alloc", || {
        Box::into_raw(Box::new(RawMutex::INIT)).cast()
    })
}

/// # Safety
/// `mutex` must come from `mutex_alloc` and not be freed yet.
unsafe fn raw_mutex<'a>(mutex: *mut sys::lkl_mutex) -> &'a RawMutex {
    // SAFETY: per this function's contract the pointer is a live Box<RawMutex>.
    unsafe { &*mutex.cast::<RawMutex>() }
}

pub(super) unsafe extern "C" fn mutex_free(mutex: *mut sys::lkl_mutex) {
    no_unwind("mutex_free", || {
        if !mutex.is_null() {
            // SAFETY: the kernel frees each mutex from mutex_alloc once, unlocked and unused.
            drop(unsafe { Box::from_raw(mutex.cast::<RawMutex>()) });
        }
    })
}

pub(super) unsafe extern "C" fn mutex_lock(mutex: *mut sys::lkl_mutex) {
    // SAFETY: the kernel only passes mutexes it allocated and has not freed.
    no_unwind("mutex_lock", || unsafe { raw_mutex(mutex) }.lock())
}

pub(super) unsafe extern "C" fn mutex_unlock(mutex: *mut sys::lkl_mutex) {
    no_unwind("mutex_unlock", || {
        // SAFETY: a live mutex (as above), and the ABI's non-recursive mutex is only unlocked
        // by the thread that locked it, which is what RawMutex::unlock requires.
        unsafe { raw_mutex(mutex).unlock() }
    })
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
