//! The host side of the kernel: every operation of `struct lkl_host_ops`, implemented with std
//! threads, std locks and libc.
//!
//! These functions may later run inside an LD_PRELOAD library that interposes libc's socket,
//! epoll, read and write functions. They therefore use only threads, locks, clocks and memory
//! calls, never file descriptors, so nothing here can recurse into those hooks.
//!
//! Each op is an `extern "C"` function called from kernel C code; none may unwind into it, so
//! each body runs under [`no_unwind`], which aborts on the (impossible) panic.
//!
//! This file holds the table; the ops live by mechanism: `console.rs` (printk, panic),
//! `sync.rs` (semaphores, mutexes), `threads.rs`, `tls.rs`, `memory.rs` (allocation,
//! memcpy/memmove/memset) and `time.rs` (clock, timers). `copy_user` is `crate::fault`'s.
//! `fork.rs` keeps them sound across fork(2).

mod console;
mod fork;
mod memory;
mod sync;
mod threads;
mod time;
mod tls;

pub(crate) use console::flush_console;
pub(crate) use fork::{forget_parent_kernel, guard_forks};
pub(crate) use threads::{join_kernel_threads, spawn_library_thread};
pub(crate) use time::{monotonic_ns, stop_leftover_timers};

use std::panic::{self, AssertUnwindSafe};

use crate::sys;

/// The table handed to `lkl_start_kernel`.
pub(crate) static OPS: sys::lkl_host_ops = sys::lkl_host_ops {
    print: Some(console::print),
    panic: Some(console::kernel_panic),
    sem_alloc: Some(sync::sem_alloc),
    sem_free: Some(sync::sem_free),
    sem_up: Some(sync::sem_up),
    sem_down: Some(sync::sem_down),
    mutex_alloc: Some(sync::mutex_alloc),
    mutex_free: Some(sync::mutex_free),
    mutex_lock: Some(sync::mutex_lock),
    mutex_unlock: Some(sync::mutex_unlock),
    thread_create: Some(threads::thread_create),
    thread_self: Some(threads::thread_self),
    thread_yield: Some(threads::thread_yield),
    tls_alloc: Some(tls::tls_alloc),
    tls_free: Some(tls::tls_free),
    tls_set: Some(tls::tls_set),
    tls_get: Some(tls::tls_get),
    mem_alloc: Some(memory::mem_alloc),
    mem_free: Some(memory::mem_free),
    time_ns: Some(time::time_ns),
    timer_alloc: Some(time::timer_alloc),
    timer_set_oneshot: Some(time::timer_set_oneshot),
    timer_free: Some(time::timer_free),
    copy_user: Some(crate::fault::copy_user),
    memcpy: Some(memory::memcpy),
    memmove: Some(memory::memmove),
    memset: Some(memory::memset),
};

/// Runs an op's body; a panic cannot cross into C, so it ends the process with a message.
fn no_unwind<R>(op: &str, body: impl FnOnce() -> R) -> R {
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(_) => {
            log::error!(target: "lkl", "host op {op} panicked; aborting");
            std::process::abort();
        }
    }
}

/// An op from the table, as the kernel would call it.
#[cfg(test)]
fn op<T>(f: Option<T>) -> T {
    f.expect("every op is set")
}
