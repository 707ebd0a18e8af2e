//! System calls newer than 3.10 that the library uses where the host kernel has them.
//!
//! Users run on OpenVZ 7 (3.10), RHEL 8 (4.18), Ubuntu 20.04 (5.4), Debian 11 (5.10): each of
//! these calls has a fallback that keeps the behaviour, chosen once per process by asking the
//! kernel with arguments that change nothing. The packet socket's own options are decided
//! where it is set up, and listed by [`crate::packet::PacketBackend::fallbacks`].

use std::fmt;
use std::sync::OnceLock;

/// A host feature that is missing, and what is done instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fallback {
    /// What the host refused.
    pub feature: &'static str,
    /// The Linux release that added it.
    pub since: &'static str,
    /// What is used instead.
    pub instead: &'static str,
}

/// One line: "the host kernel lacks FEATURE (Linux SINCE): INSTEAD".
impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the host kernel lacks {} (Linux {}): {}",
            self.feature, self.since, self.instead
        )
    }
}

#[derive(Clone, Copy, Debug)]
struct Syscalls {
    epoll_pwait2: bool,
    close_range: bool,
    pidfd_open: bool,
}

fn probe() -> Syscalls {
    // Each probe is the system call itself, made so that it fails or does nothing on a kernel
    // that has it; only ENOSYS means it is missing.
    let missing =
        |ret: i64| ret < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS);
    // SAFETY: an invalid epoll fd and no buffer: the kernel checks the fd first (EBADF).
    let epoll_pwait2 =
        !missing(unsafe { crate::raw_syscall!(libc::SYS_epoll_pwait2, -1, 0, 1, 0, 0, 8) });
    // SAFETY: closes only descriptor u32::MAX, which cannot exist.
    let close_range =
        !missing(unsafe { crate::raw_syscall!(libc::SYS_close_range, u32::MAX, u32::MAX, 0) });
    // SAFETY: pidfd_open of pid 0 is refused (EINVAL) where the call exists.
    let pidfd_open = !missing(unsafe { crate::raw_syscall!(libc::SYS_pidfd_open, 0, 0) });
    Syscalls {
        epoll_pwait2,
        close_range,
        pidfd_open,
    }
}

fn syscalls() -> Syscalls {
    static FOUND: OnceLock<Syscalls> = OnceLock::new();
    *FOUND.get_or_init(probe)
}

/// epoll_pwait2(2) (5.11): waits with a timeout in nanoseconds.
pub fn has_epoll_pwait2() -> bool {
    syscalls().epoll_pwait2
}

/// close_range(2) (5.9).
pub fn has_close_range() -> bool {
    syscalls().close_range
}

/// pidfd_open(2) (5.3).
pub fn has_pidfd_open() -> bool {
    syscalls().pidfd_open
}

/// The system calls this host lacks, and what the library does instead.
pub fn fallbacks() -> Vec<Fallback> {
    let s = syscalls();
    [
        (!s.epoll_pwait2).then_some(Fallback {
            feature: "epoll_pwait2",
            since: "5.11",
            instead: "epoll_pwait, the timeout rounded up to milliseconds",
        }),
        (!s.close_range).then_some(Fallback {
            feature: "close_range",
            since: "5.9",
            instead: "each open descriptor in the range closed by itself",
        }),
        (!s.pidfd_open).then_some(Fallback {
            feature: "pidfd_open",
            since: "5.3",
            instead: "the firewall watchdog reads the program's /proc entry every 200 ms",
        }),
    ]
    .into_iter()
    .flatten()
    .collect()
}
