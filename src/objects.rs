//! The kernel objects a host fd number can stand for: an LKL socket (with what a provisional
//! one recorded) and the LKL side of a host epoll instance. Each gives its LKL file back when
//! the last number and in-flight call let go of it.

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};

use std::sync::Mutex;

use crate::kernel;
use crate::notify::{EventFd, Notifier};
use crate::tcpinfo;

/// What a host fd number stands for.
pub enum Object {
    /// An LKL socket; the number is a placeholder.
    Socket(Socket),
    /// A host epoll instance that also watches LKL sockets.
    Epoll(EpollSide),
}

/// An LKL socket, closed in LKL when the last number and in-flight call drop it. It is
/// nonblocking inside LKL; `nonblocking` is the O_NONBLOCK the program set (see blocking.rs).
pub struct Socket {
    pub lkl: lkl::Fd,
    pub stream: bool,
    nonblocking: AtomicBool,
    /// How it was made and what the program set on it, to make it again: on the host if a
    /// provisional socket moves there, in a forked child's kernel if it listens.
    pub made: Made,
    /// setsockopt calls that succeeded, in order.
    pub options: Mutex<Vec<SockOpt>>,
    /// Until its role shows, a socket lives in LKL provisionally (see placement.rs).
    pub pending: Mutex<Option<Pending>>,
    /// How it listens, once it does.
    pub listening: Mutex<Option<Listening>>,
    /// The port it listens on in LKL, 0 if none.
    listen_port: AtomicU16,
    /// The kernel it lives in (`kernel::generation`): a forked child's copy of a parent's
    /// socket is stale, and never released in the child's kernel.
    generation: u32,
}

/// socket(2)'s arguments (without SOCK_NONBLOCK and SOCK_CLOEXEC).
#[derive(Clone, Copy)]
pub struct Made {
    pub domain: c_int,
    pub kind: c_int,
    pub protocol: c_int,
}

/// A setsockopt call: level, name, value.
pub type SockOpt = (c_int, c_int, Vec<u8>);

/// What a provisional socket's move to the host needs besides `Made` and the options.
#[derive(Default)]
pub struct Pending {
    /// The address it was bound to.
    pub bound: Option<Vec<u8>>,
}

/// A listener's backlog and address (getsockname's, after listen).
pub struct Listening {
    pub backlog: c_int,
    pub addr: Vec<u8>,
}

impl Socket {
    pub fn new(
        lkl: lkl::Fd,
        stream: bool,
        nonblocking: bool,
        made: Made,
        pending: Option<Pending>,
    ) -> Socket {
        Socket {
            lkl,
            stream,
            nonblocking: AtomicBool::new(nonblocking),
            made,
            options: Mutex::new(Vec::new()),
            pending: Mutex::new(pending),
            listening: Mutex::new(None),
            listen_port: AtomicU16::new(0),
            generation: kernel::generation(),
        }
    }

    /// A socket of a parent's kernel, seen in a forked child.
    pub fn stale(&self) -> bool {
        self.generation != kernel::generation()
    }

    pub fn nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }

    pub fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
    }

    /// Records that the socket listens on `port` in LKL.
    pub fn set_listening(&self, port: u16) {
        self.listen_port.store(port, Ordering::Relaxed);
    }

    /// Whether it listens (in LKL).
    pub fn is_listening(&self) -> bool {
        self.listen_port() != 0
    }

    /// The port it listens on (in LKL), 0 if it does not.
    pub fn listen_port(&self) -> u16 {
        self.listen_port.load(Ordering::Relaxed)
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if self.stale() {
            return;
        }
        tcpinfo::log("closing", self.lkl);
        let port = self.listen_port.load(Ordering::Relaxed);
        if port != 0 {
            // First, so that a process that served the listener with others takes no new
            // connection in the moment it closes (they would be reset).
            kernel::ownership().not_listening(port);
        }
        kernel::release_lkl_fd(self.lkl);
    }
}

/// The LKL side of a host epoll instance (see epoll.rs): an LKL epoll instance holding the
/// LKL sockets, whose notifier signals `wake`, an eventfd the host instance watches.
pub struct EpollSide {
    // Held for its Drop. Field order is drop order: the notifier goes before the eventfd it
    // signals.
    _notifier: Notifier,
    pub wake: EventFd,
    pub lkl: lkl::Fd,
}

impl EpollSide {
    /// `notifier` watches `lkl` and signals `wake`.
    pub fn new(lkl: lkl::Fd, wake: EventFd, notifier: Notifier) -> EpollSide {
        EpollSide {
            _notifier: notifier,
            wake,
            lkl,
        }
    }
}

impl Drop for EpollSide {
    fn drop(&mut self) {
        // The notifier still holds the LKL file until it is dropped right after.
        kernel::release_lkl_fd(self.lkl);
    }
}
