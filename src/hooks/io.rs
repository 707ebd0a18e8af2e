//! Data: read/write and the socket send/receive calls, sendfile, and glibc's fortified
//! variants (programs built with _FORTIFY_SOURCE bind to those names).

use std::ffi::{c_int, c_uint, c_void};

use libc::{iovec, mmsghdr, msghdr, off_t, size_t, sockaddr, socklen_t, ssize_t, timespec};
use lkl::sys::*;
use lkl::Errno;

use super::{chk_fail, host_call, lkl_call, on_fd, sigpipe_on_epipe};
use crate::blocking::{self, Dir, IovCursor};
use crate::fdtable;
use crate::ffi::{hook, read_user, write_user_slice, SysResult};
use crate::objects::Socket;
use crate::placement;

/// A receive: one call, waiting first if the socket is blocking; with MSG_WAITALL on a
/// stream, until `len` bytes arrived. `op(done)` receives from offset `done` on.
fn receive(
    sock: &Socket,
    flags: c_int,
    len: usize,
    mut op: impl FnMut(usize) -> SysResult<usize>,
) -> SysResult<usize> {
    if flags & libc::MSG_DONTWAIT != 0 {
        op(0)
    } else if flags & libc::MSG_WAITALL != 0 && sock.stream {
        blocking::transfer(sock, Dir::In, len, op)
    } else {
        blocking::retry(sock, Dir::In, || op(0))
    }
}

/// A send: on a blocking stream, until all `len` bytes went; a peer that is gone raises
/// SIGPIPE. `op(done)` sends from offset `done` on.
fn send_data(
    sock: &Socket,
    flags: c_int,
    len: usize,
    mut op: impl FnMut(usize) -> SysResult<usize>,
) -> SysResult<usize> {
    let result = if flags & libc::MSG_DONTWAIT != 0 {
        op(0)
    } else if sock.stream {
        blocking::transfer(sock, Dir::Out, len, op)
    } else {
        blocking::retry(sock, Dir::Out, || op(0))
    };
    sigpipe_on_epipe(result, flags)
}

fn ssize(r: SysResult<usize>) -> SysResult<ssize_t> {
    r.map(|n| n as ssize_t)
}

/// `buf + done` for a caller's buffer.
fn at<T>(buf: *const T, done: usize) -> *const u8 {
    buf.cast::<u8>().wrapping_add(done)
}

#[no_mangle]
pub extern "C" fn read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t {
    hook("read", || {
        on_fd(
            fd,
            |s| {
                ssize(receive(s, 0, count, |_| {
                    lkl_call!(__NR_read, s.lkl, buf, count)
                }))
            },
            || host_call!(read(fd, buf, count)),
        )
    })
}

#[no_mangle]
pub extern "C" fn write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t {
    hook("write", || {
        on_fd(
            fd,
            |s| {
                ssize(send_data(s, 0, count, |done| {
                    lkl_call!(__NR_write, s.lkl, at(buf, done), count - done)
                }))
            },
            || host_call!(write(fd, buf, count)),
        )
    })
}

#[no_mangle]
pub extern "C" fn readv(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    hook("readv", || {
        on_fd(
            fd,
            |s| ssize(receive(s, 0, 0, |_| lkl_call!(__NR_readv, s.lkl, iov, n))),
            || host_call!(readv(fd, iov, n)),
        )
    })
}

#[no_mangle]
pub extern "C" fn writev(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    hook("writev", || {
        on_fd(
            fd,
            |s| {
                let mut cursor = IovCursor::new(iov, n.max(0) as usize)?;
                let total = cursor.total;
                ssize(send_data(s, 0, total, |done| {
                    let (rest, count) = cursor.after(done);
                    lkl_call!(__NR_writev, s.lkl, rest, count)
                }))
            },
            || host_call!(writev(fd, iov, n)),
        )
    })
}

/// Positioned I/O has no meaning on a socket.
fn espipe<T>(_: &Socket) -> SysResult<T> {
    Err(Errno::ESPIPE)
}

#[no_mangle]
pub extern "C" fn pread64(fd: c_int, buf: *mut c_void, count: size_t, off: off_t) -> ssize_t {
    hook("pread64", || {
        on_fd(fd, espipe, || host_call!(pread64(fd, buf, count, off)))
    })
}

#[no_mangle]
pub extern "C" fn pread(fd: c_int, buf: *mut c_void, count: size_t, off: off_t) -> ssize_t {
    pread64(fd, buf, count, off)
}

#[no_mangle]
pub extern "C" fn pwrite64(fd: c_int, buf: *const c_void, count: size_t, off: off_t) -> ssize_t {
    hook("pwrite64", || {
        on_fd(fd, espipe, || host_call!(pwrite64(fd, buf, count, off)))
    })
}

#[no_mangle]
pub extern "C" fn pwrite(fd: c_int, buf: *const c_void, count: size_t, off: off_t) -> ssize_t {
    pwrite64(fd, buf, count, off)
}

#[no_mangle]
pub extern "C" fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t {
    recvfrom(
        fd,
        buf,
        len,
        flags,
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    )
}

#[no_mangle]
pub extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
) -> ssize_t {
    hook("recvfrom", || {
        on_fd(
            fd,
            |s| {
                ssize(receive(s, flags, len, |done| {
                    lkl_call!(
                        __NR_recvfrom,
                        s.lkl,
                        at(buf, done),
                        len - done,
                        flags,
                        addr,
                        alen
                    )
                }))
            },
            || host_call!(recvfrom(fd, buf, len, flags, addr, alen)),
        )
    })
}

#[no_mangle]
pub extern "C" fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    hook("recvmsg", || {
        on_fd(
            fd,
            |s| {
                let hdr = read_user(msg)?;
                let mut cursor = IovCursor::new(hdr.msg_iov, hdr.msg_iovlen)?;
                let total = cursor.total;
                let got = receive(s, flags, total, |done| {
                    if done == 0 {
                        return lkl_call!(__NR_recvmsg, s.lkl, msg, flags);
                    }
                    // Later calls of a MSG_WAITALL receive fill the rest of the buffers; what
                    // they report besides the data is the first call's.
                    let mut rest = hdr;
                    (rest.msg_iov, rest.msg_iovlen) = cursor.after(done);
                    lkl_call!(__NR_recvmsg, s.lkl, &mut rest as *mut msghdr, flags)
                });
                ssize(got)
            },
            || host_call!(recvmsg(fd, msg, flags)),
        )
    })
}

#[no_mangle]
pub extern "C" fn recvmmsg(
    fd: c_int,
    msgs: *mut mmsghdr,
    n: c_uint,
    flags: c_int,
    timeout: *mut timespec,
) -> c_int {
    hook("recvmmsg", || {
        on_fd(
            fd,
            |s| {
                let get = || lkl_call!(__NR_recvmmsg, s.lkl, msgs, n, flags, timeout);
                if flags & libc::MSG_DONTWAIT != 0 {
                    get()
                } else {
                    blocking::retry(s, Dir::In, get)
                }
            },
            || host_call!(recvmmsg(fd, msgs, n, flags, timeout)),
        )
    })
}

#[no_mangle]
pub extern "C" fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t {
    sendto(fd, buf, len, flags, std::ptr::null(), 0)
}

#[no_mangle]
pub extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    addr: *const sockaddr,
    alen: socklen_t,
) -> ssize_t {
    hook("sendto", || {
        let host = || host_call!(sendto(fd, buf, len, flags, addr, alen));
        on_fd(
            fd,
            |s| {
                // SAFETY: the caller's address, as for sendto.
                if !unsafe { placement::first_send(fd, s, addr, alen) }? {
                    return host();
                }
                ssize(send_data(s, flags, len, |done| {
                    lkl_call!(
                        __NR_sendto,
                        s.lkl,
                        at(buf, done),
                        len - done,
                        flags,
                        addr,
                        alen
                    )
                }))
            },
            host,
        )
    })
}

#[no_mangle]
pub extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    hook("sendmsg", || {
        let host = || host_call!(sendmsg(fd, msg, flags));
        on_fd(
            fd,
            |s| {
                let mut copy = read_user(msg)?;
                // SAFETY: the caller's address, as for sendmsg (read with a guard).
                if !unsafe { placement::first_send(fd, s, copy.msg_name.cast(), copy.msg_namelen) }?
                {
                    return host();
                }
                let mut cursor = IovCursor::new(copy.msg_iov, copy.msg_iovlen)?;
                let total = cursor.total;
                ssize(send_data(s, flags, total, |done| {
                    if done > 0 {
                        (copy.msg_iov, copy.msg_iovlen) = cursor.after(done);
                    }
                    lkl_call!(__NR_sendmsg, s.lkl, &copy as *const msghdr, flags)
                }))
            },
            host,
        )
    })
}

#[no_mangle]
pub extern "C" fn sendmmsg(fd: c_int, msgs: *mut mmsghdr, n: c_uint, flags: c_int) -> c_int {
    hook("sendmmsg", || {
        let host = || host_call!(sendmmsg(fd, msgs, n, flags));
        on_fd(
            fd,
            |s| {
                if n > 0 {
                    let first = read_user(msgs)?.msg_hdr;
                    // SAFETY: the caller's address, as for sendmmsg (read with a guard).
                    if !unsafe {
                        placement::first_send(fd, s, first.msg_name.cast(), first.msg_namelen)
                    }? {
                        return host();
                    }
                }
                let put = || lkl_call!(__NR_sendmmsg, s.lkl, msgs, n, flags);
                let sent = if flags & libc::MSG_DONTWAIT != 0 {
                    put()
                } else {
                    blocking::retry(s, Dir::Out, put)
                };
                sigpipe_on_epipe(sent, flags)
            },
            host,
        )
    })
}

/// sendfile from a host file to an LKL socket: the file's bytes are read on the host and
/// sent into LKL, `*offset` (or the file position) advancing by what LKL accepted.
fn sendfile_to_lkl(
    sock: &Socket,
    input: c_int,
    offset: *mut off_t,
    count: size_t,
) -> SysResult<ssize_t> {
    const CHUNK: usize = 128 << 10;
    let mut pos = if offset.is_null() {
        host_call!(lseek64(input, 0, libc::SEEK_CUR))?
    } else {
        read_user(offset)?
    };
    let mut buf = vec![0u8; CHUNK.min(count.max(1))];
    let mut sent: usize = 0;
    let mut result = Ok(());
    while sent < count {
        let want = (count - sent).min(buf.len());
        let got = match host_call!(pread64(input, buf.as_mut_ptr().cast(), want, pos)) {
            Ok(0) => break,
            Ok(n) => n as usize,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        match send_data(sock, 0, got, |done| {
            lkl_call!(__NR_write, sock.lkl, at(buf.as_ptr(), done), got - done)
        }) {
            Ok(n) => {
                sent += n;
                pos += n as off_t;
                if n < got {
                    break;
                }
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if offset.is_null() {
        host_call!(lseek64(input, pos, libc::SEEK_SET))?;
    } else {
        write_user_slice(offset, &[pos])?;
    }
    match result {
        Err(e) if sent == 0 => Err(e),
        _ => Ok(sent as ssize_t),
    }
}

#[no_mangle]
pub extern "C" fn sendfile64(
    out: c_int,
    input: c_int,
    offset: *mut off_t,
    count: size_t,
) -> ssize_t {
    hook("sendfile64", || {
        if fdtable::socket(input)?.is_some() {
            // Linux needs an mmap-able source; a socket is not one.
            return Err(Errno::EINVAL);
        }
        match fdtable::socket(out)? {
            Some(entry) => sendfile_to_lkl(
                entry.socket().expect("socket entries only"),
                input,
                offset,
                count,
            ),
            None => host_call!(sendfile64(out, input, offset, count)),
        }
    })
}

#[no_mangle]
pub extern "C" fn sendfile(out: c_int, input: c_int, offset: *mut off_t, count: size_t) -> ssize_t {
    sendfile64(out, input, offset, count)
}

#[no_mangle]
pub extern "C" fn splice(
    fd_in: c_int,
    off_in: *mut libc::loff_t,
    fd_out: c_int,
    off_out: *mut libc::loff_t,
    len: size_t,
    flags: c_uint,
) -> ssize_t {
    hook("splice", || {
        // A pipe cannot reach into LKL; EINVAL is what callers (Go, Python) fall back on.
        if fdtable::socket(fd_in)?.is_some() || fdtable::socket(fd_out)?.is_some() {
            return Err(Errno::EINVAL);
        }
        host_call!(splice(fd_in, off_in, fd_out, off_out, len, flags))
    })
}

#[no_mangle]
pub extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    count: size_t,
    buflen: size_t,
) -> ssize_t {
    if count > buflen {
        chk_fail();
    }
    read(fd, buf, count)
}

#[no_mangle]
pub extern "C" fn __recv_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    buflen: size_t,
    flags: c_int,
) -> ssize_t {
    if len > buflen {
        chk_fail();
    }
    recv(fd, buf, len, flags)
}

#[no_mangle]
pub extern "C" fn __recvfrom_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    buflen: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
) -> ssize_t {
    if len > buflen {
        chk_fail();
    }
    recvfrom(fd, buf, len, flags, addr, alen)
}
