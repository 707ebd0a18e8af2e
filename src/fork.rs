//! Pre-fork servers: a child forked by a process that runs LKL. fork(2) copies the parent's
//! kernel but none of its threads, so the child forgets it (`Kernel::forget_after_fork`) and
//! boots a kernel of its own when it first needs one. The parent's listeners are made again
//! in it, under the same fd numbers, with the options the program set, the same address and
//! backlog; so nginx's workers, gunicorn's, or any child that accepts on an inherited
//! listener serve. Connected sockets cannot follow (their TCP state is the parent's): they
//! give EBADF in the child.
//!
//! The processes that serve split the listeners' connections (`lkl::packet`'s share.rs):
//! the host deals their segments out by flow through a PACKET_FANOUT group, and a process
//! given a segment of another's connection passes it on (mailbox.rs, through a table of the
//! processes mapped at the first fork). A child joins the group when it has made the
//! listeners again; the parent, which may never accept (nginx's master), keeps their ports
//! out of its own socket's filter from its first fork on, and joins the group instead once
//! it waits on a listener (accept, poll, epoll). A process stays in the group until it ends.
//!
//! Packet sockets are opened in the fork handlers, while the processes still have the
//! parent's privileges (servers drop them after forking): the child's own and each process's
//! socket for the group. The rest of a child's set-up waits for its boot.

use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, Ordering};

use lkl::locks::lock;
use lkl::packet::Members;

use crate::boot::{self, ChildBoot};
use crate::objects::{Object, Socket};
use crate::{fdtable, kernel, tcpinfo};

/// The fanout group of this program's processes: the pid of the first that forked with
/// listeners (0: none yet), so two programs on one interface do not share a group.
static GROUP: AtomicU32 = AtomicU32::new(0);
/// This process is in the group.
static IN_GROUP: AtomicBool = AtomicBool::new(false);
/// This process waited on a listener before it first forked (it serves them itself).
static ACCEPTED: AtomicBool = AtomicBool::new(false);
/// The packet socket this process will join the group with, opened in a fork handler
/// (-1: none).
static GROUP_SOCK: AtomicI32 = AtomicI32::new(-1);
/// The table of the program's serving processes, in memory all of them share (null until
/// the first fork with a kernel).
static MEMBERS: AtomicPtr<Members> = AtomicPtr::new(std::ptr::null_mut());

/// Registers the fork handlers (before `main`).
pub fn register() {
    kernel::after_child_boot(make_listeners_again);
    // SAFETY: registers plain functions with no captured state.
    unsafe { libc::pthread_atfork(Some(prepare), Some(in_parent), Some(in_child)) };
}

extern "C" fn prepare() {
    if MEMBERS.load(Ordering::Relaxed).is_null() && kernel::booted() {
        match Members::map_shared() {
            Ok(m) => MEMBERS.store(std::ptr::from_ref(m).cast_mut(), Ordering::Relaxed),
            Err(e) => log::warn!("cannot map the table of the program's processes: {e}"),
        }
    }
    fdtable::hold_for_fork();
}

/// The table of the program's serving processes, once mapped.
fn members() -> Option<&'static Members> {
    // SAFETY: MEMBERS is null or what Members::map_shared gave, mapped for good.
    unsafe { MEMBERS.load(Ordering::Relaxed).as_ref() }
}

/// The parent's listeners are served by its children from now on, unless it serves them
/// itself: then it joins their group.
extern "C" fn in_parent() {
    fdtable::release_after_fork();
    if !kernel::booted() || GROUP.load(Ordering::Relaxed) != 0 || fdtable::listeners().is_empty() {
        return;
    }
    // SAFETY: getpid has no preconditions.
    GROUP.store(unsafe { libc::getpid() } as u32, Ordering::Relaxed);
    kernel::ownership().leave_firewall_to_children();
    open_group_socket();
    // Slot 0: the first of the client port slices, the others are its children's.
    let first = boot::client_ports_of(kernel::config().policy.client_ports, 0);
    if let Err(e) = boot::set_client_ports(kernel::kernel(), first) {
        log::warn!("cannot narrow LKL's client ports to this process's share: {e}");
    }
    if ACCEPTED.load(Ordering::Relaxed) {
        join_group();
    } else {
        kernel::ownership().leave_listeners_to_children();
    }
}

/// Runs in the child, its only thread: lets go of the parent's kernel and packet socket,
/// and opens the child's socket if it has listeners to serve.
extern "C" fn in_child() {
    fdtable::release_after_fork();
    let Some(parent) = kernel::forget_in_child() else {
        return;
    };
    IN_GROUP.store(false, Ordering::Relaxed);
    parent.backend.forget_in_child();
    let parents = GROUP_SOCK.swap(-1, Ordering::Relaxed);
    if parents >= 0 {
        // SAFETY: the parent's unused group socket, inherited; nothing here uses it.
        unsafe { lkl::raw_syscall!(libc::SYS_close, parents) };
    }
    fdtable::forget_epoll_sides();
    let listeners: Vec<u16> = fdtable::listeners()
        .iter()
        .filter_map(|(_, l)| l.socket().map(Socket::listen_port))
        .collect();
    if listeners.is_empty() {
        return;
    }
    if GROUP.load(Ordering::Relaxed) == 0 {
        // The parent's handler sets the same value there.
        // SAFETY: getppid has no preconditions.
        GROUP.store(unsafe { libc::getppid() } as u32, Ordering::Relaxed);
    }
    let sock = open_cloexec_socket();
    open_group_socket();
    let slot = members().map_or(1, Members::count_fork);
    kernel::boot_as_child(ChildBoot {
        sock,
        listeners,
        slot,
    });
}

/// A packet socket on the interface, not inherited by programs the process execs; None if
/// it cannot be had (the caller's later set-up says why).
fn open_cloexec_socket() -> Option<libc::c_int> {
    let fd = lkl::packet::open_socket(&kernel::config().net.host_if)
        .ok()?
        .into_raw_fd();
    // SAFETY: F_SETFD on our own descriptor; a raw call, as suits a fork handler.
    unsafe { lkl::raw_syscall!(libc::SYS_fcntl, fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    Some(fd)
}

/// Opens the socket this process joins the group with, while it has the privilege.
fn open_group_socket() {
    if let Some(fd) = open_cloexec_socket() {
        GROUP_SOCK.store(fd, Ordering::Relaxed);
    }
}

/// After a forked child's boot: makes each inherited listener again in the child's kernel
/// and joins the group that serves them.
fn make_listeners_again() {
    let mut made = 0;
    for (fd, old) in fdtable::listeners() {
        let sock = old.socket().expect("listeners are sockets");
        if !sock.stale() {
            continue;
        }
        match make_again(sock) {
            Ok(new) => {
                fdtable::replace(&old, Object::Socket(new));
                made += 1;
            }
            Err(e) => log::warn!(
                "fd {fd}: cannot make the parent's listener again in this child's kernel: {e}"
            ),
        }
    }
    if made > 0 {
        join_group();
        log::debug!("forked child: {made} listener(s) made again");
    }
}

/// A listener like `old` (of the parent's kernel) in this process's kernel.
fn make_again(old: &Socket) -> Result<Socket, lkl::Errno> {
    let made = old.made;
    let (backlog, addr) = {
        let listening = lock(&old.listening);
        let l = listening.as_ref().expect("listeners only");
        (l.backlog, l.addr.clone())
    };
    let k = kernel::kernel();
    let fd = k.socket(
        made.domain as u32,
        (made.kind | libc::SOCK_NONBLOCK) as u32,
        made.protocol as u32,
    )?;
    let new = Socket::new(fd, old.stream, old.nonblocking(), made, None);
    for (level, name, value) in lock(&old.options).iter() {
        k.setsockopt(fd, *level as u32, *name as u32, value)?;
        lock(&new.options).push((*level, *name, value.clone()));
    }
    // SAFETY: the address getsockname gave the parent, with its length.
    unsafe {
        kernel::call(
            lkl::sys::__NR_bind,
            [
                fd as libc::c_long,
                addr.as_ptr() as libc::c_long,
                addr.len() as libc::c_long,
                0,
                0,
                0,
            ],
        )
    }?;
    k.listen(fd, backlog)?;
    crate::placement::listening(&new, backlog)?;
    tcpinfo::log("made again", fd);
    Ok(new)
}

/// This process waits for connections on a listener (accept, or poll/epoll with it in the
/// set): after a fork it serves them with the others.
pub fn serving() {
    if IN_GROUP.load(Ordering::Relaxed) {
        return;
    }
    if GROUP.load(Ordering::Relaxed) == 0 {
        ACCEPTED.store(true, Ordering::Relaxed);
        return;
    }
    join_group();
}

fn join_group() {
    if IN_GROUP.swap(true, Ordering::Relaxed) {
        return;
    }
    let group = GROUP.load(Ordering::Relaxed);
    let fd = GROUP_SOCK.swap(-1, Ordering::Relaxed);
    let joined = match (fd, members()) {
        (..0, _) => Err(std::io::Error::from_raw_os_error(libc::EPERM)),
        (_, None) => Err(std::io::Error::from_raw_os_error(libc::ENOMEM)),
        (fd, Some(m)) => {
            // SAFETY: the socket open_group_socket opened; ownership moves here.
            let sock = unsafe { OwnedFd::from_raw_fd(fd) };
            kernel::ownership().join_group(group, m, sock)
        }
    };
    if let Err(e) = joined {
        log::warn!(
            "cannot join the packet fanout group {group} that deals connections out to \
             this program's processes ({e}); this process gets none"
        );
        return;
    }
    // A SYN cookie's ACK belongs to no connection until the kernel that sent the cookie
    // checks it, and every other kernel drops such segments (share.rs): with cookies, a
    // connection made while a listener's queue overflows would be lost. Without them the
    // peer sends its SYN again later, as with any full queue.
    const SYNCOOKIES: &str = "net.ipv4.tcp_syncookies";
    if kernel::config()
        .sysctls
        .iter()
        .all(|(k, _)| k != SYNCOOKIES)
    {
        if let Err(e) = kernel::kernel().sysctl_write(SYNCOOKIES, "0") {
            log::warn!("cannot turn SYN cookies off for the shared listeners: {e}");
        }
    }
}
