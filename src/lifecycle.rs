//! The library's life in a process: the configuration read and checked before `main`, every
//! LKL socket closed and the kernel halted at exit (a forked child's life is fork.rs's).

use std::ffi::{c_char, c_int};
use std::io::Write;

use crate::config::HijackConfig;
use crate::{boot, fdtable, fork, gocheck, host, kernel, linger};

/// Runs before `main` (from .init_array): reads and checks the configuration, so a bad value
/// stops the program before it starts; boots nothing.
extern "C" fn init(_argc: c_int, _argv: *const *const c_char, _envp: *const *const c_char) {
    init_logging();
    let vars = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .filter(|(k, _)| k.starts_with("LKL_HIJACK_"));
    let config = match HijackConfig::from_vars(vars) {
        Ok(c) => c,
        Err(e) => boot::fatal(&e.to_string()),
    };
    match &config {
        None => log::debug!("LKL_HIJACK_NET_IFTYPE is not set: every socket stays on the host"),
        Some(c) => {
            let name = std::ffi::CString::new(c.net.host_if.as_str()).expect("checked name");
            // SAFETY: if_nametoindex reads a NUL-terminated name.
            if unsafe { libc::if_nametoindex(name.as_ptr()) } == 0 {
                boot::fatal(&format!(
                    "LKL_HIJACK_NET_IFPARAMS={}: no such host interface (see `ip link`)",
                    c.net.host_if
                ));
            }
            if let Some(fd) = c.net.fd {
                if let Err(e) = lkl::packet::claim_inherited(fd) {
                    boot::fatal(&crate::config::backend_open_error(&e));
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
            }
            fork::register();
        }
    }
    kernel::configure(config);
}

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn(c_int, *const *const c_char, *const *const c_char) = init;

/// Log lines go to stderr through the real write, each naming the process: LKL_HIJACK_DEBUG=1
/// for debug output, RUST_LOG for anything finer.
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
        .format(|buf, record| {
            use std::io::Write;
            // The process that logs: a pre-fork server's processes share its stderr.
            // SAFETY: getpid has no preconditions.
            let pid = unsafe { libc::getpid() };
            writeln!(
                buf,
                "[{} {:<5} lkl-hijack {pid}] {}",
                buf.timestamp_micros(),
                record.level(),
                record.args()
            )
        })
        .try_init();
}

/// At exit: close every LKL socket (peers get their FIN or RST, as when a process exits), let
/// the connections deliver what they still hold, and halt the kernel, unless another thread
/// is still inside it.
extern "C" fn at_exit() {
    if !kernel::booted() {
        return;
    }
    drop(fdtable::drain());
    linger::deliver_closed_connections();
    kernel::halt();
}
