//! Descriptor bookkeeping: close, dup, fcntl, ioctl.

use std::ffi::{c_int, c_uint, c_ulong, c_void};

use lkl::sys::*;

use super::{host_call, lkl_call, lkl_socket};
use crate::fdtable;
use crate::ffi::hook;

#[no_mangle]
pub extern "C" fn close(fd: c_int) -> c_int {
    hook("close", || fdtable::close(fd))
}

#[no_mangle]
pub extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    hook("close_range", || fdtable::close_range(first, last, flags))
}

#[no_mangle]
pub extern "C" fn dup(fd: c_int) -> c_int {
    hook("dup", || match fdtable::get(fd) {
        None => host_call!(dup(fd)),
        Some(_) => fdtable::dup(fd, 0, false),
    })
}

#[no_mangle]
pub extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    hook("dup2", || fdtable::dup3(old, new, 0, true))
}

#[no_mangle]
pub extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    hook("dup3", || fdtable::dup3(old, new, flags, false))
}

#[no_mangle]
pub extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    hook("fcntl64", || match cmd {
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
            fdtable::dup(fd, arg as c_int, cmd == libc::F_DUPFD_CLOEXEC)
        }
        _ => match lkl_socket(fd)? {
            None => host_call!(fcntl64(fd, cmd, arg)),
            Some(_) if cmd == libc::F_GETFD => fdtable::cloexec(fd, None),
            Some(_) if cmd == libc::F_SETFD => {
                fdtable::cloexec(fd, Some(arg as c_int & libc::FD_CLOEXEC != 0)).map(|_| 0)
            }
            Some((_sock, l)) => lkl_call!(__NR_fcntl, l, cmd, arg),
        },
    })
}

#[no_mangle]
pub extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    fcntl64(fd, cmd, arg)
}

#[no_mangle]
pub extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    hook("ioctl", || match lkl_socket(fd)? {
        None => host_call!(ioctl(fd, request, arg)),
        Some(_) if request == libc::FIOCLEX => fdtable::cloexec(fd, Some(true)).map(|_| 0),
        Some(_) if request == libc::FIONCLEX => fdtable::cloexec(fd, Some(false)).map(|_| 0),
        Some((_sock, l)) => lkl_call!(__NR_ioctl, l, request, arg),
    })
}
