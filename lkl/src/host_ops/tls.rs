//! Thread-local storage: pthread keys, because the kernel needs a destructor per key that runs
//! when a host thread that entered the kernel exits.

use std::ffi::{c_int, c_void};

use std::sync::Mutex;

use super::no_unwind;
use crate::locks::lock;
use crate::sys;

/// The keys the kernel holds, so a forked child can let go of its parent's (fork.rs).
pub(super) static KEYS: Mutex<Vec<libc::pthread_key_t>> = Mutex::new(Vec::new());

pub(super) unsafe extern "C" fn tls_alloc(
    destructor: Option<unsafe extern "C" fn(*mut c_void)>,
) -> *mut sys::lkl_tls_key {
    no_unwind("tls_alloc", || {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is a valid out-pointer; the destructor has the signature pthread wants.
        if unsafe { libc::pthread_key_create(&mut key, destructor) } != 0 {
            return std::ptr::null_mut();
        }
        lock(&KEYS).push(key);
        Box::into_raw(Box::new(key)).cast()
    })
}

/// # Safety
/// `key` must come from `tls_alloc` and not be freed yet.
unsafe fn pthread_key(key: *mut sys::lkl_tls_key) -> libc::pthread_key_t {
    // SAFETY: per this function's contract the pointer is a live Box<pthread_key_t>.
    unsafe { *key.cast::<libc::pthread_key_t>() }
}

pub(super) unsafe extern "C" fn tls_free(key: *mut sys::lkl_tls_key) {
    no_unwind("tls_free", || {
        if key.is_null() {
            return;
        }
        // SAFETY: a key from tls_alloc, freed once by the kernel; after pthread_key_delete no
        // destructor runs for it, which is what the ABI promises.
        let key = unsafe { Box::from_raw(key.cast::<libc::pthread_key_t>()) };
        lock(&KEYS).retain(|k| *k != *key);
        // SAFETY: as above.
        unsafe { libc::pthread_key_delete(*key) };
    })
}

pub(super) unsafe extern "C" fn tls_set(key: *mut sys::lkl_tls_key, data: *mut c_void) -> c_int {
    no_unwind("tls_set", || {
        // SAFETY: a live key from tls_alloc; the value is opaque to pthread.
        match unsafe { libc::pthread_setspecific(pthread_key(key), data) } {
            0 => 0,
            err => -err,
        }
    })
}

pub(super) unsafe extern "C" fn tls_get(key: *mut sys::lkl_tls_key) -> *mut c_void {
    // SAFETY: a live key from tls_alloc.
    no_unwind("tls_get", || unsafe {
        libc::pthread_getspecific(pthread_key(key))
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::c_void;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    use crate::host_ops::{op, OPS};
    use crate::sys;

    static TLS_DESTROYED: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn count_destructor(data: *mut c_void) {
        TLS_DESTROYED.fetch_add(data as usize, Ordering::SeqCst);
    }

    #[test]
    fn tls_is_per_thread_and_destructor_runs_at_exit() {
        // SAFETY: a live key used as the kernel would.
        let key = unsafe { op(OPS.tls_alloc)(Some(count_destructor)) } as usize;
        assert_ne!(key, 0);
        let k = move || key as *mut sys::lkl_tls_key;
        // SAFETY: as above.
        unsafe {
            assert_eq!(op(OPS.tls_set)(k(), 7 as *mut c_void), 0);
            assert_eq!(op(OPS.tls_get)(k()) as usize, 7);
        }
        thread::spawn(move || {
            // SAFETY: as above.
            unsafe {
                assert!(
                    op(OPS.tls_get)(k()).is_null(),
                    "a new thread starts with no value"
                );
                op(OPS.tls_set)(k(), 5 as *mut c_void);
            }
        })
        .join()
        .unwrap();
        assert_eq!(
            TLS_DESTROYED.load(Ordering::SeqCst),
            5,
            "the exiting thread's value was destroyed"
        );
        // SAFETY: as above.
        unsafe {
            assert_eq!(
                op(OPS.tls_get)(k()) as usize,
                7,
                "other threads don't see it"
            );
            op(OPS.tls_set)(k(), std::ptr::null_mut());
            op(OPS.tls_free)(k());
        }
    }
}
