//! Host system calls made with the `syscall` instruction itself.
//!
//! This code ends up inside an LD_PRELOAD library that exports libc's `syscall(3)` too (libgo
//! and others make socket calls through it); a call to libc's `syscall` from inside the
//! library would land in that hook. Host calls that must reach the host kernel as they are use
//! these instead. Semantics are libc's: -1 with errno set on failure.

#[cfg(not(target_arch = "x86_64"))]
compile_error!(
    "lkl::raw makes host system calls with the x86-64 `syscall` instruction: x86-64 only"
);

use std::arch::asm;
use std::ffi::c_long;

/// System call `nr` with six arguments (unused ones are ignored by the kernel).
///
/// # Safety
/// As for the system call itself: pointer arguments must be valid for what it does.
#[inline]
pub unsafe fn syscall6(nr: c_long, args: [c_long; 6]) -> c_long {
    let ret: c_long;
    // SAFETY: the x86-64 Linux system call convention; the kernel clobbers rcx and r11 only.
    // The caller vouches for the arguments.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr => ret,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if (-4095..0).contains(&ret) {
        // SAFETY: errno is this thread's; the location is valid for the thread's life.
        unsafe { *libc::__errno_location() = -ret as i32 };
        -1
    } else {
        ret
    }
}

/// `raw_syscall!(nr, args...)`: [`syscall6`] with up to six arguments of any integer or raw
/// pointer type.
#[macro_export]
macro_rules! raw_syscall {
    ($nr:expr $(, $a:expr)* $(,)?) => {{
        let mut args: [::std::ffi::c_long; 6] = [0; 6];
        let given: &[::std::ffi::c_long] = &[$($a as ::std::ffi::c_long),*];
        args[..given.len()].copy_from_slice(given);
        $crate::raw::syscall6($nr as ::std::ffi::c_long, args)
    }};
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_and_errors_are_libcs() {
        // SAFETY: getpid and close take no pointers.
        unsafe {
            assert_eq!(raw_syscall!(libc::SYS_getpid), libc::getpid() as i64);
            assert_eq!(raw_syscall!(libc::SYS_close, -1), -1);
        }
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EBADF)
        );
    }
}
