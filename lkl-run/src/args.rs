//! The command line.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use lkl_ports::policy::{FirewallMode, PortSet};

pub const USAGE: &str = "\
usage: lkl-run [OPTIONS] -- PROGRAM [ARGS...]
       lkl-run [OPTIONS] --forward PORT=HOST:PORT [--forward ...] [--proxy-protocol v1|v2]
       lkl-run [OPTIONS] --check [-- PROGRAM [ARGS...]]

Runs PROGRAM with its TCP/IP sockets on Linux 6.12 inside the process (LKL: BBR, fq and a
modern TCP whatever the host kernel), preloading liblkl_hijack.so. --forward runs a built-in
TCP forwarder instead, for programs that cannot be preloaded (gc-built Go, static binaries):
it serves PORT on LKL and connects to HOST:PORT on the host stack.

Options:
  --iface IF         host interface (default: venet0, else the first interface up with IPv4)
  --ip ADDR          LKL's IPv4 address (default: the interface's own, shared with the host)
  --ip6 ADDR         LKL's IPv6 address (default: the interface's global one, if any)
  --ports LIST       TCP ports whose listeners LKL serves, e.g. 443,8000-8100 (default: all;
                     needed with --user on a shared address)
  --user USER        run the program as USER, after the packet socket is open and the
                     firewall rules are in place
  --sysctl KEY=VALUE LKL sysctl (repeatable), e.g. net.ipv4.tcp_congestion_control=bbr
  --firewall MODE    auto (default), print or off: rules that keep the host from resetting
                     LKL's connections on a shared address
  --lib PATH         liblkl_hijack.so (default: next to lkl-run, then /usr/local/lib, /usr/lib)
  --check            run the checks only and print a report
  --proxy-protocol V send a PROXY protocol header (v1 or v2) to forward targets

Exit status when a check fails (the program's own status otherwise):
  10 library missing     11 interface missing  12 interface down   13 no address
  14 program not found   15 not preloadable (static, no glibc, gc Go: use --forward)
  16 no CAP_NET_RAW      17 no firewall tool   18 unknown user     19 --user needs --ports
  2 bad usage";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub iface: Option<String>,
    pub ip: Option<Ipv4Addr>,
    pub ip6: Option<Ipv6Addr>,
    pub ports: Option<PortSet>,
    pub user: Option<String>,
    pub sysctls: Vec<String>,
    pub firewall: Option<FirewallMode>,
    pub lib: Option<PathBuf>,
    pub check: bool,
    pub forwards: Vec<String>,
    pub proxy_protocol: Option<String>,
    /// PROGRAM and its arguments.
    pub command: Vec<String>,
}

/// Parses the arguments after the program name; Err is a one-line message.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut out = Args::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            out.command = args.collect();
            break;
        }
        // --opt=value and --opt value alike.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "--check" => out.check = true,
            "-h" | "--help" => return Err(String::new()),
            _ if !flag.starts_with('-') => {
                // The program, without a `--` before it.
                out.command = std::iter::once(arg).chain(args).collect();
                break;
            }
            _ => {
                let value = match inline {
                    Some(v) => v,
                    None => args.next().ok_or(format!("{flag} needs a value"))?,
                };
                let bad = |what: &str| format!("{flag} {value}: expected {what}");
                match flag.as_str() {
                    "--iface" => out.iface = Some(value),
                    "--ip" => out.ip = Some(value.parse().map_err(|_| bad("an IPv4 address"))?),
                    "--ip6" => out.ip6 = Some(value.parse().map_err(|_| bad("an IPv6 address"))?),
                    "--ports" => {
                        out.ports = Some(
                            PortSet::parse(&value)
                                .ok_or_else(|| bad("ports and ranges such as 443,8000-8100"))?,
                        )
                    }
                    "--user" => out.user = Some(value),
                    "--sysctl" if value.contains('=') && !value.contains(';') => {
                        out.sysctls.push(value)
                    }
                    "--sysctl" => return Err(bad("KEY=VALUE")),
                    "--firewall" => {
                        out.firewall = Some(match value.as_str() {
                            "auto" => FirewallMode::Auto,
                            "print" => FirewallMode::Print,
                            "off" => FirewallMode::Off,
                            _ => return Err(bad("auto, print or off")),
                        })
                    }
                    "--lib" => out.lib = Some(PathBuf::from(value)),
                    "--forward" => {
                        crate::forward::parse_rule(&value)?;
                        out.forwards.push(value)
                    }
                    "--proxy-protocol" if value == "v1" || value == "v2" => {
                        out.proxy_protocol = Some(value)
                    }
                    "--proxy-protocol" => return Err(bad("v1 or v2")),
                    _ => return Err(format!("unknown option {flag}")),
                }
            }
        }
    }
    match (out.forwards.is_empty(), out.command.is_empty(), out.check) {
        (false, false, _) => Err("give either --forward or a program, not both".into()),
        (true, true, false) => Err("nothing to run: give a program after --, or --forward".into()),
        _ if out.proxy_protocol.is_some() && out.forwards.is_empty() => {
            Err("--proxy-protocol applies to --forward only".into())
        }
        _ => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn options_then_the_program_with_its_own_options() {
        let a = p(&[
            "--iface",
            "venet0",
            "--ports=443",
            "--",
            "nginx",
            "-g",
            "--x",
        ])
        .unwrap();
        assert_eq!(a.iface.as_deref(), Some("venet0"));
        assert_eq!(a.ports, PortSet::parse("443"));
        assert_eq!(a.command, ["nginx", "-g", "--x"]);
        assert_eq!(
            p(&["--user", "nobody", "nginx", "-v"]).unwrap().command,
            ["nginx", "-v"]
        );
    }

    #[test]
    fn bad_values_are_named_in_one_line() {
        for (args, needle) in [
            (
                &["--ip", "1.2.3", "--", "x"][..],
                "--ip 1.2.3: expected an IPv4 address",
            ),
            (&["--ports", "0-5", "--", "x"], "--ports 0-5"),
            (&["--firewall", "yes", "--", "x"], "auto, print or off"),
            (
                &["--proxy-protocol", "v3", "--forward", "1=127.0.0.1:2"],
                "v1 or v2",
            ),
            (
                &["--forward", "0=127.0.0.1:80"],
                "the listen port must be 1-65535",
            ),
            (&["--forward", "443=localhost:80"], "must be an IP address"),
            (&["--sysctl", "novalue", "--", "x"], "KEY=VALUE"),
            (&["--bogus", "1", "--", "x"], "unknown option --bogus"),
            (&["--iface"], "--iface needs a value"),
            (&[], "nothing to run"),
            (&["--forward", "1=127.0.0.1:2", "--", "x"], "not both"),
        ] {
            let e = p(args).unwrap_err();
            assert!(e.contains(needle) && !e.contains('\n'), "{args:?}: {e}");
        }
    }

    #[test]
    fn check_needs_no_program_and_forward_needs_none() {
        assert!(p(&["--check"]).unwrap().check);
        let f = p(&["--forward", "443=127.0.0.1:8443", "--proxy-protocol", "v2"]).unwrap();
        assert_eq!(f.forwards, ["443=127.0.0.1:8443"]);
        assert_eq!(f.proxy_protocol.as_deref(), Some("v2"));
    }
}
