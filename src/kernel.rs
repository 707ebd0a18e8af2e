//! The kernel in this process, for every module that calls into it: configured before `main`,
//! booted by the first socket that needs it, entered through a gate that lets the exit handler
//! halt it safely, and given up in a forked child (LKL runs only in the process that started
//! it).

use std::cell::Cell;
use std::ffi::c_long;
use std::sync::atomic::{AtomicBool, Ordering};

use lkl::{Errno, Kernel};
use once_cell::sync::OnceCell;

use crate::boot::{self, Network};
use crate::config::HijackConfig;
use crate::ffi::SysResult;
use crate::gate::Gate;
use crate::ownership::Ownership;

static CONFIG: OnceCell<Option<HijackConfig>> = OnceCell::new();
static KERNEL: OnceCell<Kernel> = OnceCell::new();
/// Set together with KERNEL by the boot; lives until exit.
static NETWORK: OnceCell<Network> = OnceCell::new();
/// Closed at exit once the kernel may be halted: nothing may call into it any more.
static GATE: Gate = Gate::new();
/// In a forked child, LKL does not run: its objects are forgotten, never released.
static ORPHANED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This thread is booting the kernel: sockets it opens meanwhile stay on the host.
    static BOOTING: Cell<bool> = const { Cell::new(false) };
}

/// Keeps the configuration read before `main` (`None`: the library stays out of the way).
pub fn configure(config: Option<HijackConfig>) {
    let _ = CONFIG.set(config);
}

/// Whether sockets of the IP families go to LKL.
pub fn enabled() -> bool {
    CONFIG.get().is_some_and(|c| c.is_some()) && !orphaned() && !BOOTING.get()
}

/// The kernel, booted on first use. A failure to boot ends the program (status 78) with the
/// reason, naming the variable to fix.
pub fn kernel() -> &'static Kernel {
    KERNEL.get_or_init(|| {
        let config = CONFIG
            .get()
            .and_then(|c| c.as_ref())
            .expect("kernel() only when enabled()");
        BOOTING.set(true);
        let booted = boot::boot(config);
        BOOTING.set(false);
        let (kernel, network) = booted.unwrap_or_else(|msg| boot::fatal(&msg));
        // Only ever set here, inside the kernel's one initialisation.
        let _ = NETWORK.set(network);
        kernel
    })
}

/// The ports LKL owns and where sockets go (boots the kernel if needed).
pub fn ownership() -> &'static Ownership {
    kernel();
    &NETWORK.get().expect("set by the boot").ownership
}

/// System call `nr` in the kernel.
///
/// # Safety
/// Pointer arguments must be valid for what the call does with them.
pub unsafe fn call(nr: u32, args: [c_long; 6]) -> SysResult<c_long> {
    // SAFETY: the caller vouches for the pointer arguments.
    with_kernel(|kernel| unsafe { kernel.syscall(nr, args) })?
}

/// Runs `f` with the kernel, counted as inside it (the exit handler halts the kernel only
/// with nobody inside); EBADF once the kernel has halted.
pub fn with_kernel<T>(f: impl FnOnce(&Kernel) -> T) -> SysResult<T> {
    GATE.pass(|| f(kernel())).ok_or(Errno::EBADF)
}

/// Closes an LKL fd whose last user let go.
pub fn release_lkl_fd(fd: lkl::Fd) {
    // SAFETY: close takes no pointers.
    let _ = unsafe { call(lkl::sys::__NR_close, [fd as c_long, 0, 0, 0, 0, 0]) };
}

/// The program closed the last number of a socket other threads are blocked in: shut it
/// down so they return (a plain close would leave them blocked, as it does in Linux).
pub fn wake_blocked(fd: lkl::Fd) {
    // SAFETY: shutdown takes no pointers.
    let _ = unsafe {
        call(
            lkl::sys::__NR_shutdown,
            [fd as c_long, libc::SHUT_RDWR as c_long, 0, 0, 0, 0],
        )
    };
}

/// Whether the kernel was booted (and so has something to close at exit).
pub fn booted() -> bool {
    KERNEL.get().is_some()
}

/// At exit, once the program's sockets are closed: removes the firewall rules and halts the
/// kernel, unless another thread is still inside it.
pub fn halt() {
    let (Some(kernel), Some(network)) = (KERNEL.get(), NETWORK.get()) else {
        return;
    };
    network.ownership.remove_firewall();
    if !GATE.close() {
        log::debug!("exit with threads inside the kernel: not halting it");
        return;
    }
    network.backend.stop_rx();
    // SAFETY: the gate is closed: every later call() is turned away.
    if let Err(e) = unsafe { kernel.halt_shared() } {
        log::debug!("halt: {e}");
    }
}

/// Called in a forked child: LKL is not running there.
pub fn orphan() {
    ORPHANED.store(true, Ordering::Relaxed);
}

pub fn orphaned() -> bool {
    ORPHANED.load(Ordering::Relaxed)
}

/// Tells a forked child, once, that its LKL sockets are the parent's.
pub fn warn_orphaned() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        log::warn!(
            "a forked child used a socket of its parent's LKL kernel: LKL runs only in the \
             process that started it, so the child gets EBADF (its host fds work)"
        );
    }
}

/// Tests: a kernel of its own, without a network (nothing leaves the test process).
#[cfg(test)]
pub fn boot_for_tests() -> &'static Kernel {
    KERNEL.get_or_init(|| Kernel::boot(lkl::BootOptions::default()).expect("boot"))
}
