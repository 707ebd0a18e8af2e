//! Keeping the host stack from answering for LKL.
//!
//! The host kernel sees every packet LKL gets. On an address the two share, it would answer a
//! SYN to an LKL port with a reset, and reset the replies to LKL's client connections. Rules
//! in the raw table's prerouting hook, on LKL's interface and addresses only, drop exactly the
//! packets LKL owns (the packet socket has already seen them by then). They live in a table
//! (nftables) or chain (iptables) named after the interface and this process, made by the first
//! tool that works here (see [`candidates`]), are removed at exit — by the exit handler, or by a watchdog process when the
//! program dies of a signal — and tables of dead instances are removed at start.

use std::ffi::{c_char, CString};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::policy::{FirewallMode, PortSet};

/// How the nftables tables of lkl-hijack instances begin (family inet).
pub const TABLE_PREFIX: &str = "lklhijack_";
/// How the iptables chains (raw table) of lkl-hijack instances begin.
pub const CHAIN_PREFIX: &str = "LKLH-";
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

impl Tool {
    /// The program's name, for messages.
    fn name(&self) -> String {
        let path = match self {
            Tool::Nft(nft) => nft,
            Tool::Iptables { v4, .. } => v4,
        };
        path.file_name().map_or(path.display().to_string(), |n| {
            n.to_string_lossy().into_owned()
        })
    }
}

/// The tools to try, in order, of those `find` finds: nft; then the legacy iptables, which
/// works where nf_tables is missing (OpenVZ 7 and RHEL 7 kernels, containers whose host limits
/// netfilter) but the nft command and iptables-nft (Debian's and RHEL 8's `iptables`) fail;
/// then whatever `iptables` is. An iptables tool needs its ip6tables too.
fn candidates_from(find: impl Fn(&str) -> Option<PathBuf>) -> Vec<Tool> {
    let iptables = [
        ("iptables-legacy", "ip6tables-legacy"),
        ("iptables", "ip6tables"),
    ]
    .into_iter()
    .filter_map(|(v4, v6)| {
        Some(Tool::Iptables {
            v4: find(v4)?,
            v6: find(v6)?,
        })
    });
    find("nft")
        .map(Tool::Nft)
        .into_iter()
        .chain(iptables)
        .collect()
}

fn candidates() -> Vec<Tool> {
    candidates_from(find_program)
}

/// The firewall tools found here, in the order [`Firewall::install`] tries them (the first
/// that works is used).
pub fn tools_found() -> Vec<String> {
    candidates().iter().map(Tool::name).collect()
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
    /// The tool the rules are made with: until [`install`](Self::install) has found one that
    /// works, the first found.
    tool: Tool,
    /// The tools `install` tries after `tool`, in order.
    fallbacks: Vec<Tool>,
    action: Action,
    ifname: String,
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
    pid: u32,
}

/// The warning when no tool can make the rules.
const NO_TOOL: &[u8] = b"lkl-hijack: warning: no firewall tool works here (tried nft, \
    iptables-legacy, iptables): on an address shared with the host, the host will reset LKL's \
    connections; install nftables or iptables, enable netfilter for the container (OpenVZ: \
    --netfilter full), or give LKL an address of its own and set LKL_HIJACK_FIREWALL=off\n";

/// The nftables table (family inet) of the instance with process id `pid` on `ifname`; an
/// interface name's characters that nft would not take in a name become `_`.
pub fn table_name(ifname: &str, pid: u32) -> String {
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
    format!("{TABLE_PREFIX}{safe_if}_{pid}")
}

/// The iptables chain (raw table) of the instance with process id `pid` on `ifname`.
pub fn chain_name(ifname: &str, pid: u32) -> String {
    format!("{CHAIN_PREFIX}{ifname}-{pid}")
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

/// How the watchdog's wait for the program's end came out.
#[derive(Debug, PartialEq, Eq)]
enum WaitEnd {
    /// The program has ended: the rules go.
    Ended,
    /// Waiting failed with this errno: the watchdog cannot tell when the program ends.
    Failed(i32),
}

/// Waits with `ppoll` (one ppoll(2) on the program's pidfd without a timeout: its result, or
/// the errno) until the program has ended. Only a wait that a signal interrupted is retried:
/// any other failure would come back at once, and retrying it would spin for the program's
/// whole life.
fn wait_for_end(mut ppoll: impl FnMut() -> Result<libc::c_long, i32>) -> WaitEnd {
    loop {
        match ppoll() {
            // Without a timeout ppoll returns only once the pidfd is readable.
            Ok(_) => return WaitEnd::Ended,
            Err(libc::EINTR) => continue,
            Err(errno) => return WaitEnd::Failed(errno),
        }
    }
}

/// The watchdog's warning that it stopped waiting after ppoll failed with `errno`, formatted
/// into `buf` (after the watchdog's fork nothing may allocate) and cut to fit it.
fn watchdog_failure(errno: i32, buf: &mut [u8]) -> &[u8] {
    use std::io::Write;
    let room = buf.len();
    let mut rest = &mut buf[..];
    let _ = writeln!(
        rest,
        "lkl-hijack: warning: firewall watchdog stopped: waiting for the program failed \
         (errno {errno}); its rules stay if it is killed, until the next instance removes them"
    );
    let written = room - rest.len();
    &buf[..written]
}

/// How the watchdog learns that the program has ended.
enum Watch {
    /// A pidfd of the program (Linux 5.3), readable once it has ended.
    Pidfd(i32),
    /// Without pidfd_open: the program's `/proc/PID/stat`, read every [`PROC_POLL`]; the
    /// program has ended when it is gone, a zombie, or another process's (a new start time).
    Proc { stat: CString, start: u64 },
}

/// How often the watchdog looks at the program's /proc entry when it has no pidfd.
const PROC_POLL: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 200_000_000,
};

/// The state and start time (fields 3 and 22) of a `/proc/PID/stat` line. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted from its last ')'.
/// Allocates nothing: the watchdog calls it after its fork.
fn parse_stat(line: &[u8]) -> Option<(u8, u64)> {
    let after = line.iter().rposition(|&b| b == b')')?;
    let mut fields = line[after + 1..]
        .split(|&b| b == b' ' || b == b'\n')
        .filter(|f| !f.is_empty());
    let state = *fields.next()?.first()?;
    // Fields 4 to 21 come between the state and the start time.
    let start = fields.nth(18)?;
    if !start.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let start = start.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    Some((state, start))
}

/// Waits until the process whose `/proc/PID/stat` is `stat` and which started at `start` has
/// ended (see [`Watch::Proc`]). Raw calls only: the watchdog calls it after its fork.
fn wait_for_proc_end(stat: &std::ffi::CStr, start: u64) {
    let mut buf = [0u8; 1024];
    loop {
        // SAFETY: nanosleep reads the timespec; the remainder pointer may be null.
        unsafe { lkl::raw_syscall!(libc::SYS_nanosleep, &PROC_POLL as *const _, 0) };
        // SAFETY: a NUL-terminated path; the descriptor is closed below.
        let fd = unsafe { lkl::raw_syscall!(libc::SYS_open, stat.as_ptr(), libc::O_RDONLY) };
        if fd < 0 {
            return;
        }
        // SAFETY: read into our own buffer of buf.len() bytes, then close our descriptor.
        let n = unsafe {
            let n = lkl::raw_syscall!(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len());
            lkl::raw_syscall!(libc::SYS_close, fd);
            n
        };
        let running = n > 0
            && parse_stat(&buf[..n as usize])
                .is_some_and(|(state, s)| s == start && !matches!(state, b'Z' | b'X'));
        if !running {
            return;
        }
    }
}

/// Closes every descriptor but `keep` (-1: none), as the watchdog must before it waits: with
/// close_range, or where the kernel lacks it (before 5.9) one by one below `limit`. Raw calls
/// only: the watchdog calls it after its fork.
fn close_all_but(keep: i32, limit: i32) {
    // SAFETY: closing descriptor numbers is memory-safe.
    let ranged = unsafe {
        let below = if keep > 0 {
            lkl::raw_syscall!(libc::SYS_close_range, 0, keep - 1, 0)
        } else {
            0
        };
        let above = lkl::raw_syscall!(libc::SYS_close_range, keep + 1, u32::MAX, 0);
        below == 0 && above == 0
    };
    if !ranged {
        for fd in (0..limit).filter(|&fd| fd != keep) {
            // SAFETY: as above.
            unsafe { lkl::raw_syscall!(libc::SYS_close, fd) };
        }
    }
}

/// How the watchdog will watch process `pid` (this one): a pidfd where the kernel has
/// pidfd_open (5.3), else its /proc entry; None if neither can be had.
fn watch_of(pid: u32) -> Option<Watch> {
    if lkl::host_features::has_pidfd_open() {
        // SAFETY: pidfd_open takes a pid and flags.
        let pidfd = unsafe { lkl::raw_syscall!(libc::SYS_pidfd_open, pid, 0) };
        if pidfd >= 0 {
            return Some(Watch::Pidfd(pidfd as i32));
        }
    }
    let path = format!("/proc/{pid}/stat");
    let (_, start) = parse_stat(&std::fs::read(&path).ok()?)?;
    log::debug!("firewall: the watchdog watches {path} (no pidfd_open on this host)");
    Some(Watch::Proc {
        stat: CString::new(path).ok()?,
        start,
    })
}

/// The soft limit on open descriptors: the numbers the watchdog closes one by one where
/// close_range is missing.
fn open_file_limit() -> i32 {
    // SAFETY: getrlimit writes the struct it is given.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(i32::MAX as u64) as i32
    } else {
        1024
    }
}

/// Single-quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Firewall {
    /// Prepares the rules for LKL's addresses on `ifname`. Nothing is installed until
    /// [`install`](Self::install).
    pub fn new(
        mode: FirewallMode,
        ifname: &str,
        v4: Option<Ipv4Addr>,
        v6: Option<Ipv6Addr>,
    ) -> Firewall {
        let mut tools = candidates().into_iter();
        let tool = tools.next();
        let action = match (mode, &tool) {
            (FirewallMode::Off, _) => Action::Off,
            (FirewallMode::Print, _) => Action::Print,
            (FirewallMode::Auto, None) => {
                write_stderr(NO_TOOL);
                Action::Off
            }
            (FirewallMode::Auto, Some(_)) if !has_net_admin() => Action::Warn,
            (FirewallMode::Auto, Some(_)) => Action::Run,
        };
        Firewall {
            tool: tool.unwrap_or(Tool::Nft(PathBuf::from("nft"))),
            fallbacks: tools.collect(),
            action,
            ifname: ifname.to_string(),
            v4,
            v6,
            pid: std::process::id(),
        }
    }

    /// The nft table or iptables chain name of this instance.
    fn name(&self) -> String {
        match self.tool {
            Tool::Nft(_) => table_name(&self.ifname, self.pid),
            Tool::Iptables { .. } => chain_name(&self.ifname, self.pid),
        }
    }

    /// Removes the rules of dead instances, installs the drop rules, starting with `tcp` and
    /// `udp` ports, with the first tool that works, and starts the watchdog that removes them
    /// when the process dies.
    pub fn install(&mut self, tcp: &PortSet, udp: &PortSet) {
        match self.action {
            Action::Off => {}
            // Nothing to drop yet: the warning waits for the first port.
            Action::Warn if tcp.is_empty() && udp.is_empty() => {}
            Action::Warn => self.warn(&self.full_commands(tcp, udp)),
            Action::Print => self
                .full_commands(tcp, udp)
                .iter()
                .for_each(|c| self.print(c)),
            Action::Run => {
                if !self.choose_tool() {
                    write_stderr(NO_TOOL);
                    self.action = Action::Off;
                    return;
                }
                for (proto, ports) in [(Proto::Tcp, tcp), (Proto::Udp, udp)] {
                    for c in self.add_commands(proto, ports) {
                        self.run(&c);
                    }
                }
                self.spawn_watchdog();
                log::debug!("firewall: {} installed", self.name());
            }
        }
    }

    /// Makes the empty table or chain with the tools in order until one has made it: its
    /// commands succeeded and it can be listed back. What a failing tool made in part is
    /// removed. Each tool first removes the rules of dead instances, before ours exist (so a
    /// table that appears is complete). Whether one worked; it is then `self.tool`.
    fn choose_tool(&mut self) -> bool {
        let mut rest = std::mem::take(&mut self.fallbacks).into_iter();
        loop {
            self.remove_stale();
            let name = self.name();
            let tried = self
                .install_commands()
                .iter()
                .chain(&self.check_commands())
                .try_for_each(|c| self.run_checked(c));
            match tried {
                Ok(()) => {
                    log::debug!("firewall: using {}", self.tool.name());
                    return true;
                }
                Err(e) => {
                    log::debug!("firewall: {} does not work here: {e}", self.tool.name());
                    for c in self.remove_commands(&name) {
                        self.run_quiet(&c);
                    }
                }
            }
            match rest.next() {
                Some(next) => self.tool = next,
                None => return false,
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
            for c in self.remove_commands(&self.name()) {
                self.run_quiet(&c);
            }
        }
    }

    /// A command as argv.
    fn install_commands(&self) -> Vec<Vec<String>> {
        let (t, ifn) = (&self.name(), &self.ifname);
        match &self.tool {
            // Family inet needs Linux 3.14; where the kernel lacks it the table cannot be made
            // and the next tool is tried. -300 is what `priority raw` means: named priorities
            // need nft 0.9.1, newer than older distributions ship.
            Tool::Nft(nft) => {
                let mut script = format!(
                    "add table inet {t}; \
                     add chain inet {t} prerouting {{ type filter hook prerouting priority -300; policy accept; }}; \
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

    /// Listing back what [`install_commands`](Self::install_commands) made: each fails if it
    /// is not there.
    fn check_commands(&self) -> Vec<Vec<String>> {
        let t = self.name();
        match &self.tool {
            Tool::Nft(nft) => vec![vec![
                nft.display().to_string(),
                format!("list table inet {t}"),
            ]],
            Tool::Iptables { v4, v6 } => [(v4, self.v4.is_some()), (v6, self.v6.is_some())]
                .into_iter()
                .filter(|&(_, used)| used)
                .map(|(tool, _)| {
                    [&tool.display().to_string(), "-w", "-t", "raw", "-S", &t]
                        .map(String::from)
                        .to_vec()
                })
                .collect(),
        }
    }

    fn add_commands(&self, proto: Proto, ports: &PortSet) -> Vec<Vec<String>> {
        if ports.is_empty() {
            return Vec::new();
        }
        let t = &self.name();
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
                TABLE_PREFIX,
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
                let gone = |p: i32| {
                    // SAFETY: kill with signal 0 only checks that the process exists.
                    let ret = unsafe { libc::kill(p, 0) };
                    ret != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
                };
                pid.is_some_and(|p| p > 0 && gone(p))
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

    /// Runs a command; Err says how it failed.
    fn run_checked(&self, argv: &[String]) -> Result<(), String> {
        match Self::command(argv).output() {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(format!(
                "`{}` failed: {}",
                self.shell(argv),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Err(format!("cannot run {}: {e}", argv[0])),
        }
    }

    /// Runs a command; a failure is reported (the rules are needed).
    fn run(&self, argv: &[String]) {
        if let Err(e) = self.run_checked(argv) {
            log::warn!("firewall: {e}");
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
    /// Should the wait itself fail, it says so on our stderr and exits, leaving the rules to
    /// the exit handler or to the next instance's removal of stale ones.
    fn spawn_watchdog(&self) {
        let script = self
            .remove_commands(&self.name())
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
        let pid = std::process::id();
        // Where the watchdog, which keeps none of our descriptors, can still reach our stderr.
        let stderr_path = cstr(&format!("/proc/{pid}/fd/2"));
        let Some(watch) = watch_of(pid) else {
            log::warn!(
                "firewall: no watchdog (neither a pidfd nor /proc/{pid}/stat): rules stay if \
                 the program is killed"
            );
            return;
        };
        let keep = match watch {
            Watch::Pidfd(fd) => fd,
            Watch::Proc { .. } => -1,
        };
        let fd_limit = open_file_limit();
        // SAFETY: a raw fork (no atfork handlers run); the children make only raw system calls
        // on data prepared above, then exec or exit, as is required after fork in a threaded
        // process.
        unsafe {
            let child = lkl::raw_syscall!(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0);
            if child == 0 {
                lkl::raw_syscall!(libc::SYS_setsid);
                if lkl::raw_syscall!(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) == 0 {
                    close_all_but(keep, fd_limit);
                    let end = match &watch {
                        Watch::Pidfd(pidfd) => {
                            let mut p = libc::pollfd {
                                fd: *pidfd,
                                events: libc::POLLIN,
                                revents: 0,
                            };
                            wait_for_end(|| {
                                let n = lkl::raw_syscall!(
                                    libc::SYS_ppoll,
                                    std::ptr::from_mut(&mut p),
                                    1,
                                    0,
                                    0,
                                    0
                                );
                                if n < 0 {
                                    Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
                                } else {
                                    Ok(n)
                                }
                            })
                        }
                        Watch::Proc { stat, start } => {
                            wait_for_proc_end(stat, *start);
                            WaitEnd::Ended
                        }
                    };
                    match end {
                        WaitEnd::Ended => {
                            lkl::raw_syscall!(
                                libc::SYS_execve,
                                sh.as_ptr(),
                                argv.as_ptr(),
                                envp.as_ptr()
                            );
                        }
                        WaitEnd::Failed(errno) => {
                            let fd = lkl::raw_syscall!(
                                libc::SYS_open,
                                stderr_path.as_ptr(),
                                libc::O_WRONLY | libc::O_APPEND | libc::O_NOCTTY | libc::O_CLOEXEC
                            );
                            if fd >= 0 {
                                let mut buf = [0u8; 256];
                                let text = watchdog_failure(errno, &mut buf);
                                lkl::raw_syscall!(libc::SYS_write, fd, text.as_ptr(), text.len());
                            }
                        }
                    }
                }
                lkl::raw_syscall!(libc::SYS_exit_group, 0);
            }
            if child > 0 {
                lkl::raw_syscall!(libc::SYS_wait4, child, 0, 0, 0);
            }
            if let Watch::Pidfd(pidfd) = watch {
                lkl::raw_syscall!(libc::SYS_close, pidfd);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    const V4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
    const V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3);

    /// A firewall of pid 4242 on venet0 with `tool`, built without looking at the system.
    fn firewall(tool: Tool, v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>) -> Firewall {
        Firewall {
            tool,
            fallbacks: Vec::new(),
            action: Action::Off,
            ifname: "venet0".into(),
            v4,
            v6,
            pid: 4242,
        }
    }

    fn nft(v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>) -> Firewall {
        firewall(Tool::Nft("/usr/sbin/nft".into()), v4, v6)
    }

    fn iptables(v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>) -> Firewall {
        firewall(
            Tool::Iptables {
                v4: "/usr/sbin/iptables".into(),
                v6: "/usr/sbin/ip6tables".into(),
            },
            v4,
            v6,
        )
    }

    fn ports(text: &str) -> PortSet {
        PortSet::parse(text).unwrap()
    }

    /// Each command as one line, arguments separated by single spaces.
    fn lines(cmds: &[Vec<String>]) -> Vec<String> {
        cmds.iter().map(|c| c.join(" ")).collect()
    }

    #[test]
    fn proc_stat_gives_state_and_start_time_whatever_the_command_name() {
        let line = b"4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                     987654 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0\n";
        assert_eq!(parse_stat(line), Some((b'S', 987654)));
        let zombie = b"7 (x) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0\n";
        assert_eq!(parse_stat(zombie), Some((b'Z', 55)));
        assert_eq!(parse_stat(b"7 (x) S 1 2"), None);
        assert_eq!(parse_stat(b"no parenthesis"), None);
        let own = std::fs::read("/proc/self/stat").unwrap();
        assert!(matches!(parse_stat(&own), Some((_, start)) if start > 0));
    }

    #[test]
    fn names_carry_the_interface_and_the_pid() {
        assert_eq!(table_name("venet0", 4242), "lklhijack_venet0_4242");
        assert_eq!(table_name("eth0.100:a-b", 7), "lklhijack_eth0_100_a_b_7");
        assert_eq!(chain_name("eth0.100", 7), "LKLH-eth0.100-7");
    }

    #[test]
    fn nft_install_is_one_script_with_a_drop_rule_per_address_and_protocol() {
        let t = "lklhijack_venet0_4242";
        let sets = format!(
            "add table inet {t}; \
             add chain inet {t} prerouting {{ type filter hook prerouting priority -300; policy accept; }}; \
             add set inet {t} tcp_ports {{ type inet_service; flags interval; }}; \
             add set inet {t} udp_ports {{ type inet_service; flags interval; }}"
        );
        let rule = |family: &str, addr: &str, proto: &str| {
            format!(
                "; add rule inet {t} prerouting iifname \"venet0\" {family} daddr {addr} \
                 {proto} dport @{proto}_ports drop"
            )
        };
        let both = sets.clone()
            + &rule("ip", "10.0.0.3", "tcp")
            + &rule("ip6", "fd00::3", "tcp")
            + &rule("ip", "10.0.0.3", "udp")
            + &rule("ip6", "fd00::3", "udp");
        assert_eq!(
            nft(Some(V4), Some(V6)).install_commands(),
            vec![vec!["/usr/sbin/nft".to_string(), both]]
        );
        let v4_only =
            sets.clone() + &rule("ip", "10.0.0.3", "tcp") + &rule("ip", "10.0.0.3", "udp");
        assert_eq!(
            nft(Some(V4), None).install_commands(),
            vec![vec!["/usr/sbin/nft".to_string(), v4_only]]
        );
        let v6_only = sets + &rule("ip6", "fd00::3", "tcp") + &rule("ip6", "fd00::3", "udp");
        assert_eq!(
            nft(None, Some(V6)).install_commands(),
            vec![vec!["/usr/sbin/nft".to_string(), v6_only]]
        );
    }

    #[test]
    fn tools_are_tried_nft_then_legacy_iptables_then_iptables_each_iptables_with_its_ip6tables() {
        let names = |present: &[&str]| {
            let tools = candidates_from(|name| {
                present
                    .contains(&name)
                    .then(|| PathBuf::from(format!("/usr/sbin/{name}")))
            });
            tools
                .iter()
                .map(|t| match t {
                    Tool::Nft(p) => p.display().to_string(),
                    Tool::Iptables { v4, v6 } => format!("{} {}", v4.display(), v6.display()),
                })
                .collect::<Vec<_>>()
        };
        let all = [
            "iptables",
            "ip6tables",
            "nft",
            "ip6tables-legacy",
            "iptables-legacy",
        ];
        assert_eq!(
            names(&all),
            [
                "/usr/sbin/nft",
                "/usr/sbin/iptables-legacy /usr/sbin/ip6tables-legacy",
                "/usr/sbin/iptables /usr/sbin/ip6tables",
            ]
        );
        assert_eq!(
            names(&["iptables", "ip6tables", "iptables-legacy"]),
            ["/usr/sbin/iptables /usr/sbin/ip6tables"]
        );
        assert!(names(&["iptables-legacy", "ip6tables"]).is_empty());
    }

    #[test]
    fn what_was_installed_is_listed_back_per_address_family_in_use() {
        assert_eq!(
            lines(&nft(Some(V4), None).check_commands()),
            ["/usr/sbin/nft list table inet lklhijack_venet0_4242"]
        );
        let chain = "LKLH-venet0-4242";
        assert_eq!(
            lines(&iptables(Some(V4), Some(V6)).check_commands()),
            [
                format!("/usr/sbin/iptables -w -t raw -S {chain}"),
                format!("/usr/sbin/ip6tables -w -t raw -S {chain}"),
            ]
        );
        assert_eq!(
            lines(&iptables(None, Some(V6)).check_commands()),
            [format!("/usr/sbin/ip6tables -w -t raw -S {chain}")]
        );
    }

    #[test]
    fn nft_ports_and_ranges_go_into_the_protocols_set() {
        let fw = nft(Some(V4), Some(V6));
        assert_eq!(
            lines(&fw.add_commands(Proto::Tcp, &ports("8000-8100,443"))),
            ["/usr/sbin/nft add element inet lklhijack_venet0_4242 tcp_ports { 443, 8000-8100 }"]
        );
        assert_eq!(
            lines(&fw.add_commands(Proto::Udp, &ports("53"))),
            ["/usr/sbin/nft add element inet lklhijack_venet0_4242 udp_ports { 53 }"]
        );
        assert!(fw.add_commands(Proto::Tcp, &PortSet::default()).is_empty());
    }

    #[test]
    fn nft_removal_deletes_the_table() {
        let fw = nft(Some(V4), None);
        assert_eq!(
            lines(&fw.remove_commands(&fw.name())),
            ["/usr/sbin/nft delete table inet lklhijack_venet0_4242"]
        );
        assert_eq!(
            lines(&fw.remove_commands("lklhijack_eth1_77")),
            ["/usr/sbin/nft delete table inet lklhijack_eth1_77"]
        );
    }

    #[test]
    fn iptables_install_makes_a_chain_jumped_to_from_prerouting_per_address_family() {
        let chain = "LKLH-venet0-4242";
        let make = |tool: &str| {
            vec![
                format!("{tool} -w -t raw -N {chain}"),
                format!("{tool} -w -t raw -I PREROUTING -i venet0 -j {chain}"),
            ]
        };
        let ipt = make("/usr/sbin/iptables");
        let ip6t = make("/usr/sbin/ip6tables");
        assert_eq!(
            lines(&iptables(Some(V4), Some(V6)).install_commands()),
            [ipt.clone(), ip6t.clone()].concat()
        );
        assert_eq!(lines(&iptables(Some(V4), None).install_commands()), ipt);
        assert_eq!(lines(&iptables(None, Some(V6)).install_commands()), ip6t);
    }

    #[test]
    fn iptables_ports_and_ranges_are_one_drop_rule_each_per_address() {
        let chain = "LKLH-venet0-4242";
        assert_eq!(
            lines(&iptables(Some(V4), Some(V6)).add_commands(Proto::Udp, &ports("443,8000-8100"))),
            [
                format!("/usr/sbin/iptables -w -t raw -A {chain} -d 10.0.0.3 -p udp --dport 443:443 -j DROP"),
                format!("/usr/sbin/iptables -w -t raw -A {chain} -d 10.0.0.3 -p udp --dport 8000:8100 -j DROP"),
                format!("/usr/sbin/ip6tables -w -t raw -A {chain} -d fd00::3 -p udp --dport 443:443 -j DROP"),
                format!("/usr/sbin/ip6tables -w -t raw -A {chain} -d fd00::3 -p udp --dport 8000:8100 -j DROP"),
            ]
        );
        assert_eq!(
            lines(&iptables(None, Some(V6)).add_commands(Proto::Tcp, &ports("80"))),
            [format!(
                "/usr/sbin/ip6tables -w -t raw -A {chain} -d fd00::3 -p tcp --dport 80:80 -j DROP"
            )]
        );
        assert!(iptables(Some(V4), None)
            .add_commands(Proto::Tcp, &PortSet::default())
            .is_empty());
    }

    #[test]
    fn iptables_removal_unhooks_flushes_and_deletes_the_chain_in_both_families() {
        let remove = |tool: &str, ifname: &str, chain: &str| {
            vec![
                format!("{tool} -w -t raw -D PREROUTING -i {ifname} -j {chain}"),
                format!("{tool} -w -t raw -F {chain}"),
                format!("{tool} -w -t raw -X {chain}"),
            ]
        };
        let fw = iptables(Some(V4), None);
        assert_eq!(
            lines(&fw.remove_commands(&fw.name())),
            [
                remove("/usr/sbin/iptables", "venet0", "LKLH-venet0-4242"),
                remove("/usr/sbin/ip6tables", "venet0", "LKLH-venet0-4242"),
            ]
            .concat()
        );
        // A dead instance's chain names its own interface, which may hold a dash.
        assert_eq!(
            lines(&fw.remove_commands("LKLH-eth-1.5-77")),
            [
                remove("/usr/sbin/iptables", "eth-1.5", "LKLH-eth-1.5-77"),
                remove("/usr/sbin/ip6tables", "eth-1.5", "LKLH-eth-1.5-77"),
            ]
            .concat()
        );
    }

    #[test]
    fn full_commands_install_then_add_tcp_then_udp() {
        let fw = nft(Some(V4), None);
        let mut want = fw.install_commands();
        want.extend(fw.add_commands(Proto::Tcp, &ports("80")));
        want.extend(fw.add_commands(Proto::Udp, &ports("53")));
        assert_eq!(fw.full_commands(&ports("80"), &ports("53")), want);
        assert_eq!(
            fw.full_commands(&PortSet::default(), &PortSet::default()),
            fw.install_commands()
        );
    }

    #[test]
    fn commands_shown_to_a_person_quote_only_what_the_shell_would_split() {
        let fw = nft(Some(V4), None);
        assert_eq!(
            fw.shell(&fw.add_commands(Proto::Tcp, &ports("80"))[0]),
            "nft 'add element inet lklhijack_venet0_4242 tcp_ports { 80 }'"
        );
        let ipt = iptables(Some(V4), None);
        assert_eq!(
            ipt.shell(&ipt.add_commands(Proto::Tcp, &ports("80"))[0]),
            "iptables -w -t raw -A LKLH-venet0-4242 -d 10.0.0.3 -p tcp --dport 80:80 -j DROP"
        );
        assert_eq!(
            fw.shell_full(&["/usr/sbin/nft".into(), "it's".into()]),
            r"'/usr/sbin/nft' 'it'\''s' >/dev/null 2>&1"
        );
    }

    #[test]
    fn watchdog_wait_retries_interrupted_waits_until_the_program_ends() {
        let mut results = [Err(libc::EINTR), Err(libc::EINTR), Ok(1)].into_iter();
        let mut calls = 0;
        let end = wait_for_end(|| {
            calls += 1;
            results.next().expect("no ppoll after the program ended")
        });
        assert_eq!(end, WaitEnd::Ended);
        assert_eq!(calls, 3);
    }

    #[test]
    fn watchdog_wait_stops_at_a_failure_other_than_an_interruption() {
        let mut calls = 0;
        let end = wait_for_end(|| {
            calls += 1;
            assert!(calls < 100, "the wait retries a failing ppoll forever");
            if calls == 1 {
                Err(libc::EINTR)
            } else {
                Err(libc::ENOMEM)
            }
        });
        assert_eq!(end, WaitEnd::Failed(libc::ENOMEM));
        assert_eq!(calls, 2);
    }

    #[test]
    fn watchdog_failure_message_names_the_errno_and_fits_its_buffer() {
        let mut buf = [0u8; 256];
        let text = String::from_utf8(watchdog_failure(libc::ENOMEM, &mut buf).to_vec()).unwrap();
        assert!(
            text.starts_with("lkl-hijack: warning: firewall watchdog stopped")
                && text.contains("(errno 12)")
                && text.ends_with('\n'),
            "{text:?}"
        );
        let mut small = [0u8; 20];
        assert_eq!(
            watchdog_failure(libc::ENOMEM, &mut small),
            b"lkl-hijack: warning:"
        );
    }
}
