//! epoll over host fds and LKL sockets together.
//!
//! The program's epoll fd is a real host epoll instance, holding its host fds. The first LKL
//! socket added gives it an LKL side: an LKL epoll instance holding the LKL sockets (so
//! level/edge triggering, EPOLLONESHOT and EPOLLEXCLUSIVE are the kernel's own), whose
//! notifier signals an eventfd registered in the host instance under a reserved tag. A wait
//! takes what LKL has ready without waiting, then sleeps in the host's epoll_wait with the
//! caller's timeout and signal mask; the eventfd wakes it for LKL events.

use std::ffi::{c_int, c_long};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use libc::{epoll_event, sigset_t};
use lkl::sys::{__NR_epoll_create1, __NR_epoll_ctl, __NR_epoll_pwait};
use lkl::Errno;
use std::sync::Mutex;

use lkl::locks::lock;

use crate::fdtable::{self, Entry};
use crate::ffi::{host_result, SysResult};
use crate::notify::{EventFd, Notifier};
use crate::objects::{EpollSide, Object};
use crate::sigmask::Held;
use crate::time::{timespec, Deadline};
use crate::{busy, host, kernel};

/// The tag of the eventfd in the host instance: not a user-space address (bit 63 set, not
/// canonical) and no small integer, so it does not collide with what programs store.
const WAKE_TAG: u64 = 0x8c4b_4c00_7761_6b65;

/// Serialises making LKL sides, so two threads adding to one instance make one.
static MAKING: Mutex<()> = Mutex::new(());

/// Whether the program ever added a host fd to an epoll instance: only then does a wait that
/// finds LKL events, or is about to busy poll, look at the host's fds too (otherwise a
/// system call per wait spent on an instance holding nothing but the eventfd).
static HOST_FDS: AtomicBool = AtomicBool::new(false);

/// The program adds a host fd to an epoll instance.
pub fn host_fd_added() {
    HOST_FDS.store(true, Ordering::Relaxed);
}

fn side_of(entry: &Entry) -> Option<&EpollSide> {
    match &entry.obj {
        Object::Epoll(side) => Some(side),
        Object::Socket(_) => None,
    }
}

/// The LKL side of host epoll fd `epfd`, made on first need.
fn side(epfd: c_int) -> SysResult<Arc<Entry>> {
    let _making = lock(&MAKING);
    if let Some(entry) = fdtable::get(epfd) {
        return match side_of(&entry) {
            Some(_) => Ok(entry),
            None => Err(Errno::EINVAL),
        };
    }
    // The eventfd first: if it cannot be made, there is nothing in LKL to give back.
    let wake = EventFd::new(false)?;
    // SAFETY: epoll_create1 takes no pointers.
    let lkl = unsafe { kernel::call(__NR_epoll_create1, [0; 6]) }? as lkl::Fd;
    let notifier = Notifier::attach(lkl, &wake).inspect_err(|_| kernel::release_lkl_fd(lkl))?;
    let side = EpollSide::new(lkl, wake, notifier);
    let mut ev = epoll_event {
        events: libc::EPOLLIN as u32,
        u64: WAKE_TAG,
    };
    // Also proves `epfd` is a host epoll instance (EBADF/EINVAL otherwise).
    // SAFETY: `ev` is live for the call.
    host_result(unsafe { host::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, side.wake.fd(), &mut ev) })?;
    Ok(fdtable::attach(epfd, Object::Epoll(side)))
}

/// epoll_ctl(2) for an LKL socket `target` (host fds go straight to the host).
///
/// # Safety
/// `event` is null or points to a valid epoll_event, as for epoll_ctl.
pub unsafe fn ctl(
    epfd: c_int,
    op: c_int,
    target: &Entry,
    event: *mut epoll_event,
) -> SysResult<c_int> {
    let entry = side(epfd)?;
    let side = side_of(&entry).expect("side() returns epoll entries");
    let sock = target.socket().ok_or(Errno::EINVAL)?;
    // SAFETY: the event pointer is the caller's, valid as for epoll_ctl; the kernel's
    // epoll_event has the host's (packed) layout.
    unsafe {
        kernel::call(
            __NR_epoll_ctl,
            [
                c_long::from(side.lkl),
                c_long::from(op),
                c_long::from(sock.lkl),
                event as c_long,
                0,
                0,
            ],
        )
    }
    .map(|_| 0)
}

/// What LKL has ready now, into `events`.
fn lkl_ready(side: &EpollSide, events: &mut [epoll_event]) -> SysResult<usize> {
    if events.is_empty() {
        return Ok(0);
    }
    // SAFETY: `events` is a live buffer of events.len() entries; timeout 0, no mask.
    let n = unsafe {
        kernel::call(
            __NR_epoll_pwait,
            [
                c_long::from(side.lkl),
                events.as_mut_ptr() as c_long,
                events.len() as c_long,
                0,
                0,
                0,
            ],
        )
    }?;
    Ok(n as usize)
}

/// The host's epoll_pwait2 into `events`, with the eventfd's entry taken out; returns the
/// count and whether the eventfd was among them.
fn host_wait(
    epfd: c_int,
    events: &mut [epoll_event],
    timeout: Option<Duration>,
    mask: *const sigset_t,
) -> SysResult<(usize, bool)> {
    if events.is_empty() {
        return Ok((0, false));
    }
    let ts = timeout.map(timespec);
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const _);
    // SAFETY: `events` is a live buffer of events.len() entries; `mask` is the caller's.
    let n = host_result(unsafe {
        host::epoll_pwait2(
            epfd,
            events.as_mut_ptr(),
            events.len() as c_int,
            ts_ptr,
            mask,
        )
    })? as usize;
    let mut kept = 0;
    let mut woken = false;
    for i in 0..n {
        let ev = events[i];
        if { ev.u64 } == WAKE_TAG {
            woken = true;
        } else {
            events[kept] = ev;
            kept += 1;
        }
    }
    Ok((kept, woken))
}

/// The host fds ready now, into `events`. The eventfd is skipped, but when it took the last
/// slot of a full buffer it is drained and that slot asked for again, so that a program's
/// ready fd is not left out (the caller returns without sleeping, so nothing waits on the
/// eventfd meanwhile).
fn host_ready(
    epfd: c_int,
    side: &EpollSide,
    events: &mut [epoll_event],
    mask: *const sigset_t,
) -> SysResult<usize> {
    let (m, woken) = host_wait(epfd, events, Some(Duration::ZERO), mask)?;
    if !woken || m + 1 < events.len() {
        return Ok(m);
    }
    side.wake.drain();
    let (more, _) = host_wait(epfd, &mut events[m..], Some(Duration::ZERO), mask)?;
    Ok(m + more)
}

/// epoll_wait/epoll_pwait/epoll_pwait2 on any epoll fd.
pub fn wait(
    epfd: c_int,
    events: &mut [epoll_event],
    timeout: Option<Duration>,
    mask: *const sigset_t,
) -> SysResult<c_int> {
    if events.is_empty() {
        return Err(Errno::EINVAL);
    }
    let entry = fdtable::get(epfd);
    let Some(side) = entry.as_deref().and_then(side_of) else {
        return host_wait(epfd, events, timeout, mask).map(|(n, _)| n as c_int);
    };
    let deadline = Deadline::after(timeout);
    let held = (timeout != Some(Duration::ZERO)).then(Held::new);
    let sleep_mask = held.as_ref().map_or(mask, |h| h.sleep_mask(mask));
    let mut busy = true;
    loop {
        // The eventfd is reset before the last look ahead of a sleep (a signal after it
        // wakes the sleep); while busy polling nothing sleeps on it.
        if !busy {
            side.wake.drain();
        }
        let n = lkl_ready(side, events)?;
        if n > 0 && !HOST_FDS.load(Ordering::Relaxed) {
            return Ok(n as c_int);
        }
        if n > 0 || deadline.passed() {
            let m = host_ready(epfd, side, &mut events[n..], mask)?;
            return Ok((n + m) as c_int);
        }
        // Busy poll when no host fd is ready either; host fds that become ready meanwhile
        // wait for the busy poll's end (at most net.core.busy_poll).
        if busy {
            if HOST_FDS.load(Ordering::Relaxed) {
                let m = host_ready(epfd, side, events, mask)?;
                if m > 0 {
                    return Ok(m as c_int);
                }
            }
            busy = busy::wait(side.lkl, libc::POLLIN);
            continue;
        }
        let (m, woken) = host_wait(epfd, events, deadline.remaining(), sleep_mask)?;
        let n = if woken {
            lkl_ready(side, &mut events[m..])?
        } else {
            0
        };
        if m + n > 0 || deadline.passed() {
            return Ok((m + n) as c_int);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::notify::FAIL_NEXT_ATTACH;

    #[test]
    fn a_side_whose_notifier_fails_gives_its_lkl_epoll_fd_back() {
        let kernel = kernel::boot_for_tests();
        // Linux hands out the lowest free number: the one the side's epoll instance gets.
        let next_fd = || {
            let fd = kernel.epoll_create1(0).expect("epoll_create1 in LKL");
            kernel.close(fd).expect("close in LKL");
            fd
        };
        let expected = next_fd();
        // SAFETY: epoll_create1 takes no pointers.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(epfd >= 0, "host epoll_create1");
        FAIL_NEXT_ATTACH.store(true, Ordering::SeqCst);
        assert_eq!(side(epfd).err(), Some(Errno::ENOMEM));
        assert!(fdtable::get(epfd).is_none(), "no side was recorded");
        assert_eq!(
            kernel.fcntl(expected, libc::F_GETFD as u32, 0),
            Err(Errno::EBADF),
            "the side's LKL epoll fd {expected} was left open"
        );
        assert_eq!(next_fd(), expected);
        // SAFETY: our own descriptor, closed once.
        unsafe { host::close(epfd) };
    }
}
