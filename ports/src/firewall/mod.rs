//! Keeping the host stack from answering for LKL.
//!
//! The host kernel sees every packet LKL gets. On an address the two share, it would answer a
//! SYN to an LKL port with a reset, and reset the replies to LKL's client connections. Rules
//! in the raw table's prerouting hook, on LKL's interface and addresses only, drop exactly the
//! packets LKL owns (the packet socket has already seen them by then). They live in a table
//! (nftables) or chain (iptables) named after the interface and this process, made by the first
//! tool that works here (see [`candidates`]), are removed at exit — by the exit handler, or by a
//! watchdog process when the program dies of a signal — and tables of dead instances are removed at
//! start.

mod commands;
mod tools;
mod watchdog;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::policy::{FirewallMode, PortSet};

pub use tools::tools_found;
use tools::{candidates, Tool};

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
    /// The rules stay until this process and every process forked from it have ended (see
    /// [`follow_forks`](Self::follow_forks)).
    follow_forks: bool,
    /// The watchdog also waits for the processes forked from this one.
    forks_watched: AtomicBool,
    /// Set once processes forked from this one serve with the rules: the exit of this one
    /// leaves them to the watchdog.
    removal_left_to_watchdog: AtomicBool,
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
            follow_forks: false,
            forks_watched: AtomicBool::new(false),
            removal_left_to_watchdog: AtomicBool::new(false),
        }
    }

    /// The nft table or iptables chain name of this instance.
    fn name(&self) -> String {
        match self.tool {
            Tool::Nft(_) => table_name(&self.ifname, self.pid),
            Tool::Iptables { .. } => chain_name(&self.ifname, self.pid),
        }
    }

    /// Keeps the rules, once installed, until this process and every process forked from it
    /// (which may serve the same ports: pre-fork servers) have ended: the forks inherit a
    /// pipe the watchdog also waits on. For a program's own process, not for a launcher that
    /// execs the program (the pipe is close-on-exec).
    pub fn follow_forks(&mut self) {
        self.follow_forks = true;
    }

    /// Processes forked from this one serve with the rules: this one's exit does not remove
    /// them, the watchdog does once they have all ended (with [`follow_forks`]).
    ///
    /// [`follow_forks`]: Self::follow_forks
    pub fn leave_removal_to_watchdog(&self) {
        if self.forks_watched.load(Ordering::Relaxed) {
            self.removal_left_to_watchdog.store(true, Ordering::Relaxed);
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
        if self.action == Action::Run && !self.removal_left_to_watchdog.load(Ordering::Relaxed) {
            for c in self.remove_commands(&self.name()) {
                self.run_quiet(&c);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_interface_and_the_pid() {
        assert_eq!(table_name("venet0", 4242), "lklhijack_venet0_4242");
        assert_eq!(table_name("eth0.100:a-b", 7), "lklhijack_eth0_100_a_b_7");
        assert_eq!(chain_name("eth0.100", 7), "LKLH-eth0.100-7");
    }
}
