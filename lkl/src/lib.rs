//! Linux 6.12 as a library, safely: host operations in Rust, boot and halt, and typed system
//! calls returning `Result<_, Errno>`.
//!
//! ```no_run
//! use lkl::{BootOptions, Kernel};
//! let kernel = Kernel::boot(BootOptions::default()).expect("boot");
//! println!("pid inside LKL: {}", kernel.getpid().unwrap());
//! kernel.halt().unwrap();
//! ```
//!
//! The kernel boots once per process (a forked child may boot one of its own, see
//! `Kernel::forget_after_fork`). All host threads that make system calls share one
//! kernel process: one fd table, one pid.

mod addr;
pub mod consts;
mod errno;
mod fault;
pub mod host_features;
mod host_ops;
mod ifconfig;
mod kernel;
pub mod locks;
pub mod netdev;
pub mod packet;
pub mod raw;
mod rebirth;
mod syscalls;

pub use errno::Errno;
pub use fault::copy_guarded;
pub use ifconfig::{InterfaceConfig, Ipv4Net, Ipv6Net};
pub use kernel::{BootOptions, Error, Kernel, DEFAULT_MEM_MIB, MIN_MEM_MIB};
pub use lkl_sys as sys;
pub use syscalls::{EpollEvent, Fd, Utsname};
