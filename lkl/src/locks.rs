//! Locks for code that must keep working in a forked child (the host side, the packet
//! backend, and the preload library above them): std's, which keep all their state in the
//! lock itself (a futex word). parking_lot keeps a process-wide table of waiting threads
//! whose bucket locks a thread of the parent may hold at fork(2), and a forked child that
//! boots a kernel of its own (`Kernel::forget_after_fork`) would then hang on its first wait.
//!
//! Poisoning is ignored, as parking_lot did: a panic on a kernel or library thread ends the
//! process (host ops run under `no_unwind`), so no lock is left half-updated behind it.

use std::sync::{
    Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use std::time::Instant;

/// Locks `m`.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes `l` for reading.
pub fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

/// Takes `l` for writing.
pub fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `cond`, giving `guard` back woken (spuriously, too).
pub fn wait<'a, T>(cond: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cond.wait(guard).unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `cond` until woken or `deadline` passes.
pub fn wait_until<'a, T>(
    cond: &Condvar,
    guard: MutexGuard<'a, T>,
    deadline: Instant,
) -> MutexGuard<'a, T> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    cond.wait_timeout(guard, timeout)
        .unwrap_or_else(PoisonError::into_inner)
        .0
}
