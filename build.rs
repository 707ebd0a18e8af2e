//! Keeps the kernel inside liblkl_hijack.so while nothing exported references it yet.
//!
//! The linker's --gc-sections drops every section that no exported symbol reaches, and until
//! the libc hooks exist the cdylib exports nothing, so the kernel would silently vanish and
//! the symbol-hygiene tests would inspect an empty library. Naming the boot entry point as an
//! undefined symbol makes it a root: the kernel is linked in as it will be once hooks call it,
//! and rustc's export list still keeps it out of the dynamic symbol table.
fn main() {
    println!("cargo:rustc-link-arg-cdylib=-Wl,--undefined=lkl_start_kernel");
}
