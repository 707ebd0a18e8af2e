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

/// What a lookup cache holds for a name the C library does not define (no function lives at
/// address 1).
const ABSENT: usize = 1;

/// The address of the next definition of `name` (NUL-terminated), if the C library has one.
fn lookup(name: &'static str, cache: &AtomicUsize) -> Option<usize> {
    match cache.load(Ordering::Relaxed) {
        0 => {}
        ABSENT => return None,
        addr => return Some(addr),
    }
    let c_name = CStr::from_bytes_with_nul(name.as_bytes()).expect("NUL-terminated name");
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name has no preconditions.
    let addr = unsafe { libc::dlsym(libc::RTLD_NEXT, c_name.as_ptr()) } as usize;
    cache.store(if addr == 0 { ABSENT } else { addr }, Ordering::Relaxed);
    (addr != 0).then_some(addr)
}

/// The address of the next definition of `name` (NUL-terminated); aborts if there is none,
/// since every C library since glibc 2.17 defines the names asked for this way.
fn resolve(name: &'static str, cache: &AtomicUsize) -> usize {
    lookup(name, cache).unwrap_or_else(|| {
        let msg = b"lkl-hijack: the C library lacks a function this library forwards to\n";
        // SAFETY: a raw write of a static buffer to stderr, then _exit: no hooks involved.
        unsafe {
            lkl::raw_syscall!(libc::SYS_write, 2, msg.as_ptr(), msg.len());
            libc::_exit(70);
        }
    })
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
            let f: unsafe extern "C" fn($($ty),*) -> $ret =
                // SAFETY: `addr` is glibc's definition of this name, whose C prototype the
                // signature above restates.
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
    fn epoll_pwait(epfd: c_int, events: *mut epoll_event, max: c_int, timeout: c_int,
                   mask: *const libc::sigset_t) -> c_int;
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
    static ADDR64: AtomicUsize = AtomicUsize::new(0);
    static ADDR: AtomicUsize = AtomicUsize::new(0);
    // glibc before 2.28 has only fcntl, which on x86-64 is the same function.
    let addr = lookup("fcntl64\0", &ADDR64).unwrap_or_else(|| resolve("fcntl\0", &ADDR));
    // SAFETY: glibc's `int fcntl64(int, int, ...)`.
    let f: unsafe extern "C" fn(c_int, c_int, ...) -> c_int = unsafe { std::mem::transmute(addr) };
    // SAFETY: the caller upholds fcntl's contract.
    unsafe { f(fd, cmd, arg) }
}

/// Waits as epoll_pwait2(2) does. glibc's function where it has one (2.35; a cancellation
/// point, like the program's own call), else the system call itself; where the kernel lacks
/// that too (before 5.11), epoll_pwait with the timeout rounded up to whole milliseconds, so
/// that no wait is shorter than asked.
///
/// # Safety
/// As for epoll_pwait2: `events` holds `max` entries; `timeout` and `mask` are null or valid.
pub unsafe fn epoll_pwait2(
    epfd: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout: *const timespec,
    mask: *const libc::sigset_t,
) -> c_int {
    if !lkl::host_features::has_epoll_pwait2() {
        // SAFETY: the caller's timeout is null or valid.
        let ms = unsafe { timeout.as_ref() }.map_or(-1, millis_rounded_up);
        // SAFETY: the caller upholds epoll_pwait's contract, which is epoll_pwait2's.
        return unsafe { epoll_pwait(epfd, events, max, ms, mask) };
    }
    static ADDR: AtomicUsize = AtomicUsize::new(0);
    match lookup("epoll_pwait2\0", &ADDR) {
        Some(addr) => {
            // SAFETY: glibc's epoll_pwait2, whose prototype this restates.
            let f: unsafe extern "C" fn(
                c_int,
                *mut epoll_event,
                c_int,
                *const timespec,
                *const libc::sigset_t,
            ) -> c_int = unsafe { std::mem::transmute::<usize, _>(addr) };
            // SAFETY: the caller upholds the function's contract.
            unsafe { f(epfd, events, max, timeout, mask) }
        }
        None => {
            // SAFETY: as above; the last argument is the kernel's signal set size (64 signals).
            let n = unsafe {
                lkl::raw_syscall!(libc::SYS_epoll_pwait2, epfd, events, max, timeout, mask, 8)
            };
            n as c_int
        }
    }
}

/// A timeout in whole milliseconds, rounded up and capped at the largest an int holds.
fn millis_rounded_up(ts: &timespec) -> c_int {
    let ns = i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec);
    ((ns + 999_999) / 1_000_000).clamp(0, i128::from(c_int::MAX)) as c_int
}

/// close_range(2) on host descriptors, as the system call (glibc has no function for it
/// before 2.34). Where the kernel lacks it (before 5.9), each open descriptor in the range is
/// closed, or marked close-on-exec, by itself. Returns 0 or -1 with errno set.
pub fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    if lkl::host_features::has_close_range() {
        // SAFETY: closing descriptor numbers is memory-safe.
        return unsafe { lkl::raw_syscall!(libc::SYS_close_range, first, last, flags) } as c_int;
    }
    let known = (libc::CLOSE_RANGE_CLOEXEC | libc::CLOSE_RANGE_UNSHARE) as c_int;
    if first > last || flags & !known != 0 {
        set_errno(libc::EINVAL);
        return -1;
    }
    if flags & libc::CLOSE_RANGE_UNSHARE as c_int != 0 {
        // SAFETY: unshare takes a flag.
        if unsafe { lkl::raw_syscall!(libc::SYS_unshare, libc::CLONE_FILES) } < 0 {
            return -1;
        }
    }
    for fd in open_fds(first, last) {
        if flags & libc::CLOSE_RANGE_CLOEXEC as c_int != 0 {
            // SAFETY: F_GETFD/F_SETFD take integers.
            unsafe {
                let fd_flags = fcntl64(fd, libc::F_GETFD, 0);
                if fd_flags >= 0 {
                    fcntl64(fd, libc::F_SETFD, (fd_flags | libc::FD_CLOEXEC) as c_ulong);
                }
            }
        } else {
            // SAFETY: closing a descriptor number is memory-safe.
            unsafe { close(fd) };
        }
    }
    0
}

/// The open descriptors in `first..=last`: those /proc lists, or without /proc every number
/// below the descriptor limit.
fn open_fds(first: c_uint, last: c_uint) -> Vec<c_int> {
    let in_range = |fd: &c_int| (first..=last).contains(&(*fd as c_uint));
    // The directory's own descriptor is listed too, and closed before the list is used.
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let listed: Vec<c_int> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        return listed.into_iter().filter(in_range).collect();
    }
    // SAFETY: getrlimit writes the struct it is given.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let limit = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(c_int::MAX as u64) as c_int
    } else {
        1024
    };
    (0..limit).filter(in_range).collect()
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
