//! The kernel's life in this process: configuration read before `main`, boot on the first
//! socket that needs it, sockets closed and the kernel halted at exit, and what a forked child
//! gets (errors on LKL fds, with one warning; its host fds are untouched).

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_long};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use lkl::netdev::NetBackend;
use lkl::packet::{PacketBackend, PacketConfig};
use lkl::{BootOptions, Errno, InterfaceConfig, Ipv4Net, Ipv6Net, Kernel};
use once_cell::sync::OnceCell;

use crate::config::HijackConfig;
use crate::ffi::SysResult;
use crate::firewall::Firewall;
use crate::ownership::{self, Ownership};
use crate::{fdtable, gocheck, host, tcpinfo};

/// The kernel with its device; lives until exit.
struct Stack {
    kernel: Kernel,
    backend: Arc<PacketBackend>,
    ownership: Ownership,
}

static CONFIG: OnceCell<Option<HijackConfig>> = OnceCell::new();
static STACK: OnceCell<Stack> = OnceCell::new();
/// Set at exit once the kernel is halted: nothing may call into it any more.
static HALTED: AtomicBool = AtomicBool::new(false);
/// Threads currently inside a kernel call (a halt must not pull the kernel from under them).
static INSIDE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread is booting the kernel: sockets it opens meanwhile stay on the host.
    static BOOTING: Cell<bool> = const { Cell::new(false) };
}

/// Exit status for a configuration error (EX_CONFIG in sysexits.h).
const EX_CONFIG: c_int = 78;

/// Runs before `main` (from .init_array): reads and checks the configuration, so a bad value
/// stops the program before it starts; boots nothing.
extern "C" fn init(_argc: c_int, _argv: *const *const c_char, _envp: *const *const c_char) {
    init_logging();
    let vars = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .filter(|(k, _)| k.starts_with("LKL_HIJACK_"));
    let config = match HijackConfig::from_vars(vars) {
        Ok(c) => c,
        Err(e) => fatal(&e.to_string()),
    };
    match &config {
        None => log::debug!("LKL_HIJACK_NET_IFTYPE is not set: every socket stays on the host"),
        Some(c) => {
            let name = std::ffi::CString::new(c.net.host_if.as_str()).expect("checked name");
            // SAFETY: if_nametoindex reads a NUL-terminated name.
            if unsafe { libc::if_nametoindex(name.as_ptr()) } == 0 {
                fatal(&format!(
                    "LKL_HIJACK_NET_IFPARAMS={}: no such host interface (see `ip link`)",
                    c.net.host_if
                ));
            }
            if let Some(fd) = c.net.fd {
                if let Err(e) = lkl::packet::claim_inherited(fd) {
                    fatal(&crate::config::backend_open_error(&e));
                }
            }
            if gocheck::built_by_gc_go(c"/proc/self/exe") {
                log::warn!(
                    "this program was built by the gc Go toolchain, whose system calls bypass \
                     libc: its sockets stay on the host stack. Build it with gccgo (go-12 \
                     build) to run it on LKL"
                );
            }
            // SAFETY: registering plain functions with no captured state.
            unsafe {
                libc::atexit(at_exit);
                libc::pthread_atfork(None, None, Some(in_child));
            }
        }
    }
    let _ = CONFIG.set(config);
}

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn(c_int, *const *const c_char, *const *const c_char) = init;

/// One line on stderr and exit status 78: the program must not run on the wrong stack.
fn fatal(msg: &str) -> ! {
    host::write_stderr(format!("lkl-hijack: {msg}\n").as_bytes());
    // SAFETY: _exit ends the process without running anything of the program.
    unsafe { libc::_exit(EX_CONFIG) }
}

/// Log lines go to stderr through the real write: LKL_HIJACK_DEBUG=1 for debug output,
/// RUST_LOG for anything finer.
fn init_logging() {
    struct HostStderr;
    impl Write for HostStderr {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            host::write_stderr(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let debug = std::env::var_os("LKL_HIJACK_DEBUG").is_some_and(|v| !v.is_empty() && v != "0");
    let default = if debug {
        "lkl_hijack=debug,lkl=debug"
    } else {
        "warn"
    };
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .target(env_logger::Target::Pipe(Box::new(HostStderr)))
        .format_target(false)
        .format_timestamp_micros()
        .try_init();
}

/// Whether sockets of the IP families go to LKL.
pub fn enabled() -> bool {
    CONFIG.get().is_some_and(|c| c.is_some()) && !fdtable::orphaned() && !BOOTING.get()
}

/// The kernel, booted on first use. A failure to boot ends the program (status 78) with the
/// reason, naming the variable to fix.
pub fn kernel() -> &'static Kernel {
    let stack = STACK.get_or_init(|| {
        let config = CONFIG
            .get()
            .and_then(|c| c.as_ref())
            .expect("kernel() only when enabled()");
        BOOTING.set(true);
        let stack = boot(config);
        BOOTING.set(false);
        stack.unwrap_or_else(|msg| fatal(&msg))
    });
    &stack.kernel
}

/// The ports LKL owns and where sockets go (boots the kernel if needed).
pub fn ownership() -> &'static Ownership {
    kernel();
    &STACK.get().expect("booted above").ownership
}

fn boot(cfg: &HijackConfig) -> Result<Stack, String> {
    let started = std::time::Instant::now();
    let net = &cfg.net;
    let policy = &cfg.policy;
    let shared = ownership::is_shared(net.ip, net.ipv6);
    let (tcp, udp) = ownership::initial_ports(policy);
    // Opened while the kernel boots: the host makes the socket's setup wait.
    let opening = PacketBackend::open_in_background(
        PacketConfig {
            ifname: net.host_if.clone(),
            ipv4: net.ip,
            ipv6: net.ipv6,
            next_hop: net.gateway,
            admit: ownership::admit(shared, &tcp, &udp),
            offload: net.offload,
            rx_ring: true,
        },
        net.fd,
    );
    let kernel = Kernel::boot(BootOptions {
        mem_mib: cfg.mem_mib,
        cmdline_extra: cfg.boot_cmdline.clone(),
    })
    .map_err(|e| match e {
        lkl::Error::NotEnoughMemory { .. } => format!("LKL_HIJACK_MEMSIZE={}M: {e}", cfg.mem_mib),
        _ => format!("LKL_HIJACK_BOOT_CMDLINE={}: {e}", cfg.boot_cmdline),
    })?;
    if let Some(q) = &cfg.qdisc {
        // The device gets the default qdisc when it comes up, below.
        kernel
            .sysctl_write("net.core.default_qdisc", q)
            .map_err(|e| format!("LKL_HIJACK_NET_QDISC={q}: not a qdisc of this kernel ({e})"))?;
    }
    // LKL's own fd limit (1024 by default) would cap a server's connections long before the
    // host's: every LKL socket also holds a host placeholder, so the host limit still rules.
    let unlimited = libc::rlimit64 {
        rlim_cur: 1 << 20,
        rlim_max: 1 << 20,
    };
    // SAFETY: prlimit64 reads the new limit from a live struct; no old one is asked for.
    unsafe {
        kernel.syscall(
            lkl::sys::__NR_prlimit64,
            [
                0,
                libc::RLIMIT_NOFILE as c_long,
                &unlimited as *const _ as c_long,
                0,
                0,
                0,
            ],
        )
    }
    .map_err(|e| format!("cannot raise the kernel's fd limit: {e}"))?;
    // LKL's own clients take ports the host's do not (its ip_local_port_range).
    let (lo, hi) = policy.client_ports;
    kernel
        .sysctl_write("net.ipv4.ip_local_port_range", &format!("{lo} {hi}"))
        .map_err(|e| format!("LKL_HIJACK_CLIENT_PORTS={lo}-{hi}: the kernel refused it ({e})"))?;
    let backend = opening
        .wait()
        .map_err(|e| crate::config::backend_open_error(&e))?;
    let mtu = net.mtu.unwrap_or_else(|| backend.mtu());
    let dev = kernel
        .netdev_add(None, mtu, Arc::clone(&backend))
        .map_err(|e| format!("LKL_HIJACK_NET_MTU={mtu}: the kernel refused the device: {e}"))?;
    backend
        .start_rx(dev.irq)
        .map_err(|e| format!("cannot start the packet receive thread: {e}"))?;
    log::debug!(
        "{} on host interface {}: {}",
        dev.name,
        net.host_if,
        if backend.tso() {
            "offloads on (the host segments TCP and finishes checksums)"
        } else {
            "offloads off (TCP segmented and checksummed in LKL)"
        }
    );
    let iface = InterfaceConfig {
        mtu: None,
        ipv4: net.ip.map(|addr| Ipv4Net {
            addr,
            prefix_len: net.netmask_len,
        }),
        ipv4_peer: None,
        ipv4_gateway: net.gateway,
        ipv6: net.ipv6.map(|addr| Ipv6Net {
            addr,
            prefix_len: net.netmask6_len,
        }),
        ipv6_gateway: net.gateway6,
    };
    kernel.configure_interface(&dev.name, &iface).map_err(|e| {
        format!(
            "LKL_HIJACK_NET_IP/IPV6/GATEWAY: configuring {} failed: {e}",
            dev.name
        )
    })?;
    for (key, value) in &cfg.sysctls {
        if kernel.sysctl_read(key).is_err() {
            return Err(format!(
                "LKL_HIJACK_SYSCTL: {key}: no such sysctl in this kernel"
            ));
        }
        kernel.sysctl_write(key, value).map_err(|e| {
            format!("LKL_HIJACK_SYSCTL: {key}={value}: the kernel refused the value ({e})")
        })?;
    }
    let firewall = Firewall::new(policy.firewall, &net.host_if, net.ip, net.ipv6);
    let ownership = Ownership::new(
        policy.clone(),
        net.ip,
        net.ipv6,
        shared,
        Arc::clone(&backend),
        firewall,
    );
    log::debug!(
        "booted Linux in {:.1} ms: {} on host {} ({:?}, {:?}){}",
        started.elapsed().as_secs_f64() * 1e3,
        dev.name,
        net.host_if,
        net.ip,
        net.ipv6,
        if shared {
            ", address shared with the host"
        } else {
            ""
        }
    );
    Ok(Stack {
        kernel,
        backend,
        ownership,
    })
}

/// System call `nr` in the kernel.
///
/// # Safety
/// Pointer arguments must be valid for what the call does with them.
pub unsafe fn call(nr: u32, args: [c_long; 6]) -> SysResult<c_long> {
    // SAFETY: the caller vouches for the pointer arguments.
    with_kernel(|kernel| unsafe { kernel.syscall(nr, args) })?
}

/// Runs `f` with the kernel, counted as inside it (the exit handler waits for such callers
/// before it halts); EBADF once the kernel has halted.
pub fn with_kernel<T>(f: impl FnOnce(&Kernel) -> T) -> SysResult<T> {
    if HALTED.load(Ordering::Acquire) {
        return Err(Errno::EBADF);
    }
    let kernel = kernel();
    INSIDE.fetch_add(1, Ordering::AcqRel);
    let ret = f(kernel);
    INSIDE.fetch_sub(1, Ordering::AcqRel);
    Ok(ret)
}

/// Closes an LKL fd whose last user let go.
pub fn release_lkl_fd(fd: lkl::Fd) {
    tcpinfo::log("closing", fd);
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

extern "C" fn in_child() {
    fdtable::orphan();
}

/// At exit: close every LKL socket (peers get their FIN or RST, as when a process exits) and
/// halt the kernel, unless another thread is still inside it.
extern "C" fn at_exit() {
    if fdtable::orphaned() || STACK.get().is_none() {
        return;
    }
    drop(fdtable::drain());
    let stack = STACK.get().expect("checked");
    stack.ownership.remove_firewall();
    if INSIDE.load(Ordering::Acquire) != 0 {
        log::debug!("exit with threads inside the kernel: not halting it");
        return;
    }
    HALTED.store(true, Ordering::Release);
    stack.backend.stop_rx();
    // SAFETY: HALTED (set above) turns every later call() away.
    if let Err(e) = unsafe { stack.kernel.halt_shared() } {
        log::debug!("halt: {e}");
    }
}
