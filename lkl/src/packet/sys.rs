//! The host system calls the packet backend makes, as raw syscalls: this code ends up inside
//! an LD_PRELOAD library that interposes libc's socket functions, and its own calls must reach
//! the host kernel, not those hooks (smoltcp's phy/sys style: one thin wrapper per call).

use std::ffi::{c_int, c_long, c_uint, c_void};
use std::io;
use std::ptr;

/// A raw syscall's return value: -1 means errno is set.
fn check(ret: c_long) -> io::Result<c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A host file descriptor, closed with a raw `close` when dropped.
#[derive(Debug)]
pub struct Fd(c_int);

impl Fd {
    pub fn raw(&self) -> c_int {
        self.0
    }

    /// Takes ownership of an inherited descriptor (EBADF if it is not open).
    pub fn adopt(raw: c_int) -> io::Result<Fd> {
        if raw < 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        // SAFETY: F_GETFD takes no pointer.
        check(unsafe { crate::raw_syscall!(libc::SYS_fcntl, raw, libc::F_GETFD) })?;
        Ok(Fd(raw))
    }

    /// Gives the descriptor up without closing it.
    pub fn into_raw(self) -> c_int {
        let raw = self.0;
        std::mem::forget(self);
        raw
    }
}

pub fn set_cloexec(fd: &Fd, on: bool) -> io::Result<()> {
    let flags = if on { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: F_SETFD takes an integer.
    check(unsafe { crate::raw_syscall!(libc::SYS_fcntl, fd.0, libc::F_SETFD, flags) }).map(drop)
}

/// An int-valued socket option.
pub fn getsockopt_int(fd: &Fd, level: c_int, name: c_int) -> io::Result<c_int> {
    let mut value: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: value and len are live for the call and len says value's size.
    check(unsafe {
        crate::raw_syscall!(
            libc::SYS_getsockopt,
            fd.0,
            level,
            name,
            ptr::from_mut(&mut value),
            ptr::from_mut(&mut len),
        )
    })?;
    Ok(value)
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor and nothing uses it after drop.
        unsafe { crate::raw_syscall!(libc::SYS_close, self.0) };
    }
}

pub fn socket(domain: c_int, ty: c_int, protocol: c_int) -> io::Result<Fd> {
    // SAFETY: socket takes integers only.
    let fd = check(unsafe { crate::raw_syscall!(libc::SYS_socket, domain, ty, protocol) })?;
    Ok(Fd(fd as c_int))
}

pub fn eventfd() -> io::Result<Fd> {
    // SAFETY: eventfd2 takes integers only.
    let fd = check(unsafe {
        crate::raw_syscall!(
            libc::SYS_eventfd2,
            0,
            libc::EFD_CLOEXEC | libc::EFD_NONBLOCK,
        )
    })?;
    Ok(Fd(fd as c_int))
}

/// `ioctl` whose argument is a `T` (an ifreq for the SIOCGIF* requests).
///
/// # Safety
/// `T` must be what request `req` reads and writes.
pub unsafe fn ioctl<T>(fd: &Fd, req: c_long, arg: &mut T) -> io::Result<()> {
    // SAFETY: arg is a live exclusive borrow; the caller pairs req with T.
    check(unsafe { crate::raw_syscall!(libc::SYS_ioctl, fd.0, req, ptr::from_mut(arg)) }).map(drop)
}

/// `setsockopt` with a `T` value.
///
/// # Safety
/// `T` must be the option's value type (plain data).
pub unsafe fn setsockopt<T>(fd: &Fd, level: c_int, name: c_int, value: &T) -> io::Result<()> {
    // SAFETY: value is readable for size_of::<T>() bytes during the call.
    check(unsafe {
        crate::raw_syscall!(
            libc::SYS_setsockopt,
            fd.0,
            level,
            name,
            ptr::from_ref(value),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

pub fn bind_ll(fd: &Fd, addr: &libc::sockaddr_ll) -> io::Result<()> {
    // SAFETY: addr is a valid sockaddr_ll read during the call.
    check(unsafe {
        crate::raw_syscall!(
            libc::SYS_bind,
            fd.0,
            ptr::from_ref(addr),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Binds `fd` to the first `len` bytes of `addr` (an abstract name's length counts).
pub fn bind_unix(fd: &Fd, addr: &libc::sockaddr_un, len: libc::socklen_t) -> io::Result<()> {
    let len = len.min(std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t);
    // SAFETY: addr is a valid sockaddr_un read during the call, for at most its size.
    check(unsafe { crate::raw_syscall!(libc::SYS_bind, fd.0, ptr::from_ref(addr), len) }).map(drop)
}

/// A msghdr naming the address `name` (`T` a sockaddr, or `()` for none) and the buffers
/// `iov`. It points into both, so they must outlive its use.
pub fn msghdr<T>(name: Option<(&mut T, libc::socklen_t)>, iov: &mut [libc::iovec]) -> libc::msghdr {
    // SAFETY: msghdr is plain data; all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    if let Some((addr, len)) = name {
        msg.msg_name = ptr::from_mut(addr).cast();
        msg.msg_namelen = len;
    }
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len();
    msg
}

/// # Safety
/// `msg` must describe valid buffers (name, iovecs) for the call.
pub unsafe fn sendmsg(fd: &Fd, msg: &libc::msghdr, flags: c_int) -> io::Result<usize> {
    // SAFETY: the caller vouches for the buffers msg points to.
    check(unsafe { crate::raw_syscall!(libc::SYS_sendmsg, fd.0, ptr::from_ref(msg), flags) })
        .map(|n| n as usize)
}

/// # Safety
/// `msg` must describe valid writable buffers (name, iovecs, control) for the call.
pub unsafe fn recvmsg(fd: &Fd, msg: &mut libc::msghdr, flags: c_int) -> io::Result<usize> {
    // SAFETY: the caller vouches for the buffers msg points to.
    check(unsafe { crate::raw_syscall!(libc::SYS_recvmsg, fd.0, ptr::from_mut(msg), flags) })
        .map(|n| n as usize)
}

/// Waits until one of `fds` has an event, or `timeout` passes (None: no timeout); returns
/// how many have one.
pub fn ppoll(fds: &mut [libc::pollfd], timeout: Option<std::time::Duration>) -> io::Result<usize> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(ptr::null(), ptr::from_ref);
    // SAFETY: fds is a live exclusive slice of pollfd, ts lives through the call; no mask.
    check(unsafe {
        crate::raw_syscall!(
            libc::SYS_ppoll,
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            ts_ptr,
            ptr::null::<libc::sigset_t>(),
            0usize,
        )
    })
    .map(|n| n as usize)
}

pub fn eventfd_signal(fd: &Fd) -> io::Result<()> {
    let one: u64 = 1;
    // SAFETY: writes the 8 bytes of `one`, alive during the call.
    check(unsafe { crate::raw_syscall!(libc::SYS_write, fd.0, ptr::from_ref(&one), 8usize) })
        .map(drop)
}

/// Resets an eventfd's count to zero (it must be non-zero: the read would block).
pub fn eventfd_clear(fd: &Fd) -> io::Result<()> {
    let mut count: u64 = 0;
    // SAFETY: reads 8 bytes into `count`, alive during the call.
    check(unsafe { crate::raw_syscall!(libc::SYS_read, fd.0, ptr::from_mut(&mut count), 8usize) })
        .map(drop)
}

/// Reads a whole (small, /proc) file with raw openat/read.
pub fn read_file(path: &std::ffi::CStr) -> io::Result<Vec<u8>> {
    // SAFETY: path is NUL-terminated and alive during the call.
    let fd = check(unsafe {
        crate::raw_syscall!(
            libc::SYS_openat,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
            0 as c_uint,
        )
    })?;
    let fd = Fd(fd as c_int);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: the kernel writes at most buf.len() bytes into buf.
        let n = check(unsafe {
            crate::raw_syscall!(
                libc::SYS_read,
                fd.0,
                buf.as_mut_ptr().cast::<c_void>(),
                buf.len(),
            )
        })? as usize;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// A shared read-write mapping of `len` bytes of `fd` (a packet socket's ring), kept out of
/// forked children (MADV_DONTFORK): they must not see, let alone release, its frames.
pub fn mmap_shared(fd: &Fd, len: usize) -> io::Result<*mut u8> {
    // SAFETY: a fresh mapping at an address the kernel picks; no existing memory is touched.
    let addr = check(unsafe {
        crate::raw_syscall!(
            libc::SYS_mmap,
            ptr::null_mut::<c_void>(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.0,
            0usize,
        )
    })? as *mut u8;
    // SAFETY: addr..addr+len is the mapping just made.
    let advised = unsafe { crate::raw_syscall!(libc::SYS_madvise, addr, len, libc::MADV_DONTFORK) };
    if let Err(e) = check(advised) {
        // SAFETY: as above; nothing else refers to it yet.
        unsafe { munmap(addr, len) };
        return Err(e);
    }
    Ok(addr)
}

/// # Safety
/// `addr..addr+len` must be a mapping of ours that nothing uses any more.
pub unsafe fn munmap(addr: *mut u8, len: usize) {
    // SAFETY: the caller vouches that the range is ours and unused.
    unsafe { crate::raw_syscall!(libc::SYS_munmap, addr, len) };
}

/// Sends `msgs` in order without blocking; returns how many were sent (at least one), or
/// the error of the first.
///
/// # Safety
/// Each message must describe valid buffers (name, iovecs) for the call.
pub unsafe fn sendmmsg(fd: &Fd, msgs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    // SAFETY: the caller vouches for the buffers; the kernel writes only each msg_len.
    check(unsafe {
        crate::raw_syscall!(
            libc::SYS_sendmmsg,
            fd.0,
            msgs.as_mut_ptr(),
            msgs.len() as c_uint,
            libc::MSG_DONTWAIT,
        )
    })
    .map(|n| n as usize)
}
