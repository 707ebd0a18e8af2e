//! Sockets: creation, addresses, options.

use std::ffi::{c_int, c_void};

use libc::{sockaddr, socklen_t};
use lkl::sys::*;

use super::{host_call, lkl_call, lkl_family, lkl_socket, on_fd};
use crate::fdtable::{self, Object, Socket};
use crate::ffi::{hook, SysResult};

/// A new LKL fd gets its host number; SOCK_CLOEXEC is the number's, not the kernel's.
fn install(lkl: SysResult<c_int>, cloexec: bool) -> SysResult<c_int> {
    fdtable::install(Object::Socket(Socket { lkl: lkl? }), cloexec)
}

#[no_mangle]
pub extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    hook("socket", || {
        if !lkl_family(domain) {
            return host_call!(socket(domain, ty, protocol));
        }
        let lkl = lkl_call!(__NR_socket, domain, ty & !libc::SOCK_CLOEXEC, protocol);
        install(lkl, ty & libc::SOCK_CLOEXEC != 0)
    })
}

#[no_mangle]
pub extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    hook("bind", || {
        on_fd(fd, |l| lkl_call!(__NR_bind, l, addr, len), || host_call!(bind(fd, addr, len)))
    })
}

#[no_mangle]
pub extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    hook("listen", || {
        on_fd(fd, |l| lkl_call!(__NR_listen, l, backlog), || host_call!(listen(fd, backlog)))
    })
}

#[no_mangle]
pub extern "C" fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int {
    hook("accept4", || match lkl_socket(fd)? {
        None => host_call!(accept4(fd, addr, len, flags)),
        Some((_listener, l)) => {
            let new = lkl_call!(__NR_accept4, l, addr, len, flags & !libc::SOCK_CLOEXEC);
            install(new, flags & libc::SOCK_CLOEXEC != 0)
        }
    })
}

#[no_mangle]
pub extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    hook("accept", || match lkl_socket(fd)? {
        None => host_call!(accept(fd, addr, len)),
        Some((_listener, l)) => install(lkl_call!(__NR_accept4, l, addr, len, 0), false),
    })
}

#[no_mangle]
pub extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    hook("connect", || {
        on_fd(fd, |l| lkl_call!(__NR_connect, l, addr, len), || host_call!(connect(fd, addr, len)))
    })
}

#[no_mangle]
pub extern "C" fn shutdown(fd: c_int, how: c_int) -> c_int {
    hook("shutdown", || {
        on_fd(fd, |l| lkl_call!(__NR_shutdown, l, how), || host_call!(shutdown(fd, how)))
    })
}

#[no_mangle]
pub extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    hook("getsockopt", || {
        on_fd(
            fd,
            |l| lkl_call!(__NR_getsockopt, l, level, name, val, len),
            || host_call!(getsockopt(fd, level, name, val, len)),
        )
    })
}

#[no_mangle]
pub extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    hook("setsockopt", || {
        on_fd(
            fd,
            |l| lkl_call!(__NR_setsockopt, l, level, name, val, len),
            || host_call!(setsockopt(fd, level, name, val, len)),
        )
    })
}

#[no_mangle]
pub extern "C" fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    hook("getsockname", || {
        on_fd(
            fd,
            |l| lkl_call!(__NR_getsockname, l, addr, len),
            || host_call!(getsockname(fd, addr, len)),
        )
    })
}

#[no_mangle]
pub extern "C" fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    hook("getpeername", || {
        on_fd(
            fd,
            |l| lkl_call!(__NR_getpeername, l, addr, len),
            || host_call!(getpeername(fd, addr, len)),
        )
    })
}
