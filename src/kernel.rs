//! The kernel in this process, for every module that calls into it: configured before `main`,
//! booted by the first socket that needs it, entered through a gate that lets the exit handler
//! halt it safely, and forgotten in a forked child, which boots its own (fork.rs).

use std::cell::Cell;
use std::ffi::c_long;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};
use std::sync::Mutex;

use lkl::locks::lock;
use lkl::{Errno, Kernel};
use once_cell::sync::OnceCell;

use crate::boot::{self, ChildBoot, Network};
use crate::config::HijackConfig;
use crate::ffi::SysResult;
use crate::gate::Gate;
use crate::ownership::Ownership;

static CONFIG: OnceCell<Option<HijackConfig>> = OnceCell::new();

/// A booted kernel and its network; lives until exit (never freed: other threads may hold
/// references until the process ends).
struct Running {
    kernel: Kernel,
    /// None only for the unit tests' kernel.
    network: Option<Network>,
}

/// This process's kernel, null until the first boot, and again in a forked child until it
/// boots its own (see fork.rs).
static RUNNING: AtomicPtr<Running> = AtomicPtr::new(std::ptr::null_mut());
/// Serialises boots.
static BOOTING_LOCK: Mutex<()> = Mutex::new(());
/// Which kernel this process runs: raised in a forked child, whose objects of the parent's
/// kernel are then stale (see `Socket::generation`).
static GENERATION: AtomicU32 = AtomicU32::new(0);
/// Set in a forked child whose parent ran a kernel: the next boot forgets that one first.
static FORGET_PARENT: AtomicBool = AtomicBool::new(false);
/// A forked child's boot with the parent's listeners (see fork.rs).
static CHILD_BOOT: Mutex<Option<ChildBoot>> = Mutex::new(None);
/// What runs after such a boot (fork.rs's: the listeners made again).
static AFTER_CHILD_BOOT: OnceCell<fn()> = OnceCell::new();
/// Closed at exit once the kernel may be halted: nothing may call into it any more.
static GATE: Gate = Gate::new();

thread_local! {
    /// This thread is booting the kernel: sockets it opens meanwhile stay on the host.
    static BOOTING: Cell<bool> = const { Cell::new(false) };
}

/// Keeps the configuration read before `main` (`None`: the library stays out of the way).
pub fn configure(config: Option<HijackConfig>) {
    let _ = CONFIG.set(config);
}

pub fn config() -> &'static HijackConfig {
    CONFIG
        .get()
        .and_then(|c| c.as_ref())
        .expect("the kernel is only booted when enabled()")
}

/// Whether sockets of the IP families go to LKL.
pub fn enabled() -> bool {
    CONFIG.get().is_some_and(|c| c.is_some()) && !BOOTING.get()
}

fn running() -> &'static Running {
    let r = RUNNING.load(Ordering::Acquire);
    if r.is_null() {
        return boot_now();
    }
    // SAFETY: set once per kernel from a leaked Box, never freed.
    unsafe { &*r }
}

/// Boots the kernel (in a forked child: a kernel of its own, with the parent's listeners made
/// again in it). A failure to boot ends the program (status 78) with the reason, naming the
/// variable to fix.
#[cold]
fn boot_now() -> &'static Running {
    let _booting = lock(&BOOTING_LOCK);
    let r = RUNNING.load(Ordering::Acquire);
    if !r.is_null() {
        // SAFETY: as in `running`.
        return unsafe { &*r };
    }
    if FORGET_PARENT.swap(false, Ordering::Relaxed) {
        // SAFETY: a forked child (forget_in_child set the flag), before its first boot:
        // nothing has called into a kernel since the fork, and the parent's handle is
        // forgotten.
        unsafe { Kernel::forget_after_fork() };
    }
    let child = lock(&CHILD_BOOT).take();
    BOOTING.set(true);
    let booted = boot::boot(config(), child.as_ref());
    BOOTING.set(false);
    let (kernel, network) = booted.unwrap_or_else(|msg| boot::fatal(&msg));
    let running: &'static Running = Box::leak(Box::new(Running {
        kernel,
        network: Some(network),
    }));
    RUNNING.store(running as *const Running as *mut Running, Ordering::Release);
    if child.is_some() {
        if let Some(after) = AFTER_CHILD_BOOT.get() {
            after();
        }
    }
    running
}

/// The kernel, booted on first use.
pub fn kernel() -> &'static Kernel {
    &running().kernel
}

/// The ports LKL owns and where sockets go (boots the kernel if needed).
pub fn ownership() -> &'static Ownership {
    &network().ownership
}

fn network() -> &'static Network {
    running()
        .network
        .as_ref()
        .expect("only the unit tests' kernel has no network")
}

/// In a forked child: its next boot is a child's with the parent's listeners (`child`).
pub fn boot_as_child(child: ChildBoot) {
    *lock(&CHILD_BOOT) = Some(child);
}

/// Sets what runs after a forked child's boot with the parent's listeners.
pub fn after_child_boot(f: fn()) {
    let _ = AFTER_CHILD_BOOT.set(f);
}

/// Which kernel objects made now belong to (see `GENERATION`).
pub fn generation() -> u32 {
    GENERATION.load(Ordering::Relaxed)
}

/// In a forked child (fork handler, the only thread): the parent's kernel is forgotten, its
/// objects become stale and the next use boots a kernel of the child's own. Returns the
/// parent's network, if it ran one, for the caller to let go of on the host.
pub fn forget_in_child() -> Option<&'static Network> {
    let r = RUNNING.swap(std::ptr::null_mut(), Ordering::AcqRel);
    if r.is_null() {
        return None;
    }
    GENERATION.fetch_add(1, Ordering::Relaxed);
    FORGET_PARENT.store(true, Ordering::Relaxed);
    GATE.reset_in_child();
    // SAFETY: as in `running`; the Running is leaked, so the reference stays valid.
    unsafe { (*r).network.as_ref() }
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

/// Whether this process runs a kernel (and so has something to close at exit).
pub fn booted() -> bool {
    !RUNNING.load(Ordering::Acquire).is_null()
}

/// At exit, once the program's sockets are closed: removes the firewall rules and halts the
/// kernel, unless another thread is still inside it.
pub fn halt() {
    let r = RUNNING.load(Ordering::Acquire);
    if r.is_null() {
        return;
    }
    // SAFETY: as in `running`.
    let Running { kernel, network } = unsafe { &*r };
    let Some(network) = network else { return };
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

/// Tells a forked child, once, that an LKL socket it used is its parent's.
pub fn warn_stale() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        log::warn!(
            "a forked child used a connected socket of its parent's LKL kernel: connections \
             cannot follow a fork (their TCP state is the parent's), so the child gets EBADF; \
             listeners do follow"
        );
    }
}

/// Tests: a kernel of its own, without a network (nothing leaves the test process).
#[cfg(test)]
pub fn boot_for_tests() -> &'static Kernel {
    let _booting = lock(&BOOTING_LOCK);
    if RUNNING.load(Ordering::Acquire).is_null() {
        let kernel = Kernel::boot(lkl::BootOptions::default()).expect("boot");
        let running = Box::leak(Box::new(Running {
            kernel,
            network: None,
        }));
        RUNNING.store(running, Ordering::Release);
    }
    // SAFETY: as in `running`.
    unsafe { &(*RUNNING.load(Ordering::Acquire)).kernel }
}
