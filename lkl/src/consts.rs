//! Socket constants the kernel does not export as UAPI.
//!
//! Linux keeps AF_*, SOCK_*, MSG_* and SHUT_* in include/linux/socket.h and net.h, outside the
//! UAPI headers bindgen reads (libc carries its own copies). Their values are fixed system-call
//! ABI, the same on every architecture that uses the generic numbering, lkl included.
//! Everything else (SOL_SOCKET, SO_*, IPPROTO_*, TCP_*, EPOLL*, O_*) comes from `crate::sys`.

pub const AF_UNSPEC: u32 = 0;
pub const AF_INET: u32 = 2;
pub const AF_INET6: u32 = 10;

pub const SOCK_STREAM: u32 = 1;
pub const SOCK_DGRAM: u32 = 2;
/// socket()/accept4() flags share the open flags' values.
pub const SOCK_NONBLOCK: u32 = crate::sys::O_NONBLOCK;
pub const SOCK_CLOEXEC: u32 = crate::sys::O_CLOEXEC;

pub const MSG_PEEK: u32 = 0x2;
pub const MSG_DONTWAIT: u32 = 0x40;
pub const MSG_NOSIGNAL: u32 = 0x4000;

pub const SHUT_RD: u32 = 0;
pub const SHUT_WR: u32 = 1;
pub const SHUT_RDWR: u32 = 2;
