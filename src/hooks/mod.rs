//! The exported C functions: glibc's names and prototypes. Each one finds out whether its fd
//! is an LKL socket (fdtable) and either makes the kernel call or hands the call, unchanged,
//! to glibc (host). Bodies run inside `ffi::hook`, which turns results into errno and stops
//! panics.
//!
//! Pointer arguments are passed on as they came: the caller made them valid for the libc
//! function it called, and the kernel uses them the same way (its UAPI structures have the
//! host's layout, and it reads and writes them with plain memory copies).
//!
//! Variadic prototypes (fcntl, ioctl) are defined with their one optional argument as a fixed
//! parameter: on x86-64 Linux (the only target; the lkl crate's host calls are x86-64
//! assembly), variadic integer and pointer arguments travel in the same registers as fixed
//! ones.

#[cfg(not(target_arch = "x86_64"))]
compile_error!("the variadic hooks assume the x86-64 Linux calling convention");

use std::ffi::c_int;

use lkl::Errno;

use crate::fdtable;
use crate::ffi::{CReturn, SysResult};
use crate::kernel;
use crate::objects::Socket;

mod fd;
mod io;
mod socket;
mod syscall;
mod wait;

/// Kernel system call `nr` with up to six arguments (pointers and integers), its result
/// narrowed to the hook's C type.
macro_rules! lkl_call {
    ($nr:expr $(, $arg:expr)* $(,)?) => {{
        let mut args = [0 as std::ffi::c_long; 6];
        let given = [$($arg as std::ffi::c_long),*];
        args[..given.len()].copy_from_slice(&given);
        // SAFETY: the pointer arguments are the hook caller's, passed on unchanged (see the
        // module comment); the others are plain values.
        $crate::ffi::narrow(unsafe { $crate::kernel::call($nr, args) })
    }};
}
pub(crate) use lkl_call;

/// The same call made by glibc, as the result type of a hook.
macro_rules! host_call {
    ($name:ident($($arg:expr),* $(,)?)) => {
        // SAFETY: glibc's own function with the caller's unchanged arguments.
        $crate::ffi::host_result(unsafe { $crate::host::$name($($arg),*) })
    };
}
pub(crate) use host_call;

/// Runs `lkl` with the LKL socket behind `fd`, or `host` for a host fd.
fn on_fd<T: CReturn + PartialEq>(
    fd: c_int,
    lkl: impl FnOnce(&Socket) -> SysResult<T>,
    host: impl FnOnce() -> SysResult<T>,
) -> SysResult<T> {
    match fdtable::socket(fd)? {
        Some(entry) => lkl(entry.socket().expect("socket entries only")),
        None => host(),
    }
}

/// A send to a peer that is gone raises SIGPIPE in the calling thread, as the host kernel
/// would (LKL cannot signal host threads); MSG_NOSIGNAL suppresses it.
fn sigpipe_on_epipe<T>(r: SysResult<T>, flags: c_int) -> SysResult<T> {
    if r.as_ref().err() == Some(&Errno::EPIPE) && flags & libc::MSG_NOSIGNAL == 0 {
        // SAFETY: signals the calling thread; no memory involved.
        unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGPIPE) };
    }
    r
}

/// Whether a socket of this family lives in LKL (the host keeps AF_UNIX, AF_NETLINK,
/// AF_PACKET, ...).
fn lkl_family(domain: c_int) -> bool {
    (domain == libc::AF_INET || domain == libc::AF_INET6) && kernel::enabled()
}

/// glibc's fortify check failed: abort as glibc would.
fn chk_fail() -> ! {
    // SAFETY: __chk_fail prints "buffer overflow detected" and aborts.
    unsafe { crate::host::__chk_fail() };
    unreachable!("__chk_fail returned")
}
