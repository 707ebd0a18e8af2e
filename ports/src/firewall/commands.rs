//! The firewall commands, as argv: built from the instance alone, without running anything.

use std::path::Path;

use super::{Firewall, Proto, Tool, CHAIN_PREFIX};
use crate::policy::PortSet;

/// Single-quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Firewall {
    /// Creating the rules with these ports in them.
    pub(super) fn full_commands(&self, tcp: &PortSet, udp: &PortSet) -> Vec<Vec<String>> {
        let mut cmds = self.install_commands();
        for (proto, ports) in [(Proto::Tcp, tcp), (Proto::Udp, udp)] {
            cmds.extend(self.add_commands(proto, ports));
        }
        cmds
    }

    /// A command as argv.
    pub(super) fn install_commands(&self) -> Vec<Vec<String>> {
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
    pub(super) fn check_commands(&self) -> Vec<Vec<String>> {
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

    pub(super) fn add_commands(&self, proto: Proto, ports: &PortSet) -> Vec<Vec<String>> {
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
    pub(super) fn remove_commands(&self, name: &str) -> Vec<Vec<String>> {
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

    pub(super) fn shell(&self, argv: &[String]) -> String {
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

    /// A command for the watchdog's shell: full program path, every argument quoted.
    pub(super) fn shell_full(&self, argv: &[String]) -> String {
        argv.iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
            + " >/dev/null 2>&1"
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::firewall::Action;

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
            follow_forks: false,
            forks_watched: Default::default(),
            removal_left_to_watchdog: Default::default(),
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
}
