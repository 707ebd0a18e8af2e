//! Booting and halting the kernel.

use std::ffi::CString;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{host_ops, sys, Errno};

/// How to boot the kernel.
#[derive(Clone, Debug)]
pub struct BootOptions {
    /// RAM for the kernel in MiB (`mem=`). It is reserved up front but only the pages the
    /// kernel touches become resident.
    pub mem_mib: u32,
    /// More kernel command line, appended after `mem=` (e.g. "loglevel=7").
    pub cmdline_extra: String,
}

/// The smallest `mem=` the arch port accepts (MIN_MEM_SIZE in arch/lkl/kernel/mem.c).
pub const MIN_MEM_MIB: u32 = 16;

/// 64 MiB holds the TCP buffers of a few hundred busy loopback connections; idle, the kernel
/// touches only a few MiB of it.
pub const DEFAULT_MEM_MIB: u32 = 64;

impl Default for BootOptions {
    fn default() -> Self {
        BootOptions {
            mem_mib: DEFAULT_MEM_MIB,
            cmdline_extra: String::new(),
        }
    }
}

impl BootOptions {
    /// The command line handed to the kernel.
    pub fn cmdline(&self) -> String {
        let mut cmdline = format!("mem={}M", self.mem_mib);
        let extra = self.cmdline_extra.trim();
        if !extra.is_empty() {
            cmdline.push(' ');
            cmdline.push_str(extra);
        }
        cmdline
    }
}

/// Why a boot failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// `Kernel::boot` was called before in this process; Linux can be started once.
    AlreadyBooted,
    /// The kernel rejected the command line.
    BadOptions { cmdline: String },
    /// The kernel could not get or live in the memory it was given.
    NotEnoughMemory { cmdline: String },
    /// The kernel failed to start for another reason.
    Boot(Errno),
    /// The kernel started, but preparing it for use (/proc, loopback) failed; it was halted.
    Setup { step: &'static str, errno: Errno },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::AlreadyBooted => f.write_str("the kernel can be booted only once per process, and it already was"),
            Error::BadOptions { cmdline } => write!(f, "kernel refused boot options: `{cmdline}`"),
            Error::NotEnoughMemory { cmdline } => write!(
                f,
                "not enough memory for the kernel: `{cmdline}` (minimum {MIN_MEM_MIB}M, default {DEFAULT_MEM_MIB}M)"
            ),
            Error::Boot(errno) => write!(f, "the kernel failed to boot: {errno}"),
            Error::Setup { step, errno } => write!(f, "the kernel booted but {step} failed: {errno}"),
        }
    }
}

impl std::error::Error for Error {}

/// Set by a boot attempt: the kernel's globals cannot be reset for a second one, except in
/// a forked child (`forget_after_fork`).
static BOOTED: AtomicBool = AtomicBool::new(false);

/// The running kernel. System calls are methods on it; all host threads share one kernel
/// process (one fd table).
#[derive(Debug)]
pub struct Kernel {
    /// Only `boot` makes one.
    _private: (),
}

impl Kernel {
    /// Boots Linux, mounts procfs at /proc (sysctls are files there) and brings up `lo`.
    pub fn boot(options: BootOptions) -> Result<Kernel, Error> {
        if BOOTED.swap(true, Ordering::SeqCst) {
            return Err(Error::AlreadyBooted);
        }
        let cmdline = options.cmdline();
        let Ok(c_cmdline) = CString::new(cmdline.clone()) else {
            return Err(Error::BadOptions { cmdline });
        };
        // Bad pointers in system calls become EFAULT instead of a crash.
        crate::fault::install();
        // A forked child can boot a kernel of its own (see `forget_after_fork`).
        crate::rebirth::save_pristine();
        host_ops::guard_forks();
        // SAFETY: OPS lives forever, the command line outlives the call, and BOOTED makes this
        // the process's only call.
        let rc = unsafe { sys::lkl_start_kernel(&host_ops::OPS, c_cmdline.as_ptr()) };
        if rc < 0 {
            host_ops::flush_console();
            return Err(match Errno(-rc) {
                Errno::EINVAL => Error::BadOptions { cmdline },
                Errno::ENOMEM => Error::NotEnoughMemory { cmdline },
                errno => Error::Boot(errno),
            });
        }
        let kernel = Kernel { _private: () };
        if let Err(e) = kernel.prepare(options.mem_mib) {
            // Best effort: the setup error is the one worth reporting.
            let _ = kernel.halt();
            return Err(e);
        }
        Ok(kernel)
    }

    fn prepare(&self, mem_mib: u32) -> Result<(), Error> {
        let setup = |step| move |errno| Error::Setup { step, errno };
        match self.mkdir("/proc", 0o555) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(setup("creating /proc")(e)),
        }
        self.mount("proc", "/proc", "proc", 0, None)
            .map_err(setup("mounting /proc"))?;
        self.reserve_memory_for_receiving(mem_mib)
            .map_err(setup("setting the memory reserve"))?;
        self.interface_up("lo").map_err(setup("bringing up lo"))
    }

    /// Keeps an eighth of the kernel's memory (`vm.min_free_kbytes`) for atomic allocations,
    /// received packets above all, and turns watermark boosting off.
    ///
    /// Only received packets (the ACKs and resets that free send queues) can give TCP's
    /// memory back, and they are allocated atomically, below the min watermark where a
    /// program's calls must stop (skb data down to half of it). TCP lets every socket queue
    /// about one segment-size goal (up to 64 KiB) beyond its hard limit `tcp_mem`, and keeps
    /// one received packet on each socket whose receive queue is empty: 600 connections
    /// whose peers do not read hold 20 of 32 MiB in send queues. With Linux's reserve for
    /// 32 MiB (sqrt(16 * 32768) = 724 KiB) the receive path used it all up on such sockets,
    /// and then no packet at all could be received again, so the memory never came back.
    /// That flood leaves about 3 MiB of this 4 MiB reserve free.
    ///
    /// A boost raises the watermarks by a pageblock (4 MiB) after a fragmenting allocation,
    /// for kswapd to reclaim and compact; this kernel has nothing to reclaim, so a boost only
    /// withholds memory from programs, at random.
    fn reserve_memory_for_receiving(&self, mem_mib: u32) -> Result<(), Errno> {
        let reserve_kib = u64::from(mem_mib) * 1024 / 8;
        self.sysctl_write("vm.min_free_kbytes", &reserve_kib.to_string())?;
        self.sysctl_write("vm.watermark_boost_factor", "0")
    }

    /// In a forked child: forgets the parent's kernel, which cannot run here (fork(2) copied
    /// its memory but none of its threads), so that `boot` can start a kernel of the child's
    /// own. Does nothing in a process that never booted one.
    ///
    /// # Safety
    /// Only in a forked child, before anything calls into a kernel there; every `Kernel`
    /// from before the fork must be forgotten (neither used nor halted), and so must every
    /// pointer the parent's kernel handed out.
    pub unsafe fn forget_after_fork() {
        if !crate::rebirth::booted_before() {
            return;
        }
        // SAFETY: the caller's promises: a child, nothing inside the kernel.
        unsafe {
            host_ops::forget_parent_kernel();
            crate::rebirth::restore_pristine();
        }
        BOOTED.store(false, Ordering::SeqCst);
    }

    /// Shuts the kernel down and waits until every thread it started has ended.
    pub fn halt(self) -> Result<(), Errno> {
        // SAFETY: `self` is consumed, so no method can call into the kernel afterwards.
        unsafe { self.halt_shared() }
    }

    /// [`halt`](Self::halt) for a kernel kept where it cannot be given up by value (a
    /// static).
    ///
    /// # Safety
    /// No system call may be made after this (the ABI forbids any entry point after halt);
    /// the caller must make sure of that.
    pub unsafe fn halt_shared(&self) -> Result<(), Errno> {
        // SAFETY: the caller guarantees no later entry.
        let rc = unsafe { sys::lkl_halt() };
        host_ops::stop_leftover_timers();
        host_ops::join_kernel_threads();
        host_ops::flush_console();
        if rc < 0 {
            Err(Errno((-rc) as i32))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_starts_with_mem() {
        assert_eq!(
            BootOptions::default().cmdline(),
            format!("mem={DEFAULT_MEM_MIB}M")
        );
        let o = BootOptions {
            mem_mib: 32,
            cmdline_extra: " loglevel=7 ".into(),
        };
        assert_eq!(o.cmdline(), "mem=32M loglevel=7");
    }
}
