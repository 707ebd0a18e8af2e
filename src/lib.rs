//! `liblkl_hijack.so`: the LD_PRELOAD library.
//!
//! For now it only carries the kernel (through the `lkl` crate) into the shared object, so the
//! symbol-hygiene test can check that linking Linux into a cdylib exports nothing of the
//! kernel's. The libc hooks that use it come later (see shared/design/architecture.md §4).

// Referencing the crate makes rustc link it (and with it liblkl.a) into the cdylib.
pub use lkl;

pub mod config;
