//! `lkl-run`: runs a program on LKL's network stack through the preload library, or the
//! built-in TCP forwarder for programs that cannot be preloaded.
//!
//! The launcher checks everything it can first (preflight), opens the packet socket with its
//! own privileges and passes it down (`LKL_HIJACK_NET_FD`), and with `--user` installs the
//! firewall rules for `--ports` before it drops privileges; then it execs the program with the
//! library preloaded. The process keeps its pid, which names the firewall table, so the
//! watchdog that removes the rules follows the program.

mod args;
mod detect;
mod elf;
mod forward;
mod preflight;

use std::ffi::{CString, OsString};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use lkl_ports::firewall::Firewall;
use lkl_ports::policy::{FirewallMode, PortSet};

use preflight::Setup;

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some(forward::INTERNAL_COMMAND) {
        // The forwarder, re-executed by the launcher with the library preloaded.
        return forward::main(&raw[1..]);
    }
    let args = match args::parse(raw) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("lkl-run: {e} (lkl-run --help for usage)");
            return ExitCode::from(2);
        }
    };
    let self_exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("lkl-run: cannot find its own executable: {e}");
            return ExitCode::from(2);
        }
    };
    let mut report = Vec::new();
    let setup = preflight::run(&args, &self_exe, &mut report);
    if args.check {
        for line in &report {
            println!("ok    {line}");
        }
        return match setup {
            Ok(_) => {
                println!("ready: lkl-run can start this");
                ExitCode::SUCCESS
            }
            Err(f) => {
                println!("FAIL  {f}");
                ExitCode::from(f.status)
            }
        };
    }
    let setup = match setup {
        Ok(s) => s,
        Err(f) => {
            eprintln!("lkl-run: {f}");
            return ExitCode::from(f.status);
        }
    };
    let e = launch(&args, &setup, &self_exe);
    eprintln!("lkl-run: {e}");
    ExitCode::from(126)
}

/// Execs the program (or the forwarder); returns only on failure.
fn launch(args: &args::Args, setup: &Setup, self_exe: &std::path::Path) -> String {
    let (program, argv): (OsString, Vec<OsString>) = if args.forwards.is_empty() {
        let path = setup.program.clone().expect("preflight found the program");
        (
            path.into_os_string(),
            args.command.iter().map(OsString::from).collect(),
        )
    } else {
        let mut argv: Vec<OsString> = vec!["lkl-run".into(), forward::INTERNAL_COMMAND.into()];
        if let Some(v) = &args.proxy_protocol {
            argv.extend(["--proxy-protocol".into(), v.into()]);
        }
        argv.extend(args.forwards.iter().map(OsString::from));
        (self_exe.as_os_str().to_owned(), argv)
    };
    // The forwarder's listeners are LKL's, and only they.
    let ports = match (&args.ports, args.forwards.is_empty()) {
        (Some(p), _) => Some(p.clone()),
        (None, false) => Some(forward_ports(&args.forwards)),
        (None, true) => None,
    };

    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k != "LD_PRELOAD" && k != "LKL_HIJACK_NET_FD")
        .collect();
    let mut set = |k: &str, v: String| {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v));
    };
    let preload = match std::env::var("LD_PRELOAD") {
        Ok(old) if !old.is_empty() => format!("{}:{old}", setup.lib.display()),
        _ => setup.lib.display().to_string(),
    };
    set("LD_PRELOAD", preload);
    set("LKL_HIJACK_NET_IFTYPE", "packet".into());
    set("LKL_HIJACK_NET_IFPARAMS", setup.iface.clone());
    set("LKL_HIJACK_NET_FD", setup.packet.as_raw_fd().to_string());
    if let Some(ip) = setup.ip {
        set("LKL_HIJACK_NET_IP", ip.to_string());
    }
    if let Some(ip6) = setup.ip6 {
        set("LKL_HIJACK_NET_IPV6", ip6.to_string());
    }
    if let Some(gw) = setup.gateway {
        set("LKL_HIJACK_NET_GATEWAY", gw.to_string());
    }
    if let Some(p) = &ports {
        set("LKL_HIJACK_PORTS", p.to_string());
    }
    if !args.sysctls.is_empty() {
        set("LKL_HIJACK_SYSCTL", args.sysctls.join(";"));
    }
    let mode = args.firewall.unwrap_or(FirewallMode::Auto);
    set("LKL_HIJACK_FIREWALL", mode_name(mode).into());

    if let Some((uid, gid, name)) = &setup.user {
        // The program will not be allowed to change the firewall: the rules for its ports go
        // in now, with a watchdog that removes them when this process (the program, after
        // exec) ends.
        if setup.shared && mode != FirewallMode::Off {
            let mut fw = Firewall::new(mode, &setup.iface, setup.ip, setup.ip6);
            fw.install(
                ports.as_ref().expect("preflight requires --ports"),
                &PortSet::default(),
            );
            set("LKL_HIJACK_FIREWALL", "off".into());
        }
        if let Err(e) = drop_privileges(*uid, *gid, name) {
            return format!("cannot become {name}: {e}");
        }
    }
    exec(&program, &argv, &env)
}

fn mode_name(mode: FirewallMode) -> &'static str {
    match mode {
        FirewallMode::Auto => "auto",
        FirewallMode::Print => "print",
        FirewallMode::Off => "off",
    }
}

/// The listen ports of `--forward` rules (checked when the arguments were parsed).
fn forward_ports(rules: &[String]) -> PortSet {
    PortSet::from_ranges(
        rules
            .iter()
            .filter_map(|r| forward::parse_rule(r).ok())
            .map(|r| (r.port, r.port))
            .collect(),
    )
}

fn drop_privileges(uid: u32, gid: u32, name: &str) -> std::io::Result<()> {
    let cname = CString::new(name)?;
    // SAFETY: plain system calls on integers and a NUL-terminated name; the process is
    // single-threaded here, and glibc applies set*id to every thread anyway.
    unsafe {
        if libc::initgroups(cname.as_ptr(), gid) != 0
            || libc::setgid(gid) != 0
            || libc::setuid(uid) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        // Make sure there is no way back (setuid(0) must now fail).
        if uid != 0 && libc::setuid(0) == 0 {
            return Err(std::io::Error::other("setuid(0) still succeeds"));
        }
    }
    Ok(())
}

fn exec(program: &OsString, argv: &[OsString], env: &[(String, String)]) -> String {
    let cstr = |s: &[u8]| CString::new(s).map_err(|_| "an argument contains a NUL byte");
    let build = || -> Result<(CString, Vec<CString>, Vec<CString>), &str> {
        Ok((
            cstr(program.as_bytes())?,
            argv.iter()
                .map(|a| cstr(a.as_bytes()))
                .collect::<Result<_, _>>()?,
            env.iter()
                .map(|(k, v)| cstr(format!("{k}={v}").as_bytes()))
                .collect::<Result<_, _>>()?,
        ))
    };
    let (prog, argv, envp) = match build() {
        Ok(t) => t,
        Err(e) => return e.to_string(),
    };
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // SAFETY: NUL-terminated strings and NULL-terminated arrays, alive for the call.
    unsafe { libc::execve(prog.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
    format!(
        "cannot run {}: {}",
        program.to_string_lossy(),
        std::io::Error::last_os_error()
    )
}
