//! `liblkl_hijack.so`: put a program's TCP/IP sockets on Linux 6.12 running inside the
//! process (LKL), by LD_PRELOAD.
//!
//! Where things are, in layers: each module uses only modules listed before it
//! (`tests/src_modules_form_no_import_cycle.rs` checks that no imports go round in a circle).
//! * `host`: glibc's own functions, for every host call the library makes.
//! * `ffi`: results to errno, and no panic across the C boundary.
//! * `time`: the waiting calls' deadlines and timespecs.
//! * `gate`: calls into the kernel counted, so that exit halts it only with nobody inside.
//! * `config`: the environment (`LKL_HIJACK_*`), checked before `main`.
//! * `policy` (crate lkl-ports): which stack serves which socket, and the ports LKL owns.
//! * `firewall` (crate lkl-ports): rules that keep the host stack from answering for LKL.
//! * `ownership`: the ports LKL owns, with the packet filter and firewall in step.
//! * `gocheck`: recognising gc-built Go programs, whose sockets preloading cannot move.
//! * `boot`: starting the kernel and its packet backend from the configuration.
//! * `kernel`: the kernel for every module: booted on first use, calls through the gate,
//!   halted at exit, forgotten in a forked child.
//! * `fork`: a forked child's kernel of its own, with the parent's listeners made again,
//!   and the fanout group that splits their connections between the processes.
//! * `notify`: LKL readiness signalled to a host eventfd.
//! * `busy`: busy polling, LKL's device polled by the thread about to wait.
//! * `tcpinfo`: debug lines with TCP_INFO of LKL's connections (LKL's `ss -ti`).
//! * `objects`: what a number stands for: LKL sockets and the LKL side of epoll instances.
//! * `fdtable`: host fd numbers standing for those objects (placeholders).
//! * `poll`, `epoll`: waiting on host fds and LKL sockets together; `sigmask`: signals held
//!   back until their host sleep, so none is missed.
//! * `blocking`: blocking calls on LKL sockets, slept in the host (signals, timeouts).
//! * `placement`: deciding a socket's stack when its role shows, and moving it to the host.
//! * `hooks`: the exported glibc functions, routing each call to LKL or to glibc.
//! * `lifecycle`: configuration before `main`, sockets closed and the kernel halted at exit.

pub use lkl;
// The policy and firewall live in their own crate, shared with the `lkl-run` launcher.
use lkl_ports::firewall;
pub use lkl_ports::policy;

mod blocking;
mod boot;
mod busy;
pub mod config;
mod epoll;
mod fdtable;
mod ffi;
mod fork;
mod gate;
mod gocheck;
mod hooks;
mod host;
mod kernel;
mod lifecycle;
mod linger;
mod notify;
mod objects;
mod ownership;
mod placement;
mod poll;
mod sigmask;
mod tcpinfo;
mod time;
