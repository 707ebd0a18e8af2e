//! Descriptor bookkeeping: close, dup, fcntl, ioctl.

use std::ffi::{c_int, c_uint, c_ulong, c_void};

use lkl::sys::*;

use super::{host_call, lkl_call, on_fd};
use crate::fdtable;
use crate::ffi::{hook, read_user, SysResult};
use crate::objects::Socket;

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

/// fcntl on an LKL socket. O_NONBLOCK is the program's (the kernel's file always has it).
fn fcntl_lkl(fd: c_int, sock: &Socket, cmd: c_int, arg: c_ulong) -> SysResult<c_int> {
    match cmd {
        libc::F_GETFD => fdtable::cloexec(fd, None),
        libc::F_SETFD => {
            fdtable::cloexec(fd, Some(arg as c_int & libc::FD_CLOEXEC != 0)).map(|_| 0)
        }
        libc::F_GETFL => {
            let flags: c_int = lkl_call!(__NR_fcntl, sock.lkl, cmd, 0)?;
            let nonblock = if sock.nonblocking() {
                libc::O_NONBLOCK
            } else {
                0
            };
            Ok(flags & !libc::O_NONBLOCK | nonblock)
        }
        libc::F_SETFL => {
            let kernel_flags = arg as c_int | libc::O_NONBLOCK;
            let r = lkl_call!(__NR_fcntl, sock.lkl, cmd, kernel_flags)?;
            sock.set_nonblocking(arg as c_int & libc::O_NONBLOCK != 0);
            Ok(r)
        }
        _ => lkl_call!(__NR_fcntl, sock.lkl, cmd, arg),
    }
}

#[no_mangle]
pub extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    hook("fcntl64", || match cmd {
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
            fdtable::dup(fd, arg as c_int, cmd == libc::F_DUPFD_CLOEXEC)
        }
        _ => on_fd(
            fd,
            |s| fcntl_lkl(fd, s, cmd, arg),
            || host_call!(fcntl64(fd, cmd, arg)),
        ),
    })
}

#[no_mangle]
pub extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    fcntl64(fd, cmd, arg)
}

fn ioctl_lkl(fd: c_int, sock: &Socket, request: c_ulong, arg: *mut c_void) -> SysResult<c_int> {
    match request {
        libc::FIOCLEX => fdtable::cloexec(fd, Some(true)).map(|_| 0),
        libc::FIONCLEX => fdtable::cloexec(fd, Some(false)).map(|_| 0),
        libc::FIONBIO => {
            let on = read_user(arg.cast::<c_int>().cast_const())?;
            sock.set_nonblocking(on != 0);
            Ok(0)
        }
        _ => lkl_call!(__NR_ioctl, sock.lkl, request, arg),
    }
}

#[no_mangle]
pub extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    hook("ioctl", || {
        on_fd(
            fd,
            |s| ioctl_lkl(fd, s, request, arg),
            || host_call!(ioctl(fd, request, arg)),
        )
    })
}
