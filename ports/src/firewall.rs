//! Keeping the host stack from answering for LKL.
//!
//! The host kernel sees every packet LKL gets. On an address the two share, it would answer a
//! SYN to an LKL port with a reset, and reset the replies to LKL's client connections. Rules
//! in the raw table's prerouting hook, on LKL's interface and addresses only, drop exactly the
//! packets LKL owns (the packet socket has already seen them by then). They live in a table
//! (nftables) or chain (iptables, when nft is missing) named after the interface and this
//! process, are removed at exit — by the exit handler, or by a watchdog process when the
//! program dies of a signal — and tables of dead instances are removed at start.

use std::ffi::{c_char, CString};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::policy::{FirewallMode, PortSet};

const PREFIX: &str = "lklhijack_";
const CHAIN_PREFIX: &str = "LKLH-";
/// For the commands we run: our own sbin first, and no preload.
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// TCP or UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// The rule language in use.
enum Tool {
    Nft(PathBuf),
    Iptables { v4: PathBuf, v6: PathBuf },
}

/// What happens to rules: run them, or show them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Run,
    /// Print each command on stderr.
    Print,
    /// Auto mode without the right to change the firewall: one warning with the commands.
    Warn,
    Off,
}

pub struct Firewall {
    tool: Tool,
    action: Action,
    ifname: String,
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
    /// The nft table or iptables chain name.
    name: String,
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(PATH.split(':'))
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

/// Whether this process may change the firewall (CAP_NET_ADMIN in its effective set).
fn has_net_admin() -> bool {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_ADMIN: u32 = 12;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget with a v3 header and room for its two data words.
    let rc = unsafe {
        lkl::raw_syscall!(
            libc::SYS_capget,
            std::ptr::from_mut(&mut header),
            data.as_mut_ptr()
        )
    };
    rc == 0 && data[0].effective & (1 << CAP_NET_ADMIN) != 0
}

/// Writes all of `bytes` to stderr with raw write(2) calls.
fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: the buffer is a live slice of `bytes.len()` bytes.
        let n = unsafe { lkl::raw_syscall!(libc::SYS_write, 2, bytes.as_ptr(), bytes.len()) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Single-quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Firewall {
    /// Prepares the rules for LKL's addresses on `ifname` and removes tables of dead
    /// instances. Nothing is installed until [`install`](Self::install).
    pub fn new(
        mode: FirewallMode,
        ifname: &str,
        v4: Option<Ipv4Addr>,
        v6: Option<Ipv6Addr>,
    ) -> Firewall {
        let safe_if: String = ifname
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let pid = std::process::id();
        let tool = match (
            find_program("nft"),
            find_program("iptables"),
            find_program("ip6tables"),
        ) {
            (Some(nft), _, _) => Some(Tool::Nft(nft)),
            (None, Some(v4), Some(v6)) => Some(Tool::Iptables { v4, v6 }),
            _ => None,
        };
        let name = match tool {
            Some(Tool::Iptables { .. }) => format!("{CHAIN_PREFIX}{ifname}-{pid}"),
            _ => format!("{PREFIX}{safe_if}_{pid}"),
        };
        let action = match (mode, &tool) {
            (FirewallMode::Off, _) => Action::Off,
            (FirewallMode::Print, _) => Action::Print,
            (FirewallMode::Auto, None) => {
                write_stderr(
                    b"lkl-hijack: warning: neither nft nor iptables found: the host stack may \
                      reset LKL's connections (install nftables, or set LKL_HIJACK_FIREWALL=off \
                      if LKL has an address of its own)\n",
                );
                Action::Off
            }
            (FirewallMode::Auto, Some(_)) if !has_net_admin() => Action::Warn,
            (FirewallMode::Auto, Some(_)) => Action::Run,
        };
        let fw = Firewall {
            tool: tool.unwrap_or(Tool::Nft(PathBuf::from("nft"))),
            action,
            ifname: ifname.to_string(),
            v4,
            v6,
            name,
        };
        if action == Action::Run {
            fw.remove_stale();
        }
        fw
    }

    /// Installs the drop rules, starting with `tcp` and `udp` ports, and the watchdog that
    /// removes them when the process dies.
    pub fn install(&self, tcp: &PortSet, udp: &PortSet) {
        let cmds = self.full_commands(tcp, udp);
        match self.action {
            Action::Off => {}
            // Nothing to drop yet: the warning waits for the first port.
            Action::Warn if tcp.is_empty() && udp.is_empty() => {}
            Action::Warn => self.warn(&cmds),
            Action::Print => cmds.iter().for_each(|c| self.print(c)),
            Action::Run => {
                for c in &cmds {
                    self.run(c);
                }
                self.spawn_watchdog();
                log::debug!("firewall: {} installed", self.name);
            }
        }
    }

    /// LKL now owns `added` of `proto` too; `tcp` and `udp` are all it owns.
    pub fn add(&self, proto: Proto, added: &PortSet, tcp: &PortSet, udp: &PortSet) {
        match self.action {
            Action::Off => {}
            // One complete line to copy, rather than pieces.
            Action::Warn => self.warn(&self.full_commands(tcp, udp)),
            Action::Print => self
                .add_commands(proto, added)
                .iter()
                .for_each(|c| self.print(c)),
            Action::Run => self
                .add_commands(proto, added)
                .iter()
                .for_each(|c| self.run(c)),
        }
    }

    /// Creating the rules with these ports in them.
    fn full_commands(&self, tcp: &PortSet, udp: &PortSet) -> Vec<Vec<String>> {
        let mut cmds = self.install_commands();
        for (proto, ports) in [(Proto::Tcp, tcp), (Proto::Udp, udp)] {
            cmds.extend(self.add_commands(proto, ports));
        }
        cmds
    }

    fn warn(&self, cmds: &[Vec<String>]) {
        let joined: Vec<String> = cmds.iter().map(|c| self.shell(c)).collect();
        write_stderr(
            format!(
                "lkl-hijack: warning: no CAP_NET_ADMIN, so no firewall rules: the host stack may \
                 reset LKL's connections on a shared address; as root run: {}\n",
                joined.join(" && ")
            )
            .as_bytes(),
        );
    }

    /// Removes this instance's rules (at exit).
    pub fn remove(&self) {
        if self.action == Action::Run {
            for c in self.remove_commands(&self.name) {
                self.run_quiet(&c);
            }
        }
    }

    /// A command as argv.
    fn install_commands(&self) -> Vec<Vec<String>> {
        let (t, ifn) = (&self.name, &self.ifname);
        match &self.tool {
            Tool::Nft(nft) => {
                let mut script = format!(
                    "add table inet {t}; \
                     add chain inet {t} prerouting {{ type filter hook prerouting priority raw; policy accept; }}; \
                     add set inet {t} tcp_ports {{ type inet_service; flags interval; }}; \
                     add set inet {t} udp_ports {{ type inet_service; flags interval; }}"
                );
                for proto in ["tcp", "udp"] {
                    if let Some(a) = self.v4 {
                        script += &format!("; add rule inet {t} prerouting iifname \"{ifn}\" ip daddr {a} {proto} dport @{proto}_ports drop");
                    }
                    if let Some(a) = self.v6 {
                        script += &format!("; add rule inet {t} prerouting iifname \"{ifn}\" ip6 daddr {a} {proto} dport @{proto}_ports drop");
                    }
                }
                vec![vec![nft.display().to_string(), script]]
            }
            Tool::Iptables { v4, v6 } => {
                let mut cmds = Vec::new();
                for (tool, addr) in [
                    (v4, self.v4.map(|a| a.to_string())),
                    (v6, self.v6.map(|a| a.to_string())),
                ] {
                    if addr.is_none() {
                        continue;
                    }
                    let tool = tool.display().to_string();
                    cmds.push(vec![
                        tool.clone(),
                        "-w".into(),
                        "-t".into(),
                        "raw".into(),
                        "-N".into(),
                        t.clone(),
                    ]);
                    cmds.push(vec![
                        tool,
                        "-w".into(),
                        "-t".into(),
                        "raw".into(),
                        "-I".into(),
                        "PREROUTING".into(),
                        "-i".into(),
                        ifn.clone(),
                        "-j".into(),
                        t.clone(),
                    ]);
                }
                cmds
            }
        }
    }

    fn add_commands(&self, proto: Proto, ports: &PortSet) -> Vec<Vec<String>> {
        if ports.is_empty() {
            return Vec::new();
        }
        let t = &self.name;
        match &self.tool {
            Tool::Nft(nft) => vec![vec![
                nft.display().to_string(),
                format!("add element inet {t} {}_ports {{ {ports} }}", proto.name()),
            ]],
            Tool::Iptables { v4, v6 } => {
                let mut cmds = Vec::new();
                for (tool, addr) in [
                    (v4, self.v4.map(|a| a.to_string())),
                    (v6, self.v6.map(|a| a.to_string())),
                ] {
                    let Some(addr) = addr else { continue };
                    for &(lo, hi) in ports.ranges() {
                        cmds.push(vec![
                            tool.display().to_string(),
                            "-w".into(),
                            "-t".into(),
                            "raw".into(),
                            "-A".into(),
                            t.clone(),
                            "-d".into(),
                            addr.clone(),
                            "-p".into(),
                            proto.name().into(),
                            "--dport".into(),
                            format!("{lo}:{hi}"),
                            "-j".into(),
                            "DROP".into(),
                        ]);
                    }
                }
                cmds
            }
        }
    }

    /// Commands removing the table/chain `name` (of this or a dead instance).
    fn remove_commands(&self, name: &str) -> Vec<Vec<String>> {
        match &self.tool {
            Tool::Nft(nft) => vec![vec![
                nft.display().to_string(),
                format!("delete table inet {name}"),
            ]],
            Tool::Iptables { v4, v6 } => {
                let ifn = name
                    .strip_prefix(CHAIN_PREFIX)
                    .and_then(|rest| rest.rsplit_once('-'))
                    .map_or(self.ifname.clone(), |(ifn, _)| ifn.to_string());
                let mut cmds = Vec::new();
                for tool in [v4, v6] {
                    let tool = tool.display().to_string();
                    let raw = |args: &[&str]| {
                        let mut c = vec![tool.clone(), "-w".into(), "-t".into(), "raw".into()];
                        c.extend(args.iter().map(|a| a.to_string()));
                        c
                    };
                    cmds.push(raw(&["-D", "PREROUTING", "-i", &ifn, "-j", name]));
                    cmds.push(raw(&["-F", name]));
                    cmds.push(raw(&["-X", name]));
                }
                cmds
            }
        }
    }

    /// Tables or chains of instances whose process is gone.
    fn remove_stale(&self) {
        let (listing, prefix) = match &self.tool {
            Tool::Nft(nft) => (
                self.output(&[nft.display().to_string(), "list tables".into()]),
                PREFIX,
            ),
            Tool::Iptables { v4, .. } => (
                self.output(&[
                    v4.display().to_string(),
                    "-w".into(),
                    "-t".into(),
                    "raw".into(),
                    "-S".into(),
                ]),
                CHAIN_PREFIX,
            ),
        };
        let mut stale: Vec<String> = listing
            .split_whitespace()
            .filter(|w| w.starts_with(prefix))
            .filter(|w| {
                let pid = w
                    .rsplit(['_', '-'])
                    .next()
                    .and_then(|p| p.parse::<i32>().ok());
                // SAFETY: kill with signal 0 only checks that the process exists.
                pid.is_some_and(|p| {
                    p > 0
                        && unsafe { libc::kill(p, 0) } != 0
                        && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
                })
            })
            .map(String::from)
            .collect();
        stale.sort();
        stale.dedup();
        for name in stale {
            log::debug!("firewall: removing {name}, left by a process that is gone");
            for c in self.remove_commands(&name) {
                self.run_quiet(&c);
            }
        }
    }

    fn shell(&self, argv: &[String]) -> String {
        let program = Path::new(&argv[0])
            .file_name()
            .map_or(argv[0].clone(), |n| n.to_string_lossy().into_owned());
        let mut line = program;
        for a in &argv[1..] {
            line.push(' ');
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
            {
                line.push_str(a);
            } else {
                line.push_str(&shell_quote(a));
            }
        }
        line
    }

    fn print(&self, argv: &[String]) {
        write_stderr(format!("lkl-hijack: firewall: {}\n", self.shell(argv)).as_bytes());
    }

    fn command(argv: &[String]) -> Command {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .env("PATH", PATH)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs a command; a failure is reported (the rules are needed).
    fn run(&self, argv: &[String]) {
        match Self::command(argv).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => log::warn!(
                "firewall: `{}` failed: {}",
                self.shell(argv),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => log::warn!("firewall: cannot run {}: {e}", argv[0]),
        }
    }

    /// Runs a command whose failure does not matter (removing what may be gone).
    fn run_quiet(&self, argv: &[String]) {
        let _ = Self::command(argv).output();
    }

    fn output(&self, argv: &[String]) -> String {
        Self::command(argv)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// A process that outlives this one by a moment: it waits for this process to end, however
    /// it ends, and removes the rules. It holds no descriptor of ours but a pidfd, is in its
    /// own session (so a terminal's ^C reaches the program, not it), and is no child of the
    /// program's (an intermediate process exits at once), so it cannot confuse waitpid(-1).
    fn spawn_watchdog(&self) {
        let script = self
            .remove_commands(&self.name)
            .iter()
            .map(|c| self.shell_full(c))
            .collect::<Vec<_>>()
            .join("; ");
        let cstr = |s: &str| CString::new(s).expect("no NUL in commands");
        let (sh, dash_c, script, path) = (
            cstr("/bin/sh"),
            cstr("-c"),
            cstr(&script),
            cstr(&format!("PATH={PATH}")),
        );
        let argv: [*const c_char; 4] = [
            sh.as_ptr(),
            dash_c.as_ptr(),
            script.as_ptr(),
            std::ptr::null(),
        ];
        let envp: [*const c_char; 2] = [path.as_ptr(), std::ptr::null()];
        // SAFETY: pidfd_open of our own pid.
        let pidfd = unsafe { lkl::raw_syscall!(libc::SYS_pidfd_open, libc::getpid(), 0) } as i32;
        if pidfd < 0 {
            log::warn!(
                "firewall: no watchdog (pidfd_open failed): rules stay if the program is killed"
            );
            return;
        }
        // SAFETY: a raw fork (no atfork handlers run); the children make only raw system calls
        // on data prepared above, then exec or exit, as is required after fork in a threaded
        // process.
        unsafe {
            let child = lkl::raw_syscall!(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0);
            if child == 0 {
                lkl::raw_syscall!(libc::SYS_setsid);
                if lkl::raw_syscall!(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) == 0 {
                    if pidfd > 0 {
                        lkl::raw_syscall!(libc::SYS_close_range, 0, pidfd - 1, 0);
                    }
                    lkl::raw_syscall!(libc::SYS_close_range, pidfd + 1, u32::MAX, 0);
                    let mut p = libc::pollfd {
                        fd: pidfd,
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    while lkl::raw_syscall!(libc::SYS_ppoll, std::ptr::from_mut(&mut p), 1, 0, 0, 0)
                        != 1
                    {}
                    lkl::raw_syscall!(libc::SYS_execve, sh.as_ptr(), argv.as_ptr(), envp.as_ptr());
                }
                lkl::raw_syscall!(libc::SYS_exit_group, 0);
            }
            if child > 0 {
                lkl::raw_syscall!(libc::SYS_wait4, child, 0, 0, 0);
            }
            lkl::raw_syscall!(libc::SYS_close, pidfd);
        }
    }

    /// A command for the watchdog's shell: full program path, every argument quoted.
    fn shell_full(&self, argv: &[String]) -> String {
        argv.iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
            + " >/dev/null 2>&1"
    }
}
