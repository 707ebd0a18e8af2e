//! `liblkl_hijack.so`: put a program's TCP/IP sockets on Linux 6.12 running inside the
//! process (LKL), by LD_PRELOAD.
//!
//! Where things are:
//! * `config`: the environment (`LKL_HIJACK_*`), checked before `main`.
//! * `policy` (crate lkl-ports): which stack serves which socket, and the ports LKL owns.
//! * `placement`: deciding a socket's stack when its role shows, and moving it to the host.
//! * `firewall` (crate lkl-ports): rules that keep the host stack from answering for LKL.
//! * `ownership`: the ports LKL owns, with the packet filter and firewall in step.
//! * `stack`: the kernel's life: lazy boot with the packet backend, exit, fork.
//! * `hooks`: the exported glibc functions, routing each call to LKL or to glibc.
//! * `fdtable`: host fd numbers standing for LKL sockets (placeholders) and epoll sides.
//! * `poll`, `epoll`, `notify`: waiting on host fds and LKL sockets together.
//! * `blocking`: blocking calls on LKL sockets, slept in the host (signals, timeouts).
//! * `host`: glibc's own functions, for every host call the library makes.
//! * `ffi`: results to errno, and no panic across the C boundary.
//! * `tcpinfo`: debug lines with TCP_INFO of LKL's connections (LKL's `ss -ti`).
//! * `gocheck`: recognising gc-built Go programs, whose sockets preloading cannot move.

pub use lkl;
// The policy and firewall live in their own crate, shared with the `lkl-run` launcher.
use lkl_ports::firewall;
pub use lkl_ports::policy;

mod blocking;
pub mod config;
mod epoll;
mod fdtable;
mod ffi;
mod gocheck;
mod hooks;
mod host;
mod notify;
mod ownership;
mod placement;
mod poll;
mod stack;
mod tcpinfo;
