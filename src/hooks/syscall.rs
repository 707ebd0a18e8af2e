//! libc's `syscall(3)`. Some programs make socket calls through it rather than through the
//! named functions — libgo (gccgo's runtime) does for readv/writev, for one — and those calls
//! must reach LKL sockets like any other: each call that takes descriptors goes to the hook of
//! the same name; everything else is made as it came (a raw system call, exactly what libc
//! would do). The library's own host calls use `lkl::raw`, never this.
//!
//! `syscall` is variadic; see the module comment of `hooks` for why a fixed prototype reads
//! its arguments correctly. Callers that pass fewer than six leave garbage in the rest, which
//! only the calls that take them read, as in the kernel.

use std::ffi::{c_int, c_long, c_uint, c_void};

use libc::{
    epoll_event, fd_set, iovec, mmsghdr, msghdr, off_t, pollfd, sigset_t, size_t, sockaddr,
    socklen_t, timespec, timeval,
};

use super::{fd, io, socket, wait};
use crate::ffi::{hook, read_user};

/// The sixth argument of pselect6: the signal mask and its size.
#[repr(C)]
#[derive(Clone, Copy)]
struct SigmaskArg {
    mask: *const sigset_t,
    size: size_t,
}

#[no_mangle]
pub extern "C" fn syscall(
    nr: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    let (i1, i2, i3, i4) = (a1 as c_int, a2 as c_int, a3 as c_int, a4 as c_int);
    let p = |a: c_long| a as *mut c_void;
    match nr {
        libc::SYS_read => io::read(i1, p(a2), a3 as size_t) as c_long,
        libc::SYS_write => io::write(i1, p(a2), a3 as size_t) as c_long,
        libc::SYS_readv => io::readv(i1, a2 as *const iovec, i3) as c_long,
        libc::SYS_writev => io::writev(i1, a2 as *const iovec, i3) as c_long,
        libc::SYS_pread64 => io::pread64(i1, p(a2), a3 as size_t, a4 as off_t) as c_long,
        libc::SYS_pwrite64 => io::pwrite64(i1, p(a2), a3 as size_t, a4 as off_t) as c_long,
        libc::SYS_recvfrom => io::recvfrom(
            i1,
            p(a2),
            a3 as size_t,
            i4,
            a5 as *mut sockaddr,
            a6 as *mut socklen_t,
        ) as c_long,
        libc::SYS_sendto => io::sendto(
            i1,
            p(a2),
            a3 as size_t,
            i4,
            a5 as *const sockaddr,
            a6 as socklen_t,
        ) as c_long,
        libc::SYS_recvmsg => io::recvmsg(i1, a2 as *mut msghdr, i3) as c_long,
        libc::SYS_sendmsg => io::sendmsg(i1, a2 as *const msghdr, i3) as c_long,
        libc::SYS_recvmmsg => io::recvmmsg(
            i1,
            a2 as *mut mmsghdr,
            a3 as c_uint,
            i4,
            a5 as *mut timespec,
        )
        .into(),
        libc::SYS_sendmmsg => io::sendmmsg(i1, a2 as *mut mmsghdr, a3 as c_uint, i4).into(),
        libc::SYS_sendfile => io::sendfile64(i1, i2, a3 as *mut off_t, a4 as size_t) as c_long,
        libc::SYS_splice => io::splice(
            i1,
            a2 as *mut libc::loff_t,
            i3,
            a4 as *mut libc::loff_t,
            a5 as size_t,
            a6 as c_uint,
        ) as c_long,
        libc::SYS_socket => socket::socket(i1, i2, i3).into(),
        libc::SYS_connect => socket::connect(i1, a2 as *const sockaddr, a3 as socklen_t).into(),
        libc::SYS_bind => socket::bind(i1, a2 as *const sockaddr, a3 as socklen_t).into(),
        libc::SYS_listen => socket::listen(i1, i2).into(),
        libc::SYS_accept => socket::accept(i1, a2 as *mut sockaddr, a3 as *mut socklen_t).into(),
        libc::SYS_accept4 => {
            socket::accept4(i1, a2 as *mut sockaddr, a3 as *mut socklen_t, i4).into()
        }
        libc::SYS_shutdown => socket::shutdown(i1, i2).into(),
        libc::SYS_getsockname => {
            socket::getsockname(i1, a2 as *mut sockaddr, a3 as *mut socklen_t).into()
        }
        libc::SYS_getpeername => {
            socket::getpeername(i1, a2 as *mut sockaddr, a3 as *mut socklen_t).into()
        }
        libc::SYS_getsockopt => socket::getsockopt(i1, i2, i3, p(a4), a5 as *mut socklen_t).into(),
        libc::SYS_setsockopt => socket::setsockopt(i1, i2, i3, p(a4), a5 as socklen_t).into(),
        libc::SYS_close => fd::close(i1).into(),
        libc::SYS_close_range => fd::close_range(a1 as c_uint, a2 as c_uint, i3).into(),
        libc::SYS_dup => fd::dup(i1).into(),
        libc::SYS_dup2 => fd::dup2(i1, i2).into(),
        libc::SYS_dup3 => fd::dup3(i1, i2, i3).into(),
        libc::SYS_fcntl => fd::fcntl(i1, i2, a3 as libc::c_ulong).into(),
        libc::SYS_ioctl => fd::ioctl(i1, a2 as libc::c_ulong, p(a3)).into(),
        libc::SYS_poll => wait::poll(a1 as *mut pollfd, a2 as libc::nfds_t, i3).into(),
        libc::SYS_ppoll => wait::ppoll(
            a1 as *mut pollfd,
            a2 as libc::nfds_t,
            a3 as *const timespec,
            a4 as *const sigset_t,
        )
        .into(),
        libc::SYS_select => wait::select(
            i1,
            a2 as *mut fd_set,
            a3 as *mut fd_set,
            a4 as *mut fd_set,
            a5 as *mut timeval,
        )
        .into(),
        libc::SYS_pselect6 => {
            let mask = match a6 {
                0 => std::ptr::null(),
                arg => match read_user(arg as *const SigmaskArg) {
                    Ok(arg) => arg.mask,
                    Err(e) => return hook("syscall", || Err::<c_long, _>(e)),
                },
            };
            wait::pselect(
                i1,
                a2 as *mut fd_set,
                a3 as *mut fd_set,
                a4 as *mut fd_set,
                a5 as *const timespec,
                mask,
            )
            .into()
        }
        libc::SYS_epoll_ctl => wait::epoll_ctl(i1, i2, i3, a4 as *mut epoll_event).into(),
        libc::SYS_epoll_wait => wait::epoll_wait(i1, a2 as *mut epoll_event, i3, i4).into(),
        libc::SYS_epoll_pwait => {
            wait::epoll_pwait(i1, a2 as *mut epoll_event, i3, i4, a5 as *const sigset_t).into()
        }
        libc::SYS_epoll_pwait2 => wait::epoll_pwait2(
            i1,
            a2 as *mut epoll_event,
            i3,
            a4 as *const timespec,
            a5 as *const sigset_t,
        )
        .into(),
        // SAFETY: what the caller asked for, with its arguments, as libc's syscall does.
        _ => unsafe { lkl::raw::syscall6(nr, [a1, a2, a3, a4, a5, a6]) },
    }
}
