//! The host's C library, as it would be without us.
//!
//! This library exports `read`, `close`, `socket`, ...; inside a preloaded object those names
//! resolve to our own hooks, so every host call the library makes goes through here: to the
//! next definition in the lookup order (glibc's), found with `dlsym(RTLD_NEXT, ...)` on first
//! use.

use std::ffi::{c_int, c_uint, c_ulong, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};

use libc::{
    epoll_event, iovec, mmsghdr, msghdr, nfds_t, off_t, pollfd, size_t, sockaddr, socklen_t,
    ssize_t, timespec,
};

/// The address of the next definition of `name` (NUL-terminated); aborts if there is none,
/// since glibc defines every name asked for here.
fn resolve(name: &'static str, cache: &AtomicUsize) -> usize {
    let cached = cache.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    let c_name = CStr::from_bytes_with_nul(name.as_bytes()).expect("NUL-terminated name");
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name has no preconditions.
    let addr = unsafe { libc::dlsym(libc::RTLD_NEXT, c_name.as_ptr()) } as usize;
    if addr == 0 {
        let msg = b"lkl-hijack: the C library lacks a function this library forwards to\n";
        // SAFETY: a raw write of a static buffer to stderr, then _exit: no hooks involved.
        unsafe {
            lkl::raw_syscall!(libc::SYS_write, 2, msg.as_ptr(), msg.len());
            libc::_exit(70);
        }
    }
    cache.store(addr, Ordering::Relaxed);
    addr
}

/// Declares `pub unsafe fn NAME(args) -> ret` calling the C library's `NAME`.
macro_rules! forward {
    ($( fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {$(
        /// The C library's function of this name.
        ///
        /// # Safety
        /// As for the C function: pointer arguments must be valid for what it does with them.
        #[allow(clippy::too_many_arguments)]
        pub unsafe fn $name($($arg: $ty),*) -> $ret {
            static ADDR: AtomicUsize = AtomicUsize::new(0);
            let addr = resolve(concat!(stringify!($name), "\0"), &ADDR);
            // SAFETY: `addr` is glibc's definition of this name, whose C prototype the
            // signature below restates.
            let f: unsafe extern "C" fn($($ty),*) -> $ret =
                unsafe { std::mem::transmute::<usize, _>(addr) };
            // SAFETY: the caller upholds the C function's contract.
            unsafe { f($($arg),*) }
        }
    )*};
}

forward! {
    fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
    fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    fn listen(fd: c_int, backlog: c_int) -> c_int;
    fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int;
    fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    fn shutdown(fd: c_int, how: c_int) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int;
    fn read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t;
    fn write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t;
    fn readv(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t;
    fn writev(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t;
    fn pread64(fd: c_int, buf: *mut c_void, count: size_t, off: off_t) -> ssize_t;
    fn pwrite64(fd: c_int, buf: *const c_void, count: size_t, off: off_t) -> ssize_t;
    fn recvfrom(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int, addr: *mut sockaddr,
                alen: *mut socklen_t) -> ssize_t;
    fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t;
    fn recvmmsg(fd: c_int, msgs: *mut mmsghdr, n: c_uint, flags: c_int,
                timeout: *mut timespec) -> c_int;
    fn sendto(fd: c_int, buf: *const c_void, len: size_t, flags: c_int, addr: *const sockaddr,
              alen: socklen_t) -> ssize_t;
    fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t;
    fn sendmmsg(fd: c_int, msgs: *mut mmsghdr, n: c_uint, flags: c_int) -> c_int;
    fn getsockopt(fd: c_int, level: c_int, name: c_int, val: *mut c_void,
                  len: *mut socklen_t) -> c_int;
    fn setsockopt(fd: c_int, level: c_int, name: c_int, val: *const c_void,
                  len: socklen_t) -> c_int;
    fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    fn dup(fd: c_int) -> c_int;
    fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int;
    fn ppoll(fds: *mut pollfd, n: nfds_t, timeout: *const timespec,
             mask: *const libc::sigset_t) -> c_int;
    fn select(n: c_int, r: *mut libc::fd_set, w: *mut libc::fd_set, e: *mut libc::fd_set,
              timeout: *mut libc::timeval) -> c_int;
    fn pselect(n: c_int, r: *mut libc::fd_set, w: *mut libc::fd_set, e: *mut libc::fd_set,
               timeout: *const timespec, mask: *const libc::sigset_t) -> c_int;
    fn epoll_ctl(epfd: c_int, op: c_int, fd: c_int, event: *mut epoll_event) -> c_int;
    fn epoll_pwait2(epfd: c_int, events: *mut epoll_event, max: c_int,
                    timeout: *const timespec, mask: *const libc::sigset_t) -> c_int;
    fn sendfile64(out: c_int, input: c_int, offset: *mut off_t, count: size_t) -> ssize_t;
    fn splice(fd_in: c_int, off_in: *mut libc::loff_t, fd_out: c_int,
              off_out: *mut libc::loff_t, len: size_t, flags: c_uint) -> ssize_t;
    fn lseek64(fd: c_int, off: off_t, whence: c_int) -> off_t;
    fn eventfd(initval: c_uint, flags: c_int) -> c_int;
    fn __chk_fail() -> ();
}

/// glibc's fcntl64, called as the variadic function it is.
///
/// # Safety
/// As for fcntl: `arg` must be what `cmd` expects.
pub unsafe fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    static ADDR: AtomicUsize = AtomicUsize::new(0);
    let addr = resolve("fcntl64\0", &ADDR);
    // SAFETY: glibc's `int fcntl64(int, int, ...)`.
    let f: unsafe extern "C" fn(c_int, c_int, ...) -> c_int = unsafe { std::mem::transmute(addr) };
    // SAFETY: the caller upholds fcntl's contract.
    unsafe { f(fd, cmd, arg) }
}

/// glibc's ioctl, called as the variadic function it is.
///
/// # Safety
/// As for ioctl: `arg` must be what `request` expects.
pub unsafe fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    static ADDR: AtomicUsize = AtomicUsize::new(0);
    let addr = resolve("ioctl\0", &ADDR);
    // SAFETY: glibc's `int ioctl(int, unsigned long, ...)`.
    let f: unsafe extern "C" fn(c_int, c_ulong, ...) -> c_int =
        unsafe { std::mem::transmute(addr) };
    // SAFETY: the caller upholds ioctl's contract.
    unsafe { f(fd, request, arg) }
}

/// The calling thread's `errno`.
pub fn errno() -> c_int {
    // SAFETY: __errno_location always returns the calling thread's valid errno slot.
    unsafe { *libc::__errno_location() }
}

pub fn set_errno(value: c_int) {
    // SAFETY: as in errno().
    unsafe { *libc::__errno_location() = value };
}

/// Writes all of `bytes` to fd 2 with the real write (log lines, fatal errors).
pub fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: the buffer is a live slice of `bytes.len()` bytes.
        let n = unsafe { write(2, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}
