//! Where each IP socket lives, decided when its role shows.
//!
//! A socket's role is known only at bind, listen or connect. Until then a TCP socket (and a UDP
//! one, when LKL has an address of its own) lives in LKL provisionally; what the program does
//! to it — options, the bound address — is recorded. When the policy (`policy.rs`) sends it to
//! the host, a host socket is made, the record replayed on it, and it takes over the program's
//! fd number (dup3), so the program cannot tell.

use std::ffi::{c_int, c_long};
use std::net::IpAddr;

use libc::{sockaddr, socklen_t};
use lkl::locks::lock;
use lkl::sys::__NR_getsockname;
use lkl::Errno;

use crate::fdtable;
use crate::ffi::{host_result, narrow, read_user_slice, SysResult};
use crate::objects::{Listening, Socket};
use crate::ownership::Ownership;
use crate::policy::Clients;
use crate::{host, kernel};

/// Where a new socket goes.
pub enum Start {
    Host,
    Lkl,
    /// In LKL until its role shows.
    Provisional,
}

/// The place of a new socket of this family and type (SOCK_* without flags).
pub fn start(kind: c_int, own: &Ownership) -> Start {
    let clients_in_lkl = own.policy.clients == Clients::Lkl;
    match kind {
        libc::SOCK_STREAM if clients_in_lkl && own.policy.listen_ports.is_none() => Start::Lkl,
        libc::SOCK_STREAM => Start::Provisional,
        _ if clients_in_lkl => Start::Lkl,
        // A UDP socket may still be bound to an address only LKL has.
        libc::SOCK_DGRAM if own.has_own_address() => Start::Provisional,
        _ => Start::Host,
    }
}

/// The IP address and port of a socket address the program handed in, if it is one (None
/// for a bad pointer too: it is read with a fault guard, and the kernel call that follows
/// reports EFAULT).
pub fn ip_of(addr: *const sockaddr, len: socklen_t) -> Option<(IpAddr, u16)> {
    let len = (len as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
    if len < std::mem::size_of::<libc::sockaddr_in>() {
        return None;
    }
    let bytes = read_user_slice(addr.cast::<u8>(), len).ok()?;
    let family = c_int::from(u16::from_ne_bytes([bytes[0], bytes[1]]));
    let port = u16::from_be_bytes([bytes[2], bytes[3]]);
    match family {
        libc::AF_INET => Some((IpAddr::from([bytes[4], bytes[5], bytes[6], bytes[7]]), port)),
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            let octets: [u8; 16] = bytes[8..24].try_into().expect("16 bytes");
            Some((IpAddr::from(octets), port))
        }
        _ => None,
    }
}

/// The socket's bound port in LKL.
fn lkl_port(sock: &Socket) -> SysResult<u16> {
    let name = lkl_name(sock)?;
    Ok(ip_of(name.as_ptr().cast(), name.len() as socklen_t).map_or(0, |(_, p)| p))
}

/// The socket's address in LKL (getsockname), as bytes of a sockaddr.
fn lkl_name(sock: &Socket) -> SysResult<Vec<u8>> {
    // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as socklen_t;
    // SAFETY: a live sockaddr_storage and its length for the call.
    let r: c_int = narrow(unsafe {
        kernel::call(
            __NR_getsockname,
            [
                c_long::from(sock.lkl),
                &mut ss as *mut _ as c_long,
                &mut len as *mut _ as c_long,
                0,
                0,
                0,
            ],
        )
    })?;
    let _ = r;
    let len = (len as usize).min(std::mem::size_of_val(&ss));
    // SAFETY: the first `len` bytes of a live sockaddr_storage.
    Ok(unsafe {
        std::slice::from_raw_parts((&ss as *const libc::sockaddr_storage).cast::<u8>(), len)
    }
    .to_vec())
}

/// Notes a successful setsockopt on an LKL socket (to be replayed if it moves to the host,
/// or in a forked child's kernel).
///
/// # Safety
/// `val` is null or valid for `len` bytes.
pub unsafe fn record_option(
    sock: &Socket,
    level: c_int,
    name: c_int,
    val: *const libc::c_void,
    len: socklen_t,
) {
    // The kernel has just read it: a bad pointer would have failed the call.
    let bytes = read_user_slice(val.cast::<u8>(), len as usize).unwrap_or_default();
    lock(&sock.options).push((level, name, bytes));
}

/// After a successful bind in LKL: an address only LKL has settles the socket there; a UDP
/// socket on any other address is a host one unless clients go through LKL.
///
/// # Safety
/// `addr` is valid for `len` bytes (the bind succeeded with it).
pub unsafe fn bound(
    fd: c_int,
    sock: &Socket,
    addr: *const sockaddr,
    len: socklen_t,
) -> SysResult<()> {
    let own = kernel::ownership();
    let mut pending = lock(&sock.pending);
    let Some(p) = pending.as_mut() else {
        drop(pending);
        // A settled UDP socket bound on a shared address: its datagrams are LKL's.
        if !sock.stream {
            if let Some((_, port)) = ip_of(addr, len) {
                if port != 0 {
                    own.udp_bound(port);
                }
            }
        }
        return Ok(());
    };
    p.bound = Some(read_user_slice(addr.cast::<u8>(), len as usize)?);
    let ip = ip_of(addr, len).map(|(ip, _)| ip);
    if ip.is_some_and(|ip| own.lkl_only(ip)) {
        *pending = None;
    } else if !sock.stream {
        drop(pending);
        return to_host(fd, sock);
    }
    Ok(())
}

/// Whether a provisional socket was bound to an address only LKL has.
fn bound_to_lkl_only(sock: &Socket, own: &Ownership) -> bool {
    lock(&sock.pending)
        .as_ref()
        .and_then(|p| p.bound.as_ref())
        .and_then(|b| ip_of(b.as_ptr().cast(), b.len() as socklen_t))
        .is_some_and(|(ip, _)| own.lkl_only(ip))
}

/// Before listen: a listener on a port the policy gives LKL stays (and LKL owns the port);
/// any other moves to the host. Returns whether the socket is (still) LKL's.
pub fn listen(fd: c_int, sock: &Socket) -> SysResult<bool> {
    let provisional = lock(&sock.pending).is_some();
    if provisional {
        let own = kernel::ownership();
        let port = lkl_port(sock)?;
        let lkl = bound_to_lkl_only(sock, own)
            || (port != 0 && own.policy.listens_in_lkl(port))
            || (port == 0 && own.policy.listen_ports.is_none());
        if !lkl {
            to_host(fd, sock)?;
            return Ok(false);
        }
        *lock(&sock.pending) = None;
    }
    Ok(true)
}

/// After a successful listen in LKL: LKL owns the port, and the listener is recorded for a
/// forked child to make again (fork.rs).
pub fn listening(sock: &Socket, backlog: c_int) -> SysResult<()> {
    let addr = lkl_name(sock)?;
    let port = ip_of(addr.as_ptr().cast(), addr.len() as socklen_t).map_or(0, |(_, p)| p);
    sock.set_listening(port);
    *lock(&sock.listening) = Some(Listening { backlog, addr });
    kernel::ownership().listening(port);
    Ok(())
}

/// Before connect (or a first send) to `addr`: LKL's for a local destination LKL listens on,
/// or when bound to an address only LKL has, or when clients go through LKL; the host's
/// otherwise. Returns whether the socket is (still) LKL's.
///
/// # Safety
/// `addr` is null or valid for `len` bytes.
pub unsafe fn connect(
    fd: c_int,
    sock: &Socket,
    addr: *const sockaddr,
    len: socklen_t,
) -> SysResult<bool> {
    if lock(&sock.pending).is_none() {
        return Ok(true);
    }
    let own = kernel::ownership();
    let to_lkl_listener = ip_of(addr, len)
        .is_some_and(|(ip, port)| sock.stream && own.is_local(ip) && own.lkl_listens_on(port));
    if to_lkl_listener || bound_to_lkl_only(sock, own) || own.policy.clients == Clients::Lkl {
        *lock(&sock.pending) = None;
        return Ok(true);
    }
    to_host(fd, sock)?;
    Ok(false)
}

/// Before a datagram is sent on a socket that may still be provisional: a UDP socket that
/// sends before it is bound or connected is a client. Returns whether it is (still) LKL's.
///
/// # Safety
/// `addr` is null or valid for `len` bytes.
pub unsafe fn first_send(
    fd: c_int,
    sock: &Socket,
    addr: *const sockaddr,
    len: socklen_t,
) -> SysResult<bool> {
    if sock.stream || lock(&sock.pending).is_none() {
        return Ok(true);
    }
    // SAFETY: as above.
    unsafe { connect(fd, sock, addr, len) }
}

/// Moves a provisional socket to the host under the same number.
fn to_host(fd: c_int, sock: &Socket) -> SysResult<()> {
    let Some(p) = lock(&sock.pending).take() else {
        return Err(Errno::EINVAL);
    };
    let flags = libc::SOCK_CLOEXEC
        | if sock.nonblocking() {
            libc::SOCK_NONBLOCK
        } else {
            0
        };
    let made = sock.made;
    // SAFETY: socket(2) with plain values.
    let h = host_result(unsafe { host::socket(made.domain, made.kind | flags, made.protocol) })?;
    for (level, name, value) in lock(&sock.options).iter() {
        // SAFETY: the recorded value and its length.
        let r = unsafe {
            host::setsockopt(
                h,
                *level,
                *name,
                value.as_ptr().cast(),
                value.len() as socklen_t,
            )
        };
        if r != 0 {
            // The host kernel may lack what LKL has (e.g. TCP_CONGESTION=bbr).
            log::debug!(
                "moving fd {fd} to the host: option {level}/{name} refused: {}",
                Errno(host::errno())
            );
        }
    }
    if let Some(addr) = &p.bound {
        // SAFETY: the recorded address and its length.
        let r =
            host_result(unsafe { host::bind(h, addr.as_ptr().cast(), addr.len() as socklen_t) });
        if let Err(e) = r {
            // SAFETY: our own new descriptor.
            unsafe { host::close(h) };
            *lock(&sock.pending) = Some(p);
            return Err(e);
        }
    }
    fdtable::become_host(fd, h).inspect_err(|_| {
        // SAFETY: our own new descriptor, not installed.
        unsafe { host::close(h) };
    })?;
    log::debug!("fd {fd} moved to the host stack");
    Ok(())
}
