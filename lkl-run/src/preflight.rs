//! The checks before anything runs, each failure one line that says what to do, with its own
//! exit status (listed in the usage text).

use std::ffi::CString;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{IntoRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use lkl::packet::{open_socket, Admit, OpenError, PacketBackend, PacketConfig};

use crate::args::Args;
use crate::detect::{self, Interface};
use crate::elf::{self, Linkage};

#[derive(Debug)]
pub struct Failure {
    pub status: u8,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn fail(status: u8, message: String) -> Failure {
    Failure { status, message }
}

/// What the checks found: everything the launch needs.
pub struct Setup {
    pub lib: PathBuf,
    pub iface: String,
    pub ip: Option<Ipv4Addr>,
    pub ip6: Option<Ipv6Addr>,
    /// Whether LKL uses an address the host stack has too (then the firewall matters).
    pub shared: bool,
    pub gateway: Option<Ipv4Addr>,
    pub program: Option<PathBuf>,
    pub packet: OwnedFd,
    /// uid, gid and name of `--user`.
    pub user: Option<(u32, u32, String)>,
}

/// Runs every check in order; stops at the first failure. `passed` gets a line per check
/// that passed.
pub fn run(args: &Args, self_exe: &Path, passed: &mut Vec<String>) -> Result<Setup, Failure> {
    let mut ok = |text: String| passed.push(text);

    let lib = find_library(args.lib.as_deref(), self_exe)?;
    ok(format!("library {}", lib.display()));

    let ifs = detect::interfaces().map_err(|e| fail(11, format!("cannot list interfaces: {e}")))?;
    let iface: Interface = match &args.iface {
        Some(name) => ifs
            .iter()
            .find(|i| &i.name == name)
            .cloned()
            .ok_or_else(|| {
                fail(
                    11,
                    format!(
                        "--iface {name}: no such interface here (interfaces: {})",
                        names(&ifs)
                    ),
                )
            })?,
        None => detect::choose(&ifs).cloned().ok_or_else(|| {
            fail(
                11,
                format!(
                    "no interface to use: none is up with an IPv4 address (interfaces: {}); \
                     name one with --iface",
                    names(&ifs)
                ),
            )
        })?,
    };
    if !iface.up {
        return Err(fail(
            12,
            format!(
                "interface {} is down: bring it up (ip link set {0} up)",
                iface.name
            ),
        ));
    }
    let ip = args.ip.or_else(|| iface.v4.first().copied());
    let ip6 = args.ip6.or_else(|| iface.global_v6());
    if ip.is_none() && ip6.is_none() {
        return Err(fail(
            13,
            format!(
                "interface {} has no address to share: give LKL one with --ip",
                iface.name
            ),
        ));
    }
    let shared =
        ip.is_some_and(|a| iface.v4.contains(&a)) || ip6.is_some_and(|a| iface.v6.contains(&a));
    let show = |a: Option<String>| a.unwrap_or_else(|| "-".into());
    ok(format!(
        "interface {} up, LKL address {} / {}{}",
        iface.name,
        show(ip.map(|a| a.to_string())),
        show(ip6.map(|a| a.to_string())),
        if shared {
            " (shared with the host)"
        } else {
            ""
        }
    ));

    let program = match args.command.first() {
        Some(name) if args.forwards.is_empty() => {
            let path = find_program(name).ok_or_else(|| {
                fail(
                    14,
                    format!("{name}: program not found (not a file, nor in PATH)"),
                )
            })?;
            check_program(&path)?;
            ok(format!(
                "program {} is dynamically linked with glibc",
                path.display()
            ));
            Some(path)
        }
        _ => None,
    };

    let packet = open_socket(&iface.name).map_err(|e| match e {
        OpenError::NotPermitted { .. } => fail(
            16,
            "no CAP_NET_RAW: run lkl-run as root (add --user to run the program unprivileged)"
                .into(),
        ),
        e => fail(
            16,
            format!(
                "cannot open a packet socket on {}: {}",
                iface.name,
                e.problem()
            ),
        ),
    })?;
    // The library sets its socket up (filter, options, ring) as the program starts. Doing the
    // same now, on a socket of its own, makes a host that refuses any of it fail here; what
    // the host lacks and the library does without is listed. The ports the filter admits
    // change while the program runs; the rest is the library's setup as it will be.
    let probe = open_socket(&iface.name)
        .and_then(|sock| {
            PacketBackend::adopt(
                sock.into_raw_fd(),
                &PacketConfig {
                    ifname: iface.name.clone(),
                    ipv4: ip,
                    ipv6: ip6,
                    next_hop: None,
                    admit: Admit::All,
                    split: None,
                    offload: std::env::var("LKL_HIJACK_OFFLOAD").as_deref() != Ok("0"),
                    rx_ring: true,
                    // The rx thread's timing, not the socket's setup: nothing to probe.
                    rx_coalesce: std::time::Duration::ZERO,
                    rx_ring_bytes: lkl::packet::MAX_RX_RING_BYTES,
                },
            )
        })
        .map_err(|e| {
            fail(
                16,
                format!(
                    "cannot set a packet socket up on {} as the library will: {}",
                    iface.name,
                    e.problem()
                ),
            )
        })?;
    ok(format!("packet socket on {}", iface.name));
    if let Some(note) = probe.link_note() {
        ok(note.to_string());
    }
    for f in probe
        .fallbacks()
        .iter()
        .chain(&lkl::host_features::fallbacks())
    {
        ok(f.to_string());
    }
    drop(probe);

    let firewall = args
        .firewall
        .unwrap_or(lkl_ports::policy::FirewallMode::Auto);
    if shared && firewall != lkl_ports::policy::FirewallMode::Off {
        // The tools the firewall will try, in its order; which one works shows at install.
        let tools = lkl_ports::firewall::tools_found();
        if tools.is_empty() {
            return Err(fail(
                17,
                "neither nft nor iptables found: install nftables or iptables (apt install \
                 nftables), or give LKL an address of its own with --ip and use --firewall off"
                    .into(),
            ));
        }
        ok(format!("firewall tools {}", tools.join(", ")));
    }

    let user = match &args.user {
        Some(name) => {
            let u = lookup_user(name)
                .ok_or_else(|| fail(18, format!("--user {name}: no such user")))?;
            if shared && firewall == lkl_ports::policy::FirewallMode::Auto && args.ports.is_none() {
                return Err(fail(
                    19,
                    format!(
                        "--user {name} needs --ports on a shared address: the firewall rules \
                         for LKL's ports are installed before privileges are dropped"
                    ),
                ));
            }
            ok(format!("user {name} (uid {}, gid {})", u.0, u.1));
            Some(u)
        }
        None => None,
    };

    Ok(Setup {
        lib,
        iface: iface.name.clone(),
        ip,
        ip6,
        shared,
        gateway: detect::default_gateway(&iface.name),
        program,
        packet,
        user,
    })
}

fn names(ifs: &[Interface]) -> String {
    ifs.iter()
        .map(|i| i.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn find_library(given: Option<&Path>, self_exe: &Path) -> Result<PathBuf, Failure> {
    const NAME: &str = "liblkl_hijack.so";
    if let Some(p) = given {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(fail(10, format!("--lib {}: no such file", p.display())))
        };
    }
    let beside = self_exe.parent().map(|d| d.join(NAME));
    beside
        .into_iter()
        .chain(["/usr/local/lib", "/usr/lib"].map(|d| Path::new(d).join(NAME)))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            fail(
                10,
                format!(
                    "{NAME} not found next to lkl-run, in /usr/local/lib or /usr/lib: build it \
                     (cargo build --release) or give --lib PATH"
                ),
            )
        })
}

fn find_in(name: &str, path: &str) -> Option<PathBuf> {
    path.split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// `name` as execvp would find it.
fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    find_in(name, &std::env::var("PATH").unwrap_or_default())
}

fn check_program(path: &Path) -> Result<(), Failure> {
    let shown = path.display();
    let p = elf::inspect(path).map_err(|e| fail(14, format!("{shown}: cannot read it: {e}")))?;
    let why = if p.gc_go {
        "it was built by the gc Go toolchain, which makes its system calls itself; build it \
         with gccgo (go build -compiler gccgo) or publish its ports with --forward"
            .to_string()
    } else {
        match p.linkage {
            Linkage::Glibc | Linkage::NotElf => return Ok(()),
            Linkage::Static => "it is statically linked, so nothing can be preloaded into it; \
                                publish its ports with --forward"
                .to_string(),
            Linkage::OtherLoader(l) => format!(
                "it is linked against another C library (loader {l}), not glibc; publish its \
                 ports with --forward"
            ),
        }
    };
    Err(fail(15, format!("{shown}: cannot be preloaded: {why}")))
}

/// uid, gid and name of a user, from the passwd database.
fn lookup_user(name: &str) -> Option<(u32, u32, String)> {
    let cname = CString::new(name).ok()?;
    // SAFETY: passwd is plain data (integers and pointers); all zeroes is a valid value.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 << 10];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r fills `pw` with strings in `buf`; all live for the call.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then(|| (pw.pw_uid, pw.pw_gid, name.to_string()))
}
