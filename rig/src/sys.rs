//! Thin safe wrappers over the Linux calls the rig needs (tun, setns, epoll, timerfd, signalfd,
//! pidfd). Every `unsafe` block of the crate that talks to the kernel lives here.

use std::fs::{File, OpenOptions};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: isize) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// Wraps a freshly returned file descriptor.
fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: callers pass a descriptor that a successful syscall has just returned and that
    // nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Moves the calling thread into the network namespace `ns` refers to.
pub fn setns_net(ns: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: setns takes a descriptor number and a flag, no memory is passed.
    cvt(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) })?;
    Ok(())
}

/// `struct ifreq` restricted to the members TUNSETIFF uses: the name and the `ifr_flags` member
/// of the union, padded to the kernel's 40-byte size.
#[repr(C)]
struct IfReqFlags {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Attaches to (or creates) the tun device `dev` in the calling thread's network namespace, as
/// IFF_TUN|IFF_NO_PI (bare IP packets), non-blocking.
pub fn open_tun(dev: &str) -> io::Result<OwnedFd> {
    if dev.is_empty() || dev.len() >= libc::IFNAMSIZ || dev.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "bad interface name {dev:?} (1 to {} bytes)",
                libc::IFNAMSIZ - 1
            ),
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/net/tun")?;
    let mut req = IfReqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    for (dst, src) in req.name.iter_mut().zip(dev.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq`; IfReqFlags has its layout (name, then
    // the flags member of the union, 40 bytes in all) and outlives the call.
    cvt(unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            libc::TUNSETIFF,
            &mut req as *mut IfReqFlags,
        )
    })?;
    Ok(file.into())
}

/// Sets the link type the tun device `dev` reports (TUNSETLINK), as an ARPHRD value. The
/// device must be down.
pub fn set_tun_link_type(dev: &str, link_type: u16) -> io::Result<()> {
    let tun = open_tun(dev)?;
    // SAFETY: TUNSETLINK takes the link type as the integer argument itself; no memory is
    // passed.
    cvt(unsafe {
        libc::ioctl(
            tun.as_raw_fd(),
            libc::TUNSETLINK,
            libc::c_ulong::from(link_type),
        )
    })?;
    Ok(())
}

/// Reads one packet; `Ok(None)` when the descriptor has nothing to read (EAGAIN).
pub fn read_packet(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        // SAFETY: the kernel writes at most buf.len() bytes into buf, which is valid and
        // exclusively borrowed for the call.
        let ret = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match cvt_size(ret) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// Writes one packet.
pub fn write_packet(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<()> {
    // SAFETY: the kernel reads buf.len() bytes from buf, which is valid for the call.
    let ret = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    cvt_size(ret).map(drop)
}

/// CLOCK_MONOTONIC in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let mut ts = MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: clock_gettime fills the timespec it is given; CLOCK_MONOTONIC always exists, so
    // the call cannot fail and the value is initialised afterwards.
    let ts = unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, ts.as_mut_ptr());
        ts.assume_init()
    };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sends `sig` to process `pid`.
pub fn kill(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: kill takes two integers, no memory is passed.
    cvt(unsafe { libc::kill(pid, sig) })?;
    Ok(())
}

/// A descriptor that becomes readable when process `pid` has exited.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags, no memory is passed.
    let ret =
        unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_long, 0 as libc::c_long) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(owned(ret as libc::c_int))
}

/// Opens a network namespace file (`/run/netns/NAME`).
pub fn open_netns(path: &std::path::Path) -> io::Result<File> {
    File::open(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot open network namespace {}: {e}", path.display()),
        )
    })
}

/// A level-triggered epoll set whose events carry a caller-chosen token.
pub struct Epoll(OwnedFd);

impl Epoll {
    pub fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 takes only flags.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Self(owned(fd)))
    }

    /// Watches `fd` for readability.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: ev is a valid epoll_event that the kernel only reads during the call.
        cvt(unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut ev,
            )
        })?;
        Ok(())
    }

    /// Waits for events (forever when `timeout_ms` is -1); returns how many were stored.
    /// An interrupted wait returns 0.
    pub fn wait(
        &self,
        events: &mut [libc::epoll_event],
        timeout_ms: libc::c_int,
    ) -> io::Result<usize> {
        let max = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: the kernel stores at most `max` events into `events`, which is exclusively
        // borrowed for the call.
        let ret =
            unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
        match cvt(ret) {
            Ok(n) => Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// A one-shot CLOCK_MONOTONIC timer with an absolute deadline in nanoseconds.
pub struct TimerFd(OwnedFd);

impl TimerFd {
    pub fn new() -> io::Result<Self> {
        // SAFETY: timerfd_create takes a clock id and flags.
        let fd = cvt(unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        })?;
        Ok(Self(owned(fd)))
    }

    /// Arms the timer for the absolute monotonic time `deadline_ns`, or disarms it with `None`.
    pub fn set(&self, deadline_ns: Option<u64>) -> io::Result<()> {
        // A zero it_value disarms, so an armed deadline is at least 1 ns.
        let ns = deadline_ns.map_or(0, |d| d.max(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (ns % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: spec is a valid itimerspec read during the call; the old value is not wanted
        // (null is allowed).
        cvt(unsafe {
            libc::timerfd_settime(
                self.0.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        })?;
        Ok(())
    }

    /// Consumes the expiration count so the descriptor stops being readable.
    pub fn drain(&self) -> io::Result<()> {
        let mut buf = [0u8; 8];
        read_packet(self.0.as_fd(), &mut buf).map(drop)
    }
}

impl AsFd for TimerFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Blocks `signals` in the calling thread and delivers them through a descriptor instead.
pub struct SignalFd(OwnedFd);

impl SignalFd {
    pub fn new(signals: &[libc::c_int]) -> io::Result<Self> {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the set; sigaddset only writes into it; the set is a
        // valid sigset_t for pthread_sigmask and signalfd, which only read it.
        let fd = unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            for &sig in signals {
                cvt(libc::sigaddset(set.as_mut_ptr(), sig))?;
            }
            let set = set.assume_init();
            let err = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if err != 0 {
                return Err(io::Error::from_raw_os_error(err));
            }
            cvt(libc::signalfd(
                -1,
                &set,
                libc::SFD_NONBLOCK | libc::SFD_CLOEXEC,
            ))?
        };
        Ok(Self(owned(fd)))
    }

    /// The next pending signal number, if any.
    pub fn read(&self) -> io::Result<Option<libc::c_int>> {
        let mut info = MaybeUninit::<libc::signalfd_siginfo>::uninit();
        // SAFETY: the kernel writes whole signalfd_siginfo records into the buffer, which has
        // exactly that size and is exclusively ours for the call.
        let buf = unsafe {
            std::slice::from_raw_parts_mut(
                info.as_mut_ptr().cast::<u8>(),
                size_of::<libc::signalfd_siginfo>(),
            )
        };
        match read_packet(self.0.as_fd(), buf)? {
            Some(n) if n == size_of::<libc::signalfd_siginfo>() => {
                // SAFETY: the kernel filled the whole record (n bytes were read).
                let info = unsafe { info.assume_init() };
                Ok(Some(info.ssi_signo as libc::c_int))
            }
            Some(n) => Err(io::Error::other(format!("short signalfd read ({n} bytes)"))),
            None => Ok(None),
        }
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Whether the process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
