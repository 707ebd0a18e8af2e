//! Typed system calls into the kernel. Numbers are the asm-generic ones (`sys::__NR_*`), not
//! x86-64's; structures are the kernel's UAPI types.

use std::ffi::{c_long, c_void, CStr, CString};
use std::net::SocketAddr;
use std::ptr;
use std::time::Duration;

use crate::addr::RawAddr;
use crate::{sys, Errno, Kernel};

/// A file descriptor in the kernel's (single) process: not a host fd.
pub type Fd = i32;

/// The kernel's `struct epoll_event` (packed on x86-64, as glibc's is).
pub type EpollEvent = sys::epoll_event;

/// `uname()` inside the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Utsname {
    pub sysname: String,
    pub nodename: String,
    pub release: String,
    pub version: String,
    pub machine: String,
    pub domainname: String,
}

/// The largest value the kernel returns as an error (-4095..-1 are errnos).
const MAX_ERRNO: c_long = 4095;

fn ptr_arg<T>(p: *const T) -> c_long {
    p as c_long
}

/// A pointer the kernel writes through (derived from a unique borrow, so writes are allowed).
fn out_arg<T: ?Sized>(p: &mut T) -> c_long {
    (p as *mut T).cast::<u8>() as c_long
}

fn c_path(path: &str) -> Result<CString, Errno> {
    CString::new(path).map_err(|_| Errno::EINVAL)
}

fn timespec(d: Duration) -> sys::__kernel_timespec {
    sys::__kernel_timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

impl Kernel {
    /// Runs system call `nr` with six raw arguments on behalf of the calling host thread.
    ///
    /// # Safety
    /// Arguments that the call treats as pointers must be valid for what it does with them.
    pub unsafe fn syscall(&self, nr: u32, args: [c_long; 6]) -> Result<c_long, Errno> {
        let mut params = args;
        // SAFETY: the kernel is running (a `Kernel` exists), and the caller vouches for the
        // pointer arguments; lkl_syscall reads exactly six parameters.
        let ret = unsafe { sys::lkl_syscall(c_long::from(nr), params.as_mut_ptr()) };
        if (-MAX_ERRNO..0).contains(&ret) {
            Err(Errno((-ret) as i32))
        } else {
            Ok(ret)
        }
    }

    /// A call whose arguments are all plain values.
    fn call(&self, nr: u32, args: [c_long; 6]) -> Result<c_long, Errno> {
        // SAFETY: used only for calls that take no pointers, or whose pointers the wrapper
        // built from live Rust references for the duration of the call.
        unsafe { self.syscall(nr, args) }
    }

    fn call_fd(&self, nr: u32, args: [c_long; 6]) -> Result<Fd, Errno> {
        self.call(nr, args).map(|fd| fd as Fd)
    }

    fn call_unit(&self, nr: u32, args: [c_long; 6]) -> Result<(), Errno> {
        self.call(nr, args).map(drop)
    }

    fn call_len(&self, nr: u32, args: [c_long; 6]) -> Result<usize, Errno> {
        self.call(nr, args).map(|n| n as usize)
    }

    pub fn getpid(&self) -> Result<i32, Errno> {
        self.call(sys::__NR_getpid, [0; 6]).map(|p| p as i32)
    }

    /// `socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol)`; see `crate::consts`.
    pub fn socket(&self, domain: u32, ty: u32, protocol: u32) -> Result<Fd, Errno> {
        self.call_fd(
            sys::__NR_socket,
            [domain as c_long, ty as c_long, protocol as c_long, 0, 0, 0],
        )
    }

    pub fn bind(&self, fd: Fd, addr: &SocketAddr) -> Result<(), Errno> {
        let (raw, len) = RawAddr::from_std(addr);
        self.call_unit(
            sys::__NR_bind,
            [fd as c_long, ptr_arg(raw.as_ptr()), len as c_long, 0, 0, 0],
        )
    }

    pub fn listen(&self, fd: Fd, backlog: i32) -> Result<(), Errno> {
        self.call_unit(
            sys::__NR_listen,
            [fd as c_long, backlog as c_long, 0, 0, 0, 0],
        )
    }

    /// Accepts a connection; the peer address is None only for non-IP sockets.
    pub fn accept4(&self, fd: Fd, flags: u32) -> Result<(Fd, Option<SocketAddr>), Errno> {
        let mut raw = RawAddr::zeroed();
        let mut len = RawAddr::CAPACITY;
        let conn = self.call_fd(
            sys::__NR_accept4,
            [
                fd as c_long,
                out_arg(&mut raw),
                out_arg(&mut len),
                flags as c_long,
                0,
                0,
            ],
        )?;
        Ok((conn, raw.to_std(len)))
    }

    pub fn connect(&self, fd: Fd, addr: &SocketAddr) -> Result<(), Errno> {
        let (raw, len) = RawAddr::from_std(addr);
        self.call_unit(
            sys::__NR_connect,
            [fd as c_long, ptr_arg(raw.as_ptr()), len as c_long, 0, 0, 0],
        )
    }

    pub fn close(&self, fd: Fd) -> Result<(), Errno> {
        self.call_unit(sys::__NR_close, [fd as c_long, 0, 0, 0, 0, 0])
    }

    pub fn read(&self, fd: Fd, buf: &mut [u8]) -> Result<usize, Errno> {
        self.call_len(
            sys::__NR_read,
            [fd as c_long, out_arg(buf), buf.len() as c_long, 0, 0, 0],
        )
    }

    pub fn write(&self, fd: Fd, buf: &[u8]) -> Result<usize, Errno> {
        self.call_len(
            sys::__NR_write,
            [
                fd as c_long,
                ptr_arg(buf.as_ptr()),
                buf.len() as c_long,
                0,
                0,
                0,
            ],
        )
    }

    /// Receives into `buf`; the sender's address is None on connected stream sockets.
    pub fn recvfrom(
        &self,
        fd: Fd,
        buf: &mut [u8],
        flags: u32,
    ) -> Result<(usize, Option<SocketAddr>), Errno> {
        let mut raw = RawAddr::zeroed();
        let mut len = RawAddr::CAPACITY;
        let n = self.call_len(
            sys::__NR_recvfrom,
            [
                fd as c_long,
                out_arg(buf),
                buf.len() as c_long,
                flags as c_long,
                out_arg(&mut raw),
                out_arg(&mut len),
            ],
        )?;
        Ok((n, raw.to_std(len)))
    }

    pub fn sendto(
        &self,
        fd: Fd,
        buf: &[u8],
        flags: u32,
        to: Option<&SocketAddr>,
    ) -> Result<usize, Errno> {
        let (raw, len) = match to {
            Some(addr) => RawAddr::from_std(addr),
            None => (RawAddr::zeroed(), 0),
        };
        let raw_ptr = if to.is_some() {
            raw.as_ptr()
        } else {
            ptr::null()
        };
        self.call_len(
            sys::__NR_sendto,
            [
                fd as c_long,
                ptr_arg(buf.as_ptr()),
                buf.len() as c_long,
                flags as c_long,
                ptr_arg(raw_ptr),
                len as c_long,
            ],
        )
    }

    pub fn setsockopt(&self, fd: Fd, level: u32, name: u32, value: &[u8]) -> Result<(), Errno> {
        self.call_unit(
            sys::__NR_setsockopt,
            [
                fd as c_long,
                level as c_long,
                name as c_long,
                ptr_arg(value.as_ptr()),
                value.len() as c_long,
                0,
            ],
        )
    }

    pub fn setsockopt_int(&self, fd: Fd, level: u32, name: u32, value: i32) -> Result<(), Errno> {
        self.setsockopt(fd, level, name, &value.to_ne_bytes())
    }

    /// Reads an option into `value`; returns how many bytes the kernel wrote.
    pub fn getsockopt(
        &self,
        fd: Fd,
        level: u32,
        name: u32,
        value: &mut [u8],
    ) -> Result<usize, Errno> {
        let mut len = value.len() as u32;
        self.call_unit(
            sys::__NR_getsockopt,
            [
                fd as c_long,
                level as c_long,
                name as c_long,
                out_arg(value),
                out_arg(&mut len),
                0,
            ],
        )?;
        Ok(len as usize)
    }

    pub fn getsockopt_int(&self, fd: Fd, level: u32, name: u32) -> Result<i32, Errno> {
        let mut value = [0u8; 4];
        self.getsockopt(fd, level, name, &mut value)?;
        Ok(i32::from_ne_bytes(value))
    }

    pub fn getsockname(&self, fd: Fd) -> Result<SocketAddr, Errno> {
        self.sockname(sys::__NR_getsockname, fd)
    }

    pub fn getpeername(&self, fd: Fd) -> Result<SocketAddr, Errno> {
        self.sockname(sys::__NR_getpeername, fd)
    }

    fn sockname(&self, nr: u32, fd: Fd) -> Result<SocketAddr, Errno> {
        let mut raw = RawAddr::zeroed();
        let mut len = RawAddr::CAPACITY;
        self.call_unit(
            nr,
            [fd as c_long, out_arg(&mut raw), out_arg(&mut len), 0, 0, 0],
        )?;
        raw.to_std(len).ok_or(Errno::EAFNOSUPPORT)
    }

    pub fn shutdown(&self, fd: Fd, how: u32) -> Result<(), Errno> {
        self.call_unit(
            sys::__NR_shutdown,
            [fd as c_long, how as c_long, 0, 0, 0, 0],
        )
    }

    /// `fcntl` with an integer argument (F_GETFL, F_SETFL, F_GETFD, F_SETFD, F_DUPFD...).
    pub fn fcntl(&self, fd: Fd, cmd: u32, arg: c_long) -> Result<c_long, Errno> {
        self.call(sys::__NR_fcntl, [fd as c_long, cmd as c_long, arg, 0, 0, 0])
    }

    /// `ioctl` with a pointer argument.
    ///
    /// # Safety
    /// `arg` must point to what request `req` reads and writes.
    pub unsafe fn ioctl(&self, fd: Fd, req: u32, arg: *mut c_void) -> Result<c_long, Errno> {
        // SAFETY: the caller vouches for arg.
        unsafe {
            self.syscall(
                sys::__NR_ioctl,
                [fd as c_long, req as c_long, ptr_arg(arg), 0, 0, 0],
            )
        }
    }

    pub fn epoll_create1(&self, flags: u32) -> Result<Fd, Errno> {
        self.call_fd(sys::__NR_epoll_create1, [flags as c_long, 0, 0, 0, 0, 0])
    }

    /// EPOLL_CTL_ADD/MOD/DEL; `event` may be None for DEL.
    pub fn epoll_ctl(
        &self,
        epfd: Fd,
        op: u32,
        fd: Fd,
        event: Option<EpollEvent>,
    ) -> Result<(), Errno> {
        let event_ptr = event
            .as_ref()
            .map_or(ptr::null(), |e| e as *const EpollEvent);
        self.call_unit(
            sys::__NR_epoll_ctl,
            [
                epfd as c_long,
                op as c_long,
                fd as c_long,
                ptr_arg(event_ptr),
                0,
                0,
            ],
        )
    }

    /// Waits up to `timeout_ms` (-1: forever) for events; returns how many were stored.
    pub fn epoll_pwait(
        &self,
        epfd: Fd,
        events: &mut [EpollEvent],
        timeout_ms: i32,
    ) -> Result<usize, Errno> {
        // No signal mask: the kernel delivers no signals to host threads.
        self.call_len(
            sys::__NR_epoll_pwait,
            [
                epfd as c_long,
                out_arg(events),
                events.len() as c_long,
                timeout_ms as c_long,
                0,
                0,
            ],
        )
    }

    /// Sleeps inside the kernel (its timers, not the host's).
    pub fn nanosleep(&self, duration: Duration) -> Result<(), Errno> {
        let ts = timespec(duration);
        self.call_unit(sys::__NR_nanosleep, [ptr_arg(&ts), 0, 0, 0, 0, 0])
    }

    /// The kernel's view of a clock (CLOCK_MONOTONIC, CLOCK_REALTIME... from `sys`).
    pub fn clock_gettime(&self, clock: u32) -> Result<Duration, Errno> {
        let mut ts = sys::__kernel_timespec::default();
        self.call_unit(
            sys::__NR_clock_gettime,
            [clock as c_long, out_arg(&mut ts), 0, 0, 0, 0],
        )?;
        Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }

    /// `times(NULL)`: clock ticks (USER_HZ) since boot, which the kernel derives from jiffies.
    pub fn times(&self) -> Result<c_long, Errno> {
        self.call(sys::__NR_times, [0; 6])
    }

    pub fn openat(&self, dirfd: Fd, path: &str, flags: u32, mode: u32) -> Result<Fd, Errno> {
        let path = c_path(path)?;
        self.call_fd(
            sys::__NR_openat,
            [
                dirfd as c_long,
                ptr_arg(path.as_ptr()),
                flags as c_long,
                mode as c_long,
                0,
                0,
            ],
        )
    }

    pub fn open(&self, path: &str, flags: u32, mode: u32) -> Result<Fd, Errno> {
        self.openat(sys::AT_FDCWD, path, flags, mode)
    }

    pub fn mkdir(&self, path: &str, mode: u32) -> Result<(), Errno> {
        let path = c_path(path)?;
        self.call_unit(
            sys::__NR_mkdirat,
            [
                sys::AT_FDCWD as c_long,
                ptr_arg(path.as_ptr()),
                mode as c_long,
                0,
                0,
                0,
            ],
        )
    }

    pub fn mount(
        &self,
        source: &str,
        target: &str,
        fstype: &str,
        flags: u32,
        data: Option<&str>,
    ) -> Result<(), Errno> {
        let (source, target, fstype) = (c_path(source)?, c_path(target)?, c_path(fstype)?);
        let data = data.map(c_path).transpose()?;
        let data_ptr = data.as_ref().map_or(ptr::null(), |d| d.as_ptr());
        self.call_unit(
            sys::__NR_mount,
            [
                ptr_arg(source.as_ptr()),
                ptr_arg(target.as_ptr()),
                ptr_arg(fstype.as_ptr()),
                flags as c_long,
                ptr_arg(data_ptr),
                0,
            ],
        )
    }

    pub fn uname(&self) -> Result<Utsname, Errno> {
        let mut u = sys::new_utsname::default();
        self.call_unit(sys::__NR_uname, [out_arg(&mut u), 0, 0, 0, 0, 0])?;
        let field = |f: &[std::ffi::c_char]| {
            // SAFETY: c_char and u8 have the same size and alignment.
            let bytes = unsafe { &*(f as *const [std::ffi::c_char] as *const [u8]) };
            CStr::from_bytes_until_nul(bytes)
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        Ok(Utsname {
            sysname: field(&u.sysname),
            nodename: field(&u.nodename),
            release: field(&u.release),
            version: field(&u.version),
            machine: field(&u.machine),
            domainname: field(&u.domainname),
        })
    }

    /// Sets IFF_UP on an interface (SIOCGIFFLAGS / SIOCSIFFLAGS on a throwaway socket).
    pub fn interface_up(&self, name: &str) -> Result<(), Errno> {
        let mut ifr = sys::ifreq::default();
        // SAFETY: ifrn_name is the only member of its union, and the default is all zeroes.
        let ifr_name = unsafe { &mut ifr.ifr_ifrn.ifrn_name };
        if name.len() >= ifr_name.len() || name.as_bytes().contains(&0) {
            return Err(Errno::EINVAL);
        }
        for (dst, &src) in ifr_name.iter_mut().zip(name.as_bytes()) {
            *dst = src as std::ffi::c_char;
        }
        let fd = self.socket(
            crate::consts::AF_INET,
            crate::consts::SOCK_DGRAM | crate::consts::SOCK_CLOEXEC,
            0,
        )?;
        let ifr_ptr = ptr::addr_of_mut!(ifr).cast::<c_void>();
        // SAFETY: both requests read and write one struct ifreq, which lives across the calls;
        // ifru_flags is a plain short in a zero-initialized union.
        let result = unsafe {
            self.ioctl(fd, sys::SIOCGIFFLAGS, ifr_ptr).and_then(|_| {
                ifr.ifr_ifru.ifru_flags |= sys::IFF_UP as i16;
                self.ioctl(fd, sys::SIOCSIFFLAGS, ifr_ptr)
            })
        };
        let closed = self.close(fd);
        result.map(drop).and(closed)
    }

    /// Reads a sysctl such as "net.ipv4.tcp_congestion_control" from /proc/sys, without the
    /// trailing newline.
    pub fn sysctl_read(&self, key: &str) -> Result<String, Errno> {
        let text = self.read_file(&sysctl_path(key))?;
        Ok(text.strip_suffix('\n').unwrap_or(&text).to_string())
    }

    /// The whole text of a (small) file of the kernel's, e.g. one of its /proc.
    pub fn read_file(&self, path: &str) -> Result<String, Errno> {
        let fd = self.open(path, sys::O_RDONLY | sys::O_CLOEXEC, 0)?;
        let mut value = Vec::new();
        let mut buf = [0u8; 1024];
        let result = loop {
            match self.read(fd, &mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => value.extend_from_slice(&buf[..n]),
                Err(e) => break Err(e),
            }
        };
        self.close(fd)?;
        result?;
        Ok(String::from_utf8_lossy(&value).into_owned())
    }

    /// Writes a sysctl through /proc/sys (the kernel parses it as if `echo value >` did).
    pub fn sysctl_write(&self, key: &str, value: &str) -> Result<(), Errno> {
        let fd = self.open(&sysctl_path(key), sys::O_WRONLY | sys::O_CLOEXEC, 0)?;
        let written = self.write(fd, value.as_bytes());
        let closed = self.close(fd);
        match written? {
            n if n == value.len() => closed,
            _ => Err(Errno::EIO),
        }
    }
}

/// "net.ipv4.tcp_congestion_control" -> "/proc/sys/net/ipv4/tcp_congestion_control"; a key
/// already written with slashes is taken as a path below /proc/sys.
fn sysctl_path(key: &str) -> String {
    if key.contains('/') {
        format!("/proc/sys/{}", key.trim_start_matches('/'))
    } else {
        format!("/proc/sys/{}", key.replace('.', "/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_keys_map_to_proc_paths() {
        assert_eq!(
            sysctl_path("net.ipv4.tcp_congestion_control"),
            "/proc/sys/net/ipv4/tcp_congestion_control"
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0.5/forwarding"),
            "/proc/sys/net/ipv4/conf/eth0.5/forwarding"
        );
    }
}
