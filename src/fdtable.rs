//! Which host fd numbers stand for kernel objects.
//!
//! Every LKL socket is shown to the program under a real host fd number: a placeholder the
//! library opens (an unconnected AF_UNIX socket, so even calls we do not hook, like fstat, see
//! a socket). The table maps the number to the LKL object. Placeholders are always
//! close-on-exec on the host, since no LKL state survives an exec; the FD_CLOEXEC the program
//! sees is kept here. dup'd numbers share one object, as dup'd fds share one open file.
//!
//! A program's epoll instances are real host epoll fds; the table holds their LKL side for
//! those that watch LKL sockets (see `epoll.rs`).

use std::ffi::c_int;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use lkl::Errno;
use std::sync::{RwLock, RwLockWriteGuard};

use lkl::locks::{lock, read, write};

use crate::ffi::{host_result, SysResult};
use crate::objects::{Object, Socket};
use crate::{host, kernel};

/// A table entry: one host fd number.
struct Slot {
    obj: Arc<Entry>,
    cloexec: bool,
}

/// An object and how many numbers refer to it (in-flight calls hold more `Arc`s).
pub struct Entry {
    pub obj: Object,
    numbers: AtomicUsize,
}

impl Entry {
    pub fn socket(&self) -> Option<&Socket> {
        match &self.obj {
            Object::Socket(s) => Some(s),
            Object::Epoll(_) => None,
        }
    }
}

static TABLE: RwLock<Vec<Option<Slot>>> = RwLock::new(Vec::new());
/// Numbers in the table; zero means every fd is a plain host fd (no lock needed).
static USED: AtomicUsize = AtomicUsize::new(0);

/// Whether any number stands for an LKL object (if not, every call is the host's).
pub fn in_use() -> bool {
    USED.load(Ordering::Acquire) != 0
}

/// The object behind host fd `fd`, if it is one of ours.
pub fn get(fd: c_int) -> Option<Arc<Entry>> {
    if USED.load(Ordering::Acquire) == 0 || fd < 0 {
        return None;
    }
    let table = read(&TABLE);
    table
        .get(fd as usize)
        .and_then(|s| s.as_ref())
        .map(|s| Arc::clone(&s.obj))
}

/// The LKL socket behind `fd`; `None` for host fds. In a forked child a socket of the
/// parent's kernel is an error, except a listener: the child's first use of one boots the
/// child's kernel, which makes it again under the same number (fork.rs).
pub fn socket(fd: c_int) -> SysResult<Option<Arc<Entry>>> {
    let Some(e) = get(fd).filter(|e| e.socket().is_some()) else {
        return Ok(None);
    };
    let sock = e.socket().expect("filtered for sockets");
    if !sock.stale() {
        return Ok(Some(e));
    }
    if lock(&sock.listening).is_some() && !kernel::booted() {
        kernel::kernel();
        return socket(fd);
    }
    kernel::warn_stale();
    Err(Errno::EBADF)
}

fn put(table: &mut Vec<Option<Slot>>, fd: c_int, obj: Arc<Entry>, cloexec: bool) -> Option<Slot> {
    let i = fd as usize;
    if table.len() <= i {
        table.resize_with(i + 1, || None);
    }
    obj.numbers.fetch_add(1, Ordering::Relaxed);
    let old = table[i].replace(Slot { obj, cloexec });
    if old.is_none() {
        USED.fetch_add(1, Ordering::Release);
    }
    old
}

fn take(table: &mut [Option<Slot>], fd: c_int) -> Option<Slot> {
    let slot = table.get_mut(fd as usize)?.take()?;
    USED.fetch_sub(1, Ordering::Release);
    Some(slot)
}

/// Lets go of a number's slot outside the table lock: the last number of a socket that other
/// threads are still blocked on shuts it down, so they wake (close alone would not wake them).
fn release(slot: Slot) {
    let entry = slot.obj;
    let last = entry.numbers.fetch_sub(1, Ordering::AcqRel) == 1;
    if entry.socket().is_some_and(Socket::stale) {
        return;
    }
    if last && Arc::strong_count(&entry) > 1 {
        if let Some(s) = entry.socket() {
            kernel::wake_blocked(s.lkl);
        }
    }
}

/// A fresh placeholder number (close-on-exec on the host).
fn placeholder() -> SysResult<c_int> {
    // SAFETY: plain socket(2) with constant arguments.
    host_result(unsafe { host::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })
}

/// Gives a new LKL object a host number. On failure the object is released.
pub fn install(obj: Object, cloexec: bool) -> SysResult<c_int> {
    let fd = placeholder()?;
    let entry = Arc::new(Entry {
        obj,
        numbers: AtomicUsize::new(0),
    });
    // The host holds `fd` for us, so nobody else can be given that number meanwhile.
    let old = put(&mut write(&TABLE), fd, entry, cloexec);
    debug_assert!(old.is_none());
    Ok(fd)
}

/// Records that host fd `fd` (a real host epoll fd) has an LKL side.
pub fn attach(fd: c_int, obj: Object) -> Arc<Entry> {
    let entry = Arc::new(Entry {
        obj,
        numbers: AtomicUsize::new(0),
    });
    // The fd is a real host epoll fd: its close-on-exec flag is the host's, not the slot's.
    let old = put(&mut write(&TABLE), fd, Arc::clone(&entry), false);
    if let Some(old) = old {
        release(old);
    }
    entry
}

/// close(2): ours are removed before the host number is given up, so the number cannot be
/// handed out again while the table still claims it.
pub fn close(fd: c_int) -> SysResult<c_int> {
    let slot = if USED.load(Ordering::Acquire) == 0 {
        None
    } else {
        take(&mut write(&TABLE), fd)
    };
    // SAFETY: closing a number is always memory-safe.
    let ret = host_result(unsafe { host::close(fd) });
    if let Some(slot) = slot {
        release(slot);
        // The placeholder was ours; its close cannot fail in a way the program cares about.
        return Ok(0);
    }
    ret
}

/// close_range(2).
pub fn close_range(first: u32, last: u32, flags: c_int) -> SysResult<c_int> {
    // Checked before anything is closed, as the kernel does.
    let known = (libc::CLOSE_RANGE_CLOEXEC | libc::CLOSE_RANGE_UNSHARE) as c_int;
    if first > last || flags & !known != 0 {
        return Err(Errno::EINVAL);
    }
    let mut released = Vec::new();
    {
        let mut table = write(&TABLE);
        let end = (last as usize).min(table.len().saturating_sub(1));
        for fd in first as usize..=end {
            if table.get(fd).is_some_and(|s| s.is_some()) {
                if flags & libc::CLOSE_RANGE_CLOEXEC as c_int != 0 {
                    if let Some(s) = table[fd].as_mut() {
                        s.cloexec = true;
                    }
                } else {
                    released.extend(take(&mut table, fd as c_int));
                }
            }
        }
    }
    let ret = host_result(host::close_range(first, last, flags));
    released.into_iter().for_each(release);
    ret
}

/// dup(2), fcntl(F_DUPFD*): a new number >= `min` for the same object.
pub fn dup(fd: c_int, min: c_int, cloexec: bool) -> SysResult<c_int> {
    let entry = get(fd);
    let cmd = if cloexec || entry.as_deref().is_some_and(is_placeholder) {
        libc::F_DUPFD_CLOEXEC
    } else {
        libc::F_DUPFD
    };
    // SAFETY: F_DUPFD* takes an integer argument.
    let host_dup = || host_result(unsafe { host::fcntl64(fd, cmd, min as _) });
    let Some(entry) = entry else {
        return host_dup();
    };
    let mut table = write(&TABLE);
    let new = host_dup()?;
    let old = put(&mut table, new, entry, cloexec);
    debug_assert!(old.is_none());
    Ok(new)
}

/// Placeholders stay close-on-exec on the host (no LKL state survives an exec); the flag the
/// program set is kept in the slot. Epoll fds are real, and keep their own flag.
fn is_placeholder(entry: &Entry) -> bool {
    entry.socket().is_some()
}

/// dup2(2) and dup3(2) (`flags` = O_CLOEXEC or 0); `dup2` is dup3 that accepts old == new.
pub fn dup3(old: c_int, new: c_int, flags: c_int, is_dup2: bool) -> SysResult<c_int> {
    if !is_dup2 && flags & !libc::O_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    if old == new {
        if !is_dup2 {
            return Err(Errno::EINVAL);
        }
        // dup2(fd, fd) only checks fd.
        // SAFETY: F_GETFD takes no argument pointer.
        return host_result(unsafe { host::fcntl64(old, libc::F_GETFD, 0) }).map(|_| new);
    }
    if USED.load(Ordering::Acquire) == 0 {
        // SAFETY: dup3 on numbers is memory-safe.
        return host_result(unsafe { host::dup3(old, new, flags) });
    }
    let source = get(old);
    let replaced;
    {
        // Held across the host call, so no one sees `new` as host and LKL at once.
        let mut table = write(&TABLE);
        let host_flags = if source.as_deref().is_some_and(is_placeholder) {
            libc::O_CLOEXEC
        } else {
            flags
        };
        // SAFETY: as above.
        host_result(unsafe { host::dup3(old, new, host_flags) })?;
        replaced = take(&mut table, new);
        if let Some(entry) = source {
            put(&mut table, new, entry, flags & libc::O_CLOEXEC != 0);
        }
    }
    if let Some(slot) = replaced {
        release(slot);
    }
    Ok(new)
}

/// Turns number `fd` from an LKL socket into the host socket `host_fd` (which is closed; the
/// number stays the same for the program).
pub fn become_host(fd: c_int, host_fd: c_int) -> SysResult<()> {
    let replaced;
    {
        let mut table = write(&TABLE);
        let cloexec = table
            .get(fd as usize)
            .and_then(|s| s.as_ref())
            .is_some_and(|s| s.cloexec);
        let flags = if cloexec { libc::O_CLOEXEC } else { 0 };
        // SAFETY: dup3 on numbers is memory-safe.
        host_result(unsafe { host::dup3(host_fd, fd, flags) })?;
        replaced = take(&mut table, fd);
    }
    // SAFETY: our own temporary descriptor.
    unsafe { host::close(host_fd) };
    if let Some(slot) = replaced {
        release(slot);
    }
    Ok(())
}

/// F_GETFD / F_SETFD for one of our numbers.
pub fn cloexec(fd: c_int, set: Option<bool>) -> SysResult<c_int> {
    let mut table = write(&TABLE);
    let slot = table
        .get_mut(fd as usize)
        .and_then(|s| s.as_mut())
        .ok_or(Errno::EBADF)?;
    if let Some(on) = set {
        slot.cloexec = on;
    }
    Ok(if slot.cloexec { libc::FD_CLOEXEC } else { 0 })
}

thread_local! {
    /// The table's lock, held by the forking thread across fork(2) (see `hold_for_fork`).
    static HELD: std::cell::RefCell<Option<RwLockWriteGuard<'static, Vec<Option<Slot>>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Before fork(2): takes the table's lock, so that the child never inherits it held by a
/// thread that did not follow.
pub fn hold_for_fork() {
    let guard = write(&TABLE);
    HELD.with(|h| *h.borrow_mut() = Some(guard));
}

/// After fork(2), in both processes.
pub fn release_after_fork() {
    drop(HELD.with(|h| h.borrow_mut().take()));
}

/// In a forked child: forgets the LKL sides of epoll instances (the parent's kernel's, never
/// released here); the epoll fds stay the host's.
pub fn forget_epoll_sides() {
    let mut table = write(&TABLE);
    for slot in table.iter_mut() {
        if slot.as_ref().is_some_and(|s| s.obj.socket().is_none()) {
            std::mem::forget(slot.take());
            USED.fetch_sub(1, Ordering::Release);
        }
    }
}

/// The numbers of listening LKL sockets, with their objects.
pub fn listeners() -> Vec<(c_int, Arc<Entry>)> {
    read(&TABLE)
        .iter()
        .enumerate()
        .filter_map(|(fd, s)| Some((fd as c_int, Arc::clone(&s.as_ref()?.obj))))
        .filter(|(_, e)| e.socket().is_some_and(|s| lock(&s.listening).is_some()))
        .collect()
}

/// Puts `obj` under every number that shows `old` (a forked child's remade listener).
pub fn replace(old: &Arc<Entry>, obj: Object) {
    let new = Arc::new(Entry {
        obj,
        numbers: AtomicUsize::new(0),
    });
    let mut table = write(&TABLE);
    for slot in table.iter_mut().flatten() {
        if Arc::ptr_eq(&slot.obj, old) {
            new.numbers.fetch_add(1, Ordering::Relaxed);
            // The old one is the parent's kernel's: its Drop does nothing (stale).
            slot.obj = Arc::clone(&new);
        }
    }
}

/// Every number's object, for closing LKL sockets at exit.
pub fn drain() -> Vec<Arc<Entry>> {
    let mut table = write(&TABLE);
    let all: Vec<_> = table
        .iter_mut()
        .filter_map(|s| s.take())
        .map(|s| s.obj)
        .collect();
    USED.store(0, Ordering::Release);
    all
}
