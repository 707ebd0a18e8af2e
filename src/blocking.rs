//! Blocking calls on LKL sockets, without ever sleeping inside LKL.
//!
//! Every LKL socket is nonblocking inside the kernel; the O_NONBLOCK the program set lives in
//! the table (`Socket::nonblocking`). A call that would block on a socket the program sees as
//! blocking waits the way poll does (a notifier on the socket signals this thread's eventfd)
//! and tries again. Sleeping in the host gives the host's own signal semantics: read(2) on
//! the eventfd is restarted after an SA_RESTART handler and fails with EINTR after any other;
//! with SO_RCVTIMEO/SO_SNDTIMEO set the sleep is a ppoll, which fails with EINTR whatever the
//! handler, and the call fails with EAGAIN when the time is up — both as Linux documents for
//! sockets (signal(7), socket(7)). Closing or shutting a socket down from another thread
//! wakes the sleeper through the same notifier.

use std::ffi::c_long;
use std::mem::size_of;
use std::time::Duration;

use libc::{iovec, pollfd};
use lkl::sys::{__NR_getsockopt, SOL_SOCKET, SO_RCVTIMEO_OLD, SO_SNDTIMEO_OLD};
use lkl::Errno;

use crate::ffi::{host_result, read_user_slice, SysResult};
use crate::notify::{with_thread_eventfd, Notifier};
use crate::objects::Socket;
use crate::poll::lkl_poll_now;
use crate::time::{timespec, Deadline};
use crate::{busy, host, kernel};

/// Which way a call moves data, and so what it waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    In,
    Out,
}

impl Dir {
    fn events(self) -> i16 {
        match self {
            Dir::In => libc::POLLIN,
            Dir::Out => libc::POLLOUT,
        }
    }
}

/// The socket's SO_RCVTIMEO or SO_SNDTIMEO; None when unset (zero).
fn socket_timeout(sock: &Socket, dir: Dir) -> SysResult<Option<Duration>> {
    let name = match dir {
        Dir::In => SO_RCVTIMEO_OLD,
        Dir::Out => SO_SNDTIMEO_OLD,
    };
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut len = size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: `tv` and `len` are live for the call; the kernel's old timeval is the host's.
    unsafe {
        kernel::call(
            __NR_getsockopt,
            [
                c_long::from(sock.lkl),
                SOL_SOCKET as c_long,
                name as c_long,
                &mut tv as *mut _ as c_long,
                &mut len as *mut _ as c_long,
                0,
            ],
        )
    }?;
    let t = Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
    Ok((!t.is_zero()).then_some(t))
}

/// Sleeps until `sock` may be ready for `dir`. Err(EAGAIN) when the deadline passes first,
/// Err(EINTR) when a signal handler interrupts (see the module comment).
fn wait(sock: &Socket, dir: Dir, deadline: Deadline) -> SysResult<()> {
    with_thread_eventfd(|efd| {
        efd.drain();
        let _armed = Notifier::attach(sock.lkl, efd)?;
        let mut p = [pollfd {
            fd: sock.lkl,
            events: dir.events(),
            revents: 0,
        }];
        if lkl_poll_now(&mut p)? > 0 {
            if dir == Dir::Out {
                // Writable, yet the send found no room: the kernel is out of memory for
                // the data. Retrying at once would spin; Linux's blocking send waits a random
                // 2-200 ms then (sk_stream_wait_memory), whatever wakes the socket meanwhile.
                return sleep(memory_wait(), deadline);
            }
            return Ok(());
        }
        match deadline.remaining() {
            None => efd.wait(),
            Some(left) if left.is_zero() => Err(Errno::EAGAIN),
            Some(left) => {
                let mut p = pollfd {
                    fd: efd.fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ts = timespec(left);
                // SAFETY: one live pollfd and timeout for the call.
                match host_result(unsafe { host::ppoll(&mut p, 1, &ts, std::ptr::null()) })? {
                    0 => Err(Errno::EAGAIN),
                    _ => Ok(()),
                }
            }
        }
    })
}

/// A random 2-200 ms, as Linux waits for memory in a blocking send.
fn memory_wait() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    // The clock's low bits are random enough to keep threads from waking in step.
    Duration::from_millis(2 + (ts.tv_nsec as u64 / 1000) % 199)
}

/// Sleeps in the host for `time` (cut short by the deadline: EAGAIN then), EINTR when a
/// signal handler runs.
fn sleep(time: Duration, deadline: Deadline) -> SysResult<()> {
    let (time, timed_out) = match deadline.remaining() {
        Some(left) if left <= time => (left, true),
        _ => (time, false),
    };
    let ts = timespec(time);
    // SAFETY: no fds, a live timeout; ppoll only sleeps.
    host_result(unsafe { host::ppoll(std::ptr::null_mut(), 0, &ts, std::ptr::null()) })?;
    if timed_out {
        return Err(Errno::EAGAIN);
    }
    Ok(())
}

/// Runs `op` (a nonblocking kernel call) until it does not fail with EAGAIN, waiting in
/// between when the program sees `sock` as blocking. A receiving call busy polls before it
/// sleeps (`busy`), as Linux's do.
pub fn retry<T>(sock: &Socket, dir: Dir, mut op: impl FnMut() -> SysResult<T>) -> SysResult<T> {
    let mut deadline = None;
    let mut busy = dir == Dir::In;
    loop {
        match op() {
            Err(Errno::EAGAIN) if !sock.nonblocking() => {}
            result => return result,
        }
        if busy {
            if busy::wait(sock.lkl, dir.events()) {
                continue;
            }
            busy = false;
        }
        let deadline = match deadline {
            Some(d) => d,
            None => *deadline.insert(Deadline::after(socket_timeout(sock, dir)?)),
        };
        wait(sock, dir, deadline)?;
    }
}

/// A transfer that may take several calls: `op(done)` moves bytes from offset `done` on.
/// On a blocking socket it goes on until `len` bytes moved (or, reading, the stream ended);
/// an interruption or timeout after some progress reports that progress, as Linux does.
pub fn transfer(
    sock: &Socket,
    dir: Dir,
    len: usize,
    mut op: impl FnMut(usize) -> SysResult<usize>,
) -> SysResult<usize> {
    let mut done = 0;
    loop {
        match retry(sock, dir, || op(done)) {
            Ok(n) => {
                done += n;
                if n == 0 || done >= len || sock.nonblocking() {
                    return Ok(done);
                }
            }
            Err(_) if done > 0 => return Ok(done),
            Err(e) => return Err(e),
        }
    }
}

/// The caller's iovec array with a cursor, for calls that continue where the last one
/// stopped.
pub struct IovCursor {
    iov: Vec<iovec>,
    rest: Vec<iovec>,
    pub total: usize,
}

impl IovCursor {
    /// The program's `n` iovecs at `iov` (EFAULT for a bad pointer).
    pub fn new(iov: *const iovec, n: usize) -> SysResult<IovCursor> {
        let iov = read_user_slice(iov, n)?;
        let total = iov.iter().map(|v| v.iov_len).sum();
        Ok(IovCursor {
            iov,
            rest: Vec::new(),
            total,
        })
    }

    /// The iovecs that remain after `done` bytes, as (pointer, count).
    pub fn after(&mut self, done: usize) -> (*mut iovec, usize) {
        let mut skip = done;
        self.rest.clear();
        for v in &self.iov {
            if skip >= v.iov_len {
                skip -= v.iov_len;
                continue;
            }
            self.rest.push(iovec {
                // SAFETY: skip < iov_len, so the pointer stays inside the caller's buffer.
                iov_base: unsafe { v.iov_base.cast::<u8>().add(skip) }.cast(),
                iov_len: v.iov_len - skip,
            });
            skip = 0;
        }
        (self.rest.as_mut_ptr(), self.rest.len())
    }
}
