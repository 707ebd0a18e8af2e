//! poll/ppoll/select/pselect over any mix of host fds and LKL sockets.
//!
//! Ready LKL sockets are found with LKL's own poll (timeout 0). To wait, each LKL socket gets
//! a notifier that signals this thread's eventfd, and the host's ppoll waits on the host fds
//! plus that eventfd, with the caller's timeout and signal mask: signals, EINTR and the mask
//! behave exactly as the host's. No thread is started for a wait.

use std::ffi::{c_int, c_long};
use std::time::Duration;

use libc::{pollfd, sigset_t};
use lkl::sys::__NR_ppoll;
use lkl::Errno;

use crate::fdtable;
use crate::ffi::{host_result, read_user_slice, write_user_slice, SysResult};
use crate::notify::{with_thread_eventfd, Notifier};
use crate::sigmask::Held;
use crate::time::{timespec, Deadline};
use crate::{busy, fork, host, kernel};

/// LKL's poll of `fds` (LKL numbers) without waiting; fills revents.
pub fn lkl_poll_now(fds: &mut [pollfd]) -> SysResult<usize> {
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `fds` and `zero` are live for the call; the kernel's pollfd and timespec have
    // the host's layout (64-bit asm-generic UAPI).
    let n = unsafe {
        kernel::call(
            __NR_ppoll,
            [
                fds.as_mut_ptr() as c_long,
                fds.len() as c_long,
                &zero as *const _ as c_long,
                0,
                0,
                0,
            ],
        )
    }?;
    Ok(n as usize)
}

/// The host's ppoll.
fn host_poll(
    fds: &mut [pollfd],
    timeout: Option<Duration>,
    mask: *const sigset_t,
) -> SysResult<usize> {
    let ts = timeout.map(timespec);
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const _);
    // SAFETY: `fds` and the timeout are live for the call; `mask` is the caller's (null or a
    // valid sigset, as for ppoll).
    let n = host_result(unsafe { host::ppoll(fds.as_mut_ptr(), fds.len() as _, ts_ptr, mask) })?;
    Ok(n as usize)
}

/// The entries of a poll array by where they live, as indices in ascending order.
struct Split<E> {
    /// LKL sockets, with what `lookup` found for them.
    ours: Vec<(usize, E)>,
    /// LKL sockets a forked child cannot use: as invalid as closed fds.
    invalid: Vec<usize>,
    /// The host's (negative fds too, which the host's poll skips).
    host: Vec<usize>,
}

/// Sorts `fds` in one pass; `lookup` is the fd table's.
fn split<E>(fds: &[pollfd], lookup: impl Fn(c_int) -> SysResult<Option<E>>) -> Split<E> {
    let mut split = Split {
        ours: Vec::new(),
        invalid: Vec::new(),
        host: Vec::new(),
    };
    for (i, p) in fds.iter().enumerate() {
        match if p.fd >= 0 { lookup(p.fd) } else { Ok(None) } {
            Ok(Some(e)) => split.ours.push((i, e)),
            Ok(None) => split.host.push(i),
            Err(_) => split.invalid.push(i),
        }
    }
    split
}

/// poll(2) semantics over `fds`, whatever they are. `mask` as for ppoll (null: none).
pub fn poll(
    fds: &mut [pollfd],
    timeout: Option<Duration>,
    mask: *const sigset_t,
) -> SysResult<c_int> {
    let Split {
        ours,
        invalid,
        host: host_idx,
    } = split(fds, fdtable::socket);
    if ours.is_empty() && invalid.is_empty() {
        return host_poll(fds, timeout, mask).map(|n| n as c_int);
    }
    // A process that waits on a listener serves it (after a fork, with the others).
    if ours
        .iter()
        .any(|(_, e)| e.socket().is_some_and(|s| s.is_listening()))
    {
        fork::serving();
    }
    let mut lkl_fds: Vec<pollfd> = ours
        .iter()
        .map(|(i, e)| pollfd {
            fd: e.socket().expect("sockets only").lkl,
            events: fds[*i].events,
            revents: 0,
        })
        .collect();
    let mut host_fds: Vec<pollfd> = host_idx.iter().map(|&i| fds[i]).collect();
    let deadline = Deadline::after(timeout);
    let held = (timeout != Some(Duration::ZERO)).then(Held::new);

    // Only a forked child has invalid entries: they are ready (POLLNVAL) at once.
    let mut ready = invalid.len();
    if !lkl_fds.is_empty() {
        ready += lkl_poll_now(&mut lkl_fds)?;
    }
    // One LKL socket and nothing else (a server's listener, say): busy poll for it first, for
    // the socket's busy-read time (SO_BUSY_POLL); Linux's poll would take net.core.busy_poll.
    if ready == 0
        && !deadline.passed()
        && host_fds.is_empty()
        && lkl_fds.len() == 1
        && busy::wait(lkl_fds[0].fd, lkl_fds[0].events)
    {
        ready += lkl_poll_now(&mut lkl_fds)?;
    }
    if ready == 0 && !deadline.passed() {
        let sleep_mask = held.as_ref().map_or(mask, |h| h.sleep_mask(mask));
        wait_mixed(&mut lkl_fds, &mut host_fds, deadline, sleep_mask)?;
    } else if !host_fds.is_empty() {
        host_poll(&mut host_fds, Some(Duration::ZERO), mask)?;
    }
    for ((i, _), p) in ours.iter().zip(&lkl_fds) {
        fds[*i].revents = p.revents;
    }
    for &i in &invalid {
        fds[i].revents = libc::POLLNVAL;
    }
    for (&i, p) in host_idx.iter().zip(&host_fds) {
        fds[i].revents = p.revents;
    }
    Ok(fds.iter().filter(|p| p.revents != 0).count() as c_int)
}

/// Sleeps in the host's ppoll on `host_fds` and this thread's eventfd, which notifiers on
/// `lkl_fds` signal, until something is ready or the deadline passes; leaves the revents of
/// both lists filled.
fn wait_mixed(
    lkl_fds: &mut [pollfd],
    host_fds: &mut Vec<pollfd>,
    deadline: Deadline,
    mask: *const sigset_t,
) -> SysResult<()> {
    with_thread_eventfd(|efd| {
        host_fds.push(pollfd {
            fd: efd.fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        let result = loop {
            efd.drain();
            let notifiers = lkl_fds
                .iter()
                .map(|p| Notifier::attach(p.fd, efd))
                .collect::<SysResult<Vec<_>>>()?;
            // Armed: whatever happens from here on signals the eventfd.
            if lkl_poll_now(lkl_fds)? > 0 {
                host_fds.iter_mut().for_each(|p| p.revents = 0);
                break Ok(true);
            }
            let host_ready = host_poll(host_fds, deadline.remaining(), mask);
            drop(notifiers);
            let host_ready = match host_ready {
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            let woken = host_fds.last().is_some_and(|p| p.revents != 0);
            let lkl_ready = if woken { lkl_poll_now(lkl_fds)? } else { 0 };
            if lkl_ready + host_ready - usize::from(woken) > 0 || deadline.passed() {
                break Ok(false);
            }
        };
        host_fds.pop();
        // LKL was ready before the host side was looked at: look now, without waiting.
        if result? && !host_fds.is_empty() {
            host_poll(host_fds, Some(Duration::ZERO), mask)?;
        }
        Ok(())
    })
}

/// select(2)/pselect(2) through poll: the sets (copied in and out with a fault guard)
/// become pollfds and back, with Linux's mapping of poll bits to sets. Returns the count and
/// the time left.
pub fn select(
    nfds: c_int,
    sets: [*mut libc::fd_set; 3],
    timeout: Option<Duration>,
    mask: *const sigset_t,
) -> SysResult<(c_int, Option<Duration>)> {
    if nfds < 0 {
        return Err(Errno::EINVAL);
    }
    const IN: i16 =
        libc::POLLIN | libc::POLLRDNORM | libc::POLLRDBAND | libc::POLLHUP | libc::POLLERR;
    const OUT: i16 = libc::POLLOUT | libc::POLLWRNORM | libc::POLLWRBAND | libc::POLLERR;
    const EX: i16 = libc::POLLPRI;
    let wanted = [libc::POLLIN, libc::POLLOUT, libc::POLLPRI];
    // glibc's fd_set: bit fd % 64 of word fd / 64.
    let words = (nfds as usize).div_ceil(64);
    let mut bits: Vec<Option<Vec<u64>>> = Vec::with_capacity(3);
    for set in sets {
        bits.push(if set.is_null() {
            None
        } else {
            Some(read_user_slice(set.cast::<u64>().cast_const(), words)?)
        });
    }
    let is_set = |w: &[u64], fd: c_int| w[fd as usize / 64] >> (fd % 64) & 1 != 0;
    let mut fds: Vec<pollfd> = Vec::new();
    for fd in 0..nfds {
        let events = bits
            .iter()
            .zip(wanted)
            .filter(|(b, _)| b.as_deref().is_some_and(|w| is_set(w, fd)))
            .fold(0, |acc, (_, ev)| acc | ev);
        if events != 0 {
            fds.push(pollfd {
                fd,
                events,
                revents: 0,
            });
        }
    }
    let deadline = Deadline::after(timeout);
    poll(&mut fds, timeout, mask)?;
    if fds.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
        return Err(Errno::EBADF);
    }
    let mut count = 0;
    for w in bits.iter_mut().flatten() {
        w.iter_mut().for_each(|x| *x = 0);
    }
    for p in &fds {
        for ((b, ev), mask_bits) in bits.iter_mut().zip(wanted).zip([IN, OUT, EX]) {
            if let Some(w) = b {
                if p.events & ev != 0 && p.revents & mask_bits != 0 {
                    w[p.fd as usize / 64] |= 1 << (p.fd % 64);
                    count += 1;
                }
            }
        }
    }
    for (set, b) in sets.iter().zip(&bits) {
        if let Some(w) = b {
            write_user_slice(set.cast::<u64>(), w)?;
        }
    }
    Ok((count, deadline.remaining()))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn entries_are_split_by_stack_in_order_with_one_lookup_each() {
        let fds: Vec<pollfd> = [5, -1, 7, 3, 9, 7]
            .into_iter()
            .map(|fd| pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let lookups = Cell::new(0);
        // 7 is an LKL socket, 9 one of a forked child's parent, the rest are host fds.
        let split = split(&fds, |fd| {
            lookups.set(lookups.get() + 1);
            match fd {
                7 => Ok(Some(fd)),
                9 => Err(Errno::EBADF),
                _ => Ok(None),
            }
        });
        assert_eq!(split.ours, [(2, 7), (5, 7)]);
        assert_eq!(split.invalid, [4]);
        assert_eq!(split.host, [0, 1, 3]);
        assert_eq!(lookups.get(), 5, "none for the negative fd");
    }
}
