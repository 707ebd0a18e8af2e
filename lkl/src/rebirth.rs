//! A kernel of its own for a forked child. The kernel's variables live in two ranges of the
//! host program, `lkl_data` and `lkl_bss` (lkl-sys/arch/lkl/scripts/state-sections.sh): the
//! first is saved before the first boot, and a child that wants LKL puts both back as they
//! were then, after the host side has let go of the parent's kernel, so `Kernel::boot` can
//! run again.

use std::sync::OnceLock;

extern "C" {
    static mut __start_lkl_data: u8;
    static mut __stop_lkl_data: u8;
    static mut __start_lkl_bss: u8;
    static mut __stop_lkl_bss: u8;
}

/// `lkl_data` as it was before the first boot.
static PRISTINE: OnceLock<Box<[u8]>> = OnceLock::new();

/// A range between two linker-made symbols.
fn range(start: *mut u8, stop: *mut u8) -> (*mut u8, usize) {
    (start, stop as usize - start as usize)
}

/// Only addresses are taken: the linker places each pair around its section, start first.
fn data() -> (*mut u8, usize) {
    range(&raw mut __start_lkl_data, &raw mut __stop_lkl_data)
}

fn bss() -> (*mut u8, usize) {
    range(&raw mut __start_lkl_bss, &raw mut __stop_lkl_bss)
}

/// Saves the kernel's initialised variables; called before the first boot, while nothing has
/// written them yet.
pub(crate) fn save_pristine() {
    PRISTINE.get_or_init(|| {
        let (start, len) = data();
        // SAFETY: the section is mapped, `len` bytes long, and no kernel runs yet.
        unsafe { std::slice::from_raw_parts(start, len) }.into()
    });
}

/// Whether a kernel was ever booted in this process (or in the parent before a fork).
pub(crate) fn booted_before() -> bool {
    PRISTINE.get().is_some()
}

/// Puts the kernel's variables back as they were before the first boot.
///
/// # Safety
/// No kernel may run: in a forked child, after `host_ops::forget_parent_kernel`.
pub(crate) unsafe fn restore_pristine() {
    let Some(pristine) = PRISTINE.get() else {
        return;
    };
    let (start, len) = data();
    assert_eq!(len, pristine.len(), "lkl_data changed size");
    let (zeroed, zeroed_len) = bss();
    // SAFETY: both ranges are the kernel's own sections, mapped and writable; nothing runs
    // in the kernel (the caller's promise), so nothing reads them meanwhile.
    unsafe {
        std::ptr::copy_nonoverlapping(pristine.as_ptr(), start, len);
        std::ptr::write_bytes(zeroed, 0, zeroed_len);
    }
}
