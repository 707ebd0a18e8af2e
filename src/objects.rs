//! The kernel objects a host fd number can stand for: an LKL socket (with what a provisional
//! one recorded) and the LKL side of a host epoll instance. Each gives its LKL file back when
//! the last number and in-flight call let go of it.

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};

use parking_lot::Mutex;

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
    /// Until its role shows, a socket lives in LKL provisionally (see placement.rs).
    pub pending: Mutex<Option<Pending>>,
    /// The port it listens on in LKL, 0 if none.
    listen_port: AtomicU16,
}

/// What a provisional socket was made as and what the program did to it, to be replayed on a
/// host socket if it moves there.
pub struct Pending {
    pub domain: c_int,
    pub kind: c_int,
    pub protocol: c_int,
    /// setsockopt calls: level, name, value.
    pub options: Vec<(c_int, c_int, Vec<u8>)>,
    /// The address it was bound to.
    pub bound: Option<Vec<u8>>,
}

impl Socket {
    pub fn new(lkl: lkl::Fd, stream: bool, nonblocking: bool, pending: Option<Pending>) -> Socket {
        Socket {
            lkl,
            stream,
            nonblocking: AtomicBool::new(nonblocking),
            pending: Mutex::new(pending),
            listen_port: AtomicU16::new(0),
        }
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
}

impl Drop for Socket {
    fn drop(&mut self) {
        tcpinfo::log("closing", self.lkl);
        kernel::release_lkl_fd(self.lkl);
        let port = self.listen_port.load(Ordering::Relaxed);
        if port != 0 {
            kernel::ownership().not_listening(port);
        }
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
