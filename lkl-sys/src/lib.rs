//! Raw bindings to Linux 6.12 built as a library (the project's `lkl` arch port).
//!
//! `build/` builds `liblkl.a` and runs bindgen over the kernel's installed UAPI headers
//! (`wrapper.h`): the host ABI (`lkl_host_ops`, `lkl_start_kernel`, `lkl_syscall`, ...), the
//! asm-generic system call numbers (`__NR_*`, not x86-64's) and the socket, epoll, fcntl and
//! errno definitions as the kernel sees them. The safe layer is the `lkl` crate.

#![no_std]
#![allow(non_camel_case_types, non_upper_case_globals, non_snake_case)]
// Generated code: bindgen's unsafe blocks and functions carry no SAFETY comments.
#![allow(
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    unsafe_op_in_unsafe_fn
)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// Directory holding `liblkl.a` (and the installed headers under `include/`) that this crate
/// links: the build cache entry chosen by the build script.
pub const LIB_DIR: &str = env!("LKL_LIB_DIR");
