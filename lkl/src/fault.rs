//! Copies to and from memory a host program handed to the kernel, surviving bad pointers.
//!
//! The kernel reaches "user" memory directly (it is the program's own address space), so a
//! wrong pointer passed to recv or getsockopt would fault inside the copy. The copy is one
//! `rep movsb` at a known address; a SIGSEGV/SIGBUS handler that sees the fault there moves
//! the thread on to the instruction after it, where RCX still holds the bytes not copied —
//! the kernel then reports EFAULT, as Linux does. Any other fault goes to whatever handled
//! the signal before (the program's handler, or the default action).

use std::ffi::{c_int, c_ulong, c_void};
use std::mem::MaybeUninit;
use std::sync::Once;

#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".text",
    ".p2align 4",
    ".globl lkl_guarded_copy",
    ".type lkl_guarded_copy,@function",
    "lkl_guarded_copy:",
    "mov rcx, rdx",
    ".globl lkl_guarded_copy_insn",
    "lkl_guarded_copy_insn:",
    "rep movsb",
    ".globl lkl_guarded_copy_resume",
    "lkl_guarded_copy_resume:",
    "mov rax, rcx",
    "ret",
    ".size lkl_guarded_copy, . - lkl_guarded_copy",
);

#[cfg(target_arch = "x86_64")]
extern "C" {
    /// Copies `n` bytes; returns how many were not copied.
    fn lkl_guarded_copy(dst: *mut c_void, src: *const c_void, n: c_ulong) -> c_ulong;
    static lkl_guarded_copy_insn: u8;
    static lkl_guarded_copy_resume: u8;
}

/// The kernel's copy_user host op.
///
/// # Safety
/// Either side may be a bad pointer (that is the point); the other must be valid kernel
/// memory for `n` bytes.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe extern "C" fn copy_user(
    dst: *mut c_void,
    src: *const c_void,
    n: c_ulong,
) -> c_ulong {
    // SAFETY: the copy either completes or faults into the handler installed at boot, which
    // resumes after it; no Rust state is touched in between.
    unsafe { lkl_guarded_copy(dst, src, n) }
}

/// Without the fault handler for this architecture, a plain copy (bad pointers crash).
#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe extern "C" fn copy_user(
    dst: *mut c_void,
    src: *const c_void,
    n: c_ulong,
) -> c_ulong {
    // SAFETY: the caller's pointers, trusted on this architecture.
    unsafe { std::ptr::copy_nonoverlapping(src.cast::<u8>(), dst.cast::<u8>(), n as usize) };
    0
}

/// Copies `n` bytes from `src` to `dst`, either of which may be a program's bad pointer;
/// false if some could not be copied. Only after a kernel has booted (the fault handler is
/// installed then).
///
/// # Safety
/// The side that is not the program's must be valid for `n` bytes.
pub unsafe fn copy_guarded(dst: *mut c_void, src: *const c_void, n: usize) -> bool {
    // SAFETY: as for copy_user.
    unsafe { copy_user(dst, src, n as c_ulong) == 0 }
}

/// The dispositions of SIGSEGV and SIGBUS before ours.
static mut PREVIOUS: [MaybeUninit<libc::sigaction>; 2] =
    [MaybeUninit::uninit(), MaybeUninit::uninit()];
const SIGNALS: [c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

#[cfg(target_arch = "x86_64")]
extern "C" fn on_fault(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let uc = ctx.cast::<libc::ucontext_t>();
    // SAFETY: the kernel passes the interrupted context; reading and setting its RIP is how a
    // handler redirects the thread. The addresses are our own asm labels.
    unsafe {
        let rip = &mut (*uc).uc_mcontext.gregs[libc::REG_RIP as usize];
        if *rip as usize == std::ptr::addr_of!(lkl_guarded_copy_insn) as usize {
            *rip = std::ptr::addr_of!(lkl_guarded_copy_resume) as i64;
            return;
        }
    }
    chain(sig, info, ctx);
}

/// Hands a fault that is not ours to the previous disposition.
#[cfg(target_arch = "x86_64")]
fn chain(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let i = usize::from(sig == libc::SIGBUS);
    // SAFETY: PREVIOUS was filled by sigaction before our handler was installed and is not
    // written afterwards.
    let prev = unsafe { (*std::ptr::addr_of!(PREVIOUS))[i].assume_init() };
    match prev.sa_sigaction {
        libc::SIG_DFL | libc::SIG_IGN => {
            // Put the old disposition back; returning re-runs the faulting instruction,
            // which then gets the default action (a core dump), as without us.
            // SAFETY: restoring a disposition the kernel gave us.
            unsafe { libc::sigaction(sig, &prev, std::ptr::null_mut()) };
        }
        handler if prev.sa_flags & libc::SA_SIGINFO != 0 => {
            // SAFETY: the program installed this three-argument handler for this signal.
            let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
                unsafe { std::mem::transmute(handler) };
            f(sig, info, ctx);
        }
        handler => {
            // SAFETY: the program installed this one-argument handler for this signal.
            let f: extern "C" fn(c_int) = unsafe { std::mem::transmute(handler) };
            f(sig);
        }
    }
}

/// Installs the fault handler (once per process), remembering what was there.
pub(crate) fn install() {
    #[cfg(target_arch = "x86_64")]
    {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            for (i, &sig) in SIGNALS.iter().enumerate() {
                // SAFETY: sigaction with a zeroed, then filled struct; PREVIOUS[i] receives the
                // old disposition before our handler can run.
                unsafe {
                    let mut sa: libc::sigaction = std::mem::zeroed();
                    sa.sa_sigaction = on_fault as *const () as usize;
                    sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
                    libc::sigemptyset(&mut sa.sa_mask);
                    let prev = (*std::ptr::addr_of_mut!(PREVIOUS))[i].as_mut_ptr();
                    libc::sigaction(sig, &sa, prev);
                }
            }
        });
    }
}
