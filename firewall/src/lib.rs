//! The port policy (which stack serves which socket, which ports LKL owns) and the host
//! firewall rules that keep the host stack from answering for LKL. Shared by the preload
//! library, which keeps the rules in step with the program's listeners, and the `lkl-run`
//! launcher, which installs them before it drops privileges.
//!
//! Inside the preload library every libc call of this crate would reach the library's own
//! exported functions; the few host calls made here are raw system calls (`lkl::raw`).

pub mod policy;
mod rules;

pub use rules::{Firewall, Proto};
