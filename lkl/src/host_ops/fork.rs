//! The host side around fork(2). A child gets a copy of the kernel's memory but none of the
//! threads that run it, so the copy can never run again: a child that wants LKL forgets the
//! parent's threads, timers, RAM and thread-local keys here, and `crate::rebirth` puts the
//! kernel's own variables back before it boots anew.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, MutexGuard, Once};
use std::thread::JoinHandle;

use super::memory::MAPPINGS;
use super::threads::THREADS;
use super::time::{Timer, TIMERS};
use super::tls::KEYS;
use crate::locks::lock;

/// The host side's locks, held by the forking thread from just before fork(2) until just
/// after, in both processes: a child never inherits one taken by a thread that did not
/// follow it (a kernel thread starting another, say).
struct Held {
    _threads: MutexGuard<'static, Vec<JoinHandle<()>>>,
    _timers: MutexGuard<'static, Vec<Arc<Timer>>>,
    _mappings: MutexGuard<'static, BTreeMap<usize, usize>>,
    keys: MutexGuard<'static, Vec<libc::pthread_key_t>>,
}

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// Registers the handlers that hold the locks across every fork (once per process).
pub(crate) fn guard_forks() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers plain functions; they only take and release our own locks.
        let rc = unsafe { libc::pthread_atfork(Some(lock_all), Some(unlock_all), Some(in_child)) };
        if rc != 0 {
            log::warn!(target: "lkl", "pthread_atfork failed ({rc}): a forked child cannot boot LKL");
        }
    });
}

/// Always in this order, so two forking threads cannot deadlock each other.
extern "C" fn lock_all() {
    let held = Held {
        _threads: lock(&THREADS),
        _timers: lock(&TIMERS),
        _mappings: lock(&MAPPINGS),
        keys: lock(&KEYS),
    };
    HELD.with(|h| *h.borrow_mut() = Some(held));
}

extern "C" fn unlock_all() {
    drop(HELD.with(|h| h.borrow_mut().take()));
}

/// Also clears the forking thread's values for the kernel's keys, which only it can do:
/// their destructors would otherwise run on the parent's tasks when it exits.
extern "C" fn in_child() {
    let Some(held) = HELD.with(|h| h.borrow_mut().take()) else {
        return;
    };
    for key in held.keys.iter() {
        // SAFETY: a live key; a null value means no destructor runs for it.
        unsafe { libc::pthread_setspecific(*key, std::ptr::null()) };
    }
}

/// In a forked child: lets go of what the parent's kernel held on the host. Its threads and
/// timer threads are not in this process (their handles are forgotten, never joined), its
/// RAM is unmapped and its keys deleted (no thread of the child has a value for them).
///
/// # Safety
/// Only in a forked child, before anything calls into a kernel: every pointer the parent's
/// kernel handed out dies here.
pub(crate) unsafe fn forget_parent_kernel() {
    std::mem::forget(std::mem::take(&mut *lock(&THREADS)));
    std::mem::forget(std::mem::take(&mut *lock(&TIMERS)));
    for (addr, len) in std::mem::take(&mut *lock(&MAPPINGS)) {
        // SAFETY: a mapping mem_alloc made for the parent's kernel, which is gone; the
        // caller guarantees nothing uses it any more.
        unsafe { libc::munmap(addr as *mut libc::c_void, len) };
    }
    for key in std::mem::take(&mut *lock(&KEYS)) {
        // SAFETY: a key pthread_key_create made and nobody deleted yet.
        unsafe { libc::pthread_key_delete(key) };
    }
}
