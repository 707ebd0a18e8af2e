//! Readiness: poll, ppoll, select, pselect and epoll (see poll.rs and epoll.rs).

use std::ffi::c_int;
use std::time::Duration;

use libc::{epoll_event, fd_set, nfds_t, pollfd, sigset_t, timespec, timeval};
use lkl::Errno;

use super::{chk_fail, host_call};
use crate::ffi::{hook, read_user, read_user_slice, write_user_slice, SysResult};
use crate::{epoll, fdtable, fork, poll, time};

/// A poll-style millisecond timeout (negative: forever).
fn from_ms(ms: c_int) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

/// A timespec timeout (null: forever).
fn from_timespec(ts: *const timespec) -> SysResult<Option<Duration>> {
    if ts.is_null() {
        return Ok(None);
    }
    let ts = read_user(ts)?;
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    Ok(Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)))
}

/// poll over the program's array: copied in and out with a fault guard when LKL sockets may
/// be among them, handed to the host untouched otherwise.
fn poll_any(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: Option<Duration>,
    mask: *const sigset_t,
) -> SysResult<c_int> {
    if !fdtable::in_use() {
        let ts = timeout.map(time::timespec);
        let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const _);
        return host_call!(ppoll(fds, n, ts_ptr, mask));
    }
    let mut copy = read_user_slice(fds.cast_const(), n as usize)?;
    let ready = poll::poll(&mut copy, timeout, mask)?;
    write_user_slice(fds, &copy)?;
    Ok(ready)
}

#[no_mangle]
pub extern "C" fn poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int {
    hook("poll", || {
        poll_any(fds, n, from_ms(timeout), std::ptr::null())
    })
}

#[no_mangle]
pub extern "C" fn ppoll(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    hook("ppoll", || poll_any(fds, n, from_timespec(timeout)?, mask))
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
        if !fdtable::in_use() {
            return host_call!(select(nfds, r, w, e, timeout));
        }
        let limit = if timeout.is_null() {
            None
        } else {
            let tv = read_user(timeout.cast_const())?;
            if tv.tv_sec < 0 || !(0..1_000_000).contains(&tv.tv_usec) {
                return Err(Errno::EINVAL);
            }
            Some(Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000))
        };
        let (n, left) = poll::select(nfds, [r, w, e], limit, std::ptr::null())?;
        // Linux reports the time not slept.
        if let Some(left) = left.filter(|_| !timeout.is_null()) {
            let tv = libc::timeval {
                tv_sec: left.as_secs() as _,
                tv_usec: left.subsec_micros() as _,
            };
            write_user_slice(timeout, &[tv])?;
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
        if !fdtable::in_use() {
            return host_call!(pselect(nfds, r, w, e, timeout, mask));
        }
        poll::select(nfds, [r, w, e], from_timespec(timeout)?, mask).map(|(n, _)| n)
    })
}

#[no_mangle]
pub extern "C" fn epoll_ctl(epfd: c_int, op: c_int, fd: c_int, event: *mut epoll_event) -> c_int {
    hook("epoll_ctl", || match fdtable::socket(fd)? {
        None => {
            if op == libc::EPOLL_CTL_ADD {
                epoll::host_fd_added();
            }
            host_call!(epoll_ctl(epfd, op, fd, event))
        }
        Some(sock) => {
            if op != libc::EPOLL_CTL_DEL && sock.socket().is_some_and(|s| s.is_listening()) {
                fork::serving();
            }
            // SAFETY: the caller's event, as for epoll_ctl.
            unsafe { epoll::ctl(epfd, op, &sock, event) }
        }
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
        let timeout = from_timespec(timeout)?;
        // SAFETY: the caller's buffer, as for epoll_pwait2.
        epoll::wait(epfd, unsafe { events(ev, max) }?, timeout, mask)
    })
}
