//! Sockets: creation, connections, addresses, options.

use std::ffi::{c_int, c_void};

use libc::{sockaddr, socklen_t};
use lkl::sys::*;
use lkl::Errno;

use super::{host_call, lkl_call, lkl_family, on_fd};
use crate::blocking::{self, Dir};
use crate::fdtable;
use crate::ffi::{hook, SysResult};
use crate::objects::{Made, Object, Pending, Socket};
use crate::placement::{self, Start};
use crate::{fork, kernel, tcpinfo};

/// Gives a new LKL socket its host number. SOCK_CLOEXEC is the number's and SOCK_NONBLOCK
/// the program's view; inside LKL every socket is nonblocking.
fn install(
    lkl: SysResult<c_int>,
    made: Made,
    flags: c_int,
    pending: Option<Pending>,
) -> SysResult<c_int> {
    let stream = made.kind == libc::SOCK_STREAM;
    let sock = Socket::new(
        lkl?,
        stream,
        flags & libc::SOCK_NONBLOCK != 0,
        made,
        pending,
    );
    fdtable::install(Object::Socket(sock), flags & libc::SOCK_CLOEXEC != 0)
}

#[no_mangle]
pub extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    hook("socket", || {
        if !lkl_family(domain) {
            return host_call!(socket(domain, ty, protocol));
        }
        let flags = libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
        let kind = ty & !flags;
        let pending = match placement::start(kind, kernel::ownership()) {
            Start::Host => return host_call!(socket(domain, ty, protocol)),
            Start::Lkl => None,
            Start::Provisional => Some(Pending::default()),
        };
        let lkl = lkl_call!(__NR_socket, domain, kind | libc::SOCK_NONBLOCK, protocol);
        let made = Made {
            domain,
            kind,
            protocol,
        };
        install(lkl, made, ty & flags, pending)
    })
}

fn accept_lkl(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> Option<SysResult<c_int>> {
    let entry = match fdtable::socket(fd) {
        Ok(Some(e)) => e,
        Ok(None) => return None,
        Err(e) => return Some(Err(e)),
    };
    let listener = entry.socket().expect("socket entries only");
    fork::serving();
    let new = blocking::retry(listener, Dir::In, || {
        lkl_call!(__NR_accept4, listener.lkl, addr, len, libc::SOCK_NONBLOCK)
    });
    if let Ok(fd) = new {
        tcpinfo::log("accepted", fd);
    }
    Some(install(new, listener.made, flags, None))
}

#[no_mangle]
pub extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    hook("accept4", || {
        if flags & !(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) != 0 {
            return Err(Errno::EINVAL);
        }
        accept_lkl(fd, addr, len, flags)
            .unwrap_or_else(|| host_call!(accept4(fd, addr, len, flags)))
    })
}

#[no_mangle]
pub extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    hook("accept", || {
        accept_lkl(fd, addr, len, 0).unwrap_or_else(|| host_call!(accept(fd, addr, len)))
    })
}

/// A blocking connect: the kernel's nonblocking one, then waits, each followed by another
/// connect, which reports the outcome and marks the socket connected as a blocking connect
/// would (so a further connect fails with EISCONN, as on Linux).
fn connect_lkl(sock: &Socket, addr: *const sockaddr, len: socklen_t) -> SysResult<c_int> {
    match lkl_call!(__NR_connect, sock.lkl, addr, len) {
        Err(Errno::EINPROGRESS) if !sock.nonblocking() => {}
        result => return result,
    }
    let outcome = blocking::retry(sock, Dir::Out, || {
        match lkl_call!(__NR_connect, sock.lkl, addr, len) {
            Err(Errno::EALREADY) => Err(Errno::EAGAIN),
            result => result,
        }
    });
    match outcome {
        // SO_SNDTIMEO ran out: the attempt goes on, as after a timed-out Linux connect.
        Err(Errno::EAGAIN) => Err(Errno::EINPROGRESS),
        result => result,
    }
}

#[no_mangle]
pub extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    hook("connect", || {
        let host = || host_call!(connect(fd, addr, len));
        on_fd(
            fd,
            // SAFETY: the caller's address, as for connect.
            |s| match unsafe { placement::connect(fd, s, addr, len) }? {
                true => connect_lkl(s, addr, len),
                false => host(),
            },
            host,
        )
    })
}

#[no_mangle]
pub extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    hook("bind", || {
        on_fd(
            fd,
            |s| {
                let r: c_int = lkl_call!(__NR_bind, s.lkl, addr, len)?;
                // SAFETY: the address the kernel just accepted.
                unsafe { placement::bound(fd, s, addr, len) }?;
                Ok(r)
            },
            || host_call!(bind(fd, addr, len)),
        )
    })
}

#[no_mangle]
pub extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    hook("listen", || {
        let host = || host_call!(listen(fd, backlog));
        on_fd(
            fd,
            |s| {
                if !placement::listen(fd, s)? {
                    return host();
                }
                let r: c_int = lkl_call!(__NR_listen, s.lkl, backlog)?;
                placement::listening(s, backlog)?;
                Ok(r)
            },
            host,
        )
    })
}

#[no_mangle]
pub extern "C" fn shutdown(fd: c_int, how: c_int) -> c_int {
    hook("shutdown", || {
        on_fd(
            fd,
            |s| lkl_call!(__NR_shutdown, s.lkl, how),
            || host_call!(shutdown(fd, how)),
        )
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
            |s| lkl_call!(__NR_getsockopt, s.lkl, level, name, val, len),
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
            |s| {
                let r: c_int = lkl_call!(__NR_setsockopt, s.lkl, level, name, val, len)?;
                // SAFETY: the value the kernel just read, as for setsockopt.
                unsafe { placement::record_option(s, level, name, val, len) };
                Ok(r)
            },
            || host_call!(setsockopt(fd, level, name, val, len)),
        )
    })
}

#[no_mangle]
pub extern "C" fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    hook("getsockname", || {
        on_fd(
            fd,
            |s| lkl_call!(__NR_getsockname, s.lkl, addr, len),
            || host_call!(getsockname(fd, addr, len)),
        )
    })
}

#[no_mangle]
pub extern "C" fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    hook("getpeername", || {
        on_fd(
            fd,
            |s| lkl_call!(__NR_getpeername, s.lkl, addr, len),
            || host_call!(getpeername(fd, addr, len)),
        )
    })
}
