//! The watchdog: a process that waits for the program to end, however it ends, and removes its
//! rules.

use std::ffi::{c_char, CString};

use super::{Firewall, PATH};

/// How the watchdog's wait for the program's end came out.
#[derive(Debug, PartialEq, Eq)]
enum WaitEnd {
    /// The program has ended: the rules go.
    Ended,
    /// Waiting failed with this errno: the watchdog cannot tell when the program ends.
    Failed(i32),
}

/// Waits with `ppoll` (one ppoll(2) on the program's pidfd without a timeout: its result, or
/// the errno) until the program has ended. Only a wait that a signal interrupted is retried:
/// any other failure would come back at once, and retrying it would spin for the program's
/// whole life.
fn wait_for_end(mut ppoll: impl FnMut() -> Result<libc::c_long, i32>) -> WaitEnd {
    loop {
        match ppoll() {
            // Without a timeout ppoll returns only once the pidfd is readable.
            Ok(_) => return WaitEnd::Ended,
            Err(libc::EINTR) => continue,
            Err(errno) => return WaitEnd::Failed(errno),
        }
    }
}

/// The watchdog's warning that it stopped waiting after ppoll failed with `errno`, formatted
/// into `buf` (after the watchdog's fork nothing may allocate) and cut to fit it.
fn watchdog_failure(errno: i32, buf: &mut [u8]) -> &[u8] {
    use std::io::Write;
    let room = buf.len();
    let mut rest = &mut buf[..];
    let _ = writeln!(
        rest,
        "lkl-hijack: warning: firewall watchdog stopped: waiting for the program failed \
         (errno {errno}); its rules stay if it is killed, until the next instance removes them"
    );
    let written = room - rest.len();
    &buf[..written]
}

/// How the watchdog learns that the program has ended.
enum Watch {
    /// A pidfd of the program (Linux 5.3), readable once it has ended.
    Pidfd(i32),
    /// Without pidfd_open: the program's `/proc/PID/stat`, read every [`PROC_POLL`]; the
    /// program has ended when it is gone, a zombie, or another process's (a new start time).
    Proc { stat: CString, start: u64 },
}

/// How often the watchdog looks at the program's /proc entry when it has no pidfd.
const PROC_POLL: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 200_000_000,
};

/// The state and start time (fields 3 and 22) of a `/proc/PID/stat` line. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted from its last ')'.
/// Allocates nothing: the watchdog calls it after its fork.
fn parse_stat(line: &[u8]) -> Option<(u8, u64)> {
    let after = line.iter().rposition(|&b| b == b')')?;
    let mut fields = line[after + 1..]
        .split(|&b| b == b' ' || b == b'\n')
        .filter(|f| !f.is_empty());
    let state = *fields.next()?.first()?;
    // Fields 4 to 21 come between the state and the start time.
    let start = fields.nth(18)?;
    if !start.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let start = start.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    Some((state, start))
}

/// Waits until the process whose `/proc/PID/stat` is `stat` and which started at `start` has
/// ended (see [`Watch::Proc`]). Raw calls only: the watchdog calls it after its fork.
fn wait_for_proc_end(stat: &std::ffi::CStr, start: u64) {
    let mut buf = [0u8; 1024];
    loop {
        // SAFETY: nanosleep reads the timespec; the remainder pointer may be null.
        unsafe { lkl::raw_syscall!(libc::SYS_nanosleep, &PROC_POLL as *const _, 0) };
        // SAFETY: a NUL-terminated path; the descriptor is closed below.
        let fd = unsafe { lkl::raw_syscall!(libc::SYS_open, stat.as_ptr(), libc::O_RDONLY) };
        if fd < 0 {
            return;
        }
        // SAFETY: read into our own buffer of buf.len() bytes, then close our descriptor.
        let n = unsafe {
            let n = lkl::raw_syscall!(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len());
            lkl::raw_syscall!(libc::SYS_close, fd);
            n
        };
        let running = n > 0
            && parse_stat(&buf[..n as usize])
                .is_some_and(|(state, s)| s == start && !matches!(state, b'Z' | b'X'));
        if !running {
            return;
        }
    }
}

/// Closes every descriptor but those in `keep` (-1 entries are none), as the watchdog must
/// before it waits: with close_range, or where the kernel lacks it (before 5.9) one by one
/// below `limit`. Raw calls only: the watchdog calls it after its fork.
fn close_all_but(keep: [i32; 2], limit: i32) {
    let mut keep = keep;
    keep.sort_unstable();
    // The ranges between the kept numbers: [0, k0), (k0, k1), (k1, max].
    let mut ranged = true;
    let mut from: i64 = 0;
    for k in keep
        .iter()
        .copied()
        .filter(|&k| k >= 0)
        .map(i64::from)
        .chain([1 << 32])
    {
        if k > from {
            let to = (k - 1).min(i64::from(u32::MAX));
            // SAFETY: closing descriptor numbers is memory-safe.
            ranged &= unsafe { lkl::raw_syscall!(libc::SYS_close_range, from, to, 0) } == 0;
        }
        from = k + 1;
    }
    if !ranged {
        for fd in (0..limit).filter(|fd| !keep.contains(fd)) {
            // SAFETY: as above.
            unsafe { lkl::raw_syscall!(libc::SYS_close, fd) };
        }
    }
}

/// Waits until no process holds the write end of the pipe whose read end is `fd` (poll
/// reports a hangup): this process and every one forked from it have ended. Raw calls only.
fn wait_for_holders(fd: i32) -> WaitEnd {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    wait_for_end(|| {
        // SAFETY: one live pollfd, no timeout, no mask.
        let n =
            unsafe { lkl::raw_syscall!(libc::SYS_ppoll, std::ptr::from_mut(&mut p), 1, 0, 0, 0) };
        if n < 0 {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            Ok(n)
        }
    })
}

/// A close-on-exec pipe for [`wait_for_holders`]: (read end, write end), or None.
fn holders_pipe() -> Option<(i32, i32)> {
    let mut fds = [-1i32; 2];
    // SAFETY: pipe2 writes two descriptors into a live array.
    let rc = unsafe { lkl::raw_syscall!(libc::SYS_pipe2, fds.as_mut_ptr(), libc::O_CLOEXEC) };
    (rc == 0).then_some((fds[0], fds[1]))
}

/// How the watchdog will watch process `pid` (this one): a pidfd where the kernel has
/// pidfd_open (5.3), else its /proc entry; None if neither can be had.
fn watch_of(pid: u32) -> Option<Watch> {
    if lkl::host_features::has_pidfd_open() {
        // SAFETY: pidfd_open takes a pid and flags.
        let pidfd = unsafe { lkl::raw_syscall!(libc::SYS_pidfd_open, pid, 0) };
        if pidfd >= 0 {
            return Some(Watch::Pidfd(pidfd as i32));
        }
    }
    let path = format!("/proc/{pid}/stat");
    let (_, start) = parse_stat(&std::fs::read(&path).ok()?)?;
    log::debug!("firewall: the watchdog watches {path} (no pidfd_open on this host)");
    Some(Watch::Proc {
        stat: CString::new(path).ok()?,
        start,
    })
}

/// The soft limit on open descriptors: the numbers the watchdog closes one by one where
/// close_range is missing.
fn open_file_limit() -> i32 {
    // SAFETY: getrlimit writes the struct it is given.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(i32::MAX as u64) as i32
    } else {
        1024
    }
}

impl Firewall {
    /// A process that outlives this one by a moment: it waits for this process to end, however
    /// it ends (with `follow_forks`, then for every process forked from it too, through a
    /// pipe whose write end they inherit), and removes the rules. It holds no descriptor of
    /// ours but a pidfd and that pipe's read end, is in its
    /// own session (so a terminal's ^C reaches the program, not it), and is no child of the
    /// program's (an intermediate process exits at once), so it cannot confuse waitpid(-1).
    /// Should the wait itself fail, it says so on our stderr and exits, leaving the rules to
    /// the exit handler or to the next instance's removal of stale ones.
    pub(super) fn spawn_watchdog(&self) {
        let script = self
            .remove_commands(&self.name())
            .iter()
            .map(|c| self.shell_full(c))
            .collect::<Vec<_>>()
            .join("; ");
        let cstr = |s: &str| CString::new(s).expect("no NUL in commands");
        let (sh, dash_c, script, path) = (
            cstr("/bin/sh"),
            cstr("-c"),
            cstr(&script),
            cstr(&format!("PATH={PATH}")),
        );
        let argv: [*const c_char; 4] = [
            sh.as_ptr(),
            dash_c.as_ptr(),
            script.as_ptr(),
            std::ptr::null(),
        ];
        let envp: [*const c_char; 2] = [path.as_ptr(), std::ptr::null()];
        let pid = std::process::id();
        // Where the watchdog, which keeps none of our descriptors, can still reach our stderr.
        let stderr_path = cstr(&format!("/proc/{pid}/fd/2"));
        let Some(watch) = watch_of(pid) else {
            log::warn!(
                "firewall: no watchdog (neither a pidfd nor /proc/{pid}/stat): rules stay if \
                 the program is killed"
            );
            return;
        };
        let pidfd = match watch {
            Watch::Pidfd(fd) => fd,
            Watch::Proc { .. } => -1,
        };
        // The write end stays open in this process, and in every process forked from it,
        // until it ends: the watchdog's read end then hangs up.
        let holders = if self.follow_forks {
            holders_pipe()
        } else {
            None
        };
        let holders_read = holders.map_or(-1, |(r, _)| r);
        let fd_limit = open_file_limit();
        // SAFETY: a raw fork (no atfork handlers run); the children make only raw system calls
        // on data prepared above, then exec or exit, as is required after fork in a threaded
        // process.
        unsafe {
            let child = lkl::raw_syscall!(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0);
            if child == 0 {
                lkl::raw_syscall!(libc::SYS_setsid);
                if lkl::raw_syscall!(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) == 0 {
                    close_all_but([pidfd, holders_read], fd_limit);
                    let end = match &watch {
                        Watch::Pidfd(pidfd) => {
                            let mut p = libc::pollfd {
                                fd: *pidfd,
                                events: libc::POLLIN,
                                revents: 0,
                            };
                            wait_for_end(|| {
                                let n = lkl::raw_syscall!(
                                    libc::SYS_ppoll,
                                    std::ptr::from_mut(&mut p),
                                    1,
                                    0,
                                    0,
                                    0
                                );
                                if n < 0 {
                                    Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
                                } else {
                                    Ok(n)
                                }
                            })
                        }
                        Watch::Proc { stat, start } => {
                            wait_for_proc_end(stat, *start);
                            WaitEnd::Ended
                        }
                    };
                    let end = match end {
                        WaitEnd::Ended if holders_read >= 0 => wait_for_holders(holders_read),
                        end => end,
                    };
                    match end {
                        WaitEnd::Ended => {
                            lkl::raw_syscall!(
                                libc::SYS_execve,
                                sh.as_ptr(),
                                argv.as_ptr(),
                                envp.as_ptr()
                            );
                        }
                        WaitEnd::Failed(errno) => {
                            let fd = lkl::raw_syscall!(
                                libc::SYS_open,
                                stderr_path.as_ptr(),
                                libc::O_WRONLY | libc::O_APPEND | libc::O_NOCTTY | libc::O_CLOEXEC
                            );
                            if fd >= 0 {
                                let mut buf = [0u8; 256];
                                let text = watchdog_failure(errno, &mut buf);
                                lkl::raw_syscall!(libc::SYS_write, fd, text.as_ptr(), text.len());
                            }
                        }
                    }
                }
                lkl::raw_syscall!(libc::SYS_exit_group, 0);
            }
            if child > 0 {
                lkl::raw_syscall!(libc::SYS_wait4, child, 0, 0, 0);
            }
            if let Watch::Pidfd(pidfd) = watch {
                lkl::raw_syscall!(libc::SYS_close, pidfd);
            }
            if let Some((read, write)) = holders {
                lkl::raw_syscall!(libc::SYS_close, read);
                if child > 0 {
                    self.forks_watched
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                } else {
                    lkl::raw_syscall!(libc::SYS_close, write);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_gives_state_and_start_time_whatever_the_command_name() {
        let line = b"4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                     987654 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0\n";
        assert_eq!(parse_stat(line), Some((b'S', 987654)));
        let zombie = b"7 (x) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0\n";
        assert_eq!(parse_stat(zombie), Some((b'Z', 55)));
        assert_eq!(parse_stat(b"7 (x) S 1 2"), None);
        assert_eq!(parse_stat(b"no parenthesis"), None);
        let own = std::fs::read("/proc/self/stat").unwrap();
        assert!(matches!(parse_stat(&own), Some((_, start)) if start > 0));
    }

    #[test]
    fn watchdog_wait_retries_interrupted_waits_until_the_program_ends() {
        let mut results = [Err(libc::EINTR), Err(libc::EINTR), Ok(1)].into_iter();
        let mut calls = 0;
        let end = wait_for_end(|| {
            calls += 1;
            results.next().expect("no ppoll after the program ended")
        });
        assert_eq!(end, WaitEnd::Ended);
        assert_eq!(calls, 3);
    }

    #[test]
    fn watchdog_wait_stops_at_a_failure_other_than_an_interruption() {
        let mut calls = 0;
        let end = wait_for_end(|| {
            calls += 1;
            assert!(calls < 100, "the wait retries a failing ppoll forever");
            if calls == 1 {
                Err(libc::EINTR)
            } else {
                Err(libc::ENOMEM)
            }
        });
        assert_eq!(end, WaitEnd::Failed(libc::ENOMEM));
        assert_eq!(calls, 2);
    }

    #[test]
    fn watchdog_failure_message_names_the_errno_and_fits_its_buffer() {
        let mut buf = [0u8; 256];
        let text = String::from_utf8(watchdog_failure(libc::ENOMEM, &mut buf).to_vec()).unwrap();
        assert!(
            text.starts_with("lkl-hijack: warning: firewall watchdog stopped")
                && text.contains("(errno 12)")
                && text.ends_with('\n'),
            "{text:?}"
        );
        let mut small = [0u8; 20];
        assert_eq!(
            watchdog_failure(libc::ENOMEM, &mut small),
            b"lkl-hijack: warning:"
        );
    }
}
