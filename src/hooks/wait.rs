//! Readiness: poll, ppoll, select, pselect and epoll (see poll.rs and epoll.rs).

use std::ffi::c_int;
use std::time::Duration;

use libc::{epoll_event, fd_set, nfds_t, pollfd, sigset_t, timespec, timeval};
use lkl::Errno;

use super::{chk_fail, host_call, lkl_socket};
use crate::ffi::{hook, SysResult};
use crate::{epoll, poll};

/// A poll-style millisecond timeout (negative: forever).
fn from_ms(ms: c_int) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

/// A timespec timeout (null: forever).
///
/// # Safety
/// `ts` is null or points to a timespec.
unsafe fn from_timespec(ts: *const timespec) -> SysResult<Option<Duration>> {
    // SAFETY: the caller's pointer, null or valid.
    let Some(ts) = (unsafe { ts.as_ref() }) else {
        return Ok(None);
    };
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    Ok(Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)))
}

/// The caller's pollfd array as a slice.
///
/// # Safety
/// `fds` points to `n` pollfds (or n is 0).
unsafe fn pollfds<'a>(fds: *mut pollfd, n: nfds_t) -> &'a mut [pollfd] {
    if n == 0 {
        return &mut [];
    }
    // SAFETY: the caller's array of n entries, as for poll.
    unsafe { std::slice::from_raw_parts_mut(fds, n as usize) }
}

#[no_mangle]
pub extern "C" fn poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int {
    hook("poll", || {
        // SAFETY: the caller's array, as for poll.
        poll::poll(
            unsafe { pollfds(fds, n) },
            from_ms(timeout),
            std::ptr::null(),
        )
    })
}

#[no_mangle]
pub extern "C" fn ppoll(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    hook("ppoll", || {
        // SAFETY: the caller's timeout and array, as for ppoll.
        let timeout = unsafe { from_timespec(timeout) }?;
        poll::poll(unsafe { pollfds(fds, n) }, timeout, mask)
    })
}

#[no_mangle]
pub extern "C" fn __poll_chk(fds: *mut pollfd, n: nfds_t, timeout: c_int, fdslen: usize) -> c_int {
    if fdslen / std::mem::size_of::<pollfd>() < n as usize {
        chk_fail();
    }
    poll(fds, n, timeout)
}

#[no_mangle]
pub extern "C" fn __ppoll_chk(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: *const timespec,
    mask: *const sigset_t,
    fdslen: usize,
) -> c_int {
    if fdslen / std::mem::size_of::<pollfd>() < n as usize {
        chk_fail();
    }
    ppoll(fds, n, timeout, mask)
}

#[no_mangle]
pub extern "C" fn select(
    nfds: c_int,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
    timeout: *mut timeval,
) -> c_int {
    hook("select", || {
        // SAFETY: the caller's timeval, null or valid, as for select.
        let limit = match unsafe { timeout.as_ref() } {
            None => None,
            Some(tv) if tv.tv_sec < 0 || !(0..1_000_000).contains(&tv.tv_usec) => {
                return Err(Errno::EINVAL)
            }
            Some(tv) => Some(Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000)),
        };
        // SAFETY: the caller's sets hold nfds bits each, as for select.
        let (n, left) = unsafe { poll::select(nfds, [r, w, e], limit, std::ptr::null()) }?;
        // Linux reports the time not slept.
        if let (Some(tv), Some(left)) = (unsafe { timeout.as_mut() }, left) {
            tv.tv_sec = left.as_secs() as _;
            tv.tv_usec = left.subsec_micros() as _;
        }
        Ok(n)
    })
}

#[no_mangle]
pub extern "C" fn pselect(
    nfds: c_int,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
    timeout: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    hook("pselect", || {
        // SAFETY: the caller's timeout and sets, as for pselect.
        let limit = unsafe { from_timespec(timeout) }?;
        unsafe { poll::select(nfds, [r, w, e], limit, mask) }.map(|(n, _)| n)
    })
}

#[no_mangle]
pub extern "C" fn epoll_ctl(epfd: c_int, op: c_int, fd: c_int, event: *mut epoll_event) -> c_int {
    hook("epoll_ctl", || match lkl_socket(fd)? {
        None => host_call!(epoll_ctl(epfd, op, fd, event)),
        // SAFETY: the caller's event, as for epoll_ctl.
        Some(sock) => unsafe { epoll::ctl(epfd, op, &sock, event) },
    })
}

/// The caller's event buffer as a slice.
///
/// # Safety
/// `events` points to `max` entries when max > 0.
unsafe fn events<'a>(events: *mut epoll_event, max: c_int) -> SysResult<&'a mut [epoll_event]> {
    if max <= 0 || events.is_null() {
        return Err(Errno::EINVAL);
    }
    // SAFETY: the caller's buffer of max entries, as for epoll_wait.
    Ok(unsafe { std::slice::from_raw_parts_mut(events, max as usize) })
}

#[no_mangle]
pub extern "C" fn epoll_wait(
    epfd: c_int,
    ev: *mut epoll_event,
    max: c_int,
    timeout: c_int,
) -> c_int {
    hook("epoll_wait", || {
        // SAFETY: the caller's buffer, as for epoll_wait.
        epoll::wait(
            epfd,
            unsafe { events(ev, max) }?,
            from_ms(timeout),
            std::ptr::null(),
        )
    })
}

#[no_mangle]
pub extern "C" fn epoll_pwait(
    epfd: c_int,
    ev: *mut epoll_event,
    max: c_int,
    timeout: c_int,
    mask: *const sigset_t,
) -> c_int {
    hook("epoll_pwait", || {
        // SAFETY: the caller's buffer, as for epoll_pwait.
        epoll::wait(epfd, unsafe { events(ev, max) }?, from_ms(timeout), mask)
    })
}

#[no_mangle]
pub extern "C" fn epoll_pwait2(
    epfd: c_int,
    ev: *mut epoll_event,
    max: c_int,
    timeout: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    hook("epoll_pwait2", || {
        // SAFETY: the caller's timeout and buffer, as for epoll_pwait2.
        let timeout = unsafe { from_timespec(timeout) }?;
        epoll::wait(epfd, unsafe { events(ev, max) }?, timeout, mask)
    })
}
