//! The configuration from the environment, under upstream LKL's variable names where they
//! exist.
//! Host-dependent checks (the interface exists and is up, CAP_NET_RAW) happen when the packet
//! backend opens (`lkl::packet::OpenError`), with errors in the same one-line style
//! ([`backend_open_error`]).

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use lkl::packet::{OpenError, OpenInput};

use crate::policy::{Clients, FirewallMode, Policy, PortSet};

/// A bad variable: its name, its value and what was expected, on one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub var: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={}: expected {}",
            self.var,
            self.value.escape_debug(),
            self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

/// LKL's network interface, as configured by `LKL_HIJACK_NET_*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// `LKL_HIJACK_NET_IFPARAMS`: the host interface the packet socket binds to.
    pub host_if: String,
    pub ip: Option<Ipv4Addr>,
    pub netmask_len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub netmask6_len: u8,
    pub gateway6: Option<Ipv6Addr>,
    pub mtu: Option<u32>,
    /// `LKL_HIJACK_NET_FD`: a packet socket opened by `lkl-run` with privileges this process
    /// may lack, used instead of opening one.
    pub fd: Option<i32>,
    /// `LKL_HIJACK_OFFLOAD` (1, the default, or 0): let the host segment TCP and finish
    /// checksums where the interface allows it.
    pub offload: bool,
    /// `LKL_HIJACK_NET_RX_USECS` (0..=1000, default 30): how long the backend holds a
    /// receive interrupt back while packets stream in (see lkl's `PacketConfig::rx_coalesce`).
    pub rx_usecs: u16,
}

/// Long enough for a stream's packets to gather (measured: a third less CPU per GB received),
/// short beside a round trip over the Internet.
pub const DEFAULT_RX_USECS: u16 = 30;

const IFTYPE: &str = "LKL_HIJACK_NET_IFTYPE";
const IFPARAMS: &str = "LKL_HIJACK_NET_IFPARAMS";

impl NetConfig {
    /// Reads the configuration from `vars` (e.g. `std::env::vars()`). `Ok(None)` when no
    /// interface is configured (`LKL_HIJACK_NET_IFTYPE` unset or empty).
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Option<NetConfig>, ConfigError> {
        let env = Env(vars.into_iter().collect());
        match env.get(IFTYPE) {
            None => return Ok(None),
            Some("packet") => {}
            Some(_) => return Err(env.bad(IFTYPE, "`packet` (the only backend)")),
        }
        let host_if = match env.get(IFPARAMS) {
            Some(name) if name.len() < 16 && !name.contains(['/', ' ', '\0']) => name.to_string(),
            _ => {
                return Err(env.bad(
                    IFPARAMS,
                    "the name of a host interface (1 to 15 characters)",
                ))
            }
        };
        Ok(Some(NetConfig {
            host_if,
            ip: env.parse("LKL_HIJACK_NET_IP", "an IPv4 address", |_| true)?,
            netmask_len: env
                .parse(
                    "LKL_HIJACK_NET_NETMASK_LEN",
                    "a prefix length 0..=32",
                    |&n: &u8| n <= 32,
                )?
                .unwrap_or(32),
            gateway: env.parse("LKL_HIJACK_NET_GATEWAY", "an IPv4 address", |_| true)?,
            ipv6: env.parse("LKL_HIJACK_NET_IPV6", "an IPv6 address", |_| true)?,
            netmask6_len: env
                .parse(
                    "LKL_HIJACK_NET_NETMASK6_LEN",
                    "a prefix length 0..=128",
                    |&n: &u8| n <= 128,
                )?
                .unwrap_or(128),
            gateway6: env.parse("LKL_HIJACK_NET_GATEWAY6", "an IPv6 address", |_| true)?,
            mtu: env.parse("LKL_HIJACK_NET_MTU", "an MTU 68..=65535", |m: &u32| {
                (68..=65535).contains(m)
            })?,
            fd: env.parse(
                "LKL_HIJACK_NET_FD",
                "the number of an open packet socket (set by lkl-run)",
                |&fd: &i32| fd >= 0,
            )?,
            offload: env.parse("LKL_HIJACK_OFFLOAD", "1 or 0", |&v: &u8| v <= 1)? != Some(0),
            rx_usecs: env
                .parse(
                    "LKL_HIJACK_NET_RX_USECS",
                    "microseconds 0..=1000",
                    |&us: &u16| us <= 1000,
                )?
                .unwrap_or(DEFAULT_RX_USECS),
        }))
    }
}

/// Why the packet backend could not open, as one line naming the variable behind the input
/// at fault (the lkl crate names only its own inputs).
pub fn backend_open_error(e: &OpenError) -> String {
    match e.input() {
        OpenInput::Ifname(ifname) => format!("{IFPARAMS}={ifname}: {}", e.problem()),
        OpenInput::Fd(fd) => format!(
            "LKL_HIJACK_NET_FD={fd}: {}; unset it to let the library open its own (lkl-run \
             sets it)",
            e.problem()
        ),
    }
}

/// Everything the preload library reads from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HijackConfig {
    pub net: NetConfig,
    /// `LKL_HIJACK_MEMSIZE` ("256M", "1G", or bytes): the kernel's RAM. Only what the kernel
    /// touches becomes resident; its TCP memory limits scale with it.
    pub mem_mib: u32,
    /// `LKL_HIJACK_BOOT_CMDLINE`: more kernel command line.
    pub boot_cmdline: String,
    /// `LKL_HIJACK_SYSCTL` ("net.ipv4.tcp_congestion_control=bbr;..."), applied at boot.
    pub sysctls: Vec<(String, String)>,
    /// `LKL_HIJACK_NET_QDISC` ("fq", or upstream's "root|fq"): the interface's qdisc.
    pub qdisc: Option<String>,
    /// `LKL_HIJACK_PORTS`, `_CLIENTS`, `_CLIENT_PORTS`, `_FIREWALL`.
    pub policy: Policy,
}

/// `LKL_HIJACK_MEMSIZE` when unset: big enough for thousands of connections' TCP buffers
/// (the kernel sizes tcp_mem from it). Not `lkl::DEFAULT_MEM_MIB`, the lkl crate's default
/// for programs that boot it themselves.
pub const DEFAULT_MEMSIZE_MIB: u32 = 256;

impl HijackConfig {
    /// `Ok(None)` when no interface is configured: the library then stays out of the way.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Option<HijackConfig>, ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let Some(net) = NetConfig::from_vars(vars.iter().cloned())? else {
            return Ok(None);
        };
        let env = Env(vars.into_iter().collect());
        let mem_mib = match env.get("LKL_HIJACK_MEMSIZE") {
            None => DEFAULT_MEMSIZE_MIB,
            Some(v) => parse_size_mib(v)
                .filter(|&m| m >= lkl::MIN_MEM_MIB)
                .ok_or_else(|| {
                    env.bad("LKL_HIJACK_MEMSIZE", "a size like 256M or 1G, at least 16M")
                })?,
        };
        let sysctls = match env.get("LKL_HIJACK_SYSCTL") {
            None => Vec::new(),
            Some(v) => parse_sysctls(v).ok_or_else(|| {
                env.bad(
                    "LKL_HIJACK_SYSCTL",
                    "`key=value` pairs separated by `;`, keys like net.ipv4.tcp_rmem",
                )
            })?,
        };
        let qdisc = match env.get("LKL_HIJACK_NET_QDISC") {
            None => None,
            Some(v) => {
                let name = v.trim().strip_prefix("root|").unwrap_or(v.trim());
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(env.bad(
                        "LKL_HIJACK_NET_QDISC",
                        "a qdisc name such as fq or pfifo_fast (or root|NAME)",
                    ));
                }
                Some(name.to_string())
            }
        };
        let policy = env.policy()?;
        Ok(Some(HijackConfig {
            net,
            policy,
            mem_mib,
            boot_cmdline: env.get("LKL_HIJACK_BOOT_CMDLINE").unwrap_or("").to_string(),
            sysctls,
            qdisc,
        }))
    }
}

impl Env {
    fn policy(&self) -> Result<Policy, ConfigError> {
        let mut policy = Policy::default();
        if let Some(v) = self.get("LKL_HIJACK_PORTS") {
            policy.listen_ports = Some(PortSet::parse(v).ok_or_else(|| {
                self.bad(
                    "LKL_HIJACK_PORTS",
                    "TCP ports and ranges like 443,8000-8100 (1 to 65535)",
                )
            })?);
        }
        policy.clients = match self.get("LKL_HIJACK_CLIENTS") {
            None | Some("host") => Clients::Host,
            Some("lkl") => Clients::Lkl,
            Some(_) => return Err(self.bad("LKL_HIJACK_CLIENTS", "`host` or `lkl`")),
        };
        if let Some(v) = self.get("LKL_HIJACK_CLIENT_PORTS") {
            let range = PortSet::parse(v)
                .filter(|p| p.ranges().len() == 1 && p.ranges()[0].1 - p.ranges()[0].0 >= 255)
                .ok_or_else(|| {
                    self.bad(
                        "LKL_HIJACK_CLIENT_PORTS",
                        "one range of at least 256 ports, like 61000-65535",
                    )
                })?;
            policy.client_ports = range.ranges()[0];
        }
        policy.firewall = match self.get("LKL_HIJACK_FIREWALL") {
            None | Some("auto") => FirewallMode::Auto,
            Some("print") => FirewallMode::Print,
            Some("off") => FirewallMode::Off,
            Some(_) => return Err(self.bad("LKL_HIJACK_FIREWALL", "`auto`, `print` or `off`")),
        };
        Ok(policy)
    }
}

/// "256M", "1G", "65536K" or plain bytes, in MiB (whole MiB only).
fn parse_size_mib(v: &str) -> Option<u32> {
    let v = v.trim();
    let (digits, unit) = match v.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => v.split_at(i),
        None => (v, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let bytes = match unit.to_ascii_uppercase().as_str() {
        "" => n,
        "K" => n.checked_mul(1 << 10)?,
        "M" => n.checked_mul(1 << 20)?,
        "G" => n.checked_mul(1 << 30)?,
        _ => return None,
    };
    if bytes % (1 << 20) != 0 {
        return None;
    }
    u32::try_from(bytes >> 20).ok()
}

/// "a.b=c;d.e=f" (spaces around items allowed, empty items skipped).
fn parse_sysctls(v: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for item in v.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        let (key, value) = item.split_once('=')?;
        let (key, value) = (key.trim(), value.trim());
        let key_ok = !key.is_empty()
            && !key.starts_with(['.', '/'])
            && !key.contains("..")
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
        if !key_ok || value.is_empty() || value.contains('\n') {
            return None;
        }
        out.push((key.to_string(), value.to_string()));
    }
    Some(out)
}

/// The environment; an empty value counts as unset.
struct Env(HashMap<String, String>);

impl Env {
    fn get(&self, var: &str) -> Option<&str> {
        self.0
            .get(var)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn bad(&self, var: &'static str, expected: &'static str) -> ConfigError {
        ConfigError {
            var,
            value: self.get(var).unwrap_or("").to_string(),
            expected,
        }
    }

    /// `var` parsed as T and accepted by `valid`; None when unset.
    fn parse<T: std::str::FromStr>(
        &self,
        var: &'static str,
        expected: &'static str,
        valid: impl Fn(&T) -> bool,
    ) -> Result<Option<T>, ConfigError> {
        self.get(var)
            .map(|v| match v.trim().parse::<T>() {
                Ok(t) if valid(&t) => Ok(t),
                _ => Err(self.bad(var, expected)),
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v = vec![
            (IFTYPE.to_string(), "packet".to_string()),
            (IFPARAMS.to_string(), "venet0".to_string()),
        ];
        v.extend(
            pairs
                .iter()
                .map(|(k, val)| (k.to_string(), val.to_string())),
        );
        v
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        NetConfig::from_vars(vars(pairs)).unwrap_err().to_string()
    }

    #[test]
    fn backend_open_errors_name_the_variable() {
        let down = OpenError::InterfaceDown {
            ifname: "venet0".into(),
        };
        assert_eq!(
            backend_open_error(&down),
            "LKL_HIJACK_NET_IFPARAMS=venet0: expected an interface that is up (it is down)"
        );
        let not_packet = OpenError::NotAPacketSocket { fd: 0 };
        assert_eq!(
            backend_open_error(&not_packet),
            "LKL_HIJACK_NET_FD=0: expected an open AF_PACKET socket (SOCK_RAW or SOCK_DGRAM); \
             unset it to let the library open its own (lkl-run sets it)"
        );
    }

    #[test]
    fn no_iftype_means_no_network() {
        assert_eq!(NetConfig::from_vars(Vec::new()), Ok(None));
    }

    #[test]
    fn full_configuration_parses_and_defaults_apply() {
        let c = NetConfig::from_vars(vars(&[
            ("LKL_HIJACK_NET_IP", "10.0.0.3"),
            ("LKL_HIJACK_NET_IPV6", "fd00::3"),
            ("LKL_HIJACK_NET_GATEWAY6", "fd00::1"),
            ("LKL_HIJACK_NET_MTU", "1400"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.host_if, "venet0");
        assert_eq!(c.ip, Some(Ipv4Addr::new(10, 0, 0, 3)));
        assert_eq!((c.netmask_len, c.netmask6_len), (32, 128));
        assert_eq!(c.gateway, None);
        assert_eq!(c.gateway6, Some("fd00::1".parse().unwrap()));
        assert_eq!(c.mtu, Some(1400));
    }

    #[test]
    fn unknown_iftype_is_named() {
        let e = NetConfig::from_vars(vec![(IFTYPE.into(), "tap".into())]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "LKL_HIJACK_NET_IFTYPE=tap: expected `packet` (the only backend)"
        );
    }

    #[test]
    fn missing_or_bad_interface_name_is_named() {
        let e = NetConfig::from_vars(vec![(IFTYPE.into(), "packet".into())]).unwrap_err();
        assert_eq!(e.var, IFPARAMS);
        assert_eq!(error(&[(IFPARAMS, "a/b")]), "LKL_HIJACK_NET_IFPARAMS=a/b: expected the name of a host interface (1 to 15 characters)");
    }

    #[test]
    fn bad_addresses_are_named() {
        assert_eq!(
            error(&[("LKL_HIJACK_NET_IP", "10.0.0.300")]),
            "LKL_HIJACK_NET_IP=10.0.0.300: expected an IPv4 address"
        );
        assert_eq!(
            error(&[("LKL_HIJACK_NET_GATEWAY", "gw")]),
            "LKL_HIJACK_NET_GATEWAY=gw: expected an IPv4 address"
        );
        assert_eq!(
            error(&[("LKL_HIJACK_NET_IPV6", "10.0.0.3")]),
            "LKL_HIJACK_NET_IPV6=10.0.0.3: expected an IPv6 address"
        );
        assert_eq!(
            error(&[("LKL_HIJACK_NET_GATEWAY6", "fd00::g")]),
            "LKL_HIJACK_NET_GATEWAY6=fd00::g: expected an IPv6 address"
        );
    }

    #[test]
    fn prefix_lengths_out_of_range_are_named() {
        assert_eq!(
            error(&[("LKL_HIJACK_NET_NETMASK_LEN", "40")]),
            "LKL_HIJACK_NET_NETMASK_LEN=40: expected a prefix length 0..=32"
        );
        assert_eq!(
            error(&[("LKL_HIJACK_NET_NETMASK_LEN", "-1")]),
            "LKL_HIJACK_NET_NETMASK_LEN=-1: expected a prefix length 0..=32"
        );
        assert_eq!(
            error(&[("LKL_HIJACK_NET_NETMASK6_LEN", "129")]),
            "LKL_HIJACK_NET_NETMASK6_LEN=129: expected a prefix length 0..=128"
        );
    }

    #[test]
    fn mtu_out_of_range_is_named() {
        assert_eq!(
            error(&[("LKL_HIJACK_NET_MTU", "67")]),
            "LKL_HIJACK_NET_MTU=67: expected an MTU 68..=65535"
        );
        assert_eq!(
            error(&[("LKL_HIJACK_NET_MTU", "big")]),
            "LKL_HIJACK_NET_MTU=big: expected an MTU 68..=65535"
        );
    }

    #[test]
    fn offload_is_on_unless_switched_off() {
        assert!(hijack(&[]).unwrap().net.offload);
        assert!(hijack(&[("LKL_HIJACK_OFFLOAD", "1")]).unwrap().net.offload);
        assert!(!hijack(&[("LKL_HIJACK_OFFLOAD", "0")]).unwrap().net.offload);
        assert_eq!(
            error(&[("LKL_HIJACK_OFFLOAD", "yes")]),
            "LKL_HIJACK_OFFLOAD=yes: expected 1 or 0"
        );
    }

    #[test]
    fn rx_interrupt_moderation_defaults_to_30_microseconds() {
        assert_eq!(hijack(&[]).unwrap().net.rx_usecs, 30);
        let off = hijack(&[("LKL_HIJACK_NET_RX_USECS", "0")]).unwrap();
        assert_eq!(off.net.rx_usecs, 0);
        assert_eq!(
            error(&[("LKL_HIJACK_NET_RX_USECS", "1001")]),
            "LKL_HIJACK_NET_RX_USECS=1001: expected microseconds 0..=1000"
        );
    }

    fn hijack(pairs: &[(&str, &str)]) -> Result<HijackConfig, String> {
        HijackConfig::from_vars(vars(pairs))
            .map(Option::unwrap)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn hijack_defaults_leave_the_kernel_defaults() {
        let c = hijack(&[]).unwrap();
        assert_eq!(c.mem_mib, DEFAULT_MEMSIZE_MIB);
        assert_eq!(
            (c.boot_cmdline.as_str(), c.sysctls.len(), c.qdisc),
            ("", 0, None)
        );
    }

    #[test]
    fn memsize_takes_units_and_refuses_tiny_or_odd_sizes() {
        assert_eq!(
            hijack(&[("LKL_HIJACK_MEMSIZE", "1G")]).unwrap().mem_mib,
            1024
        );
        assert_eq!(
            hijack(&[("LKL_HIJACK_MEMSIZE", "65536K")]).unwrap().mem_mib,
            64
        );
        for bad in ["8M", "12x", "1000", "-1M"] {
            assert_eq!(
                hijack(&[("LKL_HIJACK_MEMSIZE", bad)]).unwrap_err(),
                format!("LKL_HIJACK_MEMSIZE={bad}: expected a size like 256M or 1G, at least 16M")
            );
        }
    }

    #[test]
    fn sysctls_parse_and_bad_ones_are_named() {
        let c = hijack(&[(
            "LKL_HIJACK_SYSCTL",
            "net.ipv4.tcp_rmem=4096 87380 6291456; net.core.somaxconn=4096;",
        )])
        .unwrap();
        assert_eq!(
            c.sysctls,
            vec![
                (
                    "net.ipv4.tcp_rmem".to_string(),
                    "4096 87380 6291456".to_string()
                ),
                ("net.core.somaxconn".to_string(), "4096".to_string())
            ]
        );
        for bad in ["net.core.somaxconn", "../../etc=1", "a b=1", "x="] {
            assert!(hijack(&[("LKL_HIJACK_SYSCTL", bad)])
                .unwrap_err()
                .starts_with("LKL_HIJACK_SYSCTL="));
        }
    }

    #[test]
    fn qdisc_accepts_upstream_form() {
        let q = |v| hijack(&[("LKL_HIJACK_NET_QDISC", v)]);
        assert_eq!(q("root|fq").unwrap().qdisc.as_deref(), Some("fq"));
        assert_eq!(
            q("pfifo_fast").unwrap().qdisc.as_deref(),
            Some("pfifo_fast")
        );
        assert!(q("fq;rm -rf")
            .unwrap_err()
            .starts_with("LKL_HIJACK_NET_QDISC="));
    }

    #[test]
    fn policy_variables_parse_and_bad_ones_are_named() {
        let c = hijack(&[
            ("LKL_HIJACK_PORTS", "443,8000-8100"),
            ("LKL_HIJACK_CLIENTS", "lkl"),
            ("LKL_HIJACK_CLIENT_PORTS", "50000-50999"),
            ("LKL_HIJACK_FIREWALL", "print"),
        ])
        .unwrap();
        assert!(c.policy.listens_in_lkl(8050) && !c.policy.listens_in_lkl(80));
        assert_eq!(c.policy.clients, Clients::Lkl);
        assert_eq!(c.policy.client_ports, (50000, 50999));
        assert_eq!(c.policy.firewall, FirewallMode::Print);
        assert_eq!(hijack(&[]).unwrap().policy, Policy::default());
        for (var, bad) in [
            ("LKL_HIJACK_PORTS", "80-70"),
            ("LKL_HIJACK_PORTS", "0"),
            ("LKL_HIJACK_CLIENTS", "maybe"),
            ("LKL_HIJACK_CLIENT_PORTS", "1000"),
            ("LKL_HIJACK_CLIENT_PORTS", "1000-2000,3000-4000"),
            ("LKL_HIJACK_FIREWALL", "on"),
        ] {
            assert!(
                hijack(&[(var, bad)])
                    .unwrap_err()
                    .starts_with(&format!("{var}={bad}: expected")),
                "{var}={bad}"
            );
        }
    }

    #[test]
    fn errors_are_one_line_even_for_odd_values() {
        assert!(!error(&[("LKL_HIJACK_NET_IP", "1\n2")]).contains('\n'));
    }
}
