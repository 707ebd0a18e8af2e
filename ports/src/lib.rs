//! Which ports LKL owns, and keeping the host stack off them:
//! * [`policy`]: which stack serves which socket, which ports LKL owns.
//! * [`firewall`]: the host firewall rules that keep the host stack from answering for LKL.
//!
//! Shared by the preload library, which keeps the rules in step with the program's listeners,
//! and the `lkl-run` launcher, which installs them before it drops privileges.
//!
//! Host calls: the rules are applied by running `nft` or `iptables` as child processes
//! (`std::process::Command`); inside the preload library the pipe reads and closes involved
//! reach the library's own `read` and `close`, which pass host descriptors through to libc.
//! capget, pidfd_open and the warnings written to stderr are raw system calls (`lkl::raw`), so
//! that they do not pass through the library's hooks of `syscall(3)` and `write`; so is
//! everything the watchdog does between its fork and its exec, as a fork of a threaded process
//! may not call into libc.

pub mod firewall;
pub mod policy;
